"""Stage 2 says every open cause again after the broker lost its topics (session 38, soak38).

The memory broker takes with it every record on `incidents` that notify had not read yet. In a chaos soak with notify
behind under load, that was the parent events and assignments of two faults' causes: notify, rebuilt after the
restart, knew their children as incidents no cause names, and paged each one alone at its cause wait (9 and 12 pages
for two faults of one cause each). Stage 2 still holds the groups: it publishes them again (`Grouper.restate`) on the
new topic, and the children's pages held by the route's hold close, their cause pages once."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace
from pathlib import Path

import orjson
import pytest

from correlator.notify import Delivery, NotifyPolicy, NotifyRecord, NotifyState, on_record, parse_notify
from correlator.stage2 import Grouper, GroupingOutput, Relation, published
from stream.broker import start_broker

from .notifying import T0 as NOW
from .notifying import fold_timeline
from .test_broker_faults import _wait_for
from .test_ingest import wait_ready
from .test_stage2 import CFG, _event, events_of
from .test_group_recovery import _placed_alert
from .test_stage2_pipeline import T0, Seen, collect
from .workers import PATIENT_ADMISSION, Deployment

SPECS = [("inc-db", "db/DBDown", 0.0, 30.0, {"host": ["h1"]}),
         ("inc-api", "api/ErrorRate", 10.0, 40.0, {"host": ["h1"]}),
         ("inc-web", "web/Latency", 15.0, 40.0, {"host": ["h1"]}),
         ("inc-mail", "mail/QueueFull", 20.0, 50.0, {"host": ["h9"]})]
"""A cause of three incidents sharing a host, and a lone failure elsewhere."""

HELD = parse_notify("""
defaults: {hold: {for: 30s}}
receivers:
  - {name: oncall, type: pagerduty, routing_key: "R0UTINGKEY", url: "http://127.0.0.1:9/v2/enqueue"}
routes:
  - {receiver: oncall}
""")
"""One route that holds a page 30 s, as the soak's."""
POLICY = NotifyPolicy(cause_wait_s=30.0, lone_causes=False, stage2_partitions=1)


def _open_groups() -> tuple[Grouper, GroupingOutput]:
    grouper = Grouper(CFG)
    out = grouper.ingest(events_of(SPECS))
    out.extend(grouper.advance(T0 + 60))  # every child placed, nothing resolved: both groups open
    return grouper, out


def test_restate_says_every_open_cause_again_with_all_its_children() -> None:
    grouper, before = _open_groups()
    cause = next(p for p in before.parents if p.first_child == "inc-db")
    out = grouper.restate()
    restated = {p.parent_id: p for p in out.parents}
    assert set(restated) == {cause.parent_id, grouper.parent_of("inc-mail")}  # every open group, the lone one too
    again = restated[cause.parent_id]
    assert again.kind == "updated" and again.status == "firing" and again.seq > cause.seq
    assert set(again.children) == {"inc-db", "inc-api", "inc-web"} and again.first_child == "inc-db"
    assert [(a.child_id, a.parent_id, a.relation) for a in out.assignments] == [
        ("inc-api", cause.parent_id, Relation.RESTATED), ("inc-web", cause.parent_id, Relation.RESTATED)]
    shown = published(out, lone_causes=False)  # as the stream publishes it: the lone cause stays unannounced
    assert [p.parent_id for p in shown.parents] == [cause.parent_id]
    assert {a.child_id for a in shown.assignments} == {"inc-db", "inc-api", "inc-web"}
    assert grouper.restate().parents[0].seq == again.seq + 1  # its state moved with what it said


def test_a_resolved_cause_is_not_said_again() -> None:
    grouper, _ = _open_groups()
    grouper.ingest([_event(cid, key, start, end, 3, "resolved", entities, status="resolved", emitted=90)
                    for cid, key, start, end, entities in SPECS])
    grouper.advance(T0 + 100_000)
    assert grouper.restate() == GroupingOutput()


def _drive(records: list[tuple[float, NotifyRecord | None]], state: NotifyState,
           policy: NotifyPolicy | None = None) -> list[Delivery]:
    return fold_timeline(state, records, HELD, policy if policy is not None else POLICY)[0]


def _pages(made: list[Delivery]) -> Counter[str]:
    """Pages opened, by PagerDuty dedup key (an `update` of a page that carries its cause opens none)."""
    return Counter(json.loads(d.body)["dedup_key"] for d in made if d.action == "trigger")


