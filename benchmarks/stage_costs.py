"""What the pipeline costs per alert with the broker taken out: the floor under `throughput.py`'s figures.

The throughput part compares the pipeline with a bare aiokafka consumer that fetches and orjson-parses the
raw records (the ceiling). This script does, in one process and with no Kafka at all, the work the two agents
do to the same records (`pipeline_throughput.storm_records`, the same seed), stage by stage, timed per batch:

parse       the ceiling's own work: orjson-load every NDJSON line (`raw_consumer.parse_lines`)
normalize   `correlator.sources.normalize` of each body (its typed fast path, else the adapter) into `AlertRecord`s,
            their `alerts` partition (murmur2, cached), one `encode_batch` record per partition per batch (what
            `normalize_batch` does; no event-time horizon, as for the benchmark's workers: the storm is a recording)
correlate   `decode_batch` of those records, `Correlator.ingest` per partition, and the incident events
            encoded as the correlate agent publishes them (what `correlate_batch` and `Pipeline.encode` do)

Batches are what the agents meet in a catch-up: as many raw records as fit in `step_bytes` (256 KiB), at most
500. Left out, so that the floor is an upper bound on what any wiring of this code could reach: Faust's
consumer, acks and sends, the changelog (state sits in a `DictStore`, not the table), checkpoints and the
Prometheus counters. The child process runs with the worker's GC settings (`stream.runtime.tune_gc`).

If the normalize + correlate rate alone is below a share of the ceiling, no pipeline built on this code
reaches that share: the broker and Faust only add to it.

    python benchmarks/stage_costs.py                  # 1,000 x 100 and 20,000 x 1 alerts, 5 runs, medians
    python benchmarks/stage_costs.py --quick --json   # small, for the test suite
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from pipeline_throughput import storm_records  # noqa: E402
from raw_consumer import parse_lines  # noqa: E402

from correlator.engine import Correlator  # noqa: E402
from correlator.eventtime import TimeGuard  # noqa: E402
from correlator.records import AlertRecord  # noqa: E402
from correlator.sources import normalize  # noqa: E402
from correlator.state import DictStore  # noqa: E402
from stream.batches import Segment, decode_batch, encode_batch, steps  # noqa: E402
from stream.pipeline import NORMALIZE_BATCH  # noqa: E402
from stream.runtime import tune_gc  # noqa: E402
from stream.sends import cached_partition  # noqa: E402
from stream.settings import Settings  # noqa: E402

__all__ = ["STAGES", "SHAPES", "batches_of", "child", "costs", "main"]

STAGES = ("parse", "normalize", "correlate")
SHAPES = {100: 1000, 1: 20_000}
"""Alerts per raw record -> raw records, as the throughput part sends them."""
QUICK_SHAPES = {100: 30, 1: 300}


def batches_of(bodies: Sequence[bytes], max_bytes: int, most: int = NORMALIZE_BATCH) -> Iterator[Sequence[bytes]]:
    """Raw records grouped as a catch-up hands them to the normalize agent: `take_events` batches of at most
    `most` records, each cut by `stream.batches.steps` into runs of at most `max_bytes` (0: no bound)."""
    for start in range(0, len(bodies), most):
        yield from steps(bodies[start:start + most], max_bytes, len)


_GUARD = TimeGuard(horizon_s=None)
"""The benchmark workers' event-time rule (tests/workers.py: the storms are recordings, replayed live)."""


def _normalize(batch: Sequence[bytes], first_offset: int, cache: dict[str, int], partitions: int) -> dict[int, bytes]:
    by_partition: dict[int, list[Segment]] = {}
    for offset, body in enumerate(batch, first_offset):
        split: dict[int, list[AlertRecord]] = {}
        for record in normalize("generic", body, time.time(), _GUARD).records:
            split.setdefault(cached_partition(cache, record.key, partitions), []).append(record)
        for p, records in split.items():
            by_partition.setdefault(p, []).append(Segment((0, offset), records))
    return {p: encode_batch(segments, 0) for p, segments in by_partition.items()}


