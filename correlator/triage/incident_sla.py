"""SLA clocks of incidents: opened starts one, acknowledging or resolving stops it, a breach escalates. Pure.

An incident's alert severity picks a ticket severity (critical -> sev1, warning -> sev2, info -> sev3) and so a
tier and an SLA, exactly as for tickets (`correlator.triage.sla`). The clock starts at `now`, when the SLA agent
first sees the incident firing (the incident's own times are event time, which a replay sets in the past).

An escalation is published on `tickets.triaged`, not on `incidents`: `incidents` has one value shape
(`IncidentEvent`, with its own `seq`) that paging, stage 2 and `aiops tail` read strictly, while
`tickets.triaged` is already the stream of "who must act now, at which tier" that the response stage
follows. The event is a `TriagedTicket` keyed `incident:<id>`, with `subject: "incident"` and the incident's
identity beside it, so a consumer that handles only tickets can skip it by key or subject.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal, cast

from pydantic import BaseModel, ConfigDict

from correlator.models import IncidentFacts, Severity, TriagedTicket, max_severity
from correlator.triage.lifecycle import Refused
from correlator.triage.routing import DEFAULT_ROUTING, RoutingPolicy
from correlator.triage.sla import Escalation, EscalationReason, SlaState, check_sla, severity_of_incident, start_sla
from correlator.triage.taxonomy import UNKNOWN_CODE

__all__ = [
    "INCIDENT_KEY_PREFIX",
    "ClosedClock",
    "IncidentClock",
    "IncidentPhase",
    "acknowledge",
    "check_incident",
    "clock_purgeable",
    "closed_clock",
    "closed_purgeable",
    "escalation_event",
    "incident_event_value",
    "on_incident_event",
    "on_incident_events",
]

INCIDENT_KEY_PREFIX = "incident:"
"""Key (and `ticket_id`) of an incident's escalations on `tickets.triaged`: never a ticket id."""

IncidentPhase = Literal["open", "acknowledged", "resolved", "expired"]


class IncidentClock(BaseModel):
    """What the incident SLA table keeps per incident: identity, the last event applied, the clock, the ack."""

    model_config = ConfigDict(frozen=True)

    incident_id: str
    key: str
    service: str
    symptom: str
    severity: Severity
    seq: int
    phase: IncidentPhase = "open"
    opened_at: float
    tier: str
    due_at: float
    breaches: int = 0
    acked_by: str | None = None
    acked_at: float | None = None
    ack_note: str = ""
    closed_at: float | None = None
    closed_seen: float | None = None  # event time (last_seen) of the event that closed it

    @property
    def sla(self) -> SlaState:
        """The clock as `check_sla` reads it: running only while nobody has acknowledged or closed it."""
        return SlaState(tier=self.tier, due_at=self.due_at, open=self.phase == "open", breaches=self.breaches)


def on_incident_event(clock: IncidentClock | None, event: IncidentFacts, now: float,
                      policy: RoutingPolicy = DEFAULT_ROUTING, *, horizon: float = float("-inf")
                      ) -> IncidentClock | None:
    """The clock after an `incidents` event; None when it changes nothing.

    Nothing changes for a redelivered or older event (seq not above the last applied), for an incident first
    seen already finished, or for one with no clock whose latest alert is before `horizon` (the event-time
    retention's edge, see `clock_purgeable`: its clock may have been purged, and a new one would page for an
    incident long over). A resolved or expired incident stops the clock; an update that raises the severity
    to a higher tier moves the clock to that tier, never later than that tier's SLA after the clock started.
    """
    if clock is not None and event.seq <= clock.seq:
        return None
    if clock is None:
        return _opened(event, now, policy) if event.status == "firing" and event.last_seen >= horizon else None
    if event.status != "firing":
        closed_at = clock.closed_at if clock.closed_at is not None else now
        return clock.model_copy(update={"seq": event.seq, "phase": event.status, "closed_at": closed_at,
                                        "closed_seen": event.last_seen})
    return _raised(clock.model_copy(update={"seq": event.seq}), event.max_severity, policy)


def on_incident_events(clock: IncidentClock | None, events: Iterable[IncidentFacts], now: float,
                       policy: RoutingPolicy = DEFAULT_ROUTING, *, horizon: float = float("-inf")
                       ) -> IncidentClock | None:
    """The clock after one incident's events of a batch, in order: what `on_incident_event` gives applied to each
    in turn; None when none changes it.

    Most events of a running incident are updates that move only the clock's `seq` (no severity raise): those
    are folded into one copy at the end rather than a model copy each (issue 19, session 36).
    """
    changed = False
    seq: int | None = None  # a later seq the clock takes at the end (events that moved nothing else)
    for event in events:
        if clock is not None and event.status == "firing" and event.seq > (clock.seq if seq is None else seq) \
                and max_severity(clock.severity, event.max_severity) == clock.severity:
            seq = event.seq  # `_raised` would return the clock as it is, with this seq
            continue
        if clock is not None and seq is not None and event.seq <= seq:
            continue  # not above the last applied, as `on_incident_event` would say with the seq set
        after = on_incident_event(clock, event, now, policy, horizon=horizon)  # sets its own seq on a change
        if after is not None:
            clock, changed, seq = after, True, None
    if seq is not None:
        assert clock is not None
        return clock.model_copy(update={"seq": seq})
    return clock if changed else None


