"""A ticket's life after triage: the SLA check, human review (approve, override), resolution, labels. Pure.

Every step takes the ticket's record and `now` (epoch seconds, passed in) and returns the next record, whose
`latest` is the `TriagedTicket` event to publish on `tickets.triaged`; a step that changes nothing returns None,
and one the record's state does not allow raises `Refused` with a reason a person can act on. The stream layer
keeps the records in a changelog-backed table and publishes what the steps return; nothing here reads a clock.

How a ticket ends: a `resolved` record on `tickets.raw` with the ticket's id (the helpdesk is the system of
record for a ticket's status) or `POST /tickets/{id}/resolve`; both call `resolve`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from correlator.models import EpochSeconds, Ticket, TicketSeverity, TriagedTicket
from correlator.triage.classifier import Classification
from correlator.triage.routing import DEFAULT_ROUTING, RoutingPolicy, route, triaged_ticket
from correlator.triage.sla import EscalationReason, check_sla, escalated_ticket, sla_state_of
from correlator.triage.taxonomy import DEFAULT_TAXONOMY
from correlator.validation import FieldError, field_errors, first_error, json_type

__all__ = [
    "FieldError",
    "InputError",
    "Refused",
    "Review",
    "RequestAction",
    "ReviewAction",
    "ReviewRequest",
    "TicketRecord",
    "TicketInput",
    "TicketResolution",
    "approve",
    "check_ticket",
    "waiting_for_review",
    "event_of",
    "label_of",
    "open_ticket",
    "override",
    "parse_review",
    "parse_ticket_body",
    "parse_ticket_input",
    "purgeable",
    "resolve",
    "ticket_input",
]

ReviewAction = Literal["approve", "override"]
RequestAction = Literal["approve", "override", "resolve", "ack"]


class Refused(ValueError):
    """A step the record's state does not allow (approving a routed ticket, acking a resolved incident)."""


class InputError(ValueError):
    """A `tickets.raw` record that is neither a ticket nor a resolution; `category` is a bounded metric label.

    `field` and `reason` are the problem as the one formatter names it (`correlator.validation`): the HTTP
    ingest answers 400 with them, the triage agent dead-letters the record with the message.
    """

    def __init__(self, reason: str, category: str, field: str = "body", message: str | None = None) -> None:
        super().__init__(message or reason)
        self.category = category
        self.field = field
        self.reason = reason


class TicketResolution(BaseModel):
    """A `tickets.raw` record closing a ticket: `{"ticket_id": "T-1", "status": "resolved", "who": "..."}`."""

    model_config = ConfigDict(extra="allow")

    ticket_id: str = Field(min_length=1)
    status: Literal["resolved"]
    who: str = "helpdesk"
    resolved_at: EpochSeconds | None = Field(default=None, description="the helpdesk's time, kept in the reason")
    note: str = ""


class Review(BaseModel):
    """A person's decision about a ticket, and what triage had said before it (for the labelled example)."""

    model_config = ConfigDict(frozen=True)

    action: ReviewAction
    who: str
    at: float
    severity: TicketSeverity
    taxonomy_code: str
    note: str = ""
    predicted_severity: TicketSeverity
    predicted_taxonomy_code: str
    predicted_confidence: float


class TicketRecord(BaseModel):
    """What the SLA table keeps per ticket: its text (for review and labels), its last event, its reviews."""

    model_config = ConfigDict(frozen=True)

    ticket_id: str
    text: str
    lang: str | None = None
    created_at: float
    latest: TriagedTicket
    predicted_severity: TicketSeverity
    predicted_taxonomy_code: str
    predicted_confidence: float
    reviews: tuple[Review, ...] = ()

    @property
    def closed_at(self) -> float | None:
        """When the ticket was resolved, or None while it is open."""
        return self.latest.decided_at if self.latest.status == "resolved" else None


def waiting_for_review(records: Iterable[TicketRecord]) -> list[TicketRecord]:
    """The tickets among `records` waiting for a person, oldest first (the review queue, wherever it is read)."""
    waiting = [r for r in records if r.latest.status == "human_review"]
    return sorted(waiting, key=lambda r: (r.latest.decided_at, r.ticket_id))


