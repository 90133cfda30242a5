"""Hourly aggregates of what the stream decided: the analytics store's documents, and how events fold into them.

One `HourAggregate` per hour and partition holds counts, not records: alerts in, duplicates, incidents opened,
resolved and expired, times to acknowledge and to resolve, SLA breaches and escalations, tickets by taxonomy code,
tag, severity and route, approvals and overrides; each count also split by dimension (service, scope, symptom
for incidents; taxonomy, tag, severity, route for tickets) in `by`.

Attribution, written once here:
- an incident's alerts, duplicates, resolution, time to resolve (event time, `last_seen - first_seen`) and time
  to acknowledge count in the hour it *opened* (`first_seen`, event time): "of the incidents opened this week,
  how many alerts, how many resolved, how fast". Alerts arrive as cumulative counts on each event; the hour keeps
  the counts folded so far of its incidents still open (`open`) and adds the difference, so an update counts
  only what is new and a re-sent event (same `seq`) nothing;
- ticket decisions and SLA breaches (of tickets and of incidents) count in the hour they were decided
  (`decided_at`), as they arrive on `tickets.triaged`.

Pure: times come in the events; `expired` takes the horizon the caller computed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from correlator.eventtime import epoch_problem
from correlator.models import IncidentFacts, TriagedTicket

__all__ = [
    "HOUR_S",
    "LONGEST_KEPT",
    "Duration",
    "HourAggregate",
    "IncidentFacts",
    "LongIncident",
    "NotCountable",
    "TicketFact",
    "add_into",
    "expired",
    "fold_ack",
    "fold_incident",
    "fold_incidents",
    "fold_ticket",
    "hour_of",
    "longest",
    "merge",
    "read_hours",
    "ticket_fact",
]

HOUR_S = 3600
LONGEST_KEPT = 5
"""Longest incidents an hour keeps (by time to resolve), for the weekly summary's list."""


NOT_BLOCKERS = ("lang:",)
"""Tag prefixes left out of the tag split: the language a ticket is written in recurs, but blocks nothing."""


