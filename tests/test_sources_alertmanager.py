"""Alertmanager webhook v4 adapter: real payload shapes, every bad-input path, the size limit."""

from __future__ import annotations

import copy
from datetime import datetime, timezone
from typing import Any

import orjson
import pytest

from correlator.keys import KeyConfig, fingerprint_of_labels
from correlator.sources import DEFAULT_MAX_BYTES, SourceError, alerts_in, alertmanager, detect_source, parse


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text).astimezone(timezone.utc).timestamp()


def webhook() -> dict[str, Any]:
    """The shape Alertmanager 0.34 posts: a firing group holding a resolved member, the zero endsAt of firing
    alerts, nanosecond times, notification_reason and routeLabels."""
    return {
        "receiver": "aiops-correlator",
        "status": "firing",
        "alerts": [
            {
                "status": "firing",
                "labels": {
                    "alertname": "HighErrorRate",
                    "service": "model-api",
                    "job": "model-api",
                    "instance": "10.0.3.7:8080",
                    "severity": "page",
                },
                "annotations": {"summary": "model-api 5xx above 5%", "description": "5xx ratio 0.071 on 10.0.3.7"},
                "startsAt": "2026-03-01T10:00:05.123456789Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus:9090/graph?g0.expr=rate%28http_5xx%5B5m%5D%29&g0.tab=1",
                "fingerprint": "c2a4f1e0b7d3a915",
            },
            {
                "status": "resolved",
                "labels": {
                    "alertname": "HighErrorRate",
                    "job": "model-api",
                    "instance": "10.0.3.8:8080",
                    "severity": "warning",
                },
                "annotations": {"description": "5xx ratio back under 1%"},
                "startsAt": "2026-03-01T09:58:00Z",
                "endsAt": "2026-03-01T10:04:30.5+00:00",
                "generatorURL": "http://prometheus:9090/graph?g0.expr=rate%28http_5xx%5B5m%5D%29&g0.tab=1",
                "fingerprint": "5e91d0ab33c7f2e4",
            },
            {
                "status": "firing",
                "labels": {"alertname": "DiskWillFillIn4Hours", "instance": "vec-store-2:9100", "severity": "P1"},
                "annotations": {},
                "startsAt": "2026-03-01T12:00:00+02:00",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "",
                "fingerprint": "0aa1bb2cc3dd4ee5",
            },
        ],
        "groupLabels": {"alertname": "HighErrorRate"},
        "commonLabels": {"alertname": "HighErrorRate", "job": "model-api"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "version": "4",
        "groupKey": '{}/{severity=~"page|warning"}:{alertname="HighErrorRate"}',
        "truncatedAlerts": 0,
        "notification_reason": "some alerts resolved",
        "routeLabels": {"team": "ml-platform"},
    }


def body_of(payload: dict[str, Any]) -> bytes:
    return orjson.dumps(payload)


def test_real_webhook_becomes_one_alert_per_member() -> None:
    alerts = alertmanager.parse(body_of(webhook()))
    assert [a.fingerprint for a in alerts] == ["c2a4f1e0b7d3a915", "5e91d0ab33c7f2e4", "0aa1bb2cc3dd4ee5"]
    assert {a.source for a in alerts} == {"alertmanager"}


def test_firing_member_with_zero_ends_at() -> None:
    first = alertmanager.parse(body_of(webhook()))[0]
    assert first.status == "firing"
    assert first.ends_at is None
    assert first.starts_at == pytest.approx(_epoch("2026-03-01T10:00:05.123456+00:00"))
    assert first.key == "model-api/HighErrorRate"
    assert first.severity == "critical"
    assert first.summary == "model-api 5xx above 5%"
    assert first.labels["instance"] == "10.0.3.7:8080"
    assert first.extra["generatorURL"].startswith("http://prometheus:9090/graph")
    assert first.extra["receiver"] == "aiops-correlator"
    assert first.extra["groupKey"] == '{}/{severity=~"page|warning"}:{alertname="HighErrorRate"}'
    assert "truncatedAlerts" not in first.extra


def test_resolved_member_inside_a_firing_group() -> None:
    second = alertmanager.parse(body_of(webhook()))[1]
    assert second.status == "resolved"
    assert second.ends_at == _epoch("2026-03-01T10:04:30.5+00:00")
    assert second.event_time == second.ends_at
    assert second.service == "model-api"  # from `job`: no `service` label
    assert second.summary == "5xx ratio back under 1%"  # description when there is no summary


def test_offset_times_unknown_severity_and_instance_service() -> None:
    third = alertmanager.parse(body_of(webhook()))[2]
    assert third.starts_at == _epoch("2026-03-01T10:00:00+00:00")
    assert third.service == "vec-store-2"  # instance, port dropped
    assert third.symptom == "DiskWillFillIn4Hours"
    assert third.severity == "warning"
    assert third.extra["severity_raw"] == "P1"
    assert "generatorURL" not in third.extra


def test_older_alertmanager_without_newer_fields() -> None:
    payload = webhook()
    del payload["notification_reason"], payload["routeLabels"]
    assert len(alertmanager.parse(body_of(payload))) == 3


def test_unknown_fields_are_accepted_and_an_alerts_own_are_kept() -> None:
    payload = webhook()
    payload["someFutureField"] = {"nested": [1, 2]}
    payload["alerts"][0]["silencedBy"] = ["4f5e"]
    alerts = alertmanager.parse(body_of(payload))
    assert alerts[0].extra["silencedBy"] == ["4f5e"]
    assert "someFutureField" not in alerts[0].extra


def test_null_maps_and_missing_optional_fields() -> None:
    payload = {
        "version": "4",
        "alerts": [{"status": "firing", "labels": {"alertname": "Up"}, "annotations": None,
                    "startsAt": "2026-03-01T10:00:00Z"}],
        "commonLabels": None,
    }
    (alert,) = alertmanager.parse(body_of(payload))
    assert alert.annotations == {}
    assert alert.fingerprint == fingerprint_of_labels({"alertname": "Up"})
    assert alert.service == "unknown"


def test_truncated_alerts_are_surfaced() -> None:
    payload = webhook()
    payload["truncatedAlerts"] = 17
    assert {a.extra["truncatedAlerts"] for a in alertmanager.parse(body_of(payload))} == {17}


def test_key_config_names_the_labels() -> None:
    config = KeyConfig(service_labels=("team", "job"), symptom_labels=("check", "alertname"))
    payload = webhook()
    payload["alerts"][0]["labels"].update(team="ml", check="error ratio 5")
    first = alertmanager.parse(body_of(payload), config)[0]
    assert first.key == "ml/error ratio #"


def test_empty_group_gives_no_alerts() -> None:
    payload = webhook()
    payload["alerts"] = []
    assert alertmanager.parse(body_of(payload)) == []


def test_dispatch_and_detection() -> None:
    body = body_of(webhook())
    assert detect_source(body) == "alertmanager"
    assert parse("alertmanager", body) == alertmanager.parse(body)


def _without(path: str) -> dict[str, Any]:
    payload = webhook()
    node: Any = payload
    *parents, last = path.split(".")
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    del node[last]
    return payload


def _with(path: str, value: object) -> dict[str, Any]:
    payload = webhook()
    node: Any = payload
    *parents, last = path.split(".")
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    node[last] = value
    return payload


BAD_BODIES: list[tuple[str, bytes, str, str]] = [
    ("empty", b"", "body", "empty body"),
    ("whitespace", b" \n\t ", "body", "empty body"),
    ("truncated JSON", b'{"version": "4", "alerts": [', "body", "malformed JSON: unexpected end of data"),
    ("not JSON", b"version=4", "body", "malformed JSON"),
    ("array", b"[]", "body", "wrong type: expected a JSON object, got array"),
    ("no version", body_of(_without("version")), "version", "missing required field"),
    ("version 3", body_of(_with("version", "3")), "version", "unknown Alertmanager webhook version '3'"),
    ("version 5", body_of(_with("version", "5")), "version", "unknown Alertmanager webhook version '5'"),
    ("numeric version", body_of(_with("version", 4)), "version", "wrong type: expected a string, got number"),
    ("no alerts", body_of(_without("alerts")), "alerts", "missing required field"),
    ("alerts not a list", body_of(_with("alerts", {})), "alerts", "wrong type"),
    ("alert not an object", body_of(_with("alerts", ["x"])), "alerts[0]", "wrong type"),
    ("no startsAt", body_of(_without("alerts.1.startsAt")), "alerts[1].startsAt", "missing required field"),
    ("bad startsAt", body_of(_with("alerts.2.startsAt", "yesterday")), "alerts[2].startsAt", "invalid value"),
    ("zero startsAt", body_of(_with("alerts.0.startsAt", "0001-01-01T00:00:00Z")), "alerts[0].startsAt",
     "zero time"),
    ("bad endsAt", body_of(_with("alerts.1.endsAt", "soon")), "alerts[1].endsAt", "invalid value"),
    ("no status", body_of(_without("alerts.0.status")), "alerts[0].status", "missing required field"),
    ("pending status", body_of(_with("alerts.0.status", "pending")), "alerts[0].status", "invalid value"),
    ("no labels", body_of(_without("alerts.2.labels")), "alerts[2].labels", "missing required field"),
    ("null labels", body_of(_with("alerts.2.labels", None)), "alerts[2].labels", "wrong type"),
    ("numeric label", body_of(_with("alerts.0.labels.severity", 1)), "alerts[0].labels.severity",
     "wrong type: Input should be a valid string, got number"),
    ("numeric annotation", body_of(_with("alerts.1.annotations.description", 0.5)),
     "alerts[1].annotations.description", "wrong type"),
    ("fingerprint list", body_of(_with("alerts.0.fingerprint", [])), "alerts[0].fingerprint", "wrong type"),
    ("receiver number", body_of(_with("receiver", 7)), "receiver", "wrong type"),
    ("groupKey object", body_of(_with("groupKey", {})), "groupKey", "wrong type"),
    ("routeLabels list", body_of(_with("routeLabels", [])), "routeLabels", "wrong type"),
    ("negative truncatedAlerts", body_of(_with("truncatedAlerts", -1)), "truncatedAlerts", "invalid value"),
]


@pytest.mark.parametrize(("body", "field", "reason"), [case[1:] for case in BAD_BODIES],
                         ids=[case[0] for case in BAD_BODIES])
def test_bad_input_names_field_and_reason(body: bytes, field: str, reason: str) -> None:
    with pytest.raises(SourceError) as caught:
        alertmanager.parse(body)
    assert caught.value.source == "alertmanager"
    assert caught.value.field == field
    assert reason in caught.value.reason
    assert caught.value.as_dict() == {"source": "alertmanager", "field": field, "reason": caught.value.reason}


@pytest.mark.parametrize("body", [case[1] for case in BAD_BODIES], ids=[case[0] for case in BAD_BODIES])
def test_the_ingest_check_refuses_exactly_what_parse_refuses(body: bytes) -> None:
    # The ingest answers 400 from `alerts_in` (no Alert built); normalize dead-letters from `parse`.
    with pytest.raises(SourceError) as by_parse:
        alertmanager.parse(body)
    with pytest.raises(SourceError) as by_check:
        alerts_in("alertmanager", body)
    assert by_check.value.as_dict() == by_parse.value.as_dict()


@pytest.mark.parametrize("members", [0, 1, 3, 250])
def test_the_ingest_check_counts_what_parse_builds(members: int) -> None:
    payload = webhook()
    payload["alerts"] = [payload["alerts"][i % len(payload["alerts"])] for i in range(members)]
    body = body_of(payload)
    assert alerts_in("alertmanager", body) == len(alertmanager.parse(body)) == members


def test_body_over_the_limit_is_refused_before_parsing() -> None:
    body = b"{" + b" " * DEFAULT_MAX_BYTES  # malformed too: the size must be what is reported
    with pytest.raises(SourceError) as caught:
        alertmanager.parse(body)
    assert (caught.value.field, caught.value.reason) == (
        "body", f"body of {DEFAULT_MAX_BYTES + 1} bytes exceeds the limit of {DEFAULT_MAX_BYTES} bytes")


def test_limit_is_a_keyword() -> None:
    body = body_of(webhook())
    with pytest.raises(SourceError, match="exceeds the limit of 100 bytes"):
        alertmanager.parse(body, max_bytes=100)
    assert len(alertmanager.parse(body, max_bytes=len(body))) == 3


def test_a_many_member_group_near_the_limit_parses() -> None:
    payload = webhook()
    member = payload["alerts"][0]
    payload["alerts"] = []
    for i in range(20_000):
        alert = copy.deepcopy(member)
        alert["fingerprint"] = f"{i:016x}"
        alert["labels"]["instance"] = f"10.0.{i // 250}.{i % 250}:8080"
        payload["alerts"].append(alert)
    body = body_of(payload)
    assert 8_000_000 < len(body) <= DEFAULT_MAX_BYTES
    assert len(alertmanager.parse(body)) == 20_000
