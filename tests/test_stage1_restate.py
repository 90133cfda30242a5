"""Stage 1 routes its open incidents to stage 2 again after the broker lost its topics (session 40, census41).

Session 39's traced chaos soak (`soak_trace.py --parents /tmp/s39/t1.jsonl par-486ae6b5b7b9282b`): a rebalance began
2.5 s before the broker stopped and never finished, so nobody folded routing partition 2's record 68; the broker took
it, and four new incidents of fault 4 in it were never grouped (stage 1 says nothing more of an incident until it
changes) while notify, which had read them on `incidents`, paged two alone at the cause wait. `Correlator.restate`
says each open incident again as last published; stage 2 groups the ones it never had and counts the rest duplicates.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from correlator.config import CorrelationConfig
from correlator.engine import Correlator
from correlator.models import IncidentEvent
from correlator.records import AlertRecord
from correlator.stage2 import Grouper
from stream.broker import start_broker
from stream.incident_records import decode_incident_record
from stream.state import encode_state

from .test_broker_faults import _restart_empty
from .test_group_recovery import _placed_alert
from .test_ingest import wait_ready
from .test_stage2 import CFG as GROUPING
from .test_stage2_pipeline import Seen, collect
from .test_stage2_restate import one_cause_of_three_services
from .workers import PATIENT_ADMISSION, Deployment

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


def _lost_two(until: float) -> tuple[Correlator, Grouper, str, list[str]]:
    """Stage 2 folded the first two children (a cause) and moved on to `until`; the record with the other two went
    with the broker."""
    engine, events = _stage1()
    kept = [ev for ev in events if ev.key in KEYS[:2]]
    grouper = Grouper(GROUPING)
    grouper.ingest(kept, watermark=T0 + 30)
    grouper.advance(until)
    cause = grouper.parent_of(kept[0].incident_id)
    assert cause is not None and grouper.parent_of(kept[1].incident_id) == cause
    lost = [ev.incident_id for ev in events if ev.key in KEYS[2:]]
    assert [grouper.parent_of(c) for c in lost] == [None, None]  # notify pages them alone
    return engine, grouper, cause, lost


def test_children_whose_routing_record_the_broker_took_join_their_cause_when_said_again() -> None:
    """Said again while stage 2's event time is still near them: they join the open cause, and the two it had are
    duplicates that change nothing."""
    engine, grouper, cause, lost = _lost_two(T0 + 40)
    before = grouper.counters.duplicates
    out = grouper.ingest(engine.restate(), watermark=T0 + 45)
    out.extend(grouper.advance(T0 + 50))
    assert [grouper.parent_of(c) for c in lost] == [cause, cause]
    assert {a.child_id for a in out.assignments if a.parent_id == cause} == set(lost)
    assert grouper.counters.duplicates == before + 2


@pytest.mark.parametrize("on_time", [True, False])
def test_children_said_again_behind_stage_2_join_their_cause_only_as_on_time(on_time: bool) -> None:
    """Stage 2's event time had moved past them (the soak: 20 s of routing after the restart before the restatement
    was folded): late children open a cause of their own (census41's second traced soak: fault 4's four lost
    children paged as a second cause). Marked on time (`RESTATED_HEADER`, stage 2's fold), they are placed by event
    time (`GroupingConfig.idle_placed`) and join the cause they were on time for."""
    engine, grouper, cause, lost = _lost_two(T0 + 100)
    grouper.ingest(engine.restate(), watermark=T0 + 105, on_time=set(lost) if on_time else ())
    grouper.advance(T0 + 110)
    parents = {grouper.parent_of(c) for c in lost}
    assert (parents == {cause}) is on_time and None not in parents


@pytest.mark.integration
@pytest.mark.parametrize("restate", [True, False])
def test_a_child_routed_but_never_folded_before_the_restart_joins_its_cause_after_it(
        tmp_path: Path, restate: bool) -> None:
    """One worker groups three services of one host into a cause; then its stage 2 stops reading the routing topic
    (`tests.deaf_worker stage2`) and a fourth service of that host fails: stage 1 publishes it and routes it, stage 2
    never folds it, and the broker restarts empty. With `stage2_restate_after_loss` stage 1 routes its open incidents
    again and the fourth joins the cause on the new `incidents`; off (the old behaviour) it is never assigned, and
    notify would page it alone. Fails on the code before `Correlator.restate` (never assigned)."""
    brokers = [start_broker(log_path=tmp_path / "tansu-1.log")]
    dep = Deployment(brokers[0], tmp_path, extra_env={"AIOPS_IDLE_ADVANCE": "300", **PATIENT_ADMISSION,
                                                      "AIOPS_STAGE2_RESTATE_AFTER_LOSS": str(restate).lower()})
    worker, deaf = dep.start_deaf_worker("stage2")
    try:
        worker.wait_web()
        wait_ready(worker)
        grouped, cause_id = one_cause_of_three_services(dep)
        deaf.touch()
        dep.produce("alerts_raw", [(b"generic", b"\n".join(_placed_alert("c3", "svc3", T0 + 35 + 5 * i)
                                                              for i in range(3)))])
        before = collect(dep, lambda s: len(s.incidents) == 4, timeout=120)
        [lost] = set(before.incidents) - set(grouped.incidents)
        time.sleep(3)  # routed, and dropped by the deaf stage 2
        assert deaf.exists() and lost not in collect(dep, lambda s: False, timeout=2).parent_of()
        _restart_empty(dep, worker, brokers, tmp_path)
        assert not deaf.exists()  # stage 2 reads again from the loss on

        def joined(s: Seen) -> bool:
            return s.parent_of().get(lost) == cause_id

        seen = collect(dep, joined, timeout=60 if restate else 20)
        assert joined(seen) is restate, f"{seen.parent_of()}\n{worker.tail(30)}"
        assert worker.proc.poll() is None, worker.tail()
    finally:
        worker.stop()
        for b in brokers:
            b.stop()


def _wired(table_data: dict[bytes, bytes], owned: set[int], census: bool = False, incidents: bool = False,
           ) -> tuple[Any, list[tuple[list[str], dict[int, Any], bool]]]:
    """A Pipeline on fakes (the table's local data, the assignment, a `route` that records its calls), routing only
    unless `census` or `incidents` (then `stream.pipeline.send_batches` must be a fake too)."""
    from faust.types import TP

    from stream.pipeline import Pipeline

    calls: list[tuple[list[str], dict[int, Any], bool]] = []

    async def route(published: Any, marks: Any, restated: bool) -> list[Any]:
        calls.append(([ev.incident_id for ev, _ in published], dict(marks), restated))
        return []

    app = SimpleNamespace(rebalancing=False, assignor=SimpleNamespace(
        assigned_actives=lambda: {TP("alerts", p) for p in owned}))
    table = SimpleNamespace(data=table_data, changelog_topic=SimpleNamespace(get_topic_name=lambda: "state-changelog"))
    topics = {name: SimpleNamespace(get_topic_name=lambda name=name: name) for name in ("alerts", "incidents")}
    pipe = Pipeline(app=app, config=STAGE1, table=table, topics=topics,  # type: ignore[arg-type]
                    census_after_loss=census, incidents_after_loss=incidents, route=route)
    return pipe, calls


def test_after_a_loss_an_owned_partition_is_built_once_restored_routed_again_and_its_clocks_started() -> None:
    """The engine of partition 0 was dropped by the revocation that came with the loss (none held): it is built from
    the table's local data and routed again once the agents resumed and no rebalance is under way (a partition just
    assigned may not be restored yet), flagged as said again, and its idle clocks start (no input may come)."""
    engine, events = _stage1()
    data = {f"0|{key}".encode(): encode_state(st) for key, st in engine.store.items()}
    data[b"0#progress"] = orjson.dumps({"progress": {}, "watermark": engine.watermark})
    pipe, calls = _wired(data, owned={0})
    pipe.broker_lost()
    assert pipe.engines == {}
    pipe.app.rebalancing = True
    asyncio.run(pipe.census_lost())
    assert calls == [] and pipe.engines == {}  # not while the rebalance (and the table's restore) is under way
    pipe.app.rebalancing = False
    asyncio.run(pipe.census_lost())
    [(ids, marks, restated)] = calls
    assert sorted(ids) == sorted({ev.incident_id for ev in events}) and restated and set(marks) == {0}
    assert not pipe.clocks.flush_due(0, time.monotonic()) and pipe.clocks.flush_due(0, time.monotonic() + 5)
    asyncio.run(pipe.census_lost())
    assert len(calls) == 1  # once


@pytest.mark.parametrize("incidents", [True, False])
def test_after_a_loss_each_open_incident_is_said_again_on_incidents_when_asked(
        monkeypatch: pytest.MonkeyPatch, incidents: bool) -> None:
    """Session 41's quick chaos soak t5 (child42): a rebalance the broker stop cut short left `incidents` unread as
    well as the routing topic; an incident whose only event went with the broker was said again to stage 2 alone,
    which left it a cause of its own (15 of its fault's last alerts went with the broker too), and notify never
    learnt of it: never paged, alone or in a cause. With `incidents_after_loss` (`Settings.restate_incidents_after_loss`,
    off by default) each open incident is said again on `incidents` too, as last published (notify counts the ones it
    holds as repeats), before the census and before the route (notify reads each before stage 2's assignment of it);
    without it, the census alone, and to stage 2, as before. Fails on the code before (`[True]`: only the census)."""
    import stream.pipeline as pipeline_module

    sent: list[tuple[str, int, Any]] = []

    async def send(app: Any, topic: str, partition: int, records: Any) -> list[Any]:
        sent.append((topic, partition, list(records)))
        return []

    monkeypatch.setattr(pipeline_module, "send_batches", send)
    engine, events = _stage1()
    data = {f"0|{key}".encode(): encode_state(st) for key, st in engine.store.items()}
    data[b"0#progress"] = orjson.dumps({"progress": {}, "watermark": engine.watermark})
    pipe, calls = _wired(data, owned={0}, census=True, incidents=incidents)
    pipe.broker_lost()
    asyncio.run(pipe.census_lost())
    records = [(partition, key, decode_incident_record(value, list(headers)))
               for topic, partition, batch in sent if topic == "incidents" for key, value, headers in batch]
    again = [(partition, key, r) for partition, key, r in records if isinstance(r, IncidentEvent)]
    last = {ev.incident_id: ev for ev in events}
    if not incidents:
        assert again == [] and records and len(calls) == 1  # the census, and to stage 2
        return
    assert {r.incident_id: r for _, _, r in again} == last and len(again) == len(last)
    assert all(key == r.incident_id.encode() and partition == pipe._incident_partitions[r.incident_id]
               for partition, key, r in again)  # keyed and placed as the commit publishes them
    assert [isinstance(r, IncidentEvent) for _, _, r in records] == [True] * len(again) + [False] * (
        len(records) - len(again))  # the census after them
    assert len(calls) == 1 and sorted(calls[0][0]) == sorted(last)
