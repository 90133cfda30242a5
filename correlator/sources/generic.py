"""Generic alert JSON: the format for everything that is neither Alertmanager nor Zabbix, and for replays.

A body is one alert object, a JSON array of them, or NDJSON (one object per line; blank lines are skipped).
The shape is told by content: a body starting with `[` is an array, a body that parses as one object is one
alert, and a body of several lines whose first line is a whole `{...}` is NDJSON. `parse` refuses bodies
above `max_bytes` (10 MiB; None lifts it); a replay of a big file streams it through `iter_ndjson` instead.

Fields of one alert (only `starts_at` is required; see also deploy/generic-alert-json.md):

| field         | type                                 | meaning                                                      |
|---------------|--------------------------------------|--------------------------------------------------------------|
| `starts_at`   | ISO 8601 string, or epoch seconds    | event time the alert began; a naive ISO time is UTC          |
| `fingerprint` | string                               | identity of the alert series, kept as given; else derived    |
| `status`      | `"firing"` (default) or `"resolved"` |                                                              |
| `ends_at`     | like `starts_at`, or null            | when it resolved                                             |
| `service`     | string, kept as given                | else from the labels (`service`, `job`, `app`, `host`, ...)  |
| `symptom`     | string, kept as given                | else from the `alertname` label, normalized                  |
| `severity`    | `critical` `warning` `info`, sev1..3 | common synonyms mapped; unknown -> `warning`, raw kept       |
| `source`      | string                               | default `"generic"`                                          |
| `labels`      | object                               | values coerced to strings (numbers, booleans; null dropped)  |
| `annotations` | object                               | likewise                                                     |
| `summary`     | string                               | else the `summary` or `description` annotation               |
| anything else | any JSON                             | kept in `Alert.extra`, never refused                         |

Epoch seconds are an int or a float (a numeric string is accepted too); a value above 1e11 is refused as
probably milliseconds. Without a fingerprint, one is derived from the sorted labels together with the resolved
service and symptom, so two label-less alerts of different services never share one.

One bad alert refuses the whole body, naming its place (`[3].starts_at`, `line 7.severity`, `line 7` for a
line that is not JSON): a sender or a replay then fixes and resends the body and nothing is half-accepted.

This module also holds the checks every adapter shares: body size and emptiness, JSON loading, severity
mapping, time conversion and turning a pydantic error into a `SourceError`.
"""

from __future__ import annotations

import gc
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any, Final

import orjson
from pydantic import ValidationError

from correlator.eventtime import MAX_EPOCH, epoch_problem
from correlator.keys import (
    DEFAULT_KEY_CONFIG,
    KeyConfig,
    fingerprint_of_labels,
    normalize_symptom,
    scope_of,
    service_of,
)
from correlator.models import Alert, Severity
from correlator.sources.errors import SourceError
from correlator.validation import first_error, json_type

__all__ = [
    "DEFAULT_MAX_BYTES",
    "SOURCE",
    "check_body",
    "derived_fingerprint",
    "epoch_of",
    "error_from_validation",
    "alert_of",
    "iter_ndjson",
    "json_type",
    "load_json",
    "looks_like_ndjson",
    "parse",
    "severity_of",
    "str_map",
    "summary_of",
    "symptom_of",
]

SOURCE: Final = "generic"
DEFAULT_MAX_BYTES: Final = 10 * 1024 * 1024
"""Largest body an adapter parses unless told otherwise (10 MiB)."""


_SEVERITY: Final[dict[str, Severity]] = {
    **dict.fromkeys(("critical", "crit", "page", "high", "error", "fatal", "emergency", "sev1"), "critical"),
    **dict.fromkeys(("warning", "warn", "major", "minor", "medium", "sev2"), "warning"),
    **dict.fromkeys(("info", "information", "informational", "low", "none", "sev3"), "info"),
}

_KNOWN: Final = frozenset(
    ("starts_at", "fingerprint", "status", "ends_at", "service", "symptom", "severity", "source", "labels",
     "annotations", "summary")
)
_STATUSES: Final = frozenset(("firing", "resolved"))
_AM_V2_KEYS: Final = frozenset(("startsAt", "endsAt", "generatorURL"))
"""Keys that tell an Alertmanager API v2 alert (`POST /api/v2/alerts`) from a generic one."""


# ---------------------------------------------------------------- shared by every adapter


def check_body(body: bytes, source: str, max_bytes: int | None) -> None:
    """Refuse an empty body or one above `max_bytes` (None: no limit) before any parsing."""
    if max_bytes is not None and len(body) > max_bytes:
        raise SourceError("body", f"body of {len(body)} bytes exceeds the limit of {max_bytes} bytes", source=source)
    if not body or body.isspace():
        raise SourceError("body", "empty body", source=source)


