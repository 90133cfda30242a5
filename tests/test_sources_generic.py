"""Generic alert JSON adapter: object, array and NDJSON bodies, defaults, bad input, the real MicroSS file."""

from __future__ import annotations

import io
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest

from correlator.keys import KeyConfig
from correlator.sources import DEFAULT_MAX_BYTES, SOURCES, SourceError, detect_source, generic, parse

MICROSS = Path(__file__).parents[2] / "shared/datasets/rca-micross/alerts.ndjson"
T0 = 1772359205.0  # 2026-03-01T10:00:05Z


def alert(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"starts_at": T0, "service": "model-api", "symptom": "5xx", "fingerprint": "a1"}
    base.update(fields)
    return {k: v for k, v in base.items() if v is not _DROP}


_DROP = object()


def ndjson(*records: dict[str, Any]) -> bytes:
    return b"".join(orjson.dumps(r) + b"\n" for r in records)


def test_single_object() -> None:
    (one,) = generic.parse(orjson.dumps(alert(severity="critical", summary="5xx above 5%")))
    assert (one.fingerprint, one.key, one.severity, one.starts_at) == ("a1", "model-api/5xx", "critical", T0)
    assert (one.status, one.source, one.ends_at, one.summary) == ("firing", "generic", None, "5xx above 5%")


def test_array() -> None:
    body = orjson.dumps([alert(fingerprint="a"), alert(fingerprint="b")])
    assert [a.fingerprint for a in generic.parse(body)] == ["a", "b"]
    assert generic.parse(b" [ ] ") == []


def test_ndjson_with_blank_lines_and_crlf() -> None:
    body = b"\n" + orjson.dumps(alert(fingerprint="a")) + b"\r\n\r\n" + orjson.dumps(alert(fingerprint="b")) + b"\n\n"
    assert [a.fingerprint for a in generic.parse(body)] == ["a", "b"]


def test_one_line_ndjson_is_one_object() -> None:
    assert len(generic.parse(ndjson(alert()))) == 1


def test_derived_from_labels() -> None:
    record = {"starts_at": "2026-03-01T10:00:05Z", "labels": {"alertname": "Disk 91% full", "job": "vec-store"},
              "annotations": {"description": "disk nearly full"}}
    (one,) = generic.parse(orjson.dumps(record))
    assert one.key == "vec-store/Disk #% full"
    assert one.summary == "disk nearly full"
    assert one.severity == "warning"
    assert len(one.fingerprint) == 16


def test_derived_fingerprint_ignores_label_order_but_not_service() -> None:
    a = {"starts_at": T0, "labels": {"x": "1", "y": "2"}, "service": "a"}
    b = {"starts_at": T0 + 5, "labels": {"y": "2", "x": "1"}, "service": "a"}
    c = {"starts_at": T0, "labels": {"x": "1", "y": "2"}, "service": "b"}
    fa, fb, fc = (alert.fingerprint for alert in generic.parse(ndjson(a, b, c)))
    assert fa == fb != fc


def test_nothing_to_key_on() -> None:
    (one,) = generic.parse(b'{"starts_at": 0}')
    assert one.key == "unknown/unnamed"


def test_key_config() -> None:
    record = {"starts_at": T0, "labels": {"team": "ml", "check": "latency"}}
    config = KeyConfig(service_labels=("team",), symptom_labels=("check",))
    assert generic.parse(orjson.dumps(record), config)[0].key == "ml/latency"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (T0, T0),
        (int(T0), T0),
        (str(T0), T0),
        ("2026-03-01T10:00:05Z", T0),
        ("2026-03-01T10:00:05", T0),
        ("2026-03-01 12:00:05+02:00", T0),
        ("2026-03-01T10:00:05.250000000Z", T0 + 0.25),
        (0, 0.0),
    ],
)
def test_starts_at_forms(value: object, expected: float) -> None:
    assert generic.parse(orjson.dumps(alert(starts_at=value)))[0].starts_at == expected


def test_resolved_with_ends_at_and_zero_ends_at() -> None:
    body = ndjson(alert(status="resolved", ends_at="2026-03-01T10:12:00Z"), alert(ends_at="0001-01-01T00:00:00Z"))
    resolved, firing = generic.parse(body)
    assert resolved.status == "resolved"
    assert resolved.ends_at == datetime(2026, 3, 1, 10, 12, tzinfo=timezone.utc).timestamp()
    assert resolved.event_time == resolved.ends_at
    assert firing.ends_at is None


def test_labels_and_annotations_become_text() -> None:
    record = alert(labels={"code": 503, "canary": True, "ratio": 0.5, "gone": None, "dims": {"az": "b"}},
                   annotations={"runbook": "https://rb/5xx", "count": 3})
    (one,) = generic.parse(orjson.dumps(record))
    assert one.labels == {"code": "503", "canary": "true", "ratio": "0.5", "dims": '{"az":"b"}'}
    assert one.annotations == {"runbook": "https://rb/5xx", "count": "3"}


