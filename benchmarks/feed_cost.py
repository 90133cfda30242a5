"""What the console's feed costs a worker to read `incidents`: CPU seconds, its one-pass decoder against the models';
and the incident SLA agent's step per event, the same two ways.

Every worker's feed (stream/console/feed.py) reads every partition of `incidents` from the start, so each
incident event is decoded once per worker. This measures that read: the engine's events of a generated storm
(`storms.py`, `--alerts`) are produced to `incidents` on an embedded Tansu, then the feed itself (`run_feed`,
the worker's code, one aiokafka consumer without a group) folds them into a fresh `ReadModel` until it has
caught up, in this process, twice per round: with the models' decoder (`decode_incident_record`, the baseline)
and with `read_incident_record` (msgspec for stage-1 events), in an order that alternates every round. The
figure is this process's CPU seconds from the start of the read to caught-up (fetching included, the garbage
collector tuned as a worker's), each round's
ratio (one-pass / models) and the median of the ratios are printed. Both arms must fold the same rows. Beside it,
the fold alone (`ReadModel.apply_incident`, CPU us an event) on what each decoder made of the records; and the
incident SLA agent's step per event (`stream.tickets.read_incidents` and `clock_incidents` without the table: decode, then
`on_incident_event` on the incident's clock), CPU us an event, with `parse_incident` (the model, before) and with
`decode_incident_fast` first (now). Clocks must be equal both ways.

    .venv/bin/python benchmarks/feed_cost.py                 # 30,000 alerts, 5 rounds
    .venv/bin/python benchmarks/feed_cost.py --quick         # a small round: proves it runs, not a figure
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from itertools import islice
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from storms import StormSpec, generate  # noqa: E402

from correlator.config import DEFAULT_CONFIG  # noqa: E402
from correlator.engine import Correlator  # noqa: E402
from correlator.models import IncidentEvent  # noqa: E402
from correlator.readmodel import ReadModel  # noqa: E402
from correlator.records import record_of  # noqa: E402
from correlator.sources import parse  # noqa: E402
from stream.broker import start_broker  # noqa: E402
from stream.console.feed import Decode, FeedState, FeedTopics, run_feed  # noqa: E402
from correlator.triage.incident_sla import IncidentClock, on_incident_event  # noqa: E402
from stream.incident_records import (  # noqa: E402
    decode_incident_fast,
    decode_incident_record,
    encode_incident_event,
    read_incident_record,
)
from stream.runtime import tune_gc  # noqa: E402
from stream.tickets import parse_incident  # noqa: E402
from tests.workers import Deployment  # noqa: E402

ARMS: dict[str, Decode] = {"models": decode_incident_record, "one_pass": read_incident_record}
START = 1_772_420_400.0


def storm_events(alerts: int, seed: int) -> list[IncidentEvent]:
    """The incident events the engine publishes for a generated storm of `alerts` alerts (then a day of quiet)."""
    alerts_of = (json.dumps(a).encode() for a, _ in islice(generate(StormSpec(alerts=alerts, seed=seed)), alerts))
    records = [record_of(a) for line in alerts_of for a in parse("generic", line)]
    engine = Correlator(DEFAULT_CONFIG)
    return engine.ingest(records) + engine.advance(max(r.starts_at for r in records) + 86400)


async def read_once(bootstrap: str, topics: FeedTopics, decode: Decode) -> tuple[float, float, ReadModel]:
    """(CPU s, wall s, model) of one feed reading `topics` from the start until it has caught up."""
    model, state = ReadModel(), FeedState()
    cpu0, wall0 = time.process_time(), time.monotonic()
    task = asyncio.create_task(run_feed(model, topics, bootstrap, {}, state, decode=decode))
    await state.caught_up.wait()
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return cpu, wall, model


def fold_only(events: list[IncidentEvent], decode: Decode) -> float:
    """CPU us an event of `ReadModel.apply_incident` alone, on what `decode` made of the events' records."""
    decoded = [decode(encode_incident_event(e), []) for e in events]
    model, cpu0 = ReadModel(), time.process_time()
    for one in decoded:
        model.apply_incident(one)  # type: ignore[arg-type]  # stage-1 events only: IncidentCounts or IncidentEvent
    return 1e6 * (time.process_time() - cpu0) / len(events)


