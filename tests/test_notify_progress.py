"""The notify fold without causes of one incident (`NotifyPolicy.lone_causes` off, issue 17 session 32): an
incident no cause names pages as its own cause once stage 2's progress covers it, waits while it does not, and
after `cause_wait_s` when stage 2 is stopped; a cause announced after its first child paged alone takes that page
over (one trigger, one resolve per fault). Fixed clocks, no I/O; handovers, which the stream sends over the control
topic to the other partition, are folded back into the same state here."""

from __future__ import annotations

import json

from correlator.models import IncidentEvent
from correlator.notify import (
    Acknowledgement,
    Delivery,
    Handover,
    NotifyPolicy,
    NotifyRecord,
    NotifyState,
    status_of,
)
from correlator.stage2 import Assignment, Progress, Relation

from .notifying import T0, assignment, cause, fold_timeline, incident, routes

POLICY = NotifyPolicy(cause_wait_s=30.0, lone_causes=False, stage2_partitions=2, follow_progress_s=300.0)
"""Stage 2 on, causes of one incident not published, two routing partitions."""


def progress(partition: int, decided_to: float) -> Progress:
    """Stage 2 decided every incident routed to `partition` that started up to `decided_to`."""
    return Progress(decided={partition: decided_to}, emitted_at=T0)


def started(ev: IncidentEvent, first_seen: float) -> IncidentEvent:
    """The event with its first alert at `first_seen`."""
    return ev.model_copy(update={"first_seen": first_seen, "window_start": first_seen})


def first(child_id: str = "inc-1", parent_id: str = "cause-1") -> Assignment:
    """The assignment stage 2 publishes beside an announced cause for the child that opened it."""
    return Assignment(child_id=child_id, child_key="", parent_id=parent_id, relation=Relation.FIRST, gap_s=0.0,
                      explanation=f"opened cause {parent_id}", assigned_at=T0)


def drive(records: list[tuple[float, NotifyRecord | None]], policy: NotifyPolicy = POLICY,
          state: NotifyState | None = None) -> tuple[NotifyState, list[Delivery], list[Handover]]:
    """Fold records at their times (None: a tick), each forwarded record folded right after; deliveries, handovers."""
    state = state if state is not None else NotifyState()
    made, forwarded = fold_timeline(state, records, routes(), policy)
    return state, made, [f for f in forwarded if isinstance(f, Handover)]


def pages(made: list[Delivery], receiver: str = "oncall") -> list[tuple[str, str]]:
    """(action, PagerDuty dedup_key) of each delivery to `receiver`."""
    return [(d.action, json.loads(d.body)["dedup_key"]) for d in made if d.receiver == receiver]


def test_a_lone_critical_incident_pages_as_soon_as_every_partitions_progress_covers_it() -> None:
    critical = incident("inc-1", severity="critical")
    _, made, _ = drive([(T0 + 1, critical), (T0 + 6, progress(0, T0 + 1)), (T0 + 6.2, None)])
    assert pages(made) == []  # partition 1 has not said it decided: stage 2 may still group it
    _, made, _ = drive([(T0 + 1, critical), (T0 + 6, progress(0, T0 + 1)), (T0 + 7, progress(1, T0 - 0.5)),
                        (T0 + 7.2, None)])
    assert pages(made) == []  # partition 1 decided only up to before its first alert
    state, made, _ = drive([(T0 + 1, critical), (T0 + 6, progress(0, T0 + 1)), (T0 + 7, progress(1, T0 + 2))])
    assert pages(made) == [("trigger", "inc-1")]  # at the progress record itself: no tick needed
    assert made[0].created_at == T0 + 7 and status_of(state.subjects["inc-1"], POLICY) == "paged"


def test_with_causes_of_one_published_progress_is_not_waited_for() -> None:
    """The old mode (and its fold) untouched: an incident no cause names waits the cause wait, progress or not."""
    old = NotifyPolicy(cause_wait_s=30.0)
    critical = incident("inc-1", severity="critical")
    _, made, _ = drive([(T0 + 1, critical), (T0 + 7, progress(0, T0 + 5)), (T0 + 8, None)], old)
    assert pages(made) == []
    _, made, _ = drive([(T0 + 1, critical), (T0 + 31.5, None)], old)
    assert pages(made) == [("trigger", "inc-1")]