def test_unknown_fields_go_to_extra() -> None:
    record = alert(runbook="https://rb/5xx", tenant={"id": 7}, severity="P1")
    (one,) = generic.parse(orjson.dumps(record))
    assert one.extra == {"runbook": "https://rb/5xx", "tenant": {"id": 7}, "severity_raw": "P1"}
    assert one.severity == "warning"


def test_nulls_are_absent() -> None:
    record = alert(status=None, ends_at=None, labels=None, severity=None, summary=None, source=None)
    (one,) = generic.parse(orjson.dumps(record))
    assert (one.status, one.ends_at, one.labels, one.severity, one.source) == ("firing", None, {}, "warning", "generic")


SEVERITY_WORDS = {
    "critical": ["critical", "CRITICAL", "crit", "page", "high", "error", "fatal", "emergency", "sev1", " Sev1 "],
    "warning": ["warning", "Warning", "warn", "major", "minor", "medium", "sev2"],
    "info": ["info", "information", "informational", "low", "none", "sev3", "INFO"],
}


@pytest.mark.parametrize(("word", "expected"), [(w, s) for s, words in SEVERITY_WORDS.items() for w in words])
def test_severity_synonyms(word: str, expected: str) -> None:
    (one,) = generic.parse(orjson.dumps(alert(severity=word)))
    assert one.severity == expected
    assert "severity_raw" not in one.extra


@pytest.mark.parametrize("word", ["P1", "sev4", "urgent", "disaster-ish"])
def test_unknown_severity_is_warning_with_the_raw_word(word: str) -> None:
    (one,) = generic.parse(orjson.dumps(alert(severity=word)))
    assert (one.severity, one.extra["severity_raw"]) == ("warning", word)


def test_iter_ndjson_streams_a_file() -> None:
    stream = io.BytesIO(ndjson(alert(fingerprint="a"), alert(fingerprint="b")))
    assert [a.fingerprint for a in generic.iter_ndjson(stream)] == ["a", "b"]


def test_iter_ndjson_names_the_bad_line() -> None:
    stream = io.BytesIO(ndjson(alert(), alert()) + b"{oops\n")
    with pytest.raises(SourceError) as caught:
        list(generic.iter_ndjson(stream))
    assert caught.value.field == "line 3"


PRETTY_BROKEN = b'{\n  "starts_at": 1,\n  "service": "a",\n}\n'

BAD_BODIES: list[tuple[str, bytes, str, str]] = [
    ("empty", b"", "body", "empty body"),
    ("whitespace", b"\n\n  \n", "body", "empty body"),
    ("malformed object", b'{"starts_at": 1', "body", "malformed JSON: unexpected end of data"),
    ("malformed array", b'[{"starts_at": 1},', "body", "malformed JSON"),
    ("broken pretty object", PRETTY_BROKEN, "body", "malformed JSON: trailing comma"),
    ("ndjson bad line", ndjson(alert(), alert()) + b'{"starts_at": 1\n', "line 3", "malformed JSON"),
    ("ndjson garbage line", ndjson(alert()) + b"garbage\n" + ndjson(alert()), "line 2", "malformed JSON"),
    ("ndjson array line", ndjson(alert()) + b"[1]\n", "line 2", "wrong type: expected an object, got array"),
    ("ndjson missing starts_at", ndjson(alert(), alert(starts_at=_DROP)), "line 2.starts_at",
     "missing required field"),
    ("top-level number", b"42", "body", "wrong type: expected an object, got number"),
    ("array of strings", b'["a"]', "[0]", "wrong type: expected an object, got string"),
    ("missing starts_at", orjson.dumps(alert(starts_at=_DROP)), "starts_at", "missing required field"),
    ("null starts_at", orjson.dumps(alert(starts_at=None)), "starts_at", "missing required field"),
    ("bool starts_at", orjson.dumps([alert(), alert(starts_at=True)]), "[1].starts_at",
     "wrong type: expected an ISO 8601 string or epoch seconds, got boolean"),
    ("list starts_at", orjson.dumps(alert(starts_at=[1])), "starts_at", "wrong type"),
    ("text starts_at", orjson.dumps(alert(starts_at="yesterday")), "starts_at", "invalid time 'yesterday'"),
    ("ms starts_at", orjson.dumps(alert(starts_at=T0 * 1000)), "starts_at", "looks like milliseconds"),
    ("negative starts_at", orjson.dumps(alert(starts_at=-5)), "starts_at", "not negative"),
    ("nan text starts_at", orjson.dumps(alert(starts_at="nan")), "starts_at", "must be finite"),
    ("zero starts_at", orjson.dumps(alert(starts_at="0001-01-01T00:00:00Z")), "starts_at", "zero time"),
    ("bad ends_at", orjson.dumps(alert(ends_at="later")), "ends_at", "invalid time"),
    ("status open", orjson.dumps(alert(status="open")), "status", "invalid value 'open'"),
    ("status number", orjson.dumps(alert(status=1)), "status", "wrong type: expected a string, got number"),
    ("status list", orjson.dumps(alert(status=["firing"])), "status", "wrong type"),
    ("severity number", orjson.dumps(alert(severity=1)), "severity", "wrong type: expected a string"),
    ("service object", orjson.dumps(alert(service={})), "service", "wrong type"),
    ("symptom number", orjson.dumps(alert(symptom=5)), "symptom", "wrong type"),
    ("fingerprint number", orjson.dumps(alert(fingerprint=12)), "fingerprint", "wrong type"),
    ("source bool", orjson.dumps(alert(source=False)), "source", "wrong type"),
    ("summary list", orjson.dumps(alert(summary=[])), "summary", "wrong type"),
    ("labels list", orjson.dumps(alert(labels=["a"])), "labels", "wrong type: expected an object, got array"),
    ("annotations text", orjson.dumps(alert(annotations="x")), "annotations", "wrong type"),
]