def sla_step(events: list[IncidentEvent], one_pass: bool) -> tuple[float, dict[str, IncidentClock | None]]:
    """(CPU us an event, clocks) of the SLA agent's decode and clock step over the events' records."""
    raw = [encode_incident_event(e) for e in events]
    clocks: dict[str, IncidentClock | None] = {}
    cpu0 = time.process_time()
    for k, value in enumerate(raw):
        event = (decode_incident_fast(value) if one_pass else None) or parse_incident(value)
        assert event is not None
        clocks[event.incident_id] = on_incident_event(clocks.get(event.incident_id), event, START + k) or \
            clocks.get(event.incident_id)
    return 1e6 * (time.process_time() - cpu0) / len(raw), clocks


def main(argv: list[str] | None = None) -> int:
    """Produce the storm's incident events, then read them with both decoders, alternating, `--rounds` times."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--alerts", type=int, default=30_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--quick", action="store_true", help="2,000 alerts, one round")
    args = ap.parse_args(argv)
    if args.quick:
        args.alerts, args.rounds = 2_000, 1
    events = storm_events(args.alerts, args.seed)
    tune_gc()  # as a worker runs (stream/worker.py)
    broker = start_broker(log_path=Path(tempfile.mkdtemp(prefix="aiops-feed-cost-")) / "tansu.log")
    try:
        dep = Deployment(broker, Path(tempfile.mkdtemp(prefix="aiops-feed-cost-")))
        dep.create_topics()
        dep.produce("incidents", [(e.incident_id.encode(), encode_incident_event(e)) for e in events])
        # the feed's other topics exist and are empty here: the figure is the read of `incidents`
        topics = FeedTopics(dep.topic("incidents"), dep.topic("tickets_triaged"), dep.topic("alerts"))
        rounds: list[dict[str, Any]] = []
        for k in range(args.rounds):
            order = ["models", "one_pass"] if k % 2 == 0 else ["one_pass", "models"]
            got = {arm: asyncio.run(read_once(broker.bootstrap, topics, ARMS[arm])) for arm in order}
            models = {arm: got[arm][2] for arm in order}
            if models["models"].rows != models["one_pass"].rows or len(models["models"].rows) == 0:
                raise AssertionError("the two decoders folded different rows")
            sla = {arm: sla_step(events, arm == "one_pass") for arm in order}
            if sla["models"][1] != sla["one_pass"][1]:
                raise AssertionError("the SLA step made different clocks")
            rounds.append({arm: {"cpu_s": round(got[arm][0], 3), "wall_s": round(got[arm][1], 3),
                                 "fold_only_us": round(fold_only(events, ARMS[arm]), 2),
                                 "sla_step_us": round(sla[arm][0], 2)} for arm in order}
                          | {"ratio": got["one_pass"][0] / got["models"][0],
                             "sla_ratio": sla["one_pass"][0] / sla["models"][0]})
            print(json.dumps(rounds[-1]), flush=True)
        per = {arm: statistics.median(r[arm]["cpu_s"] for r in rounds) for arm in ARMS}
        print(json.dumps({
            "alerts": args.alerts, "incident_events": len(events), "rows": len(models["models"].rows),
            "rounds": args.rounds, "median_cpu_s": per,
            "median_us_per_event": {arm: round(1e6 * s / len(events), 1) for arm, s in per.items()},
            "median_fold_only_us_per_event": {arm: statistics.median(r[arm]["fold_only_us"] for r in rounds)
                                              for arm in ARMS},
            "median_ratio_one_pass_over_models": round(statistics.median(r["ratio"] for r in rounds), 3),
            "ratios": [round(r["ratio"], 3) for r in rounds],
            "median_sla_step_us_per_event": {arm: statistics.median(r[arm]["sla_step_us"] for r in rounds)
                                             for arm in ARMS},
            "median_sla_ratio_one_pass_over_models": round(statistics.median(r["sla_ratio"] for r in rounds), 3),
            "sla_ratios": [round(r["sla_ratio"], 3) for r in rounds]}, indent=1))
    finally:
        broker.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
