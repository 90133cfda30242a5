"""Stage 2, issue 17 (session 32): trace-follow. A trace error that relates to nothing open (its failed call went into
a service the cause does not name, and no file says that service calls the cause's) follows the one cause of its
scope that alerts when it starts, and none when two do (`GroupingConfig.trace_follow`)."""

from __future__ import annotations

from dataclasses import replace

from correlator.stage2 import Relation

from .test_stage2 import CFG, Spec, events_of, partition, run

ON = replace(CFG, max_hops=1, company=False, call_chains=False, trace_follow=True)
OFF = replace(ON, trace_follow=False)

CAUSE: Spec = ("pay", "payments/5xx", 0, 55, {"instance": ["pay-1"]})
UP: Spec = ("up", "checkout/trace:500", 60, 70, {"caller": ["fe-1"], "callee": ["co-2"]})


def test_a_trace_error_related_to_nothing_follows_the_one_alerting_cause() -> None:
    _, out = run(events_of([CAUSE, UP]), ON)
    assert partition(out) == "pay up"
    joined = out.assignments[-1]
    assert joined.relation is Relation.BURST and joined.via == "co-2"


def test_without_the_rule_it_opens_its_own() -> None:
    _, out = run(events_of([CAUSE, UP]), OFF)
    assert partition(out) == "pay|up"


def test_two_alerting_causes_or_none_or_another_scope_take_nothing() -> None:
    other: Spec = ("db", "db/latency", 10, 58, {"instance": ["db-1"]})
    assert partition(run(events_of([CAUSE, other, UP]), ON)[1]) == "db|pay|up"
    quiet: Spec = ("pay", "payments/5xx", 0, 30, {"instance": ["pay-1"]})
    assert partition(run(events_of([quiet, UP]), ON)[1]) == "pay|up"
    elsewhere: Spec = ("up", "cluster=b/checkout/trace:500", 60, 70, {"caller": ["fe-1"], "callee": ["co-2"]})
    assert partition(run(events_of([CAUSE, elsewhere]), ON)[1]) == "pay|up"


def test_a_metric_naming_no_call_does_not_follow() -> None:
    metric: Spec = ("co", "checkout/latency", 60, 70, {"instance": ["co-3"], "host": ["h9"]})
    assert partition(run(events_of([CAUSE, metric]), ON)[1]) == "co|pay"


def test_the_names_it_brings_are_borrowed() -> None:
    grouper, _ = run(events_of([CAUSE, UP]), ON)
    g = next(grouper.groups())
    assert {"checkout", "co-2"} <= g.borrowed and g.children["up"].by_path
