"""Stage 2, issue 17 (session 37, casc23): tenants apart by labels. Without a topology file, a child naming an
instance (a tenant of its host by its own labels) does not join a group it relates to only by the shared host; a
host's own metric (no instance) still does (`GroupingConfig.tenants_apart_labels`)."""

from __future__ import annotations

from dataclasses import replace

from .test_stage2 import CFG, Spec, events_of, partition, run

ON = replace(CFG, max_hops=1, tenants_apart=True, tenants_apart_labels=True)
OFF = replace(ON, tenants_apart_labels=False)

CAUSE: Spec = ("pay", "payments/5xx", 0, 30, {"instance": ["payments-1"], "host": ["h1"]})
TENANT: Spec = ("rep", "reports/latency", 5, 20, {"instance": ["reports-2"], "host": ["h1"]})
LOAD: Spec = ("load", "node/HostLoadHigh", 8, 8, {"host": ["h1"]})


def test_a_tenant_sharing_only_the_host_opens_its_own() -> None:
    assert partition(run(events_of([CAUSE, TENANT]), ON)[1]) == "pay|rep"


def test_without_the_field_the_host_relates_them() -> None:
    assert partition(run(events_of([CAUSE, TENANT]), OFF)[1]) == "pay rep"


def test_the_host_metric_still_follows_its_host() -> None:
    assert partition(run(events_of([CAUSE, LOAD]), ON)[1]) == "load pay"


def test_a_tenant_sharing_a_name_still_joins() -> None:
    same: Spec = ("pay2", "payments/latency", 5, 20, {"instance": ["payments-1"], "host": ["h1"]})
    assert partition(run(events_of([CAUSE, same]), ON)[1]) == "pay pay2"


def test_tenants_apart_off_turns_it_off_too() -> None:
    assert partition(run(events_of([CAUSE, TENANT]), replace(ON, tenants_apart=False))[1]) == "pay rep"
