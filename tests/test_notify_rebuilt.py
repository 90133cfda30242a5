"""A notify state built anew from its table pages nothing it brought by stage 2's progress alone within
`NotifyPolicy.rebuilt_wait_s` (session 40, lone41's traced soak t1).

After a broker loss the routing records of some children may be gone before stage 2 grouped them; stage 1 routes its
open incidents again (census41) and stage 2 names them 0.1-0.3 s later. A progress produced before those records
land can cover such a child first: notify's progress path paged it alone there and then (critical: no hold), while
`rebuilt_wait_s` held only the cause-wait path. In t1 (main) 7 children loaded from notify's table paged alone so.
Now both paths wait the same; the child is looked at again once the wait is over (the tick, and the progress index,
which keeps it), and pages alone then if no cause named it meanwhile."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from correlator.notify import NotifyPolicy, NotifyRecord, NotifyState, on_record, status_of
from correlator.stage2 import Relation

from .notifying import T0, assignment, cause, incident, routes
from .test_notify_progress import POLICY, drive, pages, progress

REBUILT = T0 + 20.0
"""The rebuilt state's first step (its `started_at`): the worker rejoined after the loss."""


def _table(policy: NotifyPolicy = POLICY) -> NotifyState:
    """The table as the rebuilt state reads it: one critical child `inc-1` (first alert T0), read before the loss, not
    yet covered by any progress (the progress is not written back)."""
    before = NotifyState()
    on_record(before, incident("inc-1", severity="critical"), T0 + 1, routes(), [], policy)
    assert pages(drive([(T0 + 2, None)], policy, before)[1]) == []
    return NotifyState.from_dict(json.loads(json.dumps(before.to_dict())))


def _covered(at: float, to: float = T0 + 5) -> list[tuple[float, NotifyRecord | None]]:
    """Stage 2's progress on both routing partitions, covering the child's first alert."""
    return [(at, progress(0, to)), (at, progress(1, to))]


def _restated(at: float) -> list[tuple[float, NotifyRecord | None]]:
    """Stage 2 names the child, after stage 1 routed it again: its cause with a second child, both assignments."""
    return [(at, cause("cause-1", 2, children=["inc-2", "inc-1"])), (at, assignment("inc-2", "cause-1")),
            (at, assignment("inc-1", "cause-1").model_copy(update={"relation": Relation.RESTATED}))]


def test_a_loaded_child_the_progress_covers_before_its_restated_assignment_does_not_page_alone() -> None:
    """t1's scene: the rebuilt state's first tick, a progress covering the loaded child 0.5 s later, the restated
    assignment naming it 3 s later. The cause pages once; the child never. Before: the child paged alone at the
    progress (critical) and carried the cause (`trigger` then `update` of `inc-1`)."""
    state, made, _ = drive([(REBUILT, None), *_covered(REBUILT + 0.5), (REBUILT + 1, None), *_restated(REBUILT + 3),
                            (REBUILT + 4, None), (REBUILT + 11, None), (REBUILT + 60, None)], state=_table())
    assert pages(made) == [("trigger", "cause-1")]
    assert status_of(state.subjects["inc-1"], POLICY) == "grouped"


@pytest.mark.parametrize("index", [True, False])
def test_with_no_assignment_the_loaded_child_pages_alone_at_the_first_tick_after_the_wait(index: bool) -> None:
    """Nothing names it: it pages at the first tick at or after `rebuilt_wait_s` from the state's first step, not
    earlier and not later (the progress index popped it while it waited and must not have forgotten it)."""
    policy = replace(POLICY, progress_index=index)
    waits: list[tuple[float, NotifyRecord | None]] = [(REBUILT, None), *_covered(REBUILT + 0.5), (REBUILT + 5, None)]
    _, made, _ = drive([*waits, (REBUILT + 9.9, None)], policy, _table(policy))
    assert pages(made) == []
    _, made, _ = drive([*waits, (REBUILT + 9.9, None), (REBUILT + 10, None)], policy, _table(policy))
    assert pages(made) == [("trigger", "inc-1")] and made[0].created_at == REBUILT + 10


@pytest.mark.parametrize("index", [True, False])
def test_with_no_tick_the_next_progress_after_the_wait_pages_the_loaded_child(index: bool) -> None:
    """The progress is the rebuilt state's first step (the index is built then, the child popped and held); a
    progress after the wait pages it, with no tick in between."""
    policy = replace(POLICY, progress_index=index)
    records = [*_covered(REBUILT), *_covered(REBUILT + 5, T0 + 6), *_covered(REBUILT + 10.5, T0 + 7)]
    _, made, _ = drive(records, policy, _table(policy))
    assert pages(made) == [("trigger", "inc-1")] and made[0].created_at == REBUILT + 10.5


def test_an_incident_first_seen_after_the_state_started_pages_on_the_progress_at_once() -> None:
    """Only what the table brought waits: `inc-2`, first read by the rebuilt state, pages at the progress covering it,
    within the wait, while the loaded `inc-1` (covered by the same progress) still waits."""
    fresh = incident("inc-2", severity="critical", service="payments")
    _, made, _ = drive([(REBUILT, None), (REBUILT + 1, fresh), *_covered(REBUILT + 2)], state=_table())
    triggers = {d.subject_id: d.created_at for d in made if d.receiver == "oncall" and d.action == "trigger"}
    assert triggers.get("inc-2") == REBUILT + 2  # as before the change
    assert "inc-1" not in triggers


def test_rebuilt_wait_s_0_is_the_old_rule_the_loaded_child_pages_alone_at_the_progress() -> None:
    policy = replace(POLICY, rebuilt_wait_s=0.0)
    _, made, _ = drive([(REBUILT, None), *_covered(REBUILT + 0.5), *_restated(REBUILT + 3), (REBUILT + 60, None)],
                       policy, _table(policy))
    assert pages(made) == [("trigger", "inc-1"), ("update", "inc-1")]  # alone, then carrying its cause
    assert made[0].created_at == REBUILT + 0.5
