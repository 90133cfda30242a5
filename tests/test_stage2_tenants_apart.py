"""Stage 2, issue 17 (session 33): tenants apart. With a topology that knows two tenants of one host and no path
between them, their shared host does not relate them; a host's own metric still follows its host, and without a
topology nothing changes (`GroupingConfig.tenants_apart`)."""

from __future__ import annotations

from dataclasses import replace

from correlator.topology import parse_topology

from .test_stage2 import CFG, Spec, events_of, partition, run

ON = replace(CFG, max_hops=1, tenants_apart=True)
OFF = replace(ON, tenants_apart=False)
HOSTED = parse_topology("""
services:
  payments: {hosts: [h1]}
  reports: {hosts: [h1]}
nodes:
  - {id: h1, type: Host}
""")

CAUSE: Spec = ("pay", "payments/5xx", 0, 30, {"host": ["h1"]})
TENANT: Spec = ("rep", "reports/latency", 5, 20, {"host": ["h1"]})
LOAD: Spec = ("load", "node/HostLoadHigh", 8, 8, {"host": ["h1"]})


def test_a_tenant_sharing_only_the_host_opens_its_own() -> None:
    assert partition(run(events_of([CAUSE, TENANT]), ON, HOSTED)[1]) == "pay|rep"


def test_without_the_rule_the_host_relates_them() -> None:
    assert partition(run(events_of([CAUSE, TENANT]), OFF, HOSTED)[1]) == "pay rep"


def test_the_host_metric_still_follows_and_no_file_changes_nothing() -> None:
    assert partition(run(events_of([CAUSE, LOAD]), ON, HOSTED)[1]) == "load pay"
    assert partition(run(events_of([CAUSE, TENANT]), ON)[1]) == "pay rep"


def test_a_group_seen_by_its_host_still_folds_into_the_tenants_own() -> None:
    own: Spec = ("rep0", "reports/errors", 2, 30, {"instance": ["r1"]})
    bridge: Spec = ("rep", "reports/latency", 10, 20, {"instance": ["r1"], "host": ["h1"]})
    _, out = run(events_of([CAUSE, own, bridge]), ON, HOSTED)
    assert partition(out) == "pay rep rep0"
    assert any(p.merged_into for p in out.parents)


def test_a_cause_holding_the_hosts_own_alert_still_takes_its_tenant() -> None:
    host: Spec = ("cpu", "h1/cpu", 2, 30, {})
    _, out = run(events_of([CAUSE, host, TENANT]), ON, HOSTED)
    assert partition(out) == "cpu pay rep"
