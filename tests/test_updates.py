"""`correlator.updates.without_superseded`: one commit's stage-1 events without the updates a later event of the
same incident in it supersedes; readers that keep the latest state end where every event would have taken them."""

from __future__ import annotations

import dataclasses

import pytest

from correlator.config import DEFAULT_CONFIG
from correlator.engine import Correlator
from correlator.models import IncidentEvent
from correlator.readmodel import ReadModel
from correlator.records import record_of
from correlator.sources import parse
from correlator.updates import without_superseded

from .paths import LAB_STORM


def _storm_commits(per_commit: int) -> list[list[IncidentEvent]]:
    """The lab storm's events as a worker folding `per_commit` alerts per commit would publish them."""
    records = [record_of(a) for a in parse("generic", LAB_STORM.read_bytes())]
    engine = Correlator(DEFAULT_CONFIG)
    commits = [engine.ingest(records[i:i + per_commit]) for i in range(0, len(records), per_commit)]
    return [*commits, engine.advance(max(r.starts_at for r in records) + 86400)]


def test_only_updates_followed_by_a_later_event_of_their_incident_are_left_out() -> None:
    events = _storm_commits(10**6)[0]
    kept = [ev for ev, _ in without_superseded([(ev, i) for i, ev in enumerate(events)])]
    assert len(kept) < len(events)
    assert [e for e in events if e.kind != "updated"] == [e for e in kept if e.kind != "updated"]  # order kept
    last = {e.incident_id: e for e in events}
    for ev in events:
        if ev.kind == "updated" and ev is not last[ev.incident_id]:
            assert ev not in kept
        else:
            assert ev in kept


@pytest.mark.parametrize("per_commit", [1, 25, 400])
def test_a_reader_of_the_latest_state_ends_in_the_same_place(per_commit: int) -> None:
    every, latest = ReadModel(), ReadModel()
    published = total = 0
    for commit in _storm_commits(per_commit):
        total += len(commit)
        for ev in commit:
            every.apply_incident(ev)
        for ev, _ in without_superseded([(ev, None) for ev in commit]):
            latest.apply_incident(ev)
            published += 1
    assert every.rows.keys() == latest.rows.keys()
    for key, row in every.rows.items():
        assert dataclasses.replace(row, timeline=[]) == dataclasses.replace(latest.rows[key], timeline=[])
    assert published <= total
    if per_commit > 1:
        assert published < total  # the storm's commits do hold superseded updates
