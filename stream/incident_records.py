"""What a record on `incidents` is: a stage-1 `IncidentEvent`, or a stage-2 `ParentEvent`, `Assignment` or `Progress`.

Stage 2 marks what it publishes with headers (`aiops-stage: 2`, `aiops-kind: parent|assignment`), so that a
reader can tell the three apart, or skip stage 2's records, without decoding their values: the incident SLA
agent reads every record of `incidents` and clocks only stage-1 incidents, and on a storm of short
independent incidents stage 2 publishes about as many records as stage 1 does. `Progress` (kind `progress`,
with causes of one incident not published: `correlator.stage2.publishing`) is for notify; the other readers
ignore it, a few records a second. A stage-1 `Census` (`aiops-stage: 1`, kind `census`: which incidents one stage-1
partition holds open, said only after the broker lost its topics) is for notify too; readers of stage-1 events skip
every record with a stage header (`is_incident_event`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

import msgspec
import orjson

from correlator.eventtime import MAX_EPOCH
from correlator.models import Census, IncidentEvent
from correlator.stage2 import Assignment, ParentEvent, Progress

__all__ = ["ASSIGNMENT_HEADERS", "CENSUS_HEADERS", "KIND_HEADER", "PARENT_HEADERS", "PROGRESS_HEADERS", "STAGE_HEADER", "Headers", "IncidentCounts", "header_value",
           "IncidentRecord", "decode_incident_fast", "decode_incident_record", "encode_incident_event",
           "is_census", "is_incident_event", "is_stage2_record", "read_incident_record", "stage2_kind"]

STAGE_HEADER = "aiops-stage"
"""Header on every record stage 2 publishes on `incidents` (value b"2"), so that readers can tell it apart."""
KIND_HEADER = "aiops-kind"
"""Header naming what a stage-2 record holds: b"parent" or b"assignment"."""
_STAGE2 = b"2"
PARENT_HEADERS: list[tuple[str, bytes]] = [(STAGE_HEADER, _STAGE2), (KIND_HEADER, b"parent")]
"""The headers of a stage-2 `ParentEvent` record."""
ASSIGNMENT_HEADERS: list[tuple[str, bytes]] = [(STAGE_HEADER, _STAGE2), (KIND_HEADER, b"assignment")]
"""The headers of a stage-2 `Assignment` record."""
PROGRESS_HEADERS: list[tuple[str, bytes]] = [(STAGE_HEADER, _STAGE2), (KIND_HEADER, b"progress")]
"""The headers of a stage-2 `Progress` record."""

CENSUS_HEADERS: list[tuple[str, bytes]] = [(STAGE_HEADER, b"1"), (KIND_HEADER, b"census")]
"""The headers of a stage-1 `Census` record."""

IncidentRecord = IncidentEvent | ParentEvent | Assignment | Progress | Census
"""Anything the `incidents` topic carries."""

Headers = Sequence[tuple[str, bytes]] | Mapping[str, bytes] | None
"""Record headers as aiokafka (a list of pairs) or Faust (a mapping) give them."""


def _pairs(headers: Headers) -> Any:
    if not headers:
        return ()
    return headers.items() if isinstance(headers, Mapping) else headers


def header_value(headers: Headers, name: str) -> bytes | None:
    """The value of the first header called `name` (headers as a list of (name, bytes) or a mapping); None if none."""
    return next((value for key, value in _pairs(headers) if key == name), None)


Count = Annotated[int, msgspec.Meta(ge=0, le=2**53)]
"""A count the analytics store can add up and write (orjson writes 64-bit integers; a fuzzed 10**30 once stalled the stage)."""
Epoch = Annotated[float, msgspec.Meta(ge=0, lt=MAX_EPOCH)]
"""Event time the analytics store can put in an hour (a time of 1e300 would make an hour no changelog can hold)."""


class IncidentCounts(msgspec.Struct, frozen=True):
    """An `IncidentEvent` as the readers that need no model decode it (the analytics store, the console's feed,
    the incident SLA agent): every field, typed and bounded as the model has them or tighter, so what this
    accepts the model accepts with the same values (tests/test_incident_encoding.py), by msgspec: 19 us an event
    against 31 us for the pydantic model (best of 7, benchmarks/RESULTS.md). A value this refuses goes to the
    model (`decode_incident_fast`'s callers), which decides and names the reason."""

    kind: Literal["opened", "updated", "resolved", "expired"]
    incident_id: str
    seq: Annotated[int, msgspec.Meta(ge=1, le=2**53)]
    key: str
    service: str
    symptom: str
    status: Literal["firing", "resolved", "expired"]
    first_seen: Epoch
    last_seen: Epoch
    window_start: Epoch
    alert_count: Count
    distinct_fingerprints: Count
    firing_count: Count
    duplicates: Count
    max_severity: Literal["critical", "warning", "info"]
    emitted_at: Epoch
    scope: str = ""
    member_sample: list[str] = msgspec.field(default_factory=list)
    entities: dict[str, list[str]] = msgspec.field(default_factory=dict)
    previous_id: str | None = None
    late_alerts: Count = 0
    reason: str = ""


_COUNTS = msgspec.json.Decoder(IncidentCounts)


def decode_incident_fast(raw: bytes | None) -> IncidentCounts | None:
    """A stage-1 event decoded in one msgspec pass; None when that refuses it (malformed, a stage-2 record written
    without its header, or bounds the model does not have): the caller then asks the model, which decides."""
    try:
        return _COUNTS.decode(raw or b"")
    except msgspec.DecodeError:  # ValidationError is a DecodeError
        return None


def encode_incident_event(event: IncidentEvent) -> bytes:
    """The value of a stage-1 event on `incidents`: its fields as JSON.

    The same bytes as `orjson.dumps(event.model_dump(mode="json"))` (every field is a JSON type already, and a
    frozen model's `__dict__` holds exactly its fields, in order; tests/test_incident_encoding.py), in 40% of
    the time: the dump built a second dict per event.
    """
    return orjson.dumps(event.__dict__)


def is_stage2_record(headers: Headers) -> bool:
    """Whether a record's headers (a list of (name, bytes) or a mapping) say stage 2 published it.

    Asked of every record of `incidents` by each of its readers; a stage-1 event (nearly all of them) has no
    headers and is answered before any iteration: 0.05 us against 0.8 for the generator over none (issue 19,
    session 39, `benchmarks/reader_costs.py`)."""
    if not headers:
        return False
    for name, value in _pairs(headers):
        if name == STAGE_HEADER and value == _STAGE2:
            return True
    return False


def is_census(headers: Headers) -> bool:
    """Whether a record's headers say it is a stage-1 `Census` (a record without headers, nearly all, answered
    before any iteration, as in `is_stage2_record`)."""
    if not headers:
        return False
    marks = _marks(headers)
    return (STAGE_HEADER, b"1") in marks and (KIND_HEADER, b"census") in marks


def is_incident_event(headers: Headers) -> bool:
    """Whether a record of `incidents` is a stage-1 incident event: it has no stage header (stage 2's records and
    stage 1's census have one). Asked of every record by the readers of stage-1 events: a record without headers (nearly
    all) is answered before any iteration, as in `is_stage2_record`."""
    if not headers:
        return True
    return not any(name == STAGE_HEADER for name, _ in _pairs(headers))


def _marks(headers: Headers) -> list[tuple[str, bytes]]:
    return [(name, bytes(value)) for name, value in _pairs(headers) if name in (STAGE_HEADER, KIND_HEADER)]


def stage2_kind(headers: Headers) -> bytes | None:
    """What a stage-2 record holds by its headers (b"parent", b"assignment", b"progress"); None for stage 1's."""
    if not is_stage2_record(headers):
        return None
    return header_value(headers, KIND_HEADER) or b"parent"


def decode_incident_record(value: bytes | None, headers: Headers) -> IncidentRecord:
    """The record's model, chosen by its headers; pydantic's ValidationError when the value does not fit."""
    if is_census(headers):
        return Census.model_validate_json(value or b"")
    kind = stage2_kind(headers)
    if kind is None:
        return IncidentEvent.model_validate_json(value or b"")
    if kind == b"assignment":
        return Assignment.model_validate_json(value or b"")
    if kind == b"progress":
        return Progress.model_validate_json(value or b"")
    return ParentEvent.model_validate_json(value or b"")



def read_incident_record(value: bytes | None, headers: Headers) -> IncidentCounts | IncidentRecord:
    """As `decode_incident_record`, with a stage-1 event (nearly every record) decoded in one msgspec pass, for a
    reader that only keeps the fields (the console's feed); what that pass refuses goes to the models, which
    accept or refuse it as `decode_incident_record` does."""
    fast = decode_incident_fast(value) if is_incident_event(headers) else None
    return fast if fast is not None else decode_incident_record(value, headers)
