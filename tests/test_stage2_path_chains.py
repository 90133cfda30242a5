"""Stage 2, issue 17 (session 32): paths of calls. With a topology file, a trace error whose failed call went into a
service that calls the cause's failing one (H -> R) is the failure climbing the call graph: it is related by that
one edge as a caller name is, within caller_window_s of the cause's latest onset while the cause alerts, not only
within burst_s of the onset as any other path (`GroupingConfig.path_chains`).
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from correlator.stage2 import Relation

from .test_stage2 import CFG, SHOP, Spec, events_of, partition, run

ON = replace(CFG, max_hops=1, caller_window_s=120, company=False, call_chains=False)
OFF = replace(ON, path_chains=False)

# payments fails and alerts on; 60 s after its onset a call from the frontend into checkout, which calls payments,
# fails: checkout -> payments is an edge of the file, in its direction
CAUSE: Spec = ("pay", "payments/5xx", 0, 55, {"instance": ["pay-1"]})
UP: Spec = ("up", "checkout/trace:500", 60, 70, {"caller": ["fe-1"], "callee": ["co-2"]})


def test_a_failed_call_into_a_service_that_calls_the_cause_joins_it_while_the_cause_alerts() -> None:
    _, out = run(events_of([CAUSE, UP]), ON, SHOP)
    assert partition(out) == "pay up"
    joined = out.assignments[-1]
    assert (joined.relation, joined.via) == (Relation.TOPOLOGY, "checkout~payments")


def test_without_the_rule_a_path_60_s_after_the_onset_relates_nothing() -> None:
    _, out = run(events_of([CAUSE, UP]), OFF, SHOP)
    assert partition(out) == "pay|up"


@pytest.mark.parametrize(("name", "specs"), [
    ("against the edge: db is what payments calls, not a caller of it",
     [CAUSE, ("dn", "db/trace:500", 60, 70, {"caller": ["pay-2"], "callee": ["db-9"]})]),
    ("no call named: checkout's own latency is a fault of its own",
     [CAUSE, ("co", "checkout/latency", 60, 70, {"instance": ["co-3"]})]),
    ("the cause stopped alerting 25 s before (burst_s is 20)",
     [("pay", "payments/5xx", 0, 35, {"instance": ["pay-1"]}), UP]),
    ("past caller_window_s of the cause's latest onset, though it alerts",
     [("pay", "payments/5xx", 0, 125, {"instance": ["pay-1"]}),
      ("up", "checkout/trace:500", 130, 140, {"caller": ["fe-1"], "callee": ["co-2"]})]),
])
def test_what_a_path_of_calls_does_not_relate(name: str, specs: list[Spec]) -> None:
    _, out = run(events_of(specs), ON, SHOP)
    assert len(partition(out).split("|")) == 2, name


def test_within_burst_s_any_path_relates_as_before() -> None:
    near: Spec = ("co", "checkout/latency", 10, 20, {"instance": ["co-3"]})
    for config in (ON, OFF):
        _, out = run(events_of([CAUSE, near]), config, SHOP)
        assert partition(out) == "co pay"


def test_the_topology_knows_which_way_an_edge_runs() -> None:
    assert SHOP.callees("checkout") == {"payments"} and SHOP.callees("payments") == {"db"}
    assert "checkout" not in SHOP.callees("payments") and not SHOP.callees("unknown")


def test_with_upstream_lingers_a_path_of_calls_relates_after_the_cause_s_latest_alert() -> None:
    quiet: list[Spec] = [("pay", "payments/5xx", 0, 35, {"instance": ["pay-1"]}), UP]  # stopped 25 s before
    assert partition(run(events_of(quiet), replace(ON, upstream_lingers=True), SHOP)[1]) == "pay up"
    assert partition(run(events_of(quiet), ON, SHOP)[1]) == "pay|up"
    late: list[Spec] = [("pay", "payments/5xx", 0, 125, {"instance": ["pay-1"]}),
                        ("up", "checkout/trace:500", 130, 140, {"caller": ["fe-1"], "callee": ["co-2"]})]
    assert partition(run(events_of(late), replace(ON, upstream_lingers=True), SHOP)[1]) == "pay|up"
