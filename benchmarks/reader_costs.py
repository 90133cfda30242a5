"""In process, two per-record costs of the readers of `incidents` and its tables, each beside the form it replaced
(issue 19, session 39).

- `clock read`: what the console feed (stream/console/feed.py) pays to read one `incident-sla` changelog value.
  Every worker's feed reads every clock document the incident SLA agents write. The values are the ones the SLA
  table writes (`stream.docstore.stored_value`: the document and its outbox) for the clocks of a generated storm:
  the engine's events of the throughput benchmark's hop storm (1,000 records of 100 alerts, seed 7) folded by
  `on_incident_event`, one value for each clock it changes. Old: `orjson.loads(value)["doc"]` then
  `IncidentClock.model_validate` (the feed as it is); new: `read_clock`, a `ClockView` struct of the model's fields
  in one msgspec pass (the form of fast39's reverted commit aaa19e5, kept here so its verdict can be re-measured:
  benchmarks/RESULTS.md). Every value must read to the same document both ways.
- `header check`: `is_stage2_record` on the headers of the same storm's `incidents` records as a reader gets them
  (stage-1 events: none; the stage-2 share of a hop run, about 4%: a parent's two headers), which the incident SLA
  agent and every worker's feed ask of every record. Old: the generator over `_pairs` (before session 39); new:
  the function as it is. Both must answer the same for every record.

Process CPU time, the garbage collector tuned as a worker's; each round runs both sides in an order that alternates
every round and prints us per item both ways and their ratio (new / old); then the medians, per pair, as JSON lines.

    .venv/bin/python benchmarks/reader_costs.py [--rounds 7] [--pairs "clock read,header check"]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


import msgspec  # noqa: E402
import orjson  # noqa: E402

from correlator.config import DEFAULT_CONFIG  # noqa: E402
from correlator.engine import Correlator  # noqa: E402
from correlator.models import IncidentEvent  # noqa: E402
from correlator.records import record_of  # noqa: E402
from correlator.sources import parse  # noqa: E402
from correlator.triage.incident_sla import IncidentClock, on_incident_event  # noqa: E402
from pipeline_throughput import storm_records  # noqa: E402
from stream.docstore import stored_document  # noqa: E402
from stream.incident_records import PARENT_HEADERS, STAGE_HEADER, Headers, _pairs, is_stage2_record  # noqa: E402
from stream.runtime import tune_gc  # noqa: E402

STAGE2_SHARE = 0.04
"""Stage 2's records among `incidents`' in a hop run (fast23: 15,324 with stage 2 against 14,618 without)."""


ClockView: Any = msgspec.defstruct(
    "ClockView", [(name, f.annotation) if f.is_required() else (name, f.annotation, f.default)
                  for name, f in IncidentClock.model_fields.items()], frozen=True, kw_only=True)
"""`IncidentClock`'s fields in its order and types, for one msgspec pass (aaa19e5's form), derived from the model so
the field list stands in one place."""


class _StoredClock(msgspec.Struct):
    doc: ClockView  # type: ignore[valid-type]


_CLOCK = msgspec.json.Decoder(_StoredClock)


def read_clock(value: bytes) -> Any:
    """aaa19e5's feed read of a clock value: the document as a `ClockView`, the outbox skipped."""
    return _CLOCK.decode(value).doc


def stored_value(doc: IncidentClock) -> bytes:
    """A table value as `stream.docstore.DocStore` writes it (the document, and an outbox, empty here)."""
    return orjson.dumps({"doc": doc.model_dump(mode="json"), "outbox": []})


def storm_events(records: int = 1000, per_record: int = 100, seed: int = 7) -> list[IncidentEvent]:
    """The engine's events for the hop storm, fed ten records at a time."""
    bodies, _ = storm_records(records, per_record, seed)
    engine = Correlator(DEFAULT_CONFIG)
    events: list[IncidentEvent] = []
    for i in range(0, len(bodies), 10):
        events += engine.ingest([record_of(a) for body in bodies[i:i + 10] for a in parse("generic", body)])
    return events


def clock_values(events: Sequence[IncidentEvent]) -> list[bytes]:
    """The SLA table's values for the events' clocks: one per change of a clock, in the order they happen."""
    clocks: dict[str, IncidentClock] = {}
    values: list[bytes] = []
    now = time.time()
    for event in events:
        after = on_incident_event(clocks.get(event.incident_id), event, now)
        if after is not None:
            clocks[event.incident_id] = after
            values.append(stored_value(after))
    return values


def old_read_clock(value: bytes) -> IncidentClock:
    """The feed's clock read before session 39."""
    return IncidentClock.model_validate(stored_document(value))


def old_is_stage2_record(headers: Headers) -> bool:
    """`is_stage2_record` before session 39."""
    return any(name == STAGE_HEADER and value == b"2" for name, value in _pairs(headers))


def _cpu_us(f: Callable[[Any], Any], items: Sequence[Any]) -> float:
    start = time.process_time()
    for item in items:
        f(item)
    return (time.process_time() - start) / len(items) * 1e6


def run_pair(name: str, old: Callable[[Any], Any], new: Callable[[Any], Any], items: Sequence[Any],
             rounds: int) -> None:
    """Time both sides for `rounds` rounds, alternating which goes first; print each round and the medians."""
    old_us: list[float] = []
    new_us: list[float] = []
    for r in range(rounds):
        sides: list[tuple[list[float], Callable[[Any], Any]]] = [(old_us, old), (new_us, new)]
        for out, f in sides if r % 2 == 0 else reversed(sides):
            out.append(_cpu_us(f, items))
        print(json.dumps({"pair": name, "round": r, "old_us": round(old_us[-1], 3), "new_us": round(new_us[-1], 3),
                          "ratio": round(new_us[-1] / old_us[-1], 3)}))
    ratios = [n / o for n, o in zip(new_us, old_us, strict=True)]
    print(json.dumps({"pair": name, "items": len(items), "old_us_median": round(statistics.median(old_us), 3),
                      "new_us_median": round(statistics.median(new_us), 3),
                      "ratio_median": round(statistics.median(ratios), 3), "ratio_max": round(max(ratios), 3)}))


def main(argv: list[str] | None = None) -> int:
    """Build the storm's items, check both sides agree on every one, then time the pairs asked for."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--pairs", default="clock read,header check")
    args = p.parse_args(argv)
    pairs = {s.strip() for s in args.pairs.split(",")}
    tune_gc()
    events = storm_events()
    if "clock read" in pairs:
        values = clock_values(events)
        for value in values:
            assert msgspec.to_builtins(read_clock(value)) == old_read_clock(value).model_dump(mode="json"), value
        run_pair("clock read", old_read_clock, read_clock, values, args.rounds)
    if "header check" in pairs:
        every = round(1 / STAGE2_SHARE)
        headers: list[Headers] = [list(PARENT_HEADERS) if i % every == 0 else [] for i in range(len(events))]
        assert [old_is_stage2_record(h) for h in headers] == [is_stage2_record(h) for h in headers]
        run_pair("header check", old_is_stage2_record, is_stage2_record, headers, args.rounds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
