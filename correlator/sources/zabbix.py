"""Zabbix trigger events, as posted by the webhook media type in deploy/zabbix/, into alerts.

Zabbix has no fixed webhook body: the media-type script (deploy/zabbix/correlator_webhook.js) posts its
parameters as one JSON object, each parameter under its own name, with `tags` parsed from {EVENT.TAGSJSON}.
Values are strings as Zabbix resolves them (numbers are accepted too):

| field                | macro                      | meaning                                                    |
|----------------------|----------------------------|------------------------------------------------------------|
| `event_id`           | {EVENT.ID}                 | required; the problem event, also in its recovery message  |
| `event_value`        | {EVENT.VALUE}              | required; 1 problem, 0 recovery                            |
| `trigger_name`       | {TRIGGER.NAME}             | the symptom; this or `event_name` is required              |
| `event_name`         | {EVENT.NAME}               | the summary (event names often carry values)               |
| `severity`           | {EVENT.SEVERITY}           | Not classified, Information, Warning, Average, High, Disaster |
| `nseverity`          | {EVENT.NSEVERITY}          | 0-5; wins over the name, which an admin can rename         |
| `host`               | {HOST.HOST}                | technical host name, label `host`                          |
| `host_name`          | {HOST.NAME}                | visible host name, label `host_name`                       |
| `tags`               | {EVENT.TAGSJSON}           | `[{"tag": ..., "value": ...}]`, or that JSON as a string   |
| `event_timestamp`    | {EVENT.TIMESTAMP}          | epoch seconds of the problem (newer Zabbix releases)       |
| `event_date`         | {EVENT.DATE}               | `YYYY.MM.DD`, used with `event_time` without a timestamp   |
| `event_time`         | {EVENT.TIME}               | `HH:MM:SS`, in the Zabbix user's time zone                 |
| `recovery_event_id`  | {EVENT.RECOVERY.ID}        | the recovery event                                         |
| `recovery_timestamp` | {EVENT.RECOVERY.TIMESTAMP} | epoch seconds of the recovery                              |
| `recovery_date`      | {EVENT.RECOVERY.DATE}      | `YYYY.MM.DD`                                               |
| `recovery_time`      | {EVENT.RECOVERY.TIME}      | `HH:MM:SS`                                                 |
| `trigger_id`         | {TRIGGER.ID}               | kept in extra                                              |
| `opdata`             | {EVENT.OPDATA}             | operational data, annotation `opdata`                      |
| `update_status`      | {EVENT.UPDATE.STATUS}      | 1 on a problem update (acknowledge, comment), kept in extra |

Zabbix leaves a macro it cannot resolve as its own text (`{EVENT.RECOVERY.DATE}` in a problem message,
`{EVENT.TIMESTAMP}` on a release without it) or writes `*UNKNOWN*`: such a value, or an empty one, is absent.
Date and time text is read in the `timezone` given to `parse` (default UTC); the epoch fields need none and
win when present. Fingerprint is "zabbix:" + event_id, so the recovery resolves the problem's member.
A body may also be a JSON array of such objects; one bad event refuses the whole body, named by its path.
Unknown fields are kept in `Alert.extra`.
"""

from __future__ import annotations

import re
from datetime import datetime, tzinfo
from datetime import timezone as dt_timezone
from functools import lru_cache
from typing import Annotated, Any, Final
from zoneinfo import ZoneInfo

import orjson
from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError

from correlator.keys import DEFAULT_KEY_CONFIG, KeyConfig, normalize_symptom, scope_of, service_of
from correlator.models import Alert, Severity
from correlator.sources.errors import SourceError
from correlator.sources.generic import (
    DEFAULT_MAX_BYTES,
    check_body,
    epoch_of,
    error_from_validation,
    json_type,
    load_json,
    severity_of,
)

__all__ = ["SOURCE", "ZabbixEvent", "ZabbixTag", "is_zabbix_event", "parse"]

SOURCE: Final = "zabbix"

_UNRESOLVED: Final = re.compile(r"\{\$?[A-Z][A-Z0-9_.]*\}")
_UNKNOWN: Final = "*UNKNOWN*"  # what Zabbix writes for a macro whose value it cannot find