def test_the_restated_cause_pages_once_where_the_children_it_lost_paged_alone() -> None:
    """Notify rebuilt after the loss knows the three children as incidents (read before it) and nothing of their cause
    (lost unread): past the cause wait each chooses its target, held 30 s. Without the restatement each pages alone;
    with it (read 5 s later) the held pages close and the cause pages once."""
    grouper, _ = _open_groups()
    children = [e for e in events_of(SPECS) if e.incident_id != "inc-mail" and e.seq == 1]
    cause_id = grouper.parent_of("inc-db")
    seen = [(NOW + 1, e) for e in children]
    rebuilt = [(NOW + 40, None)]  # the first tick of the state rebuilt after the restart: the cause wait has passed
    alone = _drive([*seen, *rebuilt, (NOW + 75, None)], NotifyState())
    assert _pages(alone) == Counter({"inc-db": 1, "inc-api": 1, "inc-web": 1})
    again = published(grouper.restate(), lone_causes=False)
    restated: list[tuple[float, NotifyRecord | None]] = [(NOW + 45, r) for r in [*again.parents, *again.assignments]]
    once = _drive([*seen, *rebuilt, *restated, (NOW + 80, None), (NOW + 120, None)], NotifyState())
    assert _pages(once) == Counter({cause_id: 1})


def one_cause_of_three_services(dep: Deployment) -> tuple[Seen, str]:
    """Post three services of one host failing 10 s apart and wait until stage 2 grouped them: what was seen by then,
    and the cause's id."""
    alerts = sorted((_placed_alert("c3", f"svc{s}", T0 + 10 * s + 5 * i) for s in range(3) for i in range(3)),
                    key=lambda a: orjson.loads(a)["starts_at"])
    dep.produce("alerts_raw", [(b"generic", b"\n".join(alerts))])
    grouped = collect(dep, lambda s: len(s.incidents) == 3 and len(s.assignments) >= 3, timeout=120)
    [cause_id] = {a.parent_id for a in grouped.assignments.values()}
    return grouped, cause_id


@pytest.mark.integration
@pytest.mark.parametrize("restate", [True, False])
def test_after_a_broker_restart_the_open_cause_is_on_the_new_incidents_topic(tmp_path: Path, restate: bool) -> None:
    """One worker groups three services of one cluster on one host into a cause (as `test_group_recovery`'s scene),
    then the broker restarts empty: the new `incidents` topic must name the cause with its three children and assign the
    two that did not open it, with no new alert (`stage2_restate_after_loss`; off, the old behaviour: nothing)."""
    first = start_broker(log_path=tmp_path / "tansu-1.log")
    brokers = [first]
    dep = Deployment(first, tmp_path, extra_env={"AIOPS_IDLE_ADVANCE": "300", **PATIENT_ADMISSION,
                                                 "AIOPS_STAGE2_RESTATE_AFTER_LOSS": str(restate).lower()})
    dep.create_topics()
    worker = dep.start_worker("w1")
    try:
        worker.wait_web()
        wait_ready(worker)
        grouped, cause_id = one_cause_of_three_services(dep)
        recoveries = worker.metric("aiops_broker_recoveries_total", action="topics_created")
        brokers[-1].stop()
        brokers.append(start_broker(port=first.port, log_path=tmp_path / "tansu-2.log"))
        dep.broker = brokers[-1]
        _wait_for("the topics re-created", lambda: worker.metric(
            "aiops_broker_recoveries_total", action="topics_created") > recoveries, worker, timeout=60)
        wait_ready(worker)

        def restated(s: Seen) -> bool:
            return {a.child_id for a in s.assignments.values() if a.parent_id == cause_id} >= {
                c for c in grouped.incidents if c != grouped.parents[cause_id].first_child} \
                and cause_id in s.parents
        seen = collect(dep, restated, timeout=60 if restate else 20)
        if restate:
            assert restated(seen), f"{seen.parents.keys()} {seen.assignments}\n{worker.tail(20)}"
            assert set(seen.parents[cause_id].children) == set(grouped.incidents)
            assert {a.relation for a in seen.assignments.values() if a.relation is not Relation.FIRST} == {
                Relation.RESTATED}
        else:
            assert not seen.parents and not [a for a in seen.assignments.values()]
        assert worker.proc.poll() is None, worker.tail()
    finally:
        worker.stop()
        for b in brokers:
            b.stop()