def test_a_stopped_stage2_never_hides_an_outage_the_cause_wait_still_pages() -> None:
    critical = incident("inc-1", severity="critical")
    records: list[tuple[float, NotifyRecord | None]] = [(T0 + 1, critical), (T0 + 2, progress(0, T0 - 10)),
                                                        (T0 + 2, progress(1, T0 - 10))]
    _, made, _ = drive([*records, (T0 + 30, None)])
    assert pages(made) == []  # stage 2 stopped before it reached the incident: still within the cause wait
    _, made, _ = drive([*records, (T0 + 31.5, None)])
    assert pages(made) == [("trigger", "inc-1")]


def test_an_incident_grouped_before_the_progress_covers_it_never_pages_and_its_cause_pages_once() -> None:
    """Stage 2 publishes the first child's assignment beside its cause, before the progress: the child is known as
    grouped, answers that it did not page, and the cause (which waited for that answer) pages."""
    one, two = incident("inc-1", severity="critical"), incident("inc-2", severity="critical")
    grouped = cause("cause-1", 2, children=["inc-1", "inc-2"])
    _, made, handovers = drive([(T0 + 1, one), (T0 + 1, two), (T0 + 6, grouped)])
    assert pages(made) == []  # the cause waits for its first child's answer
    state, made, handovers = drive([(T0 + 1, one), (T0 + 1, two), (T0 + 6, grouped),
                                    (T0 + 6, assignment("inc-2", "cause-1")), (T0 + 6, first("inc-1", "cause-1")),
                                    (T0 + 6, progress(0, T0 + 2)), (T0 + 6, progress(1, T0 + 2)), (T0 + 7, None)])
    # every child answers (NotifyPolicy.every_child_answers, session 33; before it, inc-1's answer alone)
    assert [(h.kind, h.child_id, h.carried) for h in handovers] == [("answer", "inc-2", False),
                                                                    ("answer", "inc-1", False)]
    assert pages(made) == [("trigger", "cause-1")]
    assert status_of(state.subjects["inc-1"], POLICY) == "grouped"


def test_a_cause_with_no_answer_from_its_first_child_pages_after_the_cause_wait() -> None:
    grouped = cause("cause-1", 2, children=["inc-1", "inc-2"])
    _, made, _ = drive([(T0 + 6, grouped), (T0 + 35, None)])
    assert pages(made) == []
    _, made, _ = drive([(T0 + 6, grouped), (T0 + 36.5, None)])
    assert pages(made) == [("trigger", "cause-1")]


def test_a_second_child_joining_late_the_cause_takes_over_the_lone_page_one_trigger_one_resolve() -> None:
    """inc-1 paged as its own cause; 60 s later inc-2 joins it and stage 2 announces cause-1. inc-1's page carries the
    cause: no trigger for cause-1, an acknowledgement of the cause reaches inc-1's page, and inc-1's page resolves when
    the cause does, not when inc-1 alone does."""
    one, two = incident("inc-1", severity="critical"), started(incident("inc-2", severity="critical"), T0 + 60)
    records: list[tuple[float, NotifyRecord | None]] = [
        (T0 + 1, one), (T0 + 7, progress(0, T0 + 2)), (T0 + 7, progress(1, T0 + 2)),
        (T0 + 61, two), (T0 + 66, cause("cause-1", 2, children=["inc-1", "inc-2"])),
        (T0 + 66, assignment("inc-2", "cause-1")), (T0 + 66, first("inc-1", "cause-1")),
        (T0 + 67, progress(0, T0 + 62)), (T0 + 67, progress(1, T0 + 62)), (T0 + 70, None),
        (T0 + 80, Acknowledgement(incident_id="cause-1", who="ana", at=T0 + 80)),
        (T0 + 90, incident("inc-1", 3, status="resolved", severity="critical")), (T0 + 95, None)]
    state, made, handovers = drive(records)
    # the cause never triggered; inc-1's page is updated with it (NotifyPolicy.update_carried, session 33)
    assert pages(made) == [("trigger", "inc-1"), ("update", "inc-1"), ("acknowledge", "inc-1")]
    # inc-2 answers too (every_child_answers, session 33): its page is not out; the cause updates inc-1's page
    assert [(h.kind, h.child_id, h.carried) for h in handovers] == [("answer", "inc-2", False),
                                                                    ("answer", "inc-1", True),
                                                                    ("update", "inc-1", False)]
    assert state.subjects["cause-1"].carried_by == "inc-1" and status_of(state.subjects["cause-1"], POLICY) == "paged"
    end = [(T0 + 120, started(incident("inc-2", 3, status="resolved", severity="critical"), T0 + 60)),
           (T0 + 250, cause("cause-1", 3, children=["inc-1", "inc-2"], status="resolved"))]
    state, made, handovers = drive(records + end)
    assert pages(made) == [("trigger", "inc-1"), ("update", "inc-1"), ("acknowledge", "inc-1"), ("resolve", "inc-1")]
    assert {d.created_at for d in made if d.action == "resolve"} == {T0 + 250}  # with the cause, not with inc-1
    assert [h.kind for h in handovers] == ["answer", "answer", "update", "closed"]
    assert {d.subject_id for d in made} == {"inc-1"}  # nothing for the cause or inc-2 on any receiver


