"""Stage 2, issue 17 (session 31, brought onto main off by default in session 32): call chains. A trace error one hop further up the call graph names no instance of
its cause: its failed call went into a service whose own calls failed in the cause (the cause knows that service's
instance only as a caller). It joins near the cause's onsets, as a caller name would, and never folds two causes.
"""

from __future__ import annotations

from dataclasses import replace

import orjson
import pytest

from correlator.stage2 import ChildState, GroupingConfig, GroupState, Relation
from correlator.stage2.relations import service_of, view_of

from .test_stage2 import CFG, Spec, _event, events_of, partition, run

CHAINS = replace(CFG, max_hops=1, caller_window_s=40, company=False, call_chains=True, climb_s=0)
OFF = replace(CHAINS, call_chains=False)

# pay fails; checkout's instance co-1 calls it and suffers (a caller); later a call from web into checkout's other
# instance co-2 fails: the failure climbing the call graph, web -> checkout -> payments
CAUSE: list[Spec] = [("pay", "payments/5xx", 0, 100, {"instance": ["pay-1"]}),
                     ("tr", "payments/trace:500", 5, 100, {"caller": ["co-1"], "callee": ["pay-1"]})]
UP: Spec = ("up", "checkout/trace:500", 20, 60, {"caller": ["web-1"], "callee": ["co-2"]})


@pytest.mark.parametrize(("value", "service"), [
    ("co-2", "co"), ("webservice1", "webservice"), ("svc12-3", "svc12"), ("redis-0", "redis"),
    ("redis", None), ("0.0.0.1", None), ("db2", None),
])
def test_the_service_of_an_instance_is_its_name_less_a_trailing_ordinal(value: str, service: str | None) -> None:
    assert service_of(value) == service


def test_a_failed_call_into_a_service_the_cause_holds_failed_calls_out_of_joins_it() -> None:
    _, out = run(events_of([*CAUSE, UP]), CHAINS)
    assert partition(out) == "pay tr up"
    joined = out.assignments[-1]
    assert (joined.relation, joined.via) == (Relation.ENTITY, "co")
    assert joined.explanation == ("its failed call went into co, whose own calls failed in this cause, near its "
                                  "latest onset, 15s after its latest alert")


def test_without_the_rule_it_opens_its_own_cause() -> None:
    _, out = run(events_of([*CAUSE, UP]), OFF)
    assert partition(out) == "pay tr|up"


@pytest.mark.parametrize(("name", "child", "expected"), [
    ("far from the cause's onsets a chain relates nothing (caller_window_s)",
     ("up", "checkout/trace:500", 50, 60, {"caller": ["web-1"], "callee": ["co-2"]}), "pay tr|up"),
    # both sides are callers of a service: one victim of two failing callees is two faults seen from upstream
    ("a caller shared with the cause is no chain",
     ("t2", "db/trace:500", 20, 60, {"caller": ["co-2"], "callee": ["db-1"]}), "pay tr|t2"),
])
def test_what_a_chain_does_not_relate(name: str, child: Spec, expected: str) -> None:
    _, out = run(events_of([*CAUSE, child]), CHAINS)
    assert partition(out) == expected, name


def test_the_names_a_chain_brings_relate_only_near_the_onsets() -> None:
    # web-1's own fault 70 s after the chain child: its name came with a chain, so it relates like a caller's
    specs: list[Spec] = [*CAUSE, UP, ("web", "web/5xx", 90, 90, {"instance": ["web-1"]})]
    grouper, out = run(events_of(specs), CHAINS)
    assert partition(out) == "pay tr up|web"
    g = next(g for g in grouper.groups() if "pay" in g.children)
    assert "web-1" in g.callers and g.children["up"].by_chain
    assert g.last_onset == events_of(CAUSE)[1].first_seen  # the chain child moved no onset


def test_a_chain_never_folds_two_causes() -> None:
    # two causes open 10 s apart (within the merge window); the bridge is related to one by a chain and to the
    # other by its own service: it joins the one it shares a name with, and the two stay apart
    specs: list[Spec] = [*CAUSE, ("co", "checkout/latency", 10, 100, {"instance": ["co-3"]}),
                         ("up", "checkout/trace:500", 20, 60, {"caller": ["web-1"], "callee": ["co-2"]})]
    _, out = run(events_of(specs), CHAINS)
    assert partition(out) == "co up|pay tr"
    assert not any(a.relation is Relation.MERGED for a in out.assignments)


def test_the_view_keeps_caller_sides_and_looks_up_callee_sides() -> None:
    ev = _event("t", "checkout/trace:500", 0, 0, 1, "opened", {"caller": ["web-1"], "callee": ["co-2"]})
    view = view_of(ev, CHAINS, None)
    assert view.chains == {"co>"} and "web>" in view.entities
    assert "web>" not in view_of(ev, OFF, None).entities and not view_of(ev, OFF, None).chains


def test_the_chain_flag_survives_a_restart_and_old_state_loads() -> None:
    grouper, _ = run(events_of([*CAUSE, UP]), CHAINS)
    g = next(grouper.groups())
    back = GroupState.from_dict(orjson.loads(orjson.dumps(g.to_dict())))
    assert back.children["up"].by_chain and not back.children["tr"].by_chain
    assert not ChildState(*g.children["up"].to_list()[:-2]).by_chain  # a child saved before the field (and moves_onset)


# redis's trace error names login's instance lo-1 as its caller (a victim); login's own group holds lo-2; then a trace
# error of login's calls names lo-1 as caller and lo-2 as callee: it shares lo-1 with the first group (a name that
# group knows only as a caller) and lo-2 with the second, so the two are one blast and fold, as without call chains
SIDES: list[Spec] = [("rs", "redis/trace:PD", 0, 30, {"caller": ["lo-1"], "callee": ["rs-1"]}),
                     ("lg", "login/5xx", 5, 30, {"instance": ["lo-2"]}),
                     ("ch", "login/trace:PD", 10, 30, {"caller": ["lo-1"], "callee": ["lo-2"]})]


@pytest.mark.parametrize(("config", "expected"), [
    (replace(CHAINS, chains_last=True), "ch lg rs"),
    (OFF, "ch lg rs"),
    (CHAINS, "ch lg|rs"),  # the rule before: the victim lookup took the chain lo>, and a chain folds nothing
])
def test_a_shared_caller_name_relates_before_a_call_chain_and_folds(config: GroupingConfig, expected: str) -> None:
    _, out = run(events_of(SIDES), config)
    assert partition(out) == expected
