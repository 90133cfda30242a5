"""SLA escalation as a pure function of a clock's state and `now` (epoch seconds, passed in by the caller).

Tickets and incidents share it: an incident's severity maps to a ticket severity (critical -> sev1,
warning -> sev2, info -> sev3) to start its clock, and acknowledging the incident closes it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from correlator.models import Severity, TicketSeverity, TriagedTicket
from correlator.triage.routing import DEFAULT_ROUTING, RoutingPolicy

__all__ = [
    "EscalationReason",
    "SlaState",
    "Escalation",
    "INCIDENT_TICKET_SEVERITY",
    "severity_of_incident",
    "start_sla",
    "check_sla",
    "sla_state_of",
    "escalated_ticket",
]

INCIDENT_TICKET_SEVERITY: dict[str, TicketSeverity] = {"critical": "sev1", "warning": "sev2", "info": "sev3"}
"""How an incident's alert severity maps onto the ticket severities that pick a tier."""


class EscalationReason(StrEnum):
    """The outcome of one SLA check; `escalated` and `at_top_tier` are events, the rest are not."""

    NOT_DUE = "not_due"
    ESCALATED = "escalated"
    AT_TOP_TIER = "at_top_tier"
    CLOSED = "closed"
    NOT_ROUTED = "not_routed"


@dataclass(frozen=True, slots=True, kw_only=True)
class SlaState:
    """One clock: the tier now responsible, when its SLA runs out, whether it still runs, breaches so far."""

    tier: str | None
    due_at: float | None
    open: bool = True
    breaches: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Escalation:
    """A check's decision: the reason, the state to keep afterwards, and for an event the tiers and breach time."""

    reason: EscalationReason
    state: SlaState
    from_tier: str | None = None
    to_tier: str | None = None
    breached_at: float | None = None

    @property
    def is_event(self) -> bool:
        """Whether this decision is published (on `tickets.triaged`, or as an incident escalation)."""
        return self.reason in (EscalationReason.ESCALATED, EscalationReason.AT_TOP_TIER)


def severity_of_incident(severity: Severity) -> TicketSeverity:
    """The ticket severity whose tier and SLA an incident of this severity gets."""
    return INCIDENT_TICKET_SEVERITY[severity]


def start_sla(severity: TicketSeverity, now: float, policy: RoutingPolicy = DEFAULT_ROUTING) -> SlaState:
    """A fresh clock for a routed ticket or an opened incident: its severity's tier, due one SLA after `now`."""
    tier = policy.tier_for(severity)
    return SlaState(tier=tier, due_at=now + policy.sla_seconds(tier))


def check_sla(state: SlaState, now: float, policy: RoutingPolicy = DEFAULT_ROUTING) -> Escalation:
    """Escalate an open clock that is past its deadline by one tier; otherwise say why not.

    The deadline itself is still within SLA: only `now > due_at` is a breach. A breach moves the clock one tier
    up and restarts it from the escalation, i.e. the next deadline is `now` plus the new tier's SLA. So each
    breach yields exactly one event: the returned state is due after `now`, and checking it again at the same
    `now` says `not_due`. A checker that was down long past several deadlines escalates one step, not a burst.
    At the top tier there is nowhere to go: the breach is reported as `at_top_tier`, the tier stays, and the
    clock restarts under the top tier's SLA, so an unanswered top-tier ticket is re-announced once per SLA.
    A closed clock (resolved ticket, acknowledged incident) and an unrouted one (human review) never escalate.
    """
    if not state.open:
        return Escalation(reason=EscalationReason.CLOSED, state=state)
    if state.tier is None or state.due_at is None:
        return Escalation(reason=EscalationReason.NOT_ROUTED, state=state)
    if now <= state.due_at:
        return Escalation(reason=EscalationReason.NOT_DUE, state=state)
    above = policy.tier_above(state.tier)
    to_tier = above if above is not None else state.tier
    after = replace(
        state, tier=to_tier, due_at=now + policy.sla_seconds(to_tier), breaches=state.breaches + 1
    )
    reason = EscalationReason.ESCALATED if above is not None else EscalationReason.AT_TOP_TIER
    return Escalation(reason=reason, state=after, from_tier=state.tier, to_tier=to_tier, breached_at=state.due_at)


def sla_state_of(ticket: TriagedTicket) -> SlaState:
    """The clock a `tickets.triaged` record implies: open while routed or escalated."""
    return SlaState(
        tier=ticket.tier,
        due_at=ticket.due_at,
        open=ticket.status in ("routed", "escalated"),
        breaches=ticket.escalations,
    )


def escalated_ticket(
    ticket: TriagedTicket, decision: Escalation, *, now: float, policy: RoutingPolicy = DEFAULT_ROUTING
) -> TriagedTicket:
    """The `tickets.triaged` event for an escalation decision (status `escalated`, next `seq`)."""
    if not decision.is_event or decision.to_tier is None:
        raise ValueError(f"{decision.reason} is not an escalation event")
    reason = f"{decision.reason}: {decision.from_tier} -> {decision.to_tier}, SLA ran out at {decision.breached_at}"
    return ticket.model_copy(
        update={
            "status": "escalated",
            "tier": decision.to_tier,
            "sla_minutes": policy.sla_minutes(decision.to_tier),
            "due_at": decision.state.due_at,
            "escalations": decision.state.breaches,
            "reason": reason,
            "decided_at": now,
            "seq": ticket.seq + 1,
        }
    )