def test_a_carrying_page_whose_cause_never_closes_resolves_after_retention() -> None:
    one = incident("inc-1", severity="critical")
    records: list[tuple[float, NotifyRecord | None]] = [
        (T0 + 1, one), (T0 + 7, progress(0, T0 + 2)), (T0 + 7, progress(1, T0 + 2)),
        (T0 + 66, cause("cause-1", 2, children=["inc-1", "inc-2"])), (T0 + 66, first("inc-1", "cause-1")),
        (T0 + 90, incident("inc-1", 3, status="resolved", severity="critical"))]
    _, made, _ = drive([*records, (T0 + 90 + 3000, None)])
    assert pages(made) == [("trigger", "inc-1"), ("update", "inc-1")]  # the update: update_carried, session 33
    _, made, _ = drive([*records, (T0 + 90 + 3601, None)])
    assert pages(made) == [("trigger", "inc-1"), ("update", "inc-1"), ("resolve", "inc-1")]


def test_a_cause_that_paged_on_its_own_before_the_answer_frees_the_child_page() -> None:
    """No answer within the cause wait: the cause paged; the child that answers late is told its page is its own."""
    one = incident("inc-1", severity="critical")
    records: list[tuple[float, NotifyRecord | None]] = [
        (T0 + 1, one), (T0 + 7, progress(0, T0 + 2)), (T0 + 7, progress(1, T0 + 2)),
        (T0 + 66, cause("cause-1", 2, children=["inc-1", "inc-2"])), (T0 + 97, None),
        (T0 + 98, first("inc-1", "cause-1")),
        (T0 + 120, incident("inc-1", 3, status="resolved", severity="critical"))]
    state, made, handovers = drive(records)
    assert pages(made) == [("trigger", "inc-1"), ("trigger", "cause-1"), ("resolve", "inc-1")]
    assert [h.kind for h in handovers] == ["answer", "closed"] and state.subjects["inc-1"].carries is None


def test_the_notify_state_round_trips_with_the_handover_fields() -> None:
    one = incident("inc-1", severity="critical")
    state, _, _ = drive([(T0 + 1, one), (T0 + 7, progress(0, T0 + 2)), (T0 + 7, progress(1, T0 + 2)),
                         (T0 + 66, cause("cause-1", 2, children=["inc-1", "inc-2"])),
                         (T0 + 66, first("inc-1", "cause-1"))])
    again = NotifyState.from_dict(json.loads(json.dumps(state.to_dict())))
    assert again.subjects == state.subjects and again.subjects["inc-1"].carries == "cause-1"


def test_a_child_stage2_reaches_behind_its_moving_progress_waits_for_it_not_the_cause_wait() -> None:
    """Session 37's soak at load 12-17: stage 2 ran minutes behind notify, and children paged alone one by one at the
    30 s cause wait (fault 35: 14 pages, no cause). While the progress still moves, the child waits for stage 2; its
    cause then pages once. Before: `inc-1` paged at T0 + 31, then the cause too."""
    child = incident("inc-1", severity="critical")
    moving: list[tuple[float, NotifyRecord | None]] = []
    for k in range(12):  # stage 2 decides 5 s further every 5 s, still an hour behind the incident's first alert
        at = T0 + 2 + 5 * k
        moving += [(at, progress(0, T0 - 3600 + 5 * k)), (at, progress(1, T0 - 3600 + 5 * k)), (at + 0.5, None)]
    grouped = cause("cause-1", 2, children=["inc-1", "inc-2"])
    state, made, _ = drive([(T0 + 1, child), *moving, (T0 + 59, incident("inc-2", severity="critical")),
                            (T0 + 60, grouped), (T0 + 60, assignment("inc-2", "cause-1")),
                            (T0 + 60, first("inc-1", "cause-1")), (T0 + 60, progress(0, T0 + 5)),
                            (T0 + 60, progress(1, T0 + 5)), (T0 + 61, None)])
    assert pages(made) == [("trigger", "cause-1")]
    assert status_of(state.subjects["inc-1"], POLICY) == "grouped"
    old = NotifyPolicy(cause_wait_s=30.0, lone_causes=False, stage2_partitions=2, follow_progress_s=0.0)
    _, made, _ = drive([(T0 + 1, child), *moving[:21]], old)
    assert pages(made) == [("trigger", "inc-1")]  # the old rule: alone at the cause wait, stage 2 moving or not