def hour_of(t: float) -> int:
    """Start of the UTC hour `t` (epoch seconds) falls in."""
    return int(t // HOUR_S) * HOUR_S


class Duration(BaseModel):
    """Count, sum and maximum of a duration in seconds: enough for a mean and a worst case, mergeable."""

    count: int = 0
    total_s: float = 0.0
    max_s: float = 0.0

    def add(self, seconds: float) -> Duration:
        """This duration with one more sample."""
        return Duration(count=self.count + 1, total_s=self.total_s + seconds, max_s=max(self.max_s, seconds))

    def plus(self, other: Duration) -> Duration:
        """Both together."""
        return Duration(count=self.count + other.count, total_s=self.total_s + other.total_s,
                        max_s=max(self.max_s, other.max_s))

    @property
    def mean_s(self) -> float | None:
        """Mean seconds, or None without samples."""
        return self.total_s / self.count if self.count else None


class LongIncident(BaseModel):
    """One resolved incident among the longest of its hour."""

    model_config = ConfigDict(frozen=True)

    incident_id: str
    key: str
    service: str
    duration_s: float
    alerts: int


class HourAggregate(BaseModel):
    """What one partition saw in one hour, as counts; the document of the analytics table.

    `through` is the offset of the last input record folded into this document: records of one partition are
    folded in offset order, so a redelivered record (offset not above it) is already counted here.
    """

    hour: int = Field(description="start of the hour, epoch seconds (UTC)")
    through: int = -1
    counts: dict[str, int] = Field(default_factory=dict)
    by: dict[str, dict[str, int]] = Field(default_factory=dict, description='"<count>|<dimension>" -> value -> n')
    times: dict[str, Duration] = Field(default_factory=dict, description="ack, resolve -> durations")
    open: dict[str, list[int]] = Field(default_factory=dict, description="incident id -> [alerts, duplicates, "
                                       "seq] folded so far, while it is open: what the next event adds to")
    longest: list[LongIncident] = Field(default_factory=list)

    def bump(self, count: str, n: int = 1, dims: Iterable[tuple[str, str]] = ()) -> None:
        """Add `n` to a count and to its split by each (dimension, value) given (a dimension may repeat: a
        ticket with two tags counts under both)."""
        if n == 0:
            return
        self.counts[count] = self.counts.get(count, 0) + n
        for dimension, value in dims:
            split = self.by.setdefault(f"{count}|{dimension}", {})
            split[value] = split.get(value, 0) + n

    def time(self, name: str, seconds: float) -> None:
        """Add one duration sample."""
        self.times[name] = self.times.get(name, Duration()).add(max(0.0, seconds))

    def copied(self) -> HourAggregate:
        """A copy to change while the stored one stays as written (cheaper than a deep copy: its Durations and
        LongIncidents are replaced, never changed, so only the containers are new)."""
        return HourAggregate.model_construct(
            hour=self.hour, through=self.through, counts=dict(self.counts),
            by={name: dict(split) for name, split in self.by.items()}, times=dict(self.times),
            open={incident: list(held) for incident, held in self.open.items()}, longest=list(self.longest))

    def split(self, count: str, dimension: str) -> dict[str, int]:
        """A count split by one dimension (empty when never split)."""
        return self.by.get(f"{count}|{dimension}", {})


def _incident_dims(event: IncidentFacts) -> tuple[tuple[str, str], ...]:
    return ("service", event.service), ("symptom", event.symptom), ("scope", event.scope or "-")


def fold_incident(agg: HourAggregate, event: IncidentFacts) -> bool:
    """Fold a stage-1 incident event into the aggregate of the hour it opened in; whether it changed anything.

    An incident not held open here counts as opened on its `opened` event only; any other event of an incident
    not held (its opening hour purged, a duplicate of its last event) changes nothing, so no count is made twice.
    """
    held = agg.open.get(event.incident_id)
    if held is None and event.kind != "opened":
        return False
    if held is not None and event.seq <= held[2]:
        return False  # the same event again (a stage re-publishing after a crash): counted once
    dims = _incident_dims(event)
    if held is None:
        held = [0, 0, 0]
        agg.bump("incidents_opened", dims=dims)
        agg.bump(f"opened_{event.max_severity}")
    service = (("service", event.service),)
    agg.bump("alerts", event.alert_count - held[0], dims)
    agg.bump("duplicates", event.duplicates - held[1], service)
    if event.status == "firing":
        agg.open[event.incident_id] = [event.alert_count, event.duplicates, event.seq]
        return True
    del agg.open[event.incident_id]
    if event.status == "expired":
        agg.bump("incidents_expired", dims=service)
        return True
    duration = event.last_seen - event.first_seen
    agg.bump("incidents_resolved", dims=service)
    agg.time("resolve", duration)
    long = LongIncident(incident_id=event.incident_id, key=event.key, service=event.service,
                        duration_s=duration, alerts=event.alert_count)
    agg.longest = longest([*agg.longest, long])
    return True


def fold_incidents(agg: HourAggregate, events: Iterable[IncidentFacts]) -> None:
    """`fold_incident` of each event in turn, with each incident's run of plain updates folded as its last.

    A plain update (firing, of an incident held open, newer than what was folded, its counts not below the last,
    the same service, symptom and scope) adds the difference to the counts its predecessor reached, so a run of
    them adds what its last adds alone: only the last is folded (issue 19, session 36). Every figure is what
    folding each event gives; a count a run makes may first appear in `counts` or `by` later (key order only).
    """
    pending: dict[str, IncidentFacts] = {}
    """Per incident, the last plain update not folded yet."""
    for event in events:
        incident_id = event.incident_id
        last = pending.get(incident_id)
        held = agg.open.get(incident_id)
        if held is not None and event.status == "firing" and _follows(event, held, last):
            pending[incident_id] = event
            continue
        if last is not None:
            fold_incident(agg, pending.pop(incident_id))
        fold_incident(agg, event)
    for event in pending.values():
        fold_incident(agg, event)


def _follows(event: IncidentFacts, held: list[int], last: IncidentFacts | None) -> bool:
    """Whether `event` adds to the counts `last` (or what is held, without one) reached, never below them."""
    if last is None:
        return event.seq > held[2] and event.alert_count >= held[0] and event.duplicates >= held[1]
    return (event.seq > last.seq and event.alert_count >= last.alert_count and event.duplicates >= last.duplicates
            and event.service == last.service and event.symptom == last.symptom and event.scope == last.scope)


def longest(incidents: Iterable[LongIncident], n: int = LONGEST_KEPT) -> list[LongIncident]:
    """The `n` longest, longest first (ties by id, so the order is deterministic)."""
    return sorted(incidents, key=lambda i: (-i.duration_s, i.incident_id))[:n]


def fold_ack(agg: HourAggregate, seconds: float, service: str) -> None:
    """An acknowledgement `seconds` after the incident's clock started, in the hour the incident opened."""
    agg.bump("acks", dims=(("service", service),))
    agg.time("ack", seconds)


class NotCountable(ValueError):
    """A `tickets.triaged` value that is a decision but cannot be put in an hour (its time is not epoch seconds)."""

    category = "invalid_triaged_ticket"


class TicketFact(BaseModel):
    """What one `tickets.triaged` event means for the aggregates: which counts it adds to, split how."""

    model_config = ConfigDict(frozen=True)

    decided_at: float
    counts: tuple[tuple[str, tuple[tuple[str, str], ...]], ...]
    """(count, ((dimension, value), ...)) pairs: e.g. ("tickets", (("taxonomy", "network.dns"), ...))."""


def ticket_fact(value: Mapping[str, Any]) -> TicketFact:
    """The counts one `tickets.triaged` value adds to (raises ValidationError for a value that is not one).

    A ticket counts in once, on its first decision (seq 1): by taxonomy code, tags (not `lang:`), severity and
    route (its tier, or `review`). A review adds an approval or an override (split by the code decided and the one predicted);
    an escalation is an SLA breach, of a ticket or of an incident (`subject`), and an escalation proper when it
    moved a tier (`at_top_tier` breaches do not); a resolution closes a ticket.
    """
    ticket = TriagedTicket.model_validate(value)
    problem = epoch_problem(ticket.decided_at)
    if problem is not None:  # 1e300 would make an hour no changelog can hold, and stall the stage on it
        raise NotCountable(f"decided_at: {problem}")
    incident = value.get("subject") == "incident"
    tier = ticket.tier or "review"
    out: list[tuple[str, tuple[tuple[str, str], ...]]] = []
    if ticket.status == "escalated":
        subject = "incident" if incident else "ticket"
        dims: tuple[tuple[str, str], ...] = (("tier", tier), ("severity", ticket.severity))
        if incident:
            dims += (("service", str((value.get("incident") or {}).get("service", "-"))),)
        out.append((f"{subject}_breaches", dims))
        if "at_top_tier" not in ticket.reason:
            out.append((f"{subject}_escalations", dims))
    elif ticket.status == "resolved":
        out.append(("tickets_resolved", (("severity", ticket.severity),)))
    review = value.get("review")
    if isinstance(review, dict) and review.get("action") in ("approve", "override"):
        predicted = str(review.get("predicted_taxonomy_code", ""))
        out.append((f"{review['action']}s", (("taxonomy", ticket.taxonomy_code), ("predicted", predicted))))
    elif ticket.seq == 1 and ticket.status in ("routed", "human_review"):
        tags = tuple(("tag", t) for t in ticket.tags if not t.startswith(NOT_BLOCKERS))
        out.append(("tickets", (("taxonomy", ticket.taxonomy_code), ("severity", ticket.severity), ("route", tier),
                                *tags)))
        if ticket.status == "human_review":
            out.append(("tickets_review", (("taxonomy", ticket.taxonomy_code),)))
    return TicketFact(decided_at=ticket.decided_at, counts=tuple(out))


def fold_ticket(agg: HourAggregate, fact: TicketFact) -> None:
    """Add a ticket fact's counts (its tags split one by one: a ticket with two tags counts under both)."""
    for count, dims in fact.counts:
        agg.bump(count, dims=dims)


def expired(hour: int, horizon: float) -> bool:
    """Whether an hour's aggregate is past retention: it ended before `horizon` (the caller's newest time minus
    the retention, in event time or wall-clock time)."""
    return hour + HOUR_S <= horizon


def read_hours(doc: Any) -> list[HourAggregate]:
    """The hours of a `GET /insight/hours` answer (ValidationError if it is not one)."""
    return [HourAggregate.model_validate(h) for h in doc["hours"]]


def merge(aggs: Iterable[HourAggregate]) -> dict[int, HourAggregate]:
    """Aggregates of the same hour (from several partitions or workers) added together, by hour; the per-incident
    bookkeeping (`open`, `through`) is left out: a merged aggregate is for reading."""
    merged: dict[int, HourAggregate] = {}
    for agg in aggs:
        into = merged.setdefault(agg.hour, HourAggregate(hour=agg.hour))
        add_into(into, agg)
    return merged


def add_into(into: HourAggregate, agg: HourAggregate) -> None:
    """Add `agg`'s counts, splits, durations and longest incidents into `into`."""
    for count, n in agg.counts.items():
        into.counts[count] = into.counts.get(count, 0) + n
    for name, split in agg.by.items():
        target = into.by.setdefault(name, {})
        for value, n in split.items():
            target[value] = target.get(value, 0) + n
    for name, duration in agg.times.items():
        into.times[name] = into.times.get(name, Duration()).plus(duration)
    into.longest = longest([*into.longest, *agg.longest])
