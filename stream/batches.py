"""The value format of `alerts` records, written by normalize and read by correlate.

One record carries, for one partition of `alerts`, the alerts of several raw records, each as a segment
tagged with where it came from (`alerts.raw` partition and offset). Correlate remembers per source
partition the last offset it has applied, so a segment delivered twice (a redelivery after a crash, or a
raw record normalized again by a restarted worker) is applied once: state updates are effectively-once
even where Kafka delivery is at-least-once.

    {"received_ms": 1772420400123,
     "segments": [[0, 41, [{"f": fingerprint, "k": key, "s": status, "v": severity, "t": starts_at,
                            "e": ends_at, "l": labels}, ...]], ...]}

Any other producer may write one normalized `Alert` as JSON instead; it carries no source offset. A record
naming a source `alerts.raw` does not hold is dead-lettered (`stream.provenance`: it would make correlate skip
real records).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from itertools import chain
from operator import itemgetter
from dataclasses import dataclass
from typing import Annotated, Any, Final, TypeVar, cast

import msgspec
import orjson

from correlator.models import Alert
from correlator.records import WIRE_NAMES, AlertRecord, dict_of_record, record_from_dict, record_of

__all__ = ["Segment", "BatchError", "RecordTooLarge", "encode_batch", "decode_batch", "pack_records", "parts_of",
           "steps", "MAX_ALERTS_PER_RECORD", "MAX_RECORD_BYTES", "PARTS_PER_OFFSET"]

MAX_ALERTS_PER_RECORD = 1000
"""Alerts per `alerts` record: ~150-400 bytes each keeps a record well under Kafka's 1 MB default."""

MAX_RECORD_BYTES = 900_000
"""Most bytes of alerts one `alerts` record packs: under the producer's 1 MB request limit (and Kafka's
message.max.bytes), with room for the envelope. Alerts with many labels (1 KB each is common on Kubernetes)
would otherwise fill a 1,000-alert record past it, and its send fails for the whole batch."""

EXACT_SIZES_ABOVE = 256 * 1024
"""Raw bodies larger than this have each alert's bytes measured; below, a bound from the body's size holds."""

ALERT_OVERHEAD_BYTES = 200
"""Bytes an alert adds in an `alerts` record beyond what its raw body held: field names, times, a derived
fingerprint and the status and severity."""

PARTS_PER_OFFSET = 1024
"""A raw record too big for one `alerts` record is cut into parts; a segment's source offset is then
`raw_offset * PARTS_PER_OFFSET + part`, so progress stays one increasing number per raw partition."""


E = TypeVar("E", bound=Any)


@dataclass(frozen=True, slots=True)
class Segment:
    """The alerts of one raw record bound for one partition; `source` is (raw partition, offset) or None."""

    source: tuple[int, int] | None
    records: list[AlertRecord]


class BatchError(ValueError):
    """A record on `alerts` that is neither a normalize batch nor one normalized Alert."""

    category = "bad_alert_record"


class RecordTooLarge(ValueError):
    """A raw record whose alerts cannot be carried by `alerts` records: one alert alone is larger than one may
    be, or it needs more parts than a source offset can number."""

    category = "record_too_large"


