"""Zabbix webhook adapter: the JSON the media type posts, macros left unresolved, time zones, bad input."""

from __future__ import annotations

import shutil
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest

from correlator.sources import DEFAULT_MAX_BYTES, SourceError, detect_source, parse, zabbix

SCRIPT = Path(__file__).parents[1] / "deploy/zabbix/correlator_webhook.js"
PROBLEM_AT = 1772359205  # 2026-03-01T10:00:05Z
RECOVERY_AT = 1772359920  # 2026-03-01T10:12:00Z


def problem() -> dict[str, Any]:
    """What the media type posts for a problem on Zabbix 7.x: the recovery macros stay unresolved."""
    return {
        "event_id": "8812345",
        "event_value": "1",
        "trigger_name": "High CPU utilization on db-01 (over 90% for 5m)",
        "event_name": "High CPU utilization on db-01 (over 90% for 5m)",
        "severity": "High",
        "nseverity": "4",
        "host": "db-01.prod.example",
        "host_name": "db-01",
        "tags": [{"tag": "class", "value": "os"}, {"tag": "component", "value": "cpu"},
                 {"tag": "service", "value": "payments-db"}],
        "event_timestamp": str(PROBLEM_AT),
        "event_date": "2026.03.01",
        "event_time": "10:00:05",
        "recovery_event_id": "{EVENT.RECOVERY.ID}",
        "recovery_timestamp": "{EVENT.RECOVERY.TIMESTAMP}",
        "recovery_date": "{EVENT.RECOVERY.DATE}",
        "recovery_time": "{EVENT.RECOVERY.TIME}",
        "trigger_id": "23117",
        "opdata": "Current utilization: 97.3 %",
        "update_status": "0",
    }


def recovery() -> dict[str, Any]:
    """The recovery of that problem from an older Zabbix without the timestamp macros: {EVENT.*} still name
    the problem event, {EVENT.RECOVERY.*} the recovery."""
    body = problem()
    body.update(
        event_value="0",
        event_timestamp="{EVENT.TIMESTAMP}",
        recovery_event_id="8812399",
        recovery_timestamp="{EVENT.RECOVERY.TIMESTAMP}",
        recovery_date="2026.03.01",
        recovery_time="10:12:00",
    )
    return body


def body_of(payload: object) -> bytes:
    return orjson.dumps(payload)


def test_problem_fires_an_alert() -> None:
    (alert,) = zabbix.parse(body_of(problem()))
    assert alert.fingerprint == "zabbix:8812345"
    assert alert.source == "zabbix"
    assert alert.status == "firing"
    assert alert.starts_at == PROBLEM_AT
    assert alert.ends_at is None
    assert alert.severity == "critical"
    assert alert.key == "payments-db/High CPU utilization (over #% for 5m)"
    assert alert.labels == {"class": "os", "component": "cpu", "service": "payments-db",
                            "host": "db-01.prod.example", "host_name": "db-01"}
    assert alert.annotations == {"opdata": "Current utilization: 97.3 %"}
    assert alert.summary == "High CPU utilization on db-01 (over 90% for 5m)"
    assert alert.extra == {"event_id": "8812345", "trigger_id": "23117", "update_status": "0",
                           "zabbix_severity": "High"}


def test_recovery_resolves_the_same_member() -> None:
    (fired,) = zabbix.parse(body_of(problem()))
    (resolved,) = zabbix.parse(body_of(recovery()))
    assert resolved.status == "resolved"
    assert (resolved.fingerprint, resolved.starts_at, resolved.key) == (fired.fingerprint, fired.starts_at, fired.key)
    assert resolved.ends_at == RECOVERY_AT
    assert resolved.event_time == RECOVERY_AT
    assert resolved.extra["recovery_event_id"] == "8812399"


def test_host_is_the_service_without_a_service_tag() -> None:
    body = problem()
    body["tags"] = [{"tag": "component", "value": "cpu"}]
    (alert,) = zabbix.parse(body_of(body))
    assert alert.service == "db-01.prod.example"


def test_symptom_drops_either_host_name() -> None:
    first, second = problem(), problem()
    second.update(host="db-02.prod.example", host_name="db-02",
                  trigger_name="High CPU utilization on db-02.prod.example (over 95% for 5m)")
    keys = {alert.symptom for alert in zabbix.parse(body_of([first, second]))}
    assert keys == {"High CPU utilization (over #% for 5m)"}


def test_trigger_name_falls_back_to_event_name() -> None:
    body = problem()
    del body["trigger_name"]
    body["event_name"] = "Disk /var is 93% full on db-01"
    (alert,) = zabbix.parse(body_of(body))
    assert alert.symptom == "Disk /var is #% full"


