"""What the notify fold keeps and what it hands out: subjects, their per-receiver targets, deliveries.

A *subject* is what gets paged: a stage-1 incident, or a stage-2 cause (parent) when stage 2 groups. A *target*
is one receiver's view of one subject (held, sent, ...). A *delivery* is one HTTP request to make, fully built
(URL, headers, JSON body), with its place in the subject's order, so the deliverer needs nothing else.
Everything here round-trips through `to_dict`/`from_dict` (plain JSON values), for a changelog-backed table.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "Acknowledgement",
    "Action",
    "Delivery",
    "Handover",
    "Subject",
    "SubjectKind",
    "SubjectStatus",
    "Target",
    "TargetPhase",
]

Action = Literal["trigger", "acknowledge", "resolve", "renotify", "escalate", "refresh", "update"]
"""What a delivery says: open a page, acknowledge it, resolve it, repeat it, escalate it, (Alertmanager) re-post
an open incident's alert so that it does not time out, or update an open page with what it now stands for (an
incident's page that carries its cause: the cause's summary and children; never a new page)."""
SubjectKind = Literal["incident", "cause"]
SubjectStatus = Literal["firing", "resolved", "expired", "merged"]
TargetPhase = Literal["held", "queued", "sent", "closed"]
"""held: waiting for its hold (or a silence) to end; queued: the trigger waits for the receiver's rate limit;
sent: the trigger went out; closed: resolved, or ended before it was ever sent."""


@dataclass(slots=True)
class Target:
    """One receiver's view of one subject."""

    receiver: str
    route: int
    phase: TargetPhase = "held"
    since: float = 0.0
    sent_at: float | None = None
    last_refresh: float | None = None
    acked: bool = False


@dataclass(slots=True)
class Subject:
    """What the notify fold knows of one incident or cause."""

    id: str
    kind: SubjectKind
    seq: int = 0
    status: SubjectStatus = "firing"
    severity: str = "warning"
    services: list[str] = field(default_factory=list)
    symptom: str = ""
    scope: str = ""
    alert_count: int = 0
    firing_count: int = 0
    first_seen: float = 0.0
    last_seen: float = 0.0
    member_sample: list[str] = field(default_factory=list)
    hosts: list[str] = field(default_factory=list)
    reason: str = ""
    children: list[str] = field(default_factory=list)
    parent_id: str | None = None
    why: str = ""
    muted: str | None = None
    answered: bool = False
    """A cause: its first child's partition said whether that child paged alone (the handover, `state`)."""
    answers: list[str] = field(default_factory=list)
    """A cause: the children that answered whether their page is out (`NotifyPolicy.every_child_answers`)."""
    awaits: list[str] = field(default_factory=list)
    """A cause: causes merged into it whose answer it waits for too (named by their children's answers, `via`)."""
    carried_by: str | None = None
    """A cause whose page is its first child's: that child paged alone before the cause was announced."""
    cause_facts: dict[str, Any] | None = None
    """An incident whose page carries its cause: what that cause is (`state._cause_facts`), shown in its page."""
    shown: str = ""
    """A cause carried by a child's page: the facts last sent to that page (sent again only when they change)."""
    late: bool = False
    """An incident first seen when stage 2's progress already covered its first alert: it pages alone only once a
    progress names it placed (`NotifyPolicy.late_waits`)."""
    carries: str | None = None
    """An incident that paged alone and now carries its cause's page: it resolves when the cause does."""
    seen_at: float = 0.0
    closed_at: float | None = None
    order: int = 0
    acked_by: str | None = None
    escalated_tier: str | None = None
    silenced_by: list[str] = field(default_factory=list)
    mute_noted: bool = False
    targets: dict[str, Target] = field(default_factory=dict)
    key: str = ""
    """An incident: its correlation key, which names the stage-1 partition that holds it (a `Census`); "" for one
    loaded from a table written before it was kept: no census closes it."""
    emitted_at: float = 0.0
    """An incident: the event time stage 1 produced its last event read here at (a census older than it does not
    close it)."""

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values, for a table."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Subject:
        """The inverse of `to_dict`."""
        targets = {name: Target(**t) for name, t in data.get("targets", {}).items()}
        return cls(**{**data, "targets": targets})

    @property
    def open(self) -> bool:
        """Still firing."""
        return self.status == "firing"


class Delivery(BaseModel):
    """One HTTP request to a receiver, ready to send; `order` grows per subject so that none overtakes another."""

    model_config = ConfigDict(frozen=True)

    receiver: str
    receiver_type: str
    action: Action
    subject_id: str
    order: int = Field(ge=1)
    url: str
    body: str = Field(description="the JSON body, as sent (a webhook's signature covers these bytes)")
    headers: dict[str, str] = Field(default_factory=dict)
    timeout_s: float
    retries: int
    created_at: float = Field(description="the `now` of the step that made it: latency is measured from here")

    @property
    def lane(self) -> str:
        """Deliveries of one lane go out one at a time, in `order`: one subject at one receiver."""
        return f"{self.receiver}/{self.subject_id}"


class Acknowledgement(BaseModel):
    """A person acknowledged an incident (POST /incidents/{id}/ack): PagerDuty is told, re-notifying stops."""

    model_config = ConfigDict(frozen=True)

    incident_id: str
    who: str
    at: float
    note: str = ""


class Handover(BaseModel):
    """Between the partitions of a cause and of its first child, when causes of one incident are not published
    (`state`): the child's `answer` (whether it paged alone, its page then carrying the cause), and the cause's
    `closed` (the child's page, carrying it, may resolve), and the cause's `update` (what the carrying page now
    stands for: `NotifyPolicy.update_carried`)."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["answer", "closed", "update"]
    cause_id: str
    child_id: str
    carried: bool = False
    facts: dict[str, Any] | None = None
    """`update`: what the cause now is, for the page that carries it (`Subject.cause_facts`)."""
    via: str | None = None
    """`answer` of a child that moved here with a merged cause: that cause, whose answer the cause waits for too."""
    at: float

    @property
    def incident_id(self) -> str:
        """Whom it is for (the key it travels by): the cause for an answer, the child for `closed`."""
        return self.cause_id if self.kind == "answer" else self.child_id