def parts_of(records: list[AlertRecord], body_bytes: int, body_alerts: int,
             max_alerts: int = MAX_ALERTS_PER_RECORD, max_bytes: int = MAX_RECORD_BYTES
             ) -> list[tuple[list[AlertRecord], int]]:
    """A raw record's alerts for one partition cut, in order, into parts that each fit an `alerts` record; each
    with its bytes (an upper bound). `RecordTooLarge` when they cannot be.

    A body of at most `EXACT_SIZES_ABOVE` bytes cannot hold an alert larger than twice its share of the body
    (an alert repeats at most its service and symptom) plus `ALERT_OVERHEAD_BYTES`, so its parts are cut by that
    bound at no cost; a larger body has each alert measured.
    """
    if body_bytes <= EXACT_SIZES_ABOVE:
        each = 2 * body_bytes // max(body_alerts, 1) + ALERT_OVERHEAD_BYTES
        per = max(1, min(max_alerts, max_bytes // each))
        parts = [(records[i:i + per], each * len(records[i:i + per])) for i in range(0, len(records), per)]
    else:
        parts = []
        current: list[AlertRecord] = []
        size = 0
        for record in records:
            n = len(orjson.dumps(dict_of_record(record))) + 1
            if n > max_bytes:
                raise RecordTooLarge(f"an alert of {n} bytes (fingerprint {record.fingerprint[:80]!r}) is larger "
                                     f"than an alerts record may be ({max_bytes})")
            if current and (len(current) >= max_alerts or size + n > max_bytes):
                parts.append((current, size))
                current, size = [], 0
            current.append(record)
            size += n
        if current:
            parts.append((current, size))
    if len(parts) >= PARTS_PER_OFFSET:
        raise RecordTooLarge(f"{len(records)} alerts for one partition need {len(parts)} alerts records, more than "
                             f"the {PARTS_PER_OFFSET} a raw record may be cut into")
    return parts


def pack_records(segments: Sequence[Segment], limit: int = MAX_ALERTS_PER_RECORD, sizes: Sequence[int] = (),
                 max_bytes: int = MAX_RECORD_BYTES) -> list[list[Segment]]:
    """Segments of one partition, in order, grouped into records of at most `limit` alerts each and, given each
    segment's bytes in `sizes`, at most `max_bytes`."""
    records: list[list[Segment]] = [[]]
    count = size = 0
    for i, segment in enumerate(segments):
        n = sizes[i] if sizes else 0
        if count and (count + len(segment.records) > limit or size + n > max_bytes):
            records.append([])
            count = size = 0
        records[-1].append(segment)
        count += len(segment.records)
        size += n
    return records if records[0] else []


def _value_size(event: Any) -> int:
    return len(event.message.value or b"")


def steps(events: Sequence[E], max_bytes: int, size_of: Callable[[E], int] = _value_size) -> Iterator[Sequence[E]]:
    """A batch of consumed events cut, in order, into runs of at most `max_bytes` of record values each.

    What an agent parses at once is then bounded by bytes, not by a count of records whose size it does not
    control: a catch-up hands over hundreds of 1,000-alert records in one `take_events` batch, and the alerts
    of a whole batch alive at once set the worker's peak memory (a run never closes the arenas a bigger
    batch opened). A single record larger than the bound is a run of its own; 0 means no bound. `size_of`
    tells an item's bytes (by default a consumed event's record value).
    """
    if max_bytes <= 0:
        yield events
        return
    start, size = 0, 0
    for i, event in enumerate(events):
        n = size_of(event)
        if i > start and size + n > max_bytes:
            yield events[start:i]
            start, size = i, 0
        size += n
    if start < len(events):
        yield events[start:]


_ENCODER: Final = msgspec.json.Encoder()


def encode_batch(segments: Sequence[Segment], received_ms: int) -> bytes:
    """Value of one `alerts` record.

    msgspec writes each `AlertRecord` under its short names (`WIRE_NAMES`) itself, without the dict per alert
    that `orjson.dumps` of `dict_of_record` built: the same bytes but for the spelling of a float's exponent
    (`1e16` for orjson's `1e+16`), which reads back as the same number (tests/test_batches.py).
    """
    return _ENCODER.encode({
        "received_ms": received_ms,
        "segments": [[*(s.source or (None, None)), s.records] for s in segments],
    })


_JsonInt = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]
"""An integer orjson surely reads as one (past 2**64 - 1 it reads a float; msgspec bounds only to int64): outside,
the checked path decides."""


class _WireAlert(msgspec.Struct, frozen=True, rename=WIRE_NAMES):
    """An alert of an `alerts` record as `_checked` accepts it: every field present, of its exact JSON type."""

    fingerprint: str
    key: str
    status: str
    severity: str
    starts_at: _JsonInt | float  # a number stays what JSON made it, as orjson keeps it
    ends_at: _JsonInt | float | None
    labels: dict[str, str]


class _WireBatch(msgspec.Struct):
    """An `alerts` record in the shape `encode_batch` writes."""

    segments: list[tuple[_JsonInt | None, _JsonInt | None, list[_WireAlert]]]
    received_ms: _JsonInt | float | None = None


_WIRE: Final = msgspec.json.Decoder(_WireBatch)


def decode_batch(raw: bytes | None) -> tuple[list[Segment], int | None]:
    """The segments of one `alerts` record and when its oldest raw record arrived (epoch ms), if known.

    A typed decode of the whole record first (msgspec: 1.2 us per alert against 3.7 for orjson, the per-field
    type checks and a record per dict; `benchmarks/record_decode.py`). It accepts only what the checked
    path (`_decode_checked`) accepts, so anything it refuses goes there, which then gives the record or the
    exact refusal: a single `Alert`, a missing field, a wrong type, malformed JSON.
    """
    try:
        wire = _WIRE.decode(raw or b"")
    except (msgspec.DecodeError, msgspec.ValidationError):
        return _decode_checked(raw)
    try:
        segments = [Segment(_source(p, o), [AlertRecord(a.fingerprint, a.key, a.status, a.severity, a.starts_at,
                                                        a.ends_at, a.labels) for a in alerts])
                    for p, o, alerts in wire.segments]
    except ValueError:
        return _decode_checked(raw)  # a source that is not two non-negative integers: the checked path says so
    return segments, cast("int | None", wire.received_ms)  # a float passes, as on the checked path


def _decode_checked(raw: bytes | None) -> tuple[list[Segment], int | None]:
    """`decode_batch` with orjson and explicit checks: the reference, and the refusals with their reasons."""
    try:
        doc = orjson.loads(raw or b"")
    except orjson.JSONDecodeError as exc:
        raise BatchError(f"malformed JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise BatchError(f"expected a JSON object, got {type(doc).__name__}")
    if "segments" not in doc:
        try:
            return [Segment(None, [record_of(Alert.model_validate(doc))])], None
        except ValueError as exc:
            raise BatchError(f"not an Alert: {exc}".splitlines()[0]) from None
    try:
        segments = [Segment(_source(p, o), [record_from_dict(d) for d in _checked(alerts)])
                    for p, o, alerts in doc["segments"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise BatchError(f"bad segment: {exc!r}") from None
    received_ms = doc.get("received_ms")
    if received_ms is not None and not _is_number(received_ms):
        raise BatchError(f"bad received_ms: {received_ms!r}")
    return segments, received_ms


def _is_number(value: Any) -> bool:
    return type(value) in (int, float)  # orjson never parses NaN or infinity: a number is finite (and not a bool)


def _source(partition: Any, offset: Any) -> tuple[int, int] | None:
    """A segment's (raw partition, offset), both non-negative ints, or None for neither."""
    if partition is None and offset is None:
        return None
    if type(partition) is int and type(offset) is int and partition >= 0 and offset >= 0:
        return partition, offset
    raise ValueError(f"source ({partition!r}, {offset!r}) is not two non-negative integers")


_STRINGS = itemgetter("f", "k", "s", "v")
_TIME, _END, _LABELS = itemgetter("t"), itemgetter("e"), itemgetter("l")
_STR, _NUMBER, _END_TYPES = frozenset({str}), frozenset({int, float}), frozenset({type(None), int, float})


def _checked(alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`alerts` if each alert dict has the field types the engine relies on, else ValueError: `f`, `k`, `s`, `v`
    and every label value strings, `t` a number, `e` a number or null, `l` an object.

    `alerts` is a topic any producer can write, and a string where a time belongs crashed the engine's whole
    batch. Checked as the set of types a field takes over the segment (map and set, no Python loop per alert;
    the cost is measured by `benchmarks/alerts_record_checks.py`). orjson never parses NaN or infinity, and JSON
    makes every label key a string.
    """
    for name, getter, allowed in (("l", _LABELS, frozenset({dict})), ("t", _TIME, _NUMBER), ("e", _END, _END_TYPES)):
        found = set(map(type, map(getter, alerts)))
        if not found <= allowed:
            raise ValueError(f"alert field {name!r} of type {', '.join(sorted(t.__name__ for t in found - allowed))}")
    strings = set(map(type, chain(chain.from_iterable(map(_STRINGS, alerts)),
                                  chain.from_iterable(map(dict.values, map(_LABELS, alerts))))))
    if not strings <= _STR:
        raise ValueError(f"alert field f, k, s, v or a label value of type "
                         f"{', '.join(sorted(t.__name__ for t in strings - _STR))}")
    return alerts
