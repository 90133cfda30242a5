"""What crosses a boundary (a topic, an HTTP body, a replay file): pydantic v2 models.

Times are epoch seconds (float) everywhere: event time is compared and windowed as numbers,
and a float survives orjson, Kafka and the changelog without a timezone to get wrong.
"""

from __future__ import annotations

from enum import IntEnum
from functools import cached_property
from typing import Annotated, Any, Literal, Protocol

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from .eventtime import epoch_problem
from .keys import correlation_key, scope_of

__all__ = [
    "Alert",
    "AlertStatus",
    "Census",
    "EpochSeconds",
    "IncidentEvent",
    "IncidentEventKind",
    "IncidentFacts",
    "IncidentStatus",
    "Severity",
    "SEVERITY_RANK",
    "Ticket",
    "TriagedTicket",
    "TicketStatus",
    "TicketSeverity",
    "max_severity",
    "trusted_event",
]

Severity = Literal["critical", "warning", "info"]
AlertStatus = Literal["firing", "resolved"]
IncidentEventKind = Literal["opened", "updated", "resolved", "expired"]
IncidentStatus = Literal["firing", "resolved", "expired"]


class _Rank(IntEnum):
    info = 0
    warning = 1
    critical = 2


SEVERITY_RANK: dict[str, int] = {s.name: int(s) for s in _Rank}
"""Order of severities, so that an incident carries the worst of its members."""


def max_severity(a: str, b: str) -> str:
    """The worse of two severities."""
    return a if SEVERITY_RANK.get(a, 1) >= SEVERITY_RANK.get(b, 1) else b