def test_a_child_waits_for_moving_progress_at_most_follow_progress_s_and_not_at_all_once_it_stalls() -> None:
    child = incident("inc-1", severity="critical")
    policy = NotifyPolicy(cause_wait_s=30.0, lone_causes=False, stage2_partitions=2, follow_progress_s=60.0)

    def moving(until: float) -> list[tuple[float, NotifyRecord | None]]:
        out: list[tuple[float, NotifyRecord | None]] = []
        at = T0 + 2.0
        while at <= until:
            out += [(at, progress(0, at - 7200)), (at, progress(1, at - 7200)), (at + 0.5, None)]
            at += 5.0
        return out

    _, made, _ = drive([(T0 + 1, child), *moving(T0 + 57)], policy)
    assert pages(made) == []  # stage 2 moves, behind it: waits past the cause wait
    _, made, _ = drive([(T0 + 1, child), *moving(T0 + 62)], policy)
    assert pages(made) == [("trigger", "inc-1")]  # the bound: at T0 + 62.5, 61.5 s after it was seen
    _, made, _ = drive([(T0 + 1, child), *moving(T0 + 22), (T0 + 31.5, None)], policy)
    assert pages(made) == []  # moved 9.5 s ago: within the stall window, stage 2 counts as running
    _, made, _ = drive([(T0 + 1, child), *moving(T0 + 22), (T0 + 32.5, None)], policy)
    assert pages(made) == [("trigger", "inc-1")]  # 10.5 s without a move: stage 2 counts as stopped, pages now


def test_a_state_built_anew_waits_for_the_progress_before_paging_the_children_the_rule_held() -> None:
    """Session 37's quick chaos soaks with follow_progress_s 300 (follow37): the children the rule held past the cause
    wait while stage 2 lagged were all paged alone, in one instant, by the first tick of the state a rebalance or the
    broker restart built anew from the table: the progress is not written back, and that tick came before stage 2's
    next one. Now a state built anew waits `progress_stall_s` from its first step for a progress (the bound: stage 2
    stopped still pages). Before: five triggers at T0 + 61."""
    children = [incident(f"inc-{k}", severity="critical") for k in range(5)]
    moving: list[tuple[float, NotifyRecord | None]] = []
    for k in range(12):  # stage 2 decides 5 s further every 5 s, an hour behind the children's first alerts
        at = T0 + 2 + 5 * k
        moving += [(at, progress(0, T0 - 3600 + 5 * k)), (at, progress(1, T0 - 3600 + 5 * k)), (at + 0.5, None)]
    held: list[tuple[float, NotifyRecord | None]] = [(T0 + 1 + k, c) for k, c in enumerate(children)]
    state, made, _ = drive(sorted([*held, *moving], key=lambda r: r[0]))
    assert pages(made) == []  # every child waits for stage 2 past the cause wait
    snapshot = json.loads(json.dumps(state.to_dict()))
    _, made, _ = drive([(T0 + 61, None)], state=NotifyState.from_dict(snapshot))
    assert pages(made) == []  # the rebuilt state's first tick, before the progress: still waiting
    again: list[tuple[float, NotifyRecord | None]] = [(T0 + 61, None), (T0 + 61.4, progress(0, T0 - 3540)),
                                                      (T0 + 61.4, progress(1, T0 - 3540)), (T0 + 70.5, None)]
    _, made, _ = drive(again, state=NotifyState.from_dict(snapshot))
    assert pages(made) == []  # the progress came back and moves: the rule goes on waiting
    _, made, _ = drive([(T0 + 61, None), (T0 + 70.5, None)], state=NotifyState.from_dict(snapshot))
    assert pages(made) == []  # no progress yet, 9.5 s after the state's first step
    _, made, _ = drive([(T0 + 61, None), (T0 + 71.5, None)], state=NotifyState.from_dict(snapshot))
    assert sorted(pages(made)) == [("trigger", c.incident_id) for c in children]  # stage 2 stopped: they page