def _correlate(values: dict[int, bytes], engines: dict[int, Correlator]) -> int:
    published = 0
    for p, value in values.items():
        segments, _ = decode_batch(value)
        events = engines[p].ingest([r for s in segments for r in s.records])
        published += len([orjson.dumps(ev.model_dump(mode="json")) for ev in events])
    return published


def child(per_record: int, records: int, seed: int) -> dict[str, Any]:
    """Seconds per stage over the whole stream (one pass), in this process."""
    bodies, alerts = storm_records(records, per_record, seed)
    settings = Settings()
    partitions = settings.partitions_for("alerts")
    engines = {p: Correlator(settings.correlation_config(), DictStore()) for p in range(partitions)}
    cache: dict[str, int] = {}
    spent = dict.fromkeys(STAGES, 0.0)
    events = offset = 0
    clock = time.perf_counter
    for batch in batches_of(bodies, settings.step_bytes):
        t0 = clock()
        for body in batch:
            parse_lines(body)
        t1 = clock()
        values = _normalize(batch, offset, cache, partitions)
        t2 = clock()
        events += _correlate(values, engines)
        t3 = clock()
        spent["parse"] += t1 - t0
        spent["normalize"] += t2 - t1
        spent["correlate"] += t3 - t2
        offset += len(batch)
    return {"alerts": alerts, "records": len(bodies), "events": events, "seconds": spent}


def _run_child(per_record: int, records: int, seed: int) -> dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, "--child", str(per_record), str(records), "--seed", str(seed)],
                         check=True, capture_output=True, text=True, cwd=ROOT)
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def costs(shapes: dict[int, int], runs: int, seed: int = 7) -> list[dict[str, Any]]:
    """Per shape: median microseconds per alert of each stage and the alerts/s of the stages together."""
    rows = []
    for per_record, records in shapes.items():
        results = [_run_child(per_record, records, seed) for _ in range(runs)]
        alerts = results[0]["alerts"]
        us = {s: statistics.median(r["seconds"][s] for r in results) * 1e6 / alerts for s in STAGES}
        pipeline = [alerts / (r["seconds"]["normalize"] + r["seconds"]["correlate"]) for r in results]
        rows.append({
            "per_record": per_record, "records": results[0]["records"], "alerts": alerts,
            "events": results[0]["events"], "runs": runs, "us_per_alert": us,
            "in_process_alerts_per_s": statistics.median(pipeline),
            "runs_in_process_alerts_per_s": pipeline,
        })
    return rows


def markdown(rows: Sequence[dict[str, Any]], ceilings: dict[int, float] | None = None) -> str:
    """A table of the stage costs; with `ceilings` (alerts per record -> the Kafka ceiling), the ratios."""
    head = "| alerts per record | parse, us/alert | normalize, us/alert | correlate, us/alert | in-process alerts/s |"
    rule = "|---:|---:|---:|---:|---:|"
    if ceilings:
        head += " Kafka ceiling alerts/s | in-process / ceiling |"
        rule += "---:|---:|"
    out = [head, rule]
    for r in rows:
        us = r["us_per_alert"]
        line = (f"| {r['per_record']} | {us['parse']:.2f} | {us['normalize']:.2f} | {us['correlate']:.2f} "
                f"| {r['in_process_alerts_per_s']:,.0f} |")
        ceiling = (ceilings or {}).get(r["per_record"])
        if ceilings:
            line += (f" {ceiling:,.0f} | {r['in_process_alerts_per_s'] / ceiling:.1%} |" if ceiling else " - | - |")
        out.append(line)
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    """Run every shape `--runs` times in fresh child processes and print the medians."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--quick", action="store_true", help="small sizes, one run: proves it works, not speed")
    p.add_argument("--json", action="store_true")
    p.add_argument("--child", type=int, nargs=2, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child is not None:
        tune_gc()
        print(json.dumps(child(args.child[0], args.child[1], args.seed)))
        return 0
    rows = costs(QUICK_SHAPES if args.quick else SHAPES, 1 if args.quick else args.runs, args.seed)
    print(json.dumps(rows) if args.json else markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