@pytest.mark.parametrize(("body", "field", "reason"), [case[1:] for case in BAD_BODIES],
                         ids=[case[0] for case in BAD_BODIES])
def test_bad_input_names_field_and_reason(body: bytes, field: str, reason: str) -> None:
    with pytest.raises(SourceError) as caught:
        generic.parse(body)
    assert caught.value.source == "generic"
    assert caught.value.field == field
    assert reason in caught.value.reason


def test_unknown_source_is_refused() -> None:
    with pytest.raises(SourceError) as caught:
        parse("nagios", b"{}")
    assert (caught.value.field, caught.value.source) == ("source", "nagios")
    assert "unknown source 'nagios'" in caught.value.reason
    assert SOURCES == ("alertmanager", "zabbix", "generic")


@pytest.mark.parametrize(
    "body",
    [orjson.dumps(alert()), orjson.dumps([alert()]), ndjson(alert(), alert()), b"{broken", b"",
     orjson.dumps({"version": "4", "alerts": []}), b" " * (DEFAULT_MAX_BYTES + 1)],
)
def test_detect_generic(body: bytes) -> None:
    assert detect_source(body) == "generic"


def _ten_megabytes() -> bytes:
    lines = [orjson.dumps(alert(fingerprint=f"fp-{i:08d}", labels={"host": f"gpu-{i % 64}", "code": "503"}))
             for i in range(100_000)]
    body = b"\n".join(lines)
    return body[: body.rindex(b"\n", 0, 10_000_000)]


def test_ten_megabyte_ndjson_body() -> None:
    body = _ten_megabytes()
    assert 9_900_000 < len(body) <= 10_000_000
    alerts = parse("generic", body)
    assert len(alerts) == body.count(b"\n") + 1
    assert alerts[-1].fingerprint == f"fp-{len(alerts) - 1:08d}"


def test_body_over_the_limit_is_refused_before_parsing() -> None:
    body = b"{" + b"x" * DEFAULT_MAX_BYTES
    with pytest.raises(SourceError) as caught:
        generic.parse(body)
    assert (caught.value.field, caught.value.reason) == (
        "body", f"body of {DEFAULT_MAX_BYTES + 1} bytes exceeds the limit of {DEFAULT_MAX_BYTES} bytes")


def test_limit_is_a_keyword_and_none_lifts_it() -> None:
    body = ndjson(alert(), alert())
    with pytest.raises(SourceError, match="exceeds the limit of 10 bytes"):
        generic.parse(body, max_bytes=10)
    assert len(generic.parse(body * 3, max_bytes=None)) == 6


def test_reads_the_micross_alerts_as_they_are() -> None:
    raw = [json.loads(line) for line in MICROSS.read_text().splitlines() if line.strip()]
    alerts = parse("generic", MICROSS.read_bytes())
    assert len(alerts) == len(raw) == 8302
    assert [a.key for a in alerts] == [f"{r['service']}/{r['symptom']}" for r in raw]
    assert [a.fingerprint for a in alerts] == [r["fingerprint"] for r in raw]
    assert len({a.fingerprint for a in alerts}) == 8302
    assert [a.starts_at for a in alerts] == [r["starts_at"] for r in raw]
    assert [a.labels for a in alerts] == [r["labels"] for r in raw]
    assert {a.source for a in alerts} == {"metrics", "traces"}
    assert {a.status for a in alerts} == {"firing"}
    assert all(a.extra == {} for a in alerts)
    assert detect_source(MICROSS.read_bytes()) == "generic"