def test_date_and_time_are_read_in_the_configured_zone() -> None:
    body = problem()
    body.update(event_timestamp="{EVENT.TIMESTAMP}", event_date="2026.07.01", event_time="13:00:05")
    (utc,) = zabbix.parse(body_of(body))
    (riga,) = zabbix.parse(body_of(body), timezone="Europe/Riga")
    (riga_obj,) = parse("zabbix", body_of(body), zabbix_timezone=ZoneInfo("Europe/Riga"))
    assert utc.starts_at == datetime(2026, 7, 1, 13, 0, 5, tzinfo=timezone.utc).timestamp()
    assert riga.starts_at == utc.starts_at - 3 * 3600  # EEST, UTC+3
    assert riga_obj.starts_at == riga.starts_at


def test_timestamp_wins_over_date_and_time() -> None:
    body = problem()
    body["event_time"] = "23:59:59"
    (alert,) = zabbix.parse(body_of(body), timezone="Asia/Tokyo")
    assert alert.starts_at == PROBLEM_AT


SEVERITIES = [
    ("Not classified", "0", "info"),
    ("Information", "1", "info"),
    ("Warning", "2", "warning"),
    ("Average", "3", "warning"),
    ("High", "4", "critical"),
    ("Disaster", "5", "critical"),
]


@pytest.mark.parametrize(("name", "number", "expected"), SEVERITIES)
def test_severity_by_name(name: str, number: str, expected: str) -> None:
    body = problem()
    body.update(severity=name, nseverity="{EVENT.NSEVERITY}")
    assert zabbix.parse(body_of(body))[0].severity == expected


@pytest.mark.parametrize(("name", "number", "expected"), SEVERITIES)
def test_severity_by_number_wins_over_a_renamed_severity(name: str, number: str, expected: str) -> None:
    body = problem()
    body.update(severity="Renamed by admin", nseverity=int(number))
    (alert,) = zabbix.parse(body_of(body))
    assert alert.severity == expected
    assert "severity_raw" not in alert.extra


def test_unknown_severity_name_is_kept_raw() -> None:
    body = problem()
    body.update(severity="Urgent", nseverity=None)
    (alert,) = zabbix.parse(body_of(body))
    assert (alert.severity, alert.extra["severity_raw"]) == ("warning", "Urgent")


def test_tags_as_json_text_and_repeated_tag_names() -> None:
    body = problem()
    body["tags"] = '[{"tag":"service","value":"orders"},{"tag":"service","value":"billing"},{"tag":"scope"}]'
    (alert,) = zabbix.parse(body_of(body))
    assert alert.service == "orders"
    assert alert.labels["scope"] == ""


@pytest.mark.parametrize("tags", ["{EVENT.TAGSJSON}", "", None, "[]"])
def test_no_tags(tags: object) -> None:
    body = problem()
    body["tags"] = tags
    (alert,) = zabbix.parse(body_of(body))
    assert set(alert.labels) == {"host", "host_name"}


def test_numbers_instead_of_text_and_unknown_fields() -> None:
    body = problem()
    body.update(event_id=8812345, event_value=1, event_timestamp=PROBLEM_AT, zabbix_url="https://zbx.example/")
    (alert,) = zabbix.parse(body_of(body))
    assert (alert.fingerprint, alert.starts_at) == ("zabbix:8812345", PROBLEM_AT)
    assert alert.extra["zabbix_url"] == "https://zbx.example/"


def test_an_array_of_events_and_detection() -> None:
    body = body_of([problem(), recovery()])
    assert detect_source(body) == "zabbix"
    assert detect_source(body_of(problem())) == "zabbix"
    assert [a.status for a in parse("zabbix", body)] == ["firing", "resolved"]


def test_unresolved_star_unknown_is_absent() -> None:
    body = problem()
    body["host_name"] = "*UNKNOWN*"
    (alert,) = zabbix.parse(body_of(body))
    assert "host_name" not in alert.labels


def _with(**changes: object) -> bytes:
    body = problem()
    for name, value in changes.items():
        if value is _DROP:
            del body[name]
        else:
            body[name] = value
    return body_of(body)


_DROP = object()

BAD_BODIES: list[tuple[str, bytes, str, str]] = [
    ("empty", b"", "body", "empty body"),
    ("whitespace", b"\r\n", "body", "empty body"),
    ("malformed", b'{"event_id": "1",}', "body", "malformed JSON: trailing comma"),
    ("a string", b'"event"', "body", "wrong type: expected an object, got string"),
    ("no event_id", _with(event_id=_DROP), "event_id", "missing required field"),
    ("unresolved event_id", _with(event_id="{EVENT.ID}"), "event_id", "unresolved macro"),
    ("event_id list", _with(event_id=["1"]), "event_id", "wrong type"),
    ("no event_value", _with(event_value=_DROP), "event_value", "missing required field"),
    ("event_value 2", _with(event_value="2"), "event_value", "invalid value '2'"),
    ("event_value true", _with(event_value=True), "event_value", "wrong type"),
    ("no trigger name", _with(trigger_name=_DROP, event_name=""), "trigger_name", "missing required field"),
    ("no time", _with(event_timestamp="{EVENT.TIMESTAMP}", event_date=_DROP, event_time=_DROP),
     "event_timestamp", "missing required field"),
    ("date without time", _with(event_timestamp=_DROP, event_time=_DROP), "event_time", "go together"),
    ("bad date", _with(event_timestamp=_DROP, event_date="01/03/2026"), "event_date", "expected YYYY.MM.DD"),
    ("bad timestamp", _with(event_timestamp="soon"), "event_timestamp", "invalid time"),
    ("ms timestamp", _with(event_timestamp=str(PROBLEM_AT * 1000)), "event_timestamp", "milliseconds"),
    ("bad recovery time", _with(event_value="0", recovery_date="2026.03.01", recovery_time="25:00:00"),
     "recovery_date", "expected YYYY.MM.DD and HH:MM:SS"),
    ("nseverity 9", _with(nseverity="9"), "nseverity", "expected 0 to 5"),
    ("host object", _with(host={"name": "db"}), "host", "wrong type"),
    ("tags malformed", _with(tags='[{"tag": "a"'), "tags", "malformed JSON"),
    ("tags object", _with(tags={"service": "x"}), "tags", "wrong type"),
    ("tag without name", _with(tags=[{"tag": "a"}, {"value": "b"}]), "tags[1].tag", "missing required field"),
    ("second event bad", body_of([problem(), {**problem(), "event_value": "x"}]), "[1].event_value",
     "invalid value"),
    ("array of numbers", b"[1]", "[0]", "wrong type: expected an object, got number"),
]