class ReviewRequest(BaseModel):
    """A body of the review API: who decides (and a note); for an override the new severity and/or code."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    who: str = Field(min_length=1, max_length=200)
    severity: TicketSeverity | None = None
    taxonomy_code: str | None = None
    note: str = Field(default="", max_length=2000)

    @field_validator("who")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must name who decides")
        return value.strip()

    @field_validator("taxonomy_code")
    @classmethod
    def _in_taxonomy(cls, value: str | None, info: ValidationInfo) -> str | None:
        taxonomy = (info.context or {}).get("taxonomy", DEFAULT_TAXONOMY)
        if value is not None and value not in taxonomy:
            raise ValueError(f"not in the taxonomy ({', '.join(taxonomy)})")
        return value

    @model_validator(mode="after")
    def _override_changes_something(self, info: ValidationInfo) -> ReviewRequest:
        action = (info.context or {}).get("action")
        changes = self.severity is not None or self.taxonomy_code is not None
        if action == "override" and not changes:
            raise ValueError("an override needs severity and/or taxonomy_code")
        if action not in (None, "override") and changes:
            raise ValueError(f"{action} takes only who and note; use override to change triage")
        return self


def parse_review(body: Any, action: RequestAction, taxonomy: Sequence[str] = DEFAULT_TAXONOMY
                 ) -> ReviewRequest | list[FieldError]:
    """The request in a decoded JSON body, or every problem with it (field and reason)."""
    if not isinstance(body, dict):
        return [FieldError("body", f"wrong type: expected a JSON object, got {json_type(body)}")]
    try:
        return ReviewRequest.model_validate(body, context={"action": action, "taxonomy": tuple(taxonomy)})
    except ValidationError as exc:
        return field_errors(exc)


TicketInput = Ticket | TicketResolution
"""What a `tickets.raw` record holds: a ticket to triage, or the helpdesk closing one."""


def ticket_input(doc: object, where: str = "") -> TicketInput:
    """A decoded `tickets.raw` document as a `Ticket`, or a `TicketResolution` (an object with `"status":
    "resolved"`): the one rule the HTTP ingest and the triage agent both apply. `where` prefixes error paths."""
    if not isinstance(doc, dict):
        raise InputError(f"wrong type: expected a ticket object, got {json_type(doc)}", "not_an_object",
                         where or "body")
    model: type[Ticket] | type[TicketResolution] = TicketResolution if doc.get("status") == "resolved" else Ticket
    try:
        return model.model_validate(doc)
    except ValidationError as exc:
        error = first_error(exc, where)
        raise InputError(error.reason, f"invalid_{model.__name__.lower()}", error.field,
                         f"not a {model.__name__}: {error.field}: {error.reason}") from None


def _loaded(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InputError(f"malformed JSON: {exc}", "malformed_json") from None


def parse_ticket_input(raw: bytes | None) -> TicketInput:
    """A `tickets.raw` value (one JSON object) as the triage agent reads it; `InputError` says why not."""
    return ticket_input(_loaded(raw or b""))


def parse_ticket_body(body: bytes) -> list[tuple[str, bytes, TicketInput]]:
    """(ticket id, record value, what it is) per ticket or resolution of an HTTP body: one object, or an array.

    A single object travels as the bytes received; array elements are re-encoded one by one (same JSON values,
    unknown fields kept), so each record is exactly what `parse_ticket_input` accepts. One bad element refuses
    the body with its place (`[2].created_at`).
    """
    data = _loaded(body)
    if isinstance(data, list):
        items = [ticket_input(item, f"[{i}]") for i, item in enumerate(data)]
        return [(item.ticket_id, orjson.dumps(doc), item) for item, doc in zip(items, data, strict=True)]
    item = ticket_input(data)  # an object, or refused as the agent refuses a record that is not one
    return [(item.ticket_id, body, item)]


def open_ticket(ticket: Ticket, classification: Classification, now: float,
                policy: RoutingPolicy = DEFAULT_ROUTING) -> TicketRecord:
    """A freshly triaged ticket: gated and, when confident, routed with its clock starting at `now`."""
    latest = triaged_ticket(ticket.ticket_id, classification, route(classification, policy), now=now)
    lang = (ticket.model_extra or {}).get("lang")
    return TicketRecord(
        ticket_id=ticket.ticket_id, text=ticket.text, lang=lang if isinstance(lang, str) else None,
        created_at=ticket.created_at, latest=latest, predicted_severity=classification.severity,
        predicted_taxonomy_code=classification.taxonomy_code, predicted_confidence=classification.confidence,
    )


def check_ticket(record: TicketRecord, now: float, policy: RoutingPolicy = DEFAULT_ROUTING
                 ) -> tuple[TicketRecord, EscalationReason] | None:
    """The record after an escalation when its SLA ran out before `now`, with the reason (`escalated` one tier
    up, or `at_top_tier`); None when nothing is due."""
    decision = check_sla(sla_state_of(record.latest), now, policy)
    if not decision.is_event:
        return None
    latest = escalated_ticket(record.latest, decision, now=now, policy=policy)
    return record.model_copy(update={"latest": latest}), decision.reason


def approve(record: TicketRecord, request: ReviewRequest, now: float,
            policy: RoutingPolicy = DEFAULT_ROUTING) -> TicketRecord:
    """Route a ticket held for review as triage classified it; only a ticket in `human_review` can be approved."""
    if record.latest.status != "human_review":
        raise Refused(f"ticket {record.ticket_id} is {record.latest.status}, not waiting for review")
    latest = record.latest
    return _routed_by(record, _review(record, "approve", request, now, latest.severity, latest.taxonomy_code),
                      f"approved by {request.who}: {latest.reason}", policy)


def override(record: TicketRecord, request: ReviewRequest, now: float,
             policy: RoutingPolicy = DEFAULT_ROUTING) -> TicketRecord:
    """Route a ticket with a person's severity and/or code: from review, or re-routing an open routed ticket."""
    if record.latest.status == "resolved":
        raise Refused(f"ticket {record.ticket_id} is resolved")
    latest = record.latest
    severity = request.severity or latest.severity
    code = request.taxonomy_code or latest.taxonomy_code
    changes = [f"{name} {old} -> {new}" for name, old, new in
               (("severity", latest.severity, severity), ("taxonomy", latest.taxonomy_code, code)) if old != new]
    reason = f"override by {request.who}: {', '.join(changes) or 'no change'}"
    return _routed_by(record, _review(record, "override", request, now, severity, code), reason, policy)


