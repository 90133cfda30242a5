"""Stage 2, issue 17 (session 31): victim names. A trace error names the callee that failed and the caller that
suffered it. A child whose only name in common with a group is its own caller shares a victim with it: evidence that
the two failures began together, not that a later one belongs to the group (on the development cascades, a new
fault's trace error into another service that the cause's own instance calls). Such a name relates the child only
within caller_window_s of the group's latest onset, the mirror of the rule for names the group knows only as a caller.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from correlator.stage2 import GroupingConfig, Relation

from .test_stage2 import CFG, Spec, events_of, partition, run

# gap 60 s, burst 20 s, caller window 40 s; company off, so that only the victim rule splits these
VICTIMS = replace(CFG, max_hops=1, caller_window_s=40, company=False)

# checkout's instance co-1 fails from 0 to 100 s: co-1 is the group's own name, its reach 100 s
CAUSE: list[Spec] = [("co", "checkout/5xx", 0, 100, {"instance": ["co-1"]})]


def _call(start: float) -> Spec:
    """A failed call from co-1 into db at `start`: co-1 is the victim, db-1 where it failed."""
    return ("t", "db/trace:500", start, start, {"caller": ["co-1"], "callee": ["db-1"]})


@pytest.mark.parametrize(("name", "child", "config", "expected"), [
    ("far from the group's onsets a shared victim relates nothing", _call(150), VICTIMS, "co|t"),
    ("exactly the window after the latest onset", _call(40), VICTIMS, "co t"),
    ("without the rule it relates across the gap", _call(150), replace(VICTIMS, victims=False), "co t"),
    ("a name the child carries in another role relates across the gap",
     ("t", "checkout/trace:500", 150, 150, {"caller": ["web-1"], "callee": ["co-1"]}), VICTIMS, "co t"),
])
def test_a_name_the_child_carries_only_as_a_caller_relates_only_near_the_group_s_onsets(
        name: str, child: Spec, config: GroupingConfig, expected: str) -> None:
    _, out = run(events_of([*CAUSE, child]), config)
    assert partition(out) == expected, name


def test_the_reason_names_the_victim() -> None:
    _, out = run(events_of([*CAUSE, _call(30)]), VICTIMS)
    joined = out.assignments[-1]
    assert (joined.relation, joined.via) == (Relation.ENTITY, "caller co-1")
    assert joined.explanation == "shares caller co-1, which suffered the child's failed call, near its latest onset, " \
                                 "within its span"