@pytest.mark.parametrize(("body", "field", "reason"), [case[1:] for case in BAD_BODIES],
                         ids=[case[0] for case in BAD_BODIES])
def test_bad_input_names_field_and_reason(body: bytes, field: str, reason: str) -> None:
    with pytest.raises(SourceError) as caught:
        zabbix.parse(body)
    assert caught.value.source == "zabbix"
    assert caught.value.field == field
    assert reason in caught.value.reason


def test_body_over_the_limit_is_refused_before_parsing() -> None:
    body = b"[" + b" " * DEFAULT_MAX_BYTES
    with pytest.raises(SourceError) as caught:
        zabbix.parse(body)
    assert caught.value.field == "body"
    assert f"exceeds the limit of {DEFAULT_MAX_BYTES} bytes" in caught.value.reason


def test_unknown_time_zone_is_a_configuration_error() -> None:
    with pytest.raises(Exception, match="No time zone found"):
        zabbix.parse(body_of(problem()), timezone="Mars/Olympus")


# The media-type script, run under node with Zabbix's HttpRequest and Zabbix objects stubbed.
_HARNESS = """
const fs = require('fs');
const sent = {headers: [], url: null, body: null, proxy: null};
global.HttpRequest = function () {
  this.addHeader = (h) => sent.headers.push(h);
  this.setProxy = (p) => { sent.proxy = p; };
  this.post = (url, body) => { sent.url = url; sent.body = body; return '{"accepted": 1}'; };
  this.getStatus = () => Number(process.env.STATUS);
};
global.Zabbix = {log: () => {}};
const script = new Function('value', fs.readFileSync(process.argv[1], 'utf8'));
try {
  const result = script(fs.readFileSync(0, 'utf8'));
  process.stdout.write(JSON.stringify({result, sent}));
} catch (error) {
  process.stdout.write(JSON.stringify({error: String(error), sent}));
}
"""


def _run_script(params: dict[str, str], status: int = 202) -> dict[str, Any]:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the media-type script cannot run here")
    done = subprocess.run([node, "-e", _HARNESS, str(SCRIPT)], input=orjson.dumps(params), capture_output=True,
                          env={"STATUS": str(status)}, timeout=30, check=True)
    result: dict[str, Any] = orjson.loads(done.stdout)
    return result


def _params() -> dict[str, str]:
    """Media-type parameters as Zabbix hands them to the script: every value a string, tags as JSON text."""
    params = {name: str(value) for name, value in problem().items() if name != "tags"}
    params["tags"] = orjson.dumps(problem()["tags"]).decode()
    params.update(url="http://correlator:6066/ingest/zabbix", token="s3cret", http_proxy="")
    return params


def test_media_type_script_posts_what_the_adapter_reads() -> None:
    run = _run_script(_params())
    assert run["result"] == "OK"
    assert run["sent"]["url"] == "http://correlator:6066/ingest/zabbix"
    assert "Authorization: Bearer s3cret" in run["sent"]["headers"]
    assert "Content-Type: application/json" in run["sent"]["headers"]
    posted = orjson.loads(run["sent"]["body"])
    assert not {"url", "token", "http_proxy"} & set(posted)
    assert posted["tags"] == problem()["tags"]
    assert zabbix.parse(run["sent"]["body"].encode()) == zabbix.parse(body_of(problem()))


def test_media_type_script_fails_on_non_2xx() -> None:
    run = _run_script(_params(), status=400)
    assert "HTTP 400" in run["error"]


def test_media_type_script_sends_no_tags_for_an_unresolved_macro() -> None:
    params = _params()
    params.update(tags="{EVENT.TAGSJSON}", token="")
    run = _run_script(params)
    assert orjson.loads(run["sent"]["body"])["tags"] == []
    assert not any(h.startswith("Authorization") for h in run["sent"]["headers"])