@pytest.mark.parametrize("rebuilt_wait_s", [10.0, 0.0])
def test_a_rebuilt_state_gives_the_restatement_time_before_critical_children_page_alone(rebuilt_wait_s: float) -> None:
    """Critical children page at once, with no hold (`critical_at_once`): a state rebuilt from its table after the
    loss (children known, their cause not) paged them at its first tick, before stage 2's restatement came 5 s later.
    `NotifyPolicy.rebuilt_wait_s` (10 s) holds the cause wait's paging of what the table brought that long; 0: the old
    rule, three lone pages."""
    grouper, _ = _open_groups()
    children = [e.model_copy(update={"max_severity": "critical"}) for e in events_of(SPECS)
                if e.incident_id != "inc-mail" and e.seq == 1]
    policy = replace(POLICY, rebuilt_wait_s=rebuilt_wait_s)
    before = NotifyState()
    for e in children:
        on_record(before, e, NOW + 1, HELD, [], policy)
    rebuilt = NotifyState.from_dict(json.loads(json.dumps(before.to_dict())))  # the table, as the restart reads it
    again = published(grouper.restate(), lone_causes=False)
    made = _drive([(NOW + 40, None), *[(NOW + 45, r) for r in [*again.parents, *again.assignments]],
                   (NOW + 80, None), (NOW + 120, None)], rebuilt, policy)
    expected = {grouper.parent_of("inc-db"): 1} if rebuilt_wait_s else {"inc-db": 1, "inc-api": 1, "inc-web": 1}
    assert _pages(made) == Counter(expected)


def _closed_groups() -> tuple[Grouper, GroupingOutput]:
    """Both groups of `_open_groups` resolved (every child resolved), within their retention: still held."""
    grouper, out = _open_groups()
    out.extend(grouper.ingest([_event(cid, key, start, end, 3, "resolved", entities, status="resolved", emitted=90)
                               for cid, key, start, end, entities in SPECS]))
    out.extend(grouper.advance(T0 + 400))
    return grouper, out


def test_with_closed_the_restatement_says_the_close_of_each_resolved_group_still_held() -> None:
    """Session 39: the broker may take a cause's `resolved` unread, and a cause notify paged would never clear. With
    `closed` (`Settings.reconcile_after_loss`) each resolved group still held says its close again; without, nothing
    (the session-38 rule)."""
    grouper, before = _closed_groups()
    closes = {p.parent_id: p for p in before.parents if p.kind == "resolved"}
    assert set(closes) == {grouper.parent_of("inc-db"), grouper.parent_of("inc-mail")}
    assert grouper.restate() == GroupingOutput()
    again = grouper.restate(closed=True)
    assert {p.parent_id: (p.kind, p.status) for p in again.parents} == {
        pid: ("resolved", "resolved") for pid in closes}
    assert all(p.seq == closes[p.parent_id].seq + 1 for p in again.parents) and again.assignments == []
    assert "reconciliation after broker loss" in again.parents[0].reason
    shown = published(again, lone_causes=False)  # the lone group's close stays unannounced, as its life was
    assert [p.parent_id for p in shown.parents] == [grouper.parent_of("inc-db")]


def test_a_paged_cause_whose_close_the_broker_took_resolves_when_the_close_is_said_again() -> None:
    """Notify paged the cause of three children; its close went with the broker. Without the restated close the
    page stays open; with it (read after the restart) the page is resolved, with no new page."""
    grouper, before = _closed_groups()
    cause_id = grouper.parent_of("inc-db")
    shown = published(before, lone_causes=False)
    firing = [p for p in shown.parents if p.status == "firing"]
    seen: list[tuple[float, NotifyRecord | None]] = [
        (NOW + 1, e) for e in events_of(SPECS) if e.incident_id != "inc-mail"]
    seen += [(NOW + 2, r) for r in [*firing, *[a for a in shown.assignments if a.parent_id == cause_id]]]
    seen += [(NOW + 40, None)]  # the cause's hold (30 s) over: paged
    kept = _drive([*seen, (NOW + 80, None)], NotifyState())
    assert _pages(kept) == Counter({cause_id: 1}) and not [d for d in kept if d.action == "resolve"]
    again = published(grouper.restate(closed=True), lone_causes=False)
    made = _drive([*seen, *[(NOW + 60, r) for r in again.parents], (NOW + 80, None)], NotifyState())
    assert _pages(made) == Counter({cause_id: 1})
    assert [(d.subject_id, d.action) for d in made if d.action == "resolve"] == [(cause_id, "resolve")]