def load_json(data: bytes, source: str, field: str = "body") -> Any:
    """orjson.loads, with a malformed document reported as a SourceError carrying orjson's message."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise SourceError(field, f"malformed JSON: {exc}", source=source) from None


def severity_of(raw: str | None) -> tuple[Severity, str | None]:
    """Map a severity word (any case) to critical/warning/info; the raw text comes back only when unknown."""
    if not raw:
        return "warning", None
    hit = _SEVERITY.get(raw) or _SEVERITY.get(raw.strip().lower())
    return (hit, None) if hit else ("warning", raw)


def epoch_of(value: object, field: str, source: str) -> float | None:
    """Epoch seconds from epoch seconds or an ISO 8601 string (naive means UTC); Go's zero time is None."""
    if type(value) is float or type(value) is int:
        return _checked_epoch(float(value), field, source)
    if not isinstance(value, str):
        raise SourceError(field, f"wrong type: expected an ISO 8601 string or epoch seconds, got {json_type(value)}",
                          source=source)
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return _checked_epoch(seconds, field, source)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise SourceError(field, f"invalid time {value!r}: expected ISO 8601 or epoch seconds", source=source) from None
    if moment.year == 1:  # Go's time.Time{} ("0001-01-01T00:00:00Z") means "not set"
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def _checked_epoch(seconds: float, field: str, source: str) -> float:
    problem = epoch_problem(seconds)  # the one static range of epoch seconds, shared with tickets
    if problem is not None:
        raise SourceError(field, problem, source=source)
    return seconds


def str_map(value: object, field: str, source: str) -> dict[str, str]:
    """A JSON object as a str->str dict: numbers and booleans become text, nested values JSON, null is dropped."""
    if value is None:
        return {}
    if type(value) is not dict:
        raise SourceError(field, f"wrong type: expected an object, got {json_type(value)}", source=source)
    return _coerced(value)


def _coerced(value: dict[str, Any]) -> dict[str, str]:
    for item in value.values():
        if type(item) is not str:
            return {k: _as_str(v) for k, v in value.items() if v is not None}
    return value


