"""Scope (cluster, environment, region) is part of the stage-1 key and a hard boundary in stage 2."""

from __future__ import annotations

import orjson
import pytest

from correlator.config import CorrelationConfig
from correlator.keys import KeyConfig, correlation_key, key_label, scope_of, split_key
from correlator.models import Alert
from correlator.replay import replay
from correlator.sources import alertmanager, generic
from correlator.stage2 import GroupingConfig

T0 = 1_772_420_400.0


@pytest.mark.parametrize(
    ("labels", "scope"),
    [
        ({}, ""),
        ({"cluster": "a"}, "cluster=a"),
        ({"region": "eu", "cluster": "a", "env": "prod"}, "cluster=a,env=prod,region=eu"),
        ({"environment": "prod", "env": "prod"}, "environment=prod,env=prod"),
        ({"cluster": ""}, ""),  # an empty label is no scope, as in Prometheus
        ({"namespace": "shop"}, ""),  # namespace only where configured
    ],
)
def test_scope_of_default_labels(labels: dict[str, str], scope: str) -> None:
    assert scope_of(labels) == scope


def test_namespace_when_configured() -> None:
    assert scope_of({"namespace": "shop", "cluster": "a"}, KeyConfig(scope_labels=("cluster", "namespace"))) == (
        "cluster=a,namespace=shop")


@pytest.mark.parametrize(
    ("scope", "service", "symptom"),
    [("", "api", "5xx"), ("cluster=a", "api", "5xx"), ("cluster=a,env=prod", "api", "HTTP 5xx/s"),
     ("", "api", "a/b")],
)
def test_key_round_trip(scope: str, service: str, symptom: str) -> None:
    key = correlation_key(scope, service, symptom)
    assert split_key(key) == (scope, service, symptom)
    assert key_label(key).startswith(f"{service}/{symptom}")


def test_unscoped_key_is_unchanged() -> None:
    assert correlation_key("", "api", "5xx") == "api/5xx"  # ids of unscoped sources stay what they were


def test_adapters_put_the_scope_in_the_key() -> None:
    body = {"version": "4", "status": "firing", "receiver": "r", "groupKey": "g", "alerts": [
        {"status": "firing", "labels": {"alertname": "5xx", "service": "api", "cluster": "eu"},
         "annotations": {}, "startsAt": "2026-03-02T03:00:00Z", "fingerprint": "f1"}]}
    [am] = alertmanager.parse(orjson.dumps(body))
    [gen] = generic.parse(orjson.dumps({"starts_at": T0, "labels": {"alertname": "5xx", "service": "api",
                                                                    "cluster": "us"}}))
    assert (am.key, gen.key) == ("cluster=eu/api/5xx", "cluster=us/api/5xx")


def _storm(tag: str, labels: dict[str, str], start: float, count: int = 10) -> list[Alert]:
    return [Alert(fingerprint=f"{tag}-{n}", service="productcatalog", symptom="trace:PD", starts_at=T0 + start + 7 * n,
                  labels={**labels, "instance": f"productcatalog-{n % 2}", "host": f"node-{n % 2}"})
            for n in range(count)]


def test_one_service_failing_in_two_clusters_at_once_is_two_incidents() -> None:
    """Before scopes, `productcatalog/trace:PD` in cluster a and in cluster b were one incident: one outage hidden."""
    alerts = sorted(_storm("a", {"cluster": "a"}, 0) + _storm("b", {"cluster": "b"}, 3), key=lambda x: x.starts_at)
    report = replay(alerts, CorrelationConfig(), grouping=GroupingConfig())
    assert len(report.incidents) == 2
    assert all(len({fp[0] for fp in i.members}) == 1 for i in report.incidents)
    assert report.parents is not None and len(report.parents) == 2
    assert {i.key for i in report.incidents} == {"cluster=a/productcatalog/trace:PD", "cluster=b/productcatalog/trace:PD"}


@pytest.mark.parametrize(
    ("left", "right"),
    [({"env": "prod"}, {"env": "staging"}),  # not a separate_labels veto: the scope alone keeps them apart
     ({"region": "eu"}, {}),  # a scoped and an unscoped incident never meet either
     ],
)
def test_stage2_never_joins_two_scopes(left: dict[str, str], right: dict[str, str]) -> None:
    """Two services sharing a host and failing together are one cause, unless their scopes differ."""
    a = [Alert(fingerprint=f"a-{n}", service="api", symptom="5xx", starts_at=T0 + 5 * n,
               labels={**left, "host": "node-1"}) for n in range(5)]
    b = [Alert(fingerprint=f"b-{n}", service="db", symptom="latency", starts_at=T0 + 2 + 5 * n,
               labels={**right, "host": "node-1"}) for n in range(5)]
    same = [Alert(fingerprint=f"c-{n}", service="db", symptom="latency", starts_at=T0 + 2 + 5 * n,
                  labels={**left, "host": "node-1"}) for n in range(5)]
    apart = replay(sorted(a + b, key=lambda x: x.starts_at), CorrelationConfig(), grouping=GroupingConfig())
    together = replay(sorted(a + same, key=lambda x: x.starts_at), CorrelationConfig(), grouping=GroupingConfig())
    assert apart.parents is not None and together.parents is not None
    assert len(together.parents) == 1  # the control: same scope, shared host -> one cause
    assert len(apart.parents) == 2