def _opened(event: IncidentFacts, now: float, policy: RoutingPolicy) -> IncidentClock:
    state = start_sla(severity_of_incident(event.max_severity), now, policy)
    assert state.tier is not None and state.due_at is not None
    return IncidentClock(incident_id=event.incident_id, key=event.key, service=event.service,
                         symptom=event.symptom, severity=event.max_severity, seq=event.seq, opened_at=now,
                         tier=state.tier, due_at=state.due_at)


def _raised(clock: IncidentClock, severity: Severity, policy: RoutingPolicy) -> IncidentClock:
    worst = cast(Severity, max_severity(clock.severity, severity))
    if worst == clock.severity:
        return clock
    tier = policy.tier_for(severity_of_incident(worst))
    if clock.phase != "open" or policy.tiers.index(tier) <= policy.tiers.index(clock.tier):
        return clock.model_copy(update={"severity": worst})
    due_at = min(clock.due_at, clock.opened_at + policy.sla_seconds(tier))
    return clock.model_copy(update={"severity": worst, "tier": tier, "due_at": due_at})


ClosedClock = tuple[float, float | None]
"""What deciding the purge of a closed clock needs: when it closed (wall clock) and its last event time."""


def closed_clock(clock: IncidentClock) -> ClosedClock | None:
    """The purge summary of a closed clock, which changes no more; None while the incident can still change
    (`closed_at` is set exactly when a resolved or expired event closes it)."""
    return None if clock.closed_at is None else (clock.closed_at, clock.closed_seen)


def clock_purgeable(clock: IncidentClock, now: float, horizon: float, retention_s: float) -> bool:
    """Whether a clock is closed and has been kept for its retention (see `closed_purgeable`)."""
    closed = closed_clock(clock)
    return closed is not None and closed_purgeable(closed, now, horizon, retention_s)


def closed_purgeable(closed: ClosedClock, now: float, horizon: float, retention_s: float) -> bool:
    """Whether a closed clock has been kept for its retention, in wall-clock time or in event time.

    Event time (`horizon` = the newest event time seen on the partition minus the retention) is what keeps the
    table bounded when event time runs faster than the wall clock: a catch-up from a backlog or a replay
    closes a day of incidents in minutes, and wall-clock retention alone would hold every one of them.
    """
    closed_at, closed_seen = closed
    return now - closed_at >= retention_s or (closed_seen is not None and closed_seen < horizon)


def acknowledge(clock: IncidentClock, who: str, now: float, note: str = "") -> IncidentClock:
    """Stop the clock on a person's acknowledgement; the first acknowledgement stands, a repeat changes nothing."""
    if clock.phase in ("resolved", "expired"):
        raise Refused(f"incident {clock.incident_id} is {clock.phase}")
    if clock.phase == "acknowledged":
        return clock
    return clock.model_copy(update={"phase": "acknowledged", "acked_by": who, "acked_at": now, "ack_note": note})


def check_incident(clock: IncidentClock, now: float, policy: RoutingPolicy = DEFAULT_ROUTING
                   ) -> tuple[IncidentClock, TriagedTicket, EscalationReason] | None:
    """The clock after an escalation, its event and the reason (`escalated` one tier up, or `at_top_tier`),
    when nobody acknowledged in time; None when nothing is due."""
    decision = check_sla(clock.sla, now, policy)
    if not decision.is_event or decision.state.tier is None or decision.state.due_at is None:
        return None
    after = clock.model_copy(update={"tier": decision.state.tier, "due_at": decision.state.due_at,
                                     "breaches": decision.state.breaches})
    return after, escalation_event(after, decision, now, policy), decision.reason


def escalation_event(clock: IncidentClock, decision: Escalation, now: float,
                     policy: RoutingPolicy = DEFAULT_ROUTING) -> TriagedTicket:
    """The `tickets.triaged` event of one incident escalation; `seq` counts the incident's escalations."""
    assert decision.to_tier is not None
    reason = (f"incident {clock.incident_id} ({clock.key}) not acknowledged: {decision.reason}: "
              f"{decision.from_tier} -> {decision.to_tier}, SLA ran out at {decision.breached_at}")
    return TriagedTicket(
        ticket_id=f"{INCIDENT_KEY_PREFIX}{clock.incident_id}", status="escalated",
        severity=severity_of_incident(clock.severity), confidence=1.0, taxonomy_code=UNKNOWN_CODE,
        tags=["incident", f"service:{clock.service}", f"symptom:{clock.symptom}"], reason=reason,
        tier=decision.to_tier, sla_minutes=policy.sla_minutes(decision.to_tier), due_at=decision.state.due_at,
        decided_at=now, seq=clock.breaches, escalations=clock.breaches,
    )


def incident_event_value(clock: IncidentClock, event: TriagedTicket) -> dict[str, Any]:
    """The wire value of an incident escalation: the `TriagedTicket`, `subject`, and the incident's identity."""
    return {**event.model_dump(mode="json"), "subject": "incident",
            "incident": {"incident_id": clock.incident_id, "key": clock.key, "service": clock.service,
                         "symptom": clock.symptom, "max_severity": clock.severity, "opened_at": clock.opened_at}}
