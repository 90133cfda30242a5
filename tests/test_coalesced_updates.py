"""`CorrelationConfig.coalesce_updates` (the stream's default, `Settings.incident_every_update` false): an `updated`
event that a later event of the same incident in the same call supersedes is left out and gives its seq to the
later one. Seqs stay 1, 2, 3... per incident (what tests/test_pipeline.py checks on `incidents` to prove
exactly-once) and a reader of the latest state ends where every event would have taken it."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from correlator.config import DEFAULT_CONFIG
from correlator.engine import Correlator
from correlator.models import IncidentEvent
from correlator.readmodel import ReadModel
from correlator.records import record_of
from stream.commands.replay import read_alerts
from stream.feed import report_of

from .paths import LAB_STORM, MICROSS


def _events(path: Path, per_call: int, coalesce: bool) -> Iterator[list[IncidentEvent]]:
    records = [record_of(a) for a in read_alerts(path)]
    engine = Correlator(dataclasses.replace(DEFAULT_CONFIG, coalesce_updates=coalesce))
    for i in range(0, len(records), per_call):
        yield engine.ingest(records[i:i + per_call])
        if i % (per_call * 7) == 0:
            yield engine.flush_idle()
    yield engine.advance(engine.watermark + 3 * 3600)
    yield engine.finish()


@pytest.mark.parametrize("path", [LAB_STORM, MICROSS / "alerts.ndjson"], ids=["lab", "micross"])
@pytest.mark.parametrize("per_call", [1, 20, 500])
def test_seqs_stay_contiguous_and_the_latest_state_is_the_same(path: Path, per_call: int) -> None:
    if not path.exists():
        pytest.skip(f"{path} is not here")  # rca-micross lives in the shared datasets
    every = [ev for call in _events(path, per_call, False) for ev in call]
    fewer_calls = list(_events(path, per_call, True))
    fewer = [ev for call in fewer_calls for ev in call]
    seqs: dict[str, list[int]] = {}
    for ev in fewer:
        seqs.setdefault(ev.incident_id, []).append(ev.seq)
    assert all(s == list(range(1, len(s) + 1)) for s in seqs.values())
    assert [e.kind for e in every if e.kind != "updated"] == [e.kind for e in fewer if e.kind != "updated"]
    for call in fewer_calls:  # no call holds an update followed by another event of its incident
        last = {ev.incident_id: i for i, ev in enumerate(call)}
        assert all(ev.kind != "updated" or last[ev.incident_id] == i for i, ev in enumerate(call))
    if per_call > 1:
        assert len(fewer) < len(every)
    latest_every = {e.incident_id: e for e in every}
    latest_fewer = {e.incident_id: e for e in fewer}
    assert report_of(latest_every, 0, 0) == report_of(latest_fewer, 0, 0)
    models = ReadModel(), ReadModel()
    for model, events in zip(models, (every, fewer), strict=True):
        for ev in events:
            model.apply_incident(ev)
    assert models[0].rows.keys() == models[1].rows.keys()
    for key, row in models[0].rows.items():
        assert dataclasses.replace(row, timeline=[], seq=0) == dataclasses.replace(models[1].rows[key], timeline=[], seq=0)