_BY_NAME: Final[dict[str, Severity]] = {
    "not classified": "info",
    "information": "info",
    "warning": "warning",
    "average": "warning",
    "high": "critical",
    "disaster": "critical",
}
_BY_NUMBER: Final[tuple[Severity, ...]] = ("info", "info", "warning", "warning", "critical", "critical")


def _macro(value: object) -> object:
    """A macro's text, None when empty or unresolved; numbers become text (parameters are text in Zabbix)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str):
        text = value.strip()
        return None if not text or text == _UNKNOWN or _UNRESOLVED.fullmatch(text) else text
    return value


def _tags(value: object) -> object:
    """{EVENT.TAGSJSON} arrives parsed from the script, or as its JSON text when posted some other way."""
    text = _macro(value) if isinstance(value, str) else value
    if text is None:
        return []
    if isinstance(text, str):
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"malformed JSON: {exc}") from None
    return text


def _tag_value(value: object) -> object:
    return "" if value is None else _macro(value) or ""


Macro = Annotated[str | None, BeforeValidator(_macro)]


class ZabbixTag(BaseModel):
    """One event tag, as in {EVENT.TAGSJSON}."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    tag: str
    value: Annotated[str, BeforeValidator(_tag_value)] = ""


class ZabbixEvent(BaseModel):
    """The JSON object the media-type script posts (see the module docstring for each field's macro)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    event_id: Macro = None
    event_value: Macro = None
    trigger_name: Macro = None
    event_name: Macro = None
    severity: Macro = None
    nseverity: Macro = None
    host: Macro = None
    host_name: Macro = None
    tags: Annotated[list[ZabbixTag], BeforeValidator(_tags)] = []
    event_timestamp: Macro = None
    event_date: Macro = None
    event_time: Macro = None
    recovery_event_id: Macro = None
    recovery_timestamp: Macro = None
    recovery_date: Macro = None
    recovery_time: Macro = None
    trigger_id: Macro = None
    opdata: Macro = None
    update_status: Macro = None


def is_zabbix_event(data: object) -> bool:
    """Whether a parsed body has this module's shape: an object (or array of them) with event_id and event_value."""
    first = data[0] if isinstance(data, list) and data else data
    return isinstance(first, dict) and "event_id" in first and "event_value" in first


def parse(
    body: bytes,
    config: KeyConfig = DEFAULT_KEY_CONFIG,
    *,
    max_bytes: int | None = DEFAULT_MAX_BYTES,
    timezone: str | tzinfo = "UTC",
) -> list[Alert]:
    """Alerts from a Zabbix webhook body (one event object or an array); date/time text is read in `timezone`."""
    check_body(body, SOURCE, max_bytes)
    data = load_json(body, SOURCE)
    zone = _zone(timezone) if isinstance(timezone, str) else timezone
    if type(data) is list:
        return [_alert(item, f"[{i}]", config, zone) for i, item in enumerate(data)]
    return [_alert(data, "", config, zone)]


@lru_cache(maxsize=16)
def _zone(name: str) -> tzinfo:
    # The default needs no time-zone database: ZoneInfo("UTC") fails where neither the system's nor tzdata is.
    return dt_timezone.utc if name == "UTC" else ZoneInfo(name)


def _alert(data: object, where: str, config: KeyConfig, zone: tzinfo) -> Alert:
    if type(data) is not dict:
        raise SourceError(where or "body", f"wrong type: expected an object, got {json_type(data)}", source=SOURCE)
    try:
        event = ZabbixEvent.model_validate(data)
    except ValidationError as exc:
        raise error_from_validation(exc, SOURCE, where) from None
    return _normalized(event, where, config, zone)


