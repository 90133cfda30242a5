"""Stage 2, issue 17 (session 36): calls climbing. A trace error into a service whose own calls failed in a cause, and
that relates to nothing open, joins that cause while it alerts: R fails, H's calls into R fail, then U's calls into H
(`GroupingConfig.climb_s`)."""

from __future__ import annotations

from dataclasses import replace

import orjson
import pytest

from correlator.stage2 import ChildState, GroupingConfig, GroupState, Relation

from .test_stage2 import CFG, Spec, events_of, partition, run

ON = replace(CFG, max_hops=1, climb_s=60, climb_lone_apart=False, climb_owns=False)
OFF = replace(ON, climb_s=0)

CAUSE: Spec = ("r", "bill/5xx", 0, 100, {"instance": ["bill-1"]})
HOP1: Spec = ("t1", "bill/trace:500", 5, 100, {"caller": ["cart-1"], "callee": ["bill-2"]})
"""The cause's own trace errors: cart's calls into bill fail, so the group knows cart-1 only as a caller."""
HOP2: Spec = ("t2", "cart/trace:500", 150, 160, {"caller": ["web-1"], "callee": ["cart-2"]})
"""web's calls into cart fail, 150 s after the cause's onset (past caller_window_s), 50 s after its reach; it shares
no name with the cause (cart-2 is another instance of cart)."""


def test_a_trace_error_into_a_service_whose_calls_failed_in_the_cause_joins_it() -> None:
    grouper, out = run(events_of([CAUSE, HOP1, HOP2]), ON)
    assert partition(out) == "r t1 t2"
    joined = out.assignments[-1]
    assert joined.relation is Relation.ENTITY and joined.via == "cart-1"
    assert "whose own calls failed in this cause while it alerted" in joined.explanation


def test_without_the_rule_it_opens_its_own() -> None:
    assert partition(run(events_of([CAUSE, HOP1, HOP2]), OFF)[1]) == "r t1|t2"


def test_its_names_relate_as_callers_and_it_moves_no_onset_or_reach() -> None:
    grouper, _ = run(events_of([CAUSE, HOP1, HOP2]), ON)
    g = next(grouper.groups())
    assert {"cart", "cart-2", "web-1"} <= g.callers and g.children["t2"].by_chain
    assert g.last_onset == g.children["t1"].first_seen and g.reach == g.children["r"].last_seen


def test_with_climb_owns_it_joins_as_a_named_child() -> None:
    grouper, out = run(events_of([CAUSE, HOP1, HOP2]), replace(ON, climb_owns=True))
    assert partition(out) == "r t1 t2"
    g = next(grouper.groups())
    assert not {"cart", "cart-2"} & g.callers and not g.children["t2"].by_chain  # web-1 is a caller in it too
    assert g.last_onset == g.children["t2"].first_seen


def test_with_climb_onset_its_names_stay_callers_but_it_moves_the_onset() -> None:
    grouper, out = run(events_of([CAUSE, HOP1, HOP2]), replace(ON, climb_onset=True))
    assert partition(out) == "r t1 t2"
    g = next(grouper.groups())
    assert {"cart", "cart-2"} <= g.callers and g.children["t2"].by_chain and g.children["t2"].moves_onset
    assert g.last_onset == g.children["t2"].first_seen and g.reach == g.children["r"].last_seen
    back = GroupState.from_dict(orjson.loads(orjson.dumps(g.to_dict())))
    assert back.children["t2"].moves_onset and back.last_onset == g.last_onset
    assert not ChildState(*g.children["t2"].to_list()[:-1]).moves_onset  # a child saved before the field


def test_two_causes_whose_calls_out_of_the_service_failed_take_nothing() -> None:
    second: Spec = ("q", "shop/5xx", 100, 140, {"instance": ["shop-1"]})
    calls: Spec = ("q2", "shop/trace:500", 105, 140, {"caller": ["cart-3"], "callee": ["shop-2"]})
    assert partition(run(events_of([CAUSE, HOP1, second, calls, HOP2]), ON)[1]) == "q q2|r t1|t2"
    assert partition(run(events_of([CAUSE, HOP1, second, HOP2]), ON)[1]) == "q|r t1 t2"


def test_a_quiet_cause_another_scope_or_a_child_naming_no_call_take_nothing() -> None:
    assert partition(run(events_of([CAUSE, HOP1, HOP2]), replace(ON, climb_s=40))[1]) == "r t1|t2"  # 50 s past reach
    elsewhere: Spec = ("t2", "cluster=b/cart/trace:500", 150, 160, {"caller": ["web-1"], "callee": ["cart-2"]})
    assert partition(run(events_of([CAUSE, HOP1, elsewhere]), ON)[1]) == "r t1|t2"
    metric: Spec = ("t2", "cart/latency", 150, 160, {"instance": ["cart-2"]})
    assert partition(run(events_of([CAUSE, HOP1, metric]), ON)[1]) == "r t1|t2"


def test_a_new_fault_of_the_service_keeps_its_own_trace_errors() -> None:
    # cart fails on its own at 140 s: its trace errors share cart with it and join it, not the cause it climbs to
    own: Spec = ("c", "cart/latency", 140, 160, {"instance": ["cart-2"]})
    assert partition(run(events_of([CAUSE, HOP1, own, HOP2]), ON)[1]) == "c t2|r t1"


def test_a_lone_alert_takes_no_climbing_child_with_climb_lone_apart() -> None:
    # a single trace error alone (nothing else started within burst_s before it), then another into its caller's
    # service 30 s later: one background alert climbing into another
    lone: Spec = ("n1", "bill/trace:500", 0, 0, {"caller": ["cart-1"], "callee": ["bill-2"]})
    up: Spec = ("n2", "cart/trace:500", 15, 15, {"caller": ["web-1"], "callee": ["cart-2"]})
    apart = replace(ON, climb_lone_apart=True)
    assert partition(run(events_of([lone, up]), apart)[1]) == "n1|n2"
    assert partition(run(events_of([lone, up]), ON)[1]) == "n1 n2"
    assert partition(run(events_of([CAUSE, HOP1, HOP2]), apart)[1]) == "r t1 t2"  # a cause of two children climbs


def test_climb_s_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match="climb_s"):
        GroupingConfig(climb_s=-1)