def _as_str(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return orjson.dumps(value).decode()


def symptom_of(labels: dict[str, str], config: KeyConfig) -> str:
    """The normalized symptom named by the first present symptom label (`alertname` by default)."""
    for name in config.symptom_labels:
        value = labels.get(name)
        if value:
            return normalize_symptom(value)
    return normalize_symptom("")


def summary_of(annotations: dict[str, str]) -> str:
    """The one-line text of an alert: its `summary` annotation, else its `description`."""
    return annotations.get("summary") or annotations.get("description") or ""


def error_from_validation(exc: ValidationError, source: str, where: str = "") -> SourceError:
    """The first pydantic error as a SourceError, path and reason from the one formatter (`correlator.validation`)."""
    error = first_error(exc, where)
    return SourceError(error.field, error.reason, source=source)


# ---------------------------------------------------------------- the generic format


def parse(
    body: bytes, config: KeyConfig = DEFAULT_KEY_CONFIG, *, max_bytes: int | None = DEFAULT_MAX_BYTES,
    received_at: float | None = None,
) -> list[Alert]:
    """Alerts from a generic JSON body: one object, an array, or NDJSON; one bad alert refuses the body.

    `received_at` (epoch seconds) is when the body arrived: it tells a resolved Alertmanager-API-v2-style
    alert from a firing one (see `alert_of`)."""
    check_body(body, SOURCE, max_bytes)
    text = body.lstrip()
    if text[:1] == b"[":
        items = load_json(body, SOURCE)
        with _collector_paused():
            return [alert_of(item, f"[{i}]", config, received_at) for i, item in enumerate(items)]
    try:
        single = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if not looks_like_ndjson(text):
            raise SourceError("body", f"malformed JSON: {exc}", source=SOURCE) from None
        with _collector_paused():
            return list(iter_ndjson(body.split(b"\n"), config, received_at))
    return [alert_of(single, "", config, received_at)]


@contextmanager
def _collector_paused() -> Iterator[None]:
    # Alerts hold no reference cycles, yet the cyclic collector keeps rescanning the growing list of them:
    # pausing it halves the cost of a 10 MiB batch (measured 10.9 -> 5.0 us per alert). It resumes at once.
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def iter_ndjson(lines: Iterable[bytes], config: KeyConfig = DEFAULT_KEY_CONFIG, received_at: float | None = None
                ) -> Iterator[Alert]:
    """Alerts from NDJSON lines (a file object works), raising at the first bad line with its 1-based number."""
    for number, line in enumerate(lines, 1):
        if line and not line.isspace():
            yield alert_of(load_json(line, SOURCE, f"line {number}"), f"line {number}", config, received_at)


def looks_like_ndjson(text: bytes) -> bool:
    """Whether a body that is not one JSON document is NDJSON: several lines, the first a whole `{...}`."""
    # A broken pretty-printed object must be reported as one broken document, not as a bad "line 1":
    # NDJSON is several lines, the first of which is a whole `{...}` on its own.
    first, newline, rest = text.partition(b"\n")
    first = first.rstrip()
    return bool(newline and rest) and not rest.isspace() and first[:1] == b"{" and first[-1:] == b"}"


def alert_of(obj: object, where: str, config: KeyConfig = DEFAULT_KEY_CONFIG, received_at: float | None = None
             ) -> Alert:
    """One Alert from one parsed generic object; `where` prefixes error paths (`[3]`, `line 7`, or empty).

    An object in Alertmanager's API v2 spelling (`startsAt`, `endsAt` or `generatorURL`, and no `starts_at`)
    goes through the Alertmanager adapter's mapping, its status decided against `received_at`.
    """
    if type(obj) is not dict:
        raise SourceError(where or "body", f"wrong type: expected an object, got {json_type(obj)}", source=SOURCE)
    if "starts_at" not in obj and not _AM_V2_KEYS.isdisjoint(obj):
        return _posted(obj, where, config, received_at)
    get = obj.get
    labels = _map(get("labels"), where, "labels")
    annotations = _map(get("annotations"), where, "annotations")
    service = _text(get("service"), where, "service") or service_of(labels, config)
    symptom = _text(get("symptom"), where, "symptom") or symptom_of(labels, config)
    severity, severity_raw = severity_of(_text(get("severity"), where, "severity"))
    fingerprint = _text(get("fingerprint"), where, "fingerprint") or derived_fingerprint(labels, service, symptom)
    fields = {
        "fingerprint": fingerprint,
        "source": _text(get("source"), where, "source") or SOURCE,
        "service": service,
        "symptom": symptom,
        "scope": scope_of(labels, config),
        "severity": severity,
        "status": _status(get("status"), where),
        "starts_at": _start(get("starts_at"), where),
        "ends_at": _time(get("ends_at"), where, "ends_at"),
        "labels": labels,
        "annotations": annotations,
        "summary": _text(get("summary"), where, "summary") or summary_of(annotations),
        "extra": _extra(obj, severity_raw),
    }
    # Validating these already-checked fields costs less than model_construct (measured: 1.7 vs 3.0 us) and
    # still guards the model's own constraints.
    try:
        return Alert.model_validate(fields)
    except ValidationError as exc:
        raise error_from_validation(exc, SOURCE, where) from None


def _posted(obj: dict[str, Any], where: str, config: KeyConfig, received_at: float | None) -> Alert:
    # imported here: the Alertmanager adapter imports this module's shared checks, a top-level import would cycle
    from correlator.sources.alertmanager import posted_alert

    return posted_alert(obj, where, config, received_at, SOURCE)


def _start(value: object, where: str) -> float:
    if value is None:
        raise SourceError(_at(where, "starts_at"), "missing required field", source=SOURCE)
    seconds = _time(value, where, "starts_at")
    if seconds is None:
        raise SourceError(_at(where, "starts_at"), "zero time: an alert needs the time it began", source=SOURCE)
    return seconds


def _time(value: object, where: str, name: str) -> float | None:
    if (type(value) is float or type(value) is int) and 0 <= value < MAX_EPOCH:
        return float(value)
    return None if value is None else epoch_of(value, _at(where, name), SOURCE)


def _map(value: object, where: str, name: str) -> dict[str, str]:
    if type(value) is dict:
        return _coerced(value)
    return str_map(value, _at(where, name), SOURCE)


def _at(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def _text(value: object, where: str, name: str) -> str | None:
    if value is None or type(value) is str:
        return value
    raise SourceError(_at(where, name), f"wrong type: expected a string, got {json_type(value)}", source=SOURCE)


def _status(value: object, where: str) -> str:
    if value is None:
        return "firing"
    if type(value) is not str:
        raise SourceError(_at(where, "status"), f"wrong type: expected a string, got {json_type(value)}", source=SOURCE)
    if value in _STATUSES:
        return value
    raise SourceError(_at(where, "status"), f"invalid value {value!r}: expected 'firing' or 'resolved'", source=SOURCE)


def _extra(obj: dict[str, Any], severity_raw: str | None) -> dict[str, Any]:
    extra = {} if _KNOWN.issuperset(obj) else {k: v for k, v in obj.items() if k not in _KNOWN}
    if severity_raw is not None:
        extra["severity_raw"] = severity_raw
    return extra


def derived_fingerprint(labels: dict[str, str], service: str, symptom: str) -> str:
    """The fingerprint of an alert that names none: its sorted labels with its service and symptom."""
    return fingerprint_of_labels({**labels, "__service__": service, "__symptom__": symptom})