def _normalized(event: ZabbixEvent, where: str, config: KeyConfig, zone: tzinfo) -> Alert:
    event_id = _required(event.event_id, where, "event_id")
    problem = _problem(event.event_value, where)
    name = _required(event.trigger_name or event.event_name, where, "trigger_name")
    starts_at = _moment(event, "event", where, zone)
    if starts_at is None:
        raise SourceError(_at(where, "event_timestamp"),
                          "missing required field: send event_timestamp, or event_date and event_time", source=SOURCE)
    labels = _labels(event)
    severity, severity_raw = _severity(event, where)
    return Alert(
        fingerprint=f"zabbix:{event_id}",
        source=SOURCE,
        service=service_of(labels, config),
        scope=scope_of(labels, config),
        symptom=_symptom(name, event),
        severity=severity,
        status="firing" if problem else "resolved",
        starts_at=starts_at,
        ends_at=None if problem else _moment(event, "recovery", where, zone),
        labels=labels,
        annotations={"opdata": event.opdata} if event.opdata else {},
        summary=event.event_name or name,
        extra=_extra(event, severity_raw),
    )


def _at(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def _required(value: str | None, where: str, name: str) -> str:
    if value is None:
        raise SourceError(_at(where, name), "missing required field (absent, empty or an unresolved macro)",
                          source=SOURCE)
    return value


def _problem(value: str | None, where: str) -> bool:
    text = _required(value, where, "event_value")
    if text not in ("0", "1"):
        raise SourceError(_at(where, "event_value"), f"invalid value {text!r}: expected 1 (problem) or 0 (recovery)",
                          source=SOURCE)
    return text == "1"


def _moment(event: ZabbixEvent, prefix: str, where: str, zone: tzinfo) -> float | None:
    stamp = getattr(event, f"{prefix}_timestamp")
    if stamp is not None:
        return epoch_of(stamp, _at(where, f"{prefix}_timestamp"), SOURCE)
    day, clock = getattr(event, f"{prefix}_date"), getattr(event, f"{prefix}_time")
    if day is None and clock is None:
        return None
    if day is None or clock is None:
        missing = f"{prefix}_date" if day is None else f"{prefix}_time"
        raise SourceError(_at(where, missing), f"missing required field: {prefix}_date and {prefix}_time go together",
                          source=SOURCE)
    try:
        local = datetime.strptime(f"{day} {clock}", "%Y.%m.%d %H:%M:%S")
    except ValueError:
        raise SourceError(_at(where, f"{prefix}_date"),
                          f"invalid value {day!r} {clock!r}: expected YYYY.MM.DD and HH:MM:SS", source=SOURCE) from None
    return local.replace(tzinfo=zone).timestamp()


def _labels(event: ZabbixEvent) -> dict[str, str]:
    labels: dict[str, str] = {}
    for tag in event.tags:
        labels.setdefault(tag.tag, tag.value)  # Zabbix allows a tag name twice; the first one names the label
    if event.host or event.host_name:
        labels.setdefault("host", event.host or event.host_name or "")
    if event.host_name:
        labels.setdefault("host_name", event.host_name)
    return labels


def _symptom(name: str, event: ZabbixEvent) -> str:
    if event.host and event.host_name and event.host != event.host_name:
        name = name.replace(event.host, event.host_name)
    return normalize_symptom(name, event.host_name or event.host)


def _severity(event: ZabbixEvent, where: str) -> tuple[Severity, str | None]:
    if event.nseverity is not None:
        if event.nseverity not in ("0", "1", "2", "3", "4", "5"):
            raise SourceError(_at(where, "nseverity"), f"invalid value {event.nseverity!r}: expected 0 to 5",
                              source=SOURCE)
        return _BY_NUMBER[int(event.nseverity)], None
    named = _BY_NAME.get((event.severity or "").lower())
    return (named, None) if named else severity_of(event.severity)


_KEPT: Final = (
    ("event_id", "event_id"),
    ("recovery_event_id", "recovery_event_id"),
    ("trigger_id", "trigger_id"),
    ("update_status", "update_status"),
    ("severity", "zabbix_severity"),
)


def _extra(event: ZabbixEvent, severity_raw: str | None) -> dict[str, Any]:
    extra: dict[str, Any] = dict(event.model_extra or {})
    for field, key in _KEPT:
        value = getattr(event, field)
        if value is not None:
            extra[key] = value
    if severity_raw is not None:
        extra["severity_raw"] = severity_raw
    return extra