class Alert(BaseModel):
    """One normalized alert occurrence, whatever source it came from.

    Identity for dedup is (fingerprint, starts_at): Alertmanager re-sends a firing alert with the same
    fingerprint and startsAt every repeat_interval, while a new firing of the same series has a new startsAt.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    fingerprint: str = Field(min_length=1)
    source: str = "generic"
    service: str = Field(min_length=1)
    symptom: str = Field(min_length=1)
    scope: str = Field(default="", description="`label=value,...` of the scope labels it carries (keys.scope_of); "
                                               "derived from the labels with the default scope labels when absent")
    severity: Severity = "warning"
    status: AlertStatus = "firing"
    starts_at: float = Field(description="event time the alert began, epoch seconds")
    ends_at: float | None = Field(default=None, description="epoch seconds; set when resolved")
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    summary: str = ""
    extra: dict[str, Any] = Field(default_factory=dict, description="source fields kept, never refused")

    @model_validator(mode="before")
    @classmethod
    def _default_scope(cls, data: Any) -> Any:
        # Adapters pass the scope their KeyConfig gives; an Alert built by hand gets the default scope labels'.
        if isinstance(data, dict) and "scope" not in data and isinstance(data.get("labels"), dict):
            return {**data, "scope": scope_of(data["labels"])}
        return data

    @cached_property
    def key(self) -> str:
        """Correlation key `scope/service/symptom`: alerts with one key can join one stage-1 incident."""
        return correlation_key(self.scope, self.service, self.symptom)

    @property
    def event_time(self) -> float:
        """When this record happened: the resolution time for a resolved alert, else the start."""
        if self.status == "resolved" and self.ends_at is not None:
            return self.ends_at
        return self.starts_at


class IncidentEvent(BaseModel):
    """A change of one stage-1 incident, published on the `incidents` topic keyed by incident id.

    `seq` grows by one per event of the same incident, so a consumer that sees a redelivered event
    (same id, seq not above the last it handled) can drop it.
    """

    model_config = ConfigDict(frozen=True)

    kind: IncidentEventKind
    incident_id: str
    seq: int = Field(ge=1)
    key: str
    service: str
    symptom: str
    scope: str = Field(default="", description="the scope part of the key (`cluster=a,env=prod`), empty if none")
    status: IncidentStatus
    first_seen: float = Field(description="event time of the earliest member, epoch seconds")
    last_seen: float = Field(description="event time of the latest member, epoch seconds")
    window_start: float = Field(description="start of the tumbling window the incident opened in")
    alert_count: int = Field(ge=0, description="distinct alert occurrences, after dedup")
    distinct_fingerprints: int = Field(ge=0)
    firing_count: int = Field(ge=0)
    duplicates: int = Field(ge=0, description="re-sends absorbed without counting as alerts")
    max_severity: Severity
    member_sample: list[str] = Field(default_factory=list, description="first fingerprints, bounded")
    entities: dict[str, list[str]] = Field(
        default_factory=dict, description="label values seen on members (host, cluster, ...), bounded per label")
    previous_id: str | None = Field(default=None, description="the incident this one continues after a cap")
    late_alerts: int = Field(default=0, ge=0, description="members that arrived after the allowed lateness")
    reason: str = ""
    emitted_at: float = Field(description="event-time watermark when this event was produced")


class Census(BaseModel):
    """Which incidents one stage-1 partition holds open, said on one partition of `incidents` after the broker lost
    its topics (`Settings.reconcile_after_loss`): the closes stage 1 published and notify had not read went with the
    broker, and stage 1 never says a close again; a reader closes what it holds open of that source, last said
    before `at`, that `open` does not name (`correlator.notify.state`, session 39)."""

    model_config = ConfigDict(frozen=True)

    source: int = Field(ge=0, description="the partition of `alerts` whose engine holds these incidents")
    at: float = Field(description="the engine's event-time watermark its state stood at when counted")
    open: list[str] = Field(default_factory=list,
                            description="ids of its open incidents that live on this partition of `incidents`")


_EVENT_FIELDS = frozenset(IncidentEvent.model_fields)
_new = object.__new__
_set = object.__setattr__


def trusted_event(fields: dict[str, Any]) -> IncidentEvent:
    """An `IncidentEvent` of fields the engine made, without validating them again (what `model_construct` does,
    without its per-field default and alias lookups): the engine's own state, already checked on the way in.

    `fields` must hold every field, in the model's order (`encode_incident_event` writes `__dict__` as it is),
    with the model's types (floats as floats); tests/test_trusted_event.py holds it to the validated model.
    About 1.5 us an event against 3-4 validated, a quarter of the compiled engine's time (issue 19).
    """
    ev = _new(IncidentEvent)
    _set(ev, "__dict__", fields)
    _set(ev, "__pydantic_fields_set__", set(_EVENT_FIELDS))  # its own set: model_copy(update=...) adds to it
    _set(ev, "__pydantic_extra__", None)
    _set(ev, "__pydantic_private__", None)
    return ev


class IncidentFacts(Protocol):
    """What the readers of `incidents` that need no model read of a stage-1 event (the analytics store, the
    console's read model, the incident SLA clocks): an `IncidentEvent`, or the same fields decoded in one msgspec
    pass (`stream.incident_records.IncidentCounts`)."""

    @property
    def kind(self) -> IncidentEventKind: ...
    @property
    def incident_id(self) -> str: ...
    @property
    def seq(self) -> int: ...
    @property
    def key(self) -> str: ...
    @property
    def service(self) -> str: ...
    @property
    def symptom(self) -> str: ...
    @property
    def scope(self) -> str: ...
    @property
    def status(self) -> IncidentStatus: ...
    @property
    def first_seen(self) -> float: ...
    @property
    def last_seen(self) -> float: ...
    @property
    def alert_count(self) -> int: ...
    @property
    def duplicates(self) -> int: ...
    @property
    def max_severity(self) -> Severity: ...


def _not_boolean(value: object) -> object:
    if isinstance(value, bool):  # pydantic would read true as 1.0
        raise ValueError("wrong type: expected epoch seconds, got a boolean")
    return value


def _epoch_in_range(seconds: float) -> float:
    problem = epoch_problem(seconds)
    if problem is not None:
        raise ValueError(problem)
    return seconds


EpochSeconds = Annotated[float, BeforeValidator(_not_boolean), AfterValidator(_epoch_in_range)]
"""A time sent to us in epoch seconds, range-checked like an alert's (finite, not negative, not milliseconds)."""

TicketSeverity = Literal["sev1", "sev2", "sev3"]
TicketStatus = Literal["routed", "human_review", "escalated", "resolved"]


class Ticket(BaseModel):
    """A support ticket as it enters on `tickets.raw`."""

    model_config = ConfigDict(extra="allow")

    ticket_id: str = Field(min_length=1)
    text: str
    created_at: EpochSeconds = Field(description="epoch seconds")
    source: str = "generic"
    customer: str | None = None


class TriagedTicket(BaseModel):
    """A triage, routing, escalation or resolution decision about a ticket, on `tickets.triaged`."""

    ticket_id: str
    status: TicketStatus
    severity: TicketSeverity
    confidence: float = Field(ge=0.0, le=1.0)
    taxonomy_code: str
    tags: list[str] = Field(default_factory=list)
    reason: str = ""
    tier: str | None = None
    sla_minutes: int | None = None
    due_at: float | None = None
    decided_at: float
    seq: int = Field(default=1, ge=1)
    escalations: int = Field(default=0, ge=0, description="SLA breaches so far; each one escalated once")
    model_version: str | None = Field(default=None, description="the learned triage model that decided "
                                      "(content hash of its artifact); None: the rules alone")
