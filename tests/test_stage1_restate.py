"""Stage 1 routes its open incidents to stage 2 again after the broker lost its topics (session 40, census41).

Session 39's traced chaos soak (`soak_trace.py --parents /tmp/s39/t1.jsonl par-486ae6b5b7b9282b`): a rebalance began
2.5 s before the broker stopped and never finished, so nobody folded routing partition 2's record 68; the broker took
it, and four new incidents of fault 4 in it were never grouped (stage 1 says nothing more of an incident until it
changes) while notify, which had read them on `incidents`, paged two alone at the cause wait. `Correlator.restate`
says each open incident again as last published; stage 2 groups the ones it never had and counts the rest duplicates.
"""

from __future__ import annotations

from correlator.config import CorrelationConfig
from correlator.engine import Correlator
from correlator.models import IncidentEvent
from correlator.records import AlertRecord
from correlator.stage2 import Grouper

from .test_stage2 import CFG as GROUPING

T0 = 1_772_420_400.0
STAGE1 = CorrelationConfig(window_s=600, first_gap_s=180, allowed_lateness_s=0, update_interval_s=0, resolve_hold_s=0)
KEYS = ["db/DBDown", "api/ErrorRate", "web/Latency", "cache/Evictions"]
"""One fault: four services alerting on one host within seconds."""


def _fire(i: int, key: str, t: float) -> AlertRecord:
    return AlertRecord(f"fp-{i}", key, "firing", "critical", T0 + t, None, {"host": "h1"})


def _stage1() -> tuple[Correlator, list[IncidentEvent]]:
    engine = Correlator(STAGE1)
    events: list[IncidentEvent] = []
    for i, key in enumerate(KEYS):
        events += engine.ingest([_fire(i, key, 2.0 * i)])
    events += engine.advance(T0 + 30)
    return engine, events


def test_restate_says_each_open_published_incident_again_unchanged() -> None:
    engine, events = _stage1()
    last = {ev.incident_id: ev for ev in events}
    assert len(last) == 4
    again = engine.restate()
    assert {ev.incident_id: ev for ev in again} == last  # the same events: same seq, values and emitted_at
    assert engine.restate() == again  # nothing moved: no seq bumped, nothing marked to publish
    assert engine.flush_idle() == []


def test_an_unpublished_or_closed_incident_is_not_said_again() -> None:
    engine = Correlator(CorrelationConfig(window_s=600, first_gap_s=180, allowed_lateness_s=60, update_interval_s=0,
                                          resolve_hold_s=0))
    assert engine.ingest([_fire(0, KEYS[0], 0.0)]) == []  # still in the reorder buffer: nothing published yet
    assert engine.restate() == []
    engine, _ = _stage1()
    engine.ingest([AlertRecord("fp-0", KEYS[0], "resolved", "critical", T0, T0 + 40, {"host": "h1"})])
    closed = engine.advance(T0 + 100)
    assert [(ev.key, ev.status) for ev in closed] == [(KEYS[0], "resolved")]
    assert sorted(ev.key for ev in engine.restate()) == sorted(KEYS[1:])


def test_children_whose_routing_record_the_broker_took_join_their_cause_when_said_again() -> None:
    """Stage 2 folded the first two children; the record with the other two went with the broker. Without the
    restatement they stay ungrouped (notify pages them alone); with it they join the open cause, and the two it had are
    duplicates that change nothing."""
    engine, events = _stage1()
    kept = [ev for ev in events if ev.key in KEYS[:2]]
    grouper = Grouper(GROUPING)
    grouper.ingest(kept, watermark=T0 + 30)
    grouper.advance(T0 + 40)
    cause = grouper.parent_of(kept[0].incident_id)
    assert cause is not None and grouper.parent_of(kept[1].incident_id) == cause
    lost = [ev.incident_id for ev in events if ev.key in KEYS[2:]]
    assert [grouper.parent_of(c) for c in lost] == [None, None]

    before = grouper.counters.duplicates
    out = grouper.ingest(engine.restate(), watermark=T0 + 45)
    out.extend(grouper.advance(T0 + 50))
    assert [grouper.parent_of(c) for c in lost] == [cause, cause]
    assert {a.child_id for a in out.assignments if a.parent_id == cause} == set(lost)
    assert grouper.counters.duplicates == before + 2
