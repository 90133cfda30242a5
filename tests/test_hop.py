"""The hop (stream/hop.py): the ingest's `alerts` records spread by correlation key, are numbered by their own
offset so a redelivery is applied once, and a worker SIGKILLed mid-storm on them recovers the replay's incidents
with no alert counted twice."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace

import orjson
import pytest

from correlator.config import DEFAULT_CONFIG
from correlator.eventtime import TimeGuard
from correlator.keys import DEFAULT_KEY_CONFIG
from correlator.records import AlertRecord
from correlator.replay import replay
from correlator.sources import parse
from stream.batches import PARTS_PER_OFFSET, BatchError, Segment, decode_batch
from stream.broker import EmbeddedBroker
from stream.hop import HOP_SOURCE, numbered
from stream.ingest import AlertHop
from stream.state import TableStore

from .test_pipeline import explain_difference, follow, storm_bodies
from .workers import Deployment, WorkerProc

HOP = AlertHop(DEFAULT_KEY_CONFIG, TimeGuard(horizon_s=None), 4)
"""The ingest's hop with default settings and no horizon (the storms are recordings)."""


def _record(fingerprint: str, key: str = "svc/Down") -> AlertRecord:
    return AlertRecord(fingerprint, key, "firing", "critical", 1772359205.0)


def test_one_body_of_many_services_spreads_over_partitions_one_record_each() -> None:
    body = orjson.dumps({"version": "4", "alerts": [
        {"status": "firing", "labels": {"alertname": "Down", "service": f"svc-{i}"}, "startsAt": "2026-03-01T10:00:00Z"}
        for i in range(40)]})
    sends = HOP.validate("alertmanager", body, 1772359205.0).records
    partitions = [s.partition for s in sends]
    assert {s.topic_field for s in sends} == {"alerts"} and len(partitions) == len(set(partitions)) == 4
    keys = [r.key for s in sends for seg in decode_batch(s.value)[0] for r in seg.records]
    assert sorted(keys) == sorted(f"svc-{i}/Down" for i in range(40))


def test_source_less_segments_are_numbered_by_their_records_offset_and_applied_once() -> None:
    store = TableStore(SimpleNamespace(data={}), 0)
    segments = [Segment(None, [_record("a")]), Segment(None, [_record("b")]), Segment((2, 7), [_record("c")])]
    first = numbered(segments, offset=5)
    assert [s.source for s in first] == [(HOP_SOURCE, 5 * PARTS_PER_OFFSET), (HOP_SOURCE, 5 * PARTS_PER_OFFSET + 1),
                                         (2, 7)]
    for segment in first:
        assert not store.seen(segment.source)
        store.advance_progress(segment.source)
    assert all(store.seen(s.source) for s in numbered(segments, offset=5))  # the same record, redelivered
    assert not any(store.seen(s.source) for s in numbered(segments[:2], offset=6))  # the next record
    with pytest.raises(BatchError):
        numbered([Segment(None, [])] * (PARTS_PER_OFFSET + 1), offset=0)


def _hop_records(bodies: Sequence[bytes], partitions: int) -> list[tuple[int, bytes]]:
    hop = AlertHop(DEFAULT_KEY_CONFIG, TimeGuard(horizon_s=None), partitions)
    now = time.time()  # after the storm's times: none is clamped (the horizon is off: a recording)
    return [(s.partition or 0, s.value) for b in bodies for s in hop.validate("generic", b, now).records]


def test_sigkill_mid_storm_on_the_hop_recovers_the_same_incidents(broker: EmbeddedBroker, tmp_path: Path,
                                                                  workers: list[WorkerProc]) -> None:
    """The records the ingest writes, half before a SIGKILL and half after: the replay's incidents, each alert
    counted once and each re-send once (a segment applied twice would count its alerts as duplicates)."""
    dep = Deployment(broker, tmp_path)
    dep.create_topics()
    bodies = storm_bodies(3000, seed=13)
    report = replay([a for b in bodies for a in parse("generic", b)], DEFAULT_CONFIG)
    expected = {i.id: (i.key, i.alert_count) for i in report.incidents}
    records = _hop_records(bodies, dep.partitions)
    first = dep.start_worker("first")
    workers.append(first)
    half = len(records) // 2
    dep.produce_placed("alerts", records[:half])
    dep.read("incidents", 5, timeout=60)  # correlating has begun
    first.kill()
    dep.produce_placed("alerts", records[half:])
    workers.append(dep.start_worker("second"))
    latest = follow(dep, expected_alerts=sum(count for _, count in expected.values()))
    got = {i: (e.key, e.alert_count) for i, e in latest.items()}
    assert got == expected, explain_difference(dep, got, expected, workers)
    assert sum(e.duplicates for e in latest.values()) == report.duplicates, explain_difference(dep, {}, {}, workers)
