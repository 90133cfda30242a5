"""A typed decode of whole Alertmanager webhooks and generic alert bodies straight into alert records: the fast
path of `normalize`.

The adapter (`alertmanager.parse`) builds a pydantic model of the body, then an `Alert` per entry, and the
agents keep only the `AlertRecord` of each: about 14 us per alert, the largest cost between a webhook and an
incident. Here msgspec decodes the body into plain structs in one pass (well under 1 us per alert) and the
records are built with the adapter's own helpers (`service_of`, `symptom_of`, `severity_of`, ...).

It refuses nothing. Anything it does not recognise exactly returns None, and the caller runs the adapter,
which then produces the record or the refusal, so records and refusals are the adapter's by construction:

- a field outside Alertmanager's known set (`forbid_unknown_fields`): the adapter would also accept pydantic's
  own field names (`starts_at` beside `startsAt`, `populate_by_name`) and keep unknown ones in `extra`;
- any type other than the exact JSON type (a number where a time belongs, `3.0` for `truncatedAlerts`);
- a time not in the RFC 3339 shape both parsers read alike (`_TIME`: pydantic truncates nanoseconds like
  `datetime.fromisoformat`; msgspec's own datetime rounds them, hence times are decoded as strings here);
- Go's zero time as a start, an empty service or symptom (the `Alert` model refuses them), a version other
  than "4", a negative `truncatedAlerts` or one past 2**64 - 1 (orjson refuses it), a body over `max_bytes`;
- an alert the event-time guard would clamp or refuse (`eventtime.guard_alerts` handles those).

Generic bodies (`generic_records`: one object, an array, or NDJSON as `generic.parse` tells them apart) take
the same route: the adapter's `alert_of` checks each field by hand, builds an `Alert` (pydantic) and its record,
about 13 us per alert on the raw path's NDJSON; here a struct per line, 1-2 us. What falls back: an unknown
field (the adapter keeps it in `extra`, where a source's mute marks live), the Alertmanager API v2 spelling, a
time that is not epoch seconds in range (strings, negative, milliseconds), labels or annotations that are not
strings (the adapter coerces them), an empty derived service or symptom, and what the guard would adjust.

At the JSON level, a typed decode with no unknown fields sees every byte as a typed value, and agrees with
orjson (the adapter's parser) on invalid UTF-8, lone surrogates, control characters, non-finite and
oversized numbers and duplicate keys (last wins): `tests/test_sources_fast.py` holds the cases and a
property test over generated and collected bodies.
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Final, Literal

import msgspec

from correlator.eventtime import TimeGuard, epoch_problem
from correlator.keys import (
    KeyConfig,
    correlation_key,
    fingerprint_of_labels,
    scope_of,
    service_of,
)
from correlator.records import AlertRecord
from correlator.sources.alertmanager import VERSION, epoch_of_moment
from correlator.sources.generic import SOURCE as GENERIC
from correlator.sources.generic import derived_fingerprint, looks_like_ndjson, severity_of, symptom_of

__all__ = ["alertmanager_records", "generic_records"]


class _Alert(msgspec.Struct, forbid_unknown_fields=True):
    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    startsAt: str  # Alertmanager's JSON names
    annotations: dict[str, str] | None = None
    endsAt: str | None = None
    generatorURL: str = ""
    fingerprint: str = ""


class _Message(msgspec.Struct, forbid_unknown_fields=True):
    version: str
    alerts: list[_Alert]
    receiver: str = ""
    status: str = ""
    notification_reason: str = ""
    groupLabels: dict[str, str] | None = None
    commonLabels: dict[str, str] | None = None
    commonAnnotations: dict[str, str] | None = None
    routeLabels: dict[str, str] | None = None
    externalURL: str = ""
    groupKey: str = ""
    truncatedAlerts: int = 0


_DECODER: Final = msgspec.json.Decoder(_Message)
_MAX_JSON_INT: Final = 2**64 - 1
"""The largest integer orjson reads (msgspec reads any): a larger one is malformed JSON to the adapter."""
_TIME: Final = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-](?:[01]\d|2[0-3]):[0-5]\d)?")
"""The time shapes read here; anything else (lower-case `z`, a date alone, basic format) goes to the adapter."""


def _epoch(text: str, cache: dict[str, float | None]) -> float | None | Literal[False]:
    """Epoch seconds as the adapter computes them (None: Go's zero time); False: not a shape read here."""
    hit = cache.get(text, False)
    if hit is not False:
        return hit
    if _TIME.fullmatch(text) is None:
        return False
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return False
    cache[text] = value = epoch_of_moment(moment)
    return value


def alertmanager_records(body: bytes, arrival: float, guard: TimeGuard, config: KeyConfig,
                         max_bytes: int | None) -> list[AlertRecord] | None:
    """The records `alertmanager.parse` + `guard_alerts` + `record_of` give for `body`, or None: not recognised,
    run the adapter (see the module docstring for what falls back)."""
    if max_bytes is not None and len(body) > max_bytes:
        return None
    try:
        message = _DECODER.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    if message.version != VERSION or not 0 <= message.truncatedAlerts <= _MAX_JSON_INT:
        return None
    oldest, newest = _trusted_span(arrival, guard)
    cache: dict[str, float | None] = {}
    out: list[AlertRecord] = []
    for item in message.alerts:
        starts_at = _epoch(item.startsAt, cache)
        ends = None if item.endsAt is None else _epoch(item.endsAt, cache)
        if starts_at is None or starts_at is False or ends is False:
            return None
        ends_at = ends if item.status == "resolved" else None
        event_time = ends_at if ends_at is not None else starts_at
        if not _trusted(starts_at, ends_at, event_time, oldest, newest):
            return None  # the guard would clamp or refuse it
        labels = item.labels
        service, symptom = service_of(labels, config), symptom_of(labels, config)
        if not service or not symptom:
            return None
        out.append(AlertRecord(item.fingerprint or fingerprint_of_labels(labels),
                               correlation_key(scope_of(labels, config), service, symptom),
                               item.status, severity_of(labels.get("severity"))[0], starts_at, ends_at, labels))
    return out


class _Generic(msgspec.Struct, forbid_unknown_fields=True):
    """One generic alert as the fast path reads it: only the documented fields, each of its exact JSON type."""

    starts_at: int | float
    fingerprint: str | None = None
    status: Literal["firing", "resolved"] | None = None
    ends_at: int | float | None = None
    service: str | None = None
    symptom: str | None = None
    severity: str | None = None
    source: str | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    summary: str | None = None


_GENERIC_ONE: Final = msgspec.json.Decoder(_Generic)
_GENERIC_MANY: Final = msgspec.json.Decoder(list[_Generic])


def _generic_items(body: bytes) -> list[_Generic] | None:
    """The alerts of a generic body in the shape `generic.parse` reads it as, or None: not read here."""
    text = body.lstrip()
    try:
        if text[:1] == b"[":
            return _GENERIC_MANY.decode(body)
        return [_GENERIC_ONE.decode(body)]
    except msgspec.ValidationError:
        return None  # valid JSON of another shape or type: the adapter says what
    except msgspec.DecodeError:
        pass  # not one JSON document: NDJSON if it looks like it, as for the adapter
    if text[:1] == b"[" or not looks_like_ndjson(text):
        return None
    try:  # line by line, split as the adapter splits them (a value across lines is its refusal, not ours)
        return [_GENERIC_ONE.decode(line) for line in body.split(b"\n") if line and not line.isspace()]
    except msgspec.DecodeError:  # ValidationError included
        return None


def _epoch_seconds(value: int | float | None) -> float | None | Literal[False]:
    """Epoch seconds as the adapter reads a number (None stays None); False: out of the plain range."""
    if value is None:
        return None
    return False if epoch_problem(float(value)) is not None else float(value)


def _trusted_span(arrival: float, guard: TimeGuard) -> tuple[float, float]:
    """The oldest and newest event times the guard takes as they are, for a body arriving at `arrival`."""
    return -math.inf if guard.horizon_s is None else arrival - guard.horizon_s, arrival + guard.max_future_skew_s


def _trusted(starts_at: float, ends_at: float | None, event_time: float, oldest: float, newest: float) -> bool:
    """Whether the guard would leave an alert's times alone (else it clamps or refuses: the adapter's business)."""
    return oldest <= event_time and starts_at <= newest and (ends_at is None or ends_at <= newest)


def generic_records(body: bytes, arrival: float, guard: TimeGuard, config: KeyConfig,
                    max_bytes: int | None) -> tuple[list[AlertRecord], dict[str, int]] | None:
    """The records (and alerts per named source) `generic.parse` + `guard_alerts` + `record_of` give for `body`,
    or None: not recognised, run the adapter (see the module docstring for what falls back)."""
    if (max_bytes is not None and len(body) > max_bytes) or not body or body.isspace():
        return None
    items = _generic_items(body)
    if items is None:
        return None
    oldest, newest = _trusted_span(arrival, guard)
    out: list[AlertRecord] = []
    by_source: dict[str, int] = {}
    for item in items:
        starts_at, ends_at = _epoch_seconds(item.starts_at), _epoch_seconds(item.ends_at)
        if starts_at is None or starts_at is False or ends_at is False:
            return None
        status = item.status or "firing"
        event_time = ends_at if status == "resolved" and ends_at is not None else starts_at
        if not _trusted(starts_at, ends_at, event_time, oldest, newest):
            return None  # the guard would clamp or refuse it
        labels = item.labels or {}
        service = item.service or service_of(labels, config)
        symptom = item.symptom or symptom_of(labels, config)
        if not service or not symptom:
            return None
        source = item.source or GENERIC
        by_source[source] = by_source.get(source, 0) + 1
        out.append(AlertRecord(item.fingerprint or derived_fingerprint(labels, service, symptom),
                               correlation_key(scope_of(labels, config), service, symptom), status,
                               severity_of(item.severity)[0], starts_at, ends_at, labels))
    return out, by_source