def _review(record: TicketRecord, action: ReviewAction, request: ReviewRequest, now: float,
            severity: TicketSeverity, code: str) -> Review:
    return Review(action=action, who=request.who, at=now, severity=severity, taxonomy_code=code,
                  note=request.note, predicted_severity=record.predicted_severity,
                  predicted_taxonomy_code=record.predicted_taxonomy_code,
                  predicted_confidence=record.predicted_confidence)


def _routed_by(record: TicketRecord, review: Review, reason: str, policy: RoutingPolicy) -> TicketRecord:
    """The record routed by a person's decision: tier from the severity, a fresh clock, confidence 1."""
    tier = policy.tier_for(review.severity)
    latest = record.latest.model_copy(update={
        "status": "routed", "severity": review.severity, "taxonomy_code": review.taxonomy_code,
        "confidence": 1.0, "reason": reason, "tier": tier, "sla_minutes": policy.sla_minutes(tier),
        "due_at": review.at + policy.sla_seconds(tier), "decided_at": review.at, "seq": record.latest.seq + 1,
    })
    return record.model_copy(update={"latest": latest, "reviews": (*record.reviews, review)})


def resolve(record: TicketRecord, who: str, now: float, note: str = "") -> TicketRecord | None:
    """Close the ticket and its clock; None when it is resolved already (a resolution sent twice)."""
    if record.latest.status == "resolved":
        return None
    reason = f"resolved by {who}" + (f": {note}" if note else "")
    latest = record.latest.model_copy(update={
        "status": "resolved", "due_at": None, "reason": reason, "decided_at": now, "seq": record.latest.seq + 1,
    })
    return record.model_copy(update={"latest": latest})


def purgeable(closed_at: float | None, now: float, retention_s: float) -> bool:
    """Whether a closed record has been kept for its retention and may leave the table."""
    return closed_at is not None and now - closed_at >= retention_s


def event_of(record: TicketRecord, *, review: Review | None = None) -> dict[str, Any]:
    """The `tickets.triaged` value for the record's latest event: a `TriagedTicket`, plus the review if any.

    `subject` tells ticket events from incident escalations on the same topic; consumers that validate the
    value as a `TriagedTicket` ignore both extra fields.
    """
    value: dict[str, Any] = {**record.latest.model_dump(mode="json"), "subject": "ticket"}
    if review is not None:
        value["review"] = review.model_dump(mode="json")
    return value


def label_of(record: TicketRecord) -> dict[str, Any]:
    """The labelled example a review makes, in the shape of `benchmarks/data/triage_eval.ndjson` (split `review`)."""
    if not record.reviews:
        raise ValueError(f"ticket {record.ticket_id} has no review")
    review = record.reviews[-1]
    return {
        "id": record.ticket_id, "text": record.text, "lang": record.lang or "unknown",
        "taxonomy_code": review.taxonomy_code, "severity": review.severity, "split": "review",
        "source": review.action, "who": review.who, "at": review.at,
        "predicted": {"severity": review.predicted_severity, "taxonomy_code": review.predicted_taxonomy_code,
                      "confidence": review.predicted_confidence},
    }
