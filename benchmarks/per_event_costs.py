"""In process, three per-record costs of one worker, each beside the form it replaced (issue 19, session 34).

- `route decode` (tried and reverted): stage 2's routing records (a commit's encoded events joined into a JSON
  array), pydantic's `TypeAdapter(list[IncidentEvent]).validate_json` against a msgspec struct of every field
  plus `trusted_event` (the form of the reverted commit acbd4fb, kept here so its verdict can be re-measured);
- `event kind counter`: `Pipeline.encode`'s `INCIDENT_EVENTS.labels(kind).inc()` per event against one
  `inc(n)` per kind and commit;
- `encode_batch`: an `alerts` record as a dict per alert through orjson against msgspec's encoding;
- `route readback` (session 35, reverted: faster here, slower end to end, benchmarks/RESULTS.md): a routing
  record built (`_chunks`, joined) and decoded by stage 2 (pydantic) against its events kept by the record's
  bytes and taken back (a dict here; the reverted code's `stream.readback.ReadBack`, 5b16e97);
- `shared decode` (session 35, tried and reverted): the two readers of a stage-1 record (incident SLA agent,
  console feed) each decoding it (`decode_incident_fast`) against one decode kept in a `ReadBack` by the
  value's bytes and taken by the second reader (`_shared`, the form of the reverted commit 1d2468e, with a dict).
  Each read is of a fresh copy of the bytes, as a consumer gets them, on both sides.

The records are the throughput benchmark's hop records (1,000 of 100 alerts, 4 partitions), the engine fed in
the worker's 256 KB steps; the worker's GC tuning; process CPU time, best of 3 per side, sides alternating,
medians of `rounds`. Figures are us per alert of the storm (per event costs spread over the events it caused).

    .venv/bin/python benchmarks/per_event_costs.py [rounds] [pair,pair]   # e.g. 5 "route readback,shared decode"
"""

from __future__ import annotations

import json
import math
import os
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import msgspec  # noqa: E402
import orjson  # noqa: E402
from pydantic import TypeAdapter  # noqa: E402

from correlator import metrics  # noqa: E402
from correlator.engine import Correlator  # noqa: E402
from correlator.models import IncidentEvent, IncidentEventKind, IncidentStatus, Severity, trusted_event  # noqa: E402
from correlator.records import dict_of_record  # noqa: E402
from pipeline_throughput import storm_records  # noqa: E402
from stream.batches import Segment, decode_batch, encode_batch, steps  # noqa: E402
from stream.incident_records import (  # noqa: E402
    IncidentCounts, decode_incident_fast, encode_incident_event,
)
from stream.stage2_agent import MAX_ROUTE_RECORD_BYTES, _chunks, decode_routed  # noqa: E402
from stream.runtime import tune_gc  # noqa: E402
from throughput_part import hop_records  # noqa: E402

_MODEL = TypeAdapter(list[IncidentEvent])
_Count = Annotated[int, msgspec.Meta(ge=0)]


class _WholeEvent(msgspec.Struct, frozen=True):
    """Every field of `IncidentEvent`, required, in its order, typed as the model reads JSON or tighter."""

    kind: IncidentEventKind
    incident_id: str
    seq: Annotated[int, msgspec.Meta(ge=1)]
    key: str
    service: str
    symptom: str
    scope: str
    status: IncidentStatus
    first_seen: float
    last_seen: float
    window_start: float
    alert_count: _Count
    distinct_fingerprints: _Count
    firing_count: _Count
    duplicates: _Count
    max_severity: Severity
    member_sample: list[str]
    entities: dict[str, list[str]]
    previous_id: str | None
    late_alerts: _Count
    reason: str
    emitted_at: float


_WHOLE_EVENTS = msgspec.json.Decoder(list[_WholeEvent])


def _msgspec_events(raw: bytes) -> list[IncidentEvent]:
    return [trusted_event(msgspec.structs.asdict(ev)) for ev in _WHOLE_EVENTS.decode(raw)]


def _orjson_batch(segments: Sequence[Segment], received_ms: int) -> bytes:
    return orjson.dumps({"received_ms": received_ms, "segments": [
        [*(s.source or (None, None)), [dict_of_record(r) for r in s.records]] for s in segments]})


def _count_each(events: Sequence[IncidentEvent]) -> None:
    for ev in events:
        metrics.INCIDENT_EVENTS.labels(ev.kind).inc()


def _count_by_kind(events: Sequence[IncidentEvent]) -> None:
    for kind, n in Counter(ev.kind for ev in events).items():
        metrics.INCIDENT_EVENTS.labels(kind).inc(n)


def _finite(ev: IncidentEvent) -> bool:
    d = ev.__dict__
    return all(math.isfinite(d[k]) for k in ("first_seen", "last_seen", "window_start", "emitted_at"))


