"""Stage 2, issue 17 (session 33): machine-follow. A host's own metric that shares only its machine with a cause is
taken while that cause alerts, not only in its first burst; it joins one cause and never folds two
(`GroupingConfig.machine_follow`)."""

from __future__ import annotations

from dataclasses import replace

import orjson

from correlator.stage2 import Relation
from correlator.topology import parse_topology

from .test_stage2 import CFG, Spec, events_of, partition, run

ON = replace(CFG, max_hops=1, merge_window_s=120, machine_follow=True, machine_follow_filed=False)
OFF = replace(ON, machine_follow=False)

CAUSE: Spec = ("pay", "payments/5xx", 0, 55, {"instance": ["pay-1"], "host": ["h1"]})
LOAD: Spec = ("load", "node/HostLoadHigh", 60, 60, {"host": ["h1"]})


def test_a_host_metric_joins_the_cause_alerting_on_its_host() -> None:
    _, out = run(events_of([CAUSE, LOAD]), ON)
    assert partition(out) == "load pay"
    joined = out.assignments[-1]
    assert joined.relation is Relation.ENTITY and joined.via == "host h1"
    assert "while this cause alerted" in joined.explanation


def test_without_the_rule_it_opens_its_own() -> None:
    assert partition(run(events_of([CAUSE, LOAD]), OFF)[1]) == "load|pay"


def test_a_quiet_cause_another_tenant_or_another_scope_take_nothing() -> None:
    quiet: Spec = ("pay", "payments/5xx", 0, 30, {"instance": ["pay-1"], "host": ["h1"]})
    assert partition(run(events_of([quiet, LOAD]), ON)[1]) == "load|pay"
    tenant: Spec = ("db", "db/latency", 60, 60, {"instance": ["db-1"], "host": ["h1"]})
    assert partition(run(events_of([CAUSE, tenant]), ON)[1]) == "db|pay"
    elsewhere: Spec = ("load", "cluster=b/node/HostLoadHigh", 60, 60, {"host": ["h1"]})
    assert partition(run(events_of([CAUSE, elsewhere]), ON)[1]) == "load|pay"


def test_two_causes_on_its_host_take_nothing_and_none_is_folded() -> None:
    other: Spec = ("db", "db/5xx", 30, 58, {"instance": ["db-1"], "host": ["h1"]})
    _, out = run(events_of([CAUSE, other, LOAD]), ON)
    assert partition(out) == "db|load|pay"
    assert not any(p.merged_into for p in out.parents)


def test_it_moves_no_onset_and_its_names_relate_as_callers() -> None:
    grouper, _ = run(events_of([CAUSE, LOAD]), ON)
    g = next(grouper.groups())
    assert g.last_onset == g.children["pay"].first_seen and g.path_onset == float("-inf")
    assert "node" in g.callers and g.children["load"].by_chain and not g.children["load"].by_path


HOSTS = parse_topology(orjson.dumps({
    "nodes": [{"id": "payments", "type": "Service"}, {"id": "pay-1", "type": "Service_Instance"},
              {"id": "h1", "type": "Host"}],
    "edges": [{"source": "pay-1", "target": "payments", "label": "instance_of"},
              {"source": "pay-1", "target": "h1", "label": "hosted_on"}]}).decode())


def test_with_machine_follow_filed_a_host_metric_follows_only_where_a_topology_file_is_given() -> None:
    filed = replace(ON, machine_follow_filed=True)
    assert partition(run(events_of([CAUSE, LOAD]), filed)[1]) == "load|pay"
    assert partition(run(events_of([CAUSE, LOAD]), filed, HOSTS)[1]) == "load pay"
    assert partition(run(events_of([CAUSE, LOAD]), ON)[1]) == "load pay"  # the field off: with or without a file
