"""Alertmanager-API-v2-style alerts on the generic format: the bodies real Prometheus posts to an Alertmanager's
`POST /api/v2/alerts` (captured with tests/data/capture_prometheus_v2.py), mapped by the Alertmanager adapter's
own mapping, their status decided as Alertmanager decides it (resolved once `endsAt` has passed on receipt)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
import pytest

from correlator.sources import SourceError, alertmanager, alerts_in, parse, parse_arrived

from .paths import ROOT

POSTS: list[dict[str, Any]] = orjson.loads((ROOT / "tests/data/prometheus_v2_posts.json").read_bytes())["posts"]
FIRING, RESOLVED = POSTS


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def test_prometheus_firing_post_is_one_firing_alert() -> None:
    [alert] = parse("generic", FIRING["body"].encode(), received_at=FIRING["received_at"])
    [item] = orjson.loads(FIRING["body"])
    assert (alert.status, alert.ends_at, alert.starts_at) == ("firing", None, _epoch(item["startsAt"]))
    assert _epoch(item["endsAt"]) > FIRING["received_at"]  # Prometheus's planned end: not a resolution
    assert (alert.service, alert.symptom, alert.scope, alert.severity) == (
        "checkout", "HighRequestLatency", "cluster=eu-1", "critical")
    assert alert.key == "cluster=eu-1/checkout/HighRequestLatency"
    assert alert.summary == "checkout p99 above 2s" and alert.extra["generatorURL"].startswith("http://")
    assert alert.source == "generic"


def test_prometheus_resolved_post_resolves_at_its_ends_at() -> None:
    guarded = parse_arrived("generic", RESOLVED["body"].encode(), RESOLVED["received_at"])
    [alert] = guarded.alerts
    [item] = orjson.loads(RESOLVED["body"])
    assert (alert.status, alert.ends_at) == ("resolved", _epoch(item["endsAt"]))
    [firing] = parse("generic", FIRING["body"].encode(), received_at=FIRING["received_at"])
    assert firing.fingerprint == alert.fingerprint  # the same series: the resolution resolves the firing one


def test_one_mapping_with_the_alertmanager_webhook() -> None:
    """The alert Prometheus posts and the one an Alertmanager webhook carries for it map alike."""
    [item] = orjson.loads(FIRING["body"])
    hook = {"version": "4", "status": "firing", "receiver": "r", "groupKey": "{}:{}",
            "alerts": [{**item, "status": "firing", "endsAt": "0001-01-01T00:00:00Z"}]}
    [via_webhook] = alertmanager.parse(orjson.dumps(hook))
    [via_v2] = parse("generic", FIRING["body"].encode(), received_at=FIRING["received_at"])
    fields = ("fingerprint", "key", "service", "symptom", "scope", "severity", "status", "starts_at", "ends_at",
              "labels", "annotations", "summary")
    assert {f: getattr(via_v2, f) for f in fields} == {f: getattr(via_webhook, f) for f in fields}


@pytest.mark.parametrize(("ends_at", "received_at", "status"), [
    ("2026-12-06T03:00:00Z", None, "resolved"),  # a recording: the end has passed
    ("2026-12-06T03:00:00Z", _epoch("2026-12-06T03:00:00Z"), "resolved"),  # at receipt: resolved, as Alertmanager
    ("2026-12-06T03:00:00Z", _epoch("2026-12-06T02:59:59Z"), "firing"),
    (None, _epoch("2026-12-06T03:05:00Z"), "firing"),
    ("0001-01-01T00:00:00Z", _epoch("2026-12-06T03:05:00Z"), "firing"),  # Go's zero time: no end
])
def test_status_is_decided_against_the_receipt_time(ends_at: str | None, received_at: float | None,
                                                    status: str) -> None:
    item = {"labels": {"alertname": "Down", "job": "api"}, "startsAt": "2026-12-06T02:50:00Z"}
    if ends_at is not None:
        item["endsAt"] = ends_at
    [alert] = parse("generic", orjson.dumps([item]), received_at=received_at)
    assert alert.status == status
    assert (alert.ends_at is not None) == (status == "resolved")


def test_an_explicit_status_wins_and_generic_objects_still_mix() -> None:
    body = orjson.dumps([
        {"labels": {"alertname": "Down", "job": "api"}, "startsAt": "2026-12-06T02:50:00Z",
         "endsAt": "2026-12-06T02:55:00Z", "status": "firing"},
        {"starts_at": 1_796_525_400, "service": "db", "symptom": "slow"},
    ])
    first, second = parse("generic", body, received_at=_epoch("2026-12-06T03:00:00Z"))
    assert (first.status, first.ends_at, second.service) == ("firing", None, "db")
    ndjson = b"\n".join(orjson.dumps(i) for i in orjson.loads(FIRING["body"]) * 2)
    assert len(parse("generic", ndjson, received_at=FIRING["received_at"])) == 2


@pytest.mark.parametrize(("item", "field", "reason"), [
    ({"labels": {"alertname": "X"}, "endsAt": "2026-12-06T03:00:00Z"}, "[0].startsAt", "missing required field"),
    ({"startsAt": "2026-12-06T03:00:00Z"}, "[0].labels", "missing required field"),
    ({"labels": {"alertname": 5}, "startsAt": "2026-12-06T03:00:00Z"}, "[0].labels.alertname", "wrong type"),
    ({"labels": {}, "startsAt": "yesterday"}, "[0].startsAt", "invalid value"),
    ({"labels": {}, "startsAt": "0001-01-01T00:00:00Z"}, "[0].startsAt", "zero time"),
    ({"labels": {}, "startsAt": "2026-12-06T03:00:00Z", "status": "open"}, "[0].status", "invalid value"),
])
def test_a_bad_v2_alert_refuses_the_body_with_its_path(item: dict[str, Any], field: str, reason: str) -> None:
    with pytest.raises(SourceError) as refused:
        parse("generic", orjson.dumps([item]))
    assert (refused.value.field, refused.value.reason.split(":")[0]) == (field, reason), refused.value
    with pytest.raises(SourceError):  # what the HTTP ingest asks refuses the same body
        alerts_in("generic", orjson.dumps([item]))