def _route_decoded(commits: Sequence[Sequence[tuple[IncidentEvent, bytes]]]) -> None:
    """Before: each commit's routing records joined (one partition: the same chunks), each decoded by stage 2."""
    for pairs in commits:
        for chunk in _chunks([v for _, v in pairs], MAX_ROUTE_RECORD_BYTES):
            decode_routed(bytes(bytearray(b"[" + b",".join(chunk) + b"]")))


def _route_taken(commits: Sequence[Sequence[tuple[IncidentEvent, bytes]]]) -> None:
    """The reverted readback (e.g. 5b16e97): each record's events kept by its bytes, taken back by stage 2."""
    kept: dict[bytes, list[IncidentEvent]] = {}
    for pairs in commits:
        start = 0
        for chunk in _chunks([v for _, v in pairs], MAX_ROUTE_RECORD_BYTES):
            events = [ev for ev, _ in pairs[start:start + len(chunk)]]
            start += len(chunk)
            value = b"[" + b",".join(chunk) + b"]"
            if all(_finite(ev) for ev in events):
                kept[value] = events
            copy = bytes(bytearray(value))
            if kept.pop(copy, None) is None:
                decode_routed(copy)


def _shared(raw: bytes, shared: dict[bytes, IncidentCounts]) -> IncidentCounts | None:
    fast = shared.pop(raw, None)
    if fast is None:
        fast = decode_incident_fast(raw)
        if fast is not None:
            shared[raw] = fast
    return fast


def _decoded_twice(values: Sequence[bytes]) -> None:
    for value in values:
        decode_incident_fast(bytes(bytearray(value)))
        decode_incident_fast(bytes(bytearray(value)))


def _decoded_once(values: Sequence[bytes]) -> None:
    shared: dict[bytes, IncidentCounts] = {}
    for value in values:
        _shared(bytes(bytearray(value)), shared)
        _shared(bytes(bytearray(value)), shared)


def _best(f: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(3):
        t = time.process_time()
        f()
        best = min(best, time.process_time() - t)
    return best


def main(rounds: int = 5, only: Sequence[str] = ()) -> dict[str, Any]:
    """Each pair's medians (us per alert) and per-round ratios new / old (`only`: these pairs)."""
    bodies, alerts = storm_records(1000, 100, seed=7)
    by_partition: dict[int, list[bytes]] = {}
    for p, value in hop_records(bodies, 4):
        by_partition.setdefault(p, []).append(value)
    commits: list[list[IncidentEvent]] = []
    records: list[list[Segment]] = []
    for values in by_partition.values():
        engine = Correlator()
        for step in steps(values, 256 * 1024, size_of=len):
            events: list[IncidentEvent] = []
            for value in step:
                segments, _ = decode_batch(value)
                records.append(segments)
                events += engine.ingest([r for s in segments for r in s.records])
            commits.append(events)
    routed = [b"[" + b",".join(encode_incident_event(e) for e in c) + b"]" for c in commits if c]
    encoded = [[(e, encode_incident_event(e)) for e in c] for c in commits if c]
    values = [v for pairs in encoded for _, v in pairs]
    assert [_msgspec_events(r) for r in routed] == [_MODEL.validate_json(r) for r in routed]
    pairs: dict[str, tuple[Callable[[], object], Callable[[], object]]] = {
        "route decode": (lambda: [_MODEL.validate_json(r) for r in routed],
                         lambda: [_msgspec_events(r) for r in routed]),
        "event kind counter": (lambda: [_count_each(c) for c in commits], lambda: [_count_by_kind(c) for c in commits]),
        "encode_batch": (lambda: [_orjson_batch(s, 1) for s in records], lambda: [encode_batch(s, 1) for s in records]),
        "route readback": (lambda: _route_decoded(encoded), lambda: _route_taken(encoded)),
        "shared decode": (lambda: _decoded_twice(values), lambda: _decoded_once(values)),
    }
    pairs = {name: pair for name, pair in pairs.items() if not only or name in only}
    tune_gc()
    runs: dict[str, dict[str, list[float]]] = {name: {"old": [], "new": []} for name in pairs}
    for r in range(rounds):
        for name, (old, new) in pairs.items():
            for side, f in ((("old", old), ("new", new)) if r % 2 == 0 else (("new", new), ("old", old))):
                runs[name][side].append(1e6 * _best(f) / alerts)
    return {"alerts": alerts, "events": sum(map(len, commits)), "commits": len(commits), "load": os.getloadavg(),
            **{name: {"old_us_per_alert": statistics.median(v["old"]), "new_us_per_alert": statistics.median(v["new"]),
                      "round_ratios": [round(b / a, 2) for a, b in zip(v["old"], v["new"], strict=True)]}
               for name, v in runs.items()}}


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]) if len(sys.argv) > 1 else 5,
                          sys.argv[2].split(",") if len(sys.argv) > 2 else ()), indent=1))
