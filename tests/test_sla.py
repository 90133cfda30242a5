"""SLA escalation: at and around each boundary, once per breach, the top tier, closed and unrouted clocks."""

from __future__ import annotations

import pytest

from correlator.models import TriagedTicket
from correlator.triage import (
    EscalationReason,
    RoutingPolicy,
    SlaState,
    check_sla,
    escalated_ticket,
    severity_of_incident,
    sla_state_of,
    start_sla,
)

T0 = 1_700_000_000.0
MIN = 60.0

NOT_DUE = EscalationReason.NOT_DUE
ESCALATED = EscalationReason.ESCALATED
AT_TOP = EscalationReason.AT_TOP_TIER


BOUNDARIES = [
    # severity, seconds after T0, reason, tier after the check
    ("sev1", 15 * MIN - 1, NOT_DUE, "L3"),
    ("sev1", 15 * MIN, NOT_DUE, "L3"),
    ("sev1", 15 * MIN + 1, AT_TOP, "L3"),
    ("sev2", 60 * MIN - 1, NOT_DUE, "L2"),
    ("sev2", 60 * MIN, NOT_DUE, "L2"),
    ("sev2", 60 * MIN + 1, ESCALATED, "L3"),
    ("sev3", 240 * MIN - 1, NOT_DUE, "L1"),
    ("sev3", 240 * MIN, NOT_DUE, "L1"),
    ("sev3", 240 * MIN + 1, ESCALATED, "L2"),
    ("sev3", 0.0, NOT_DUE, "L1"),
]


@pytest.mark.parametrize(("severity", "after", "reason", "tier"), BOUNDARIES)
def test_each_sla_boundary(severity: str, after: float, reason: EscalationReason, tier: str) -> None:
    decision = check_sla(start_sla(severity, T0), T0 + after)  # type: ignore[arg-type]
    assert decision.reason is reason
    assert decision.state.tier == tier
    assert decision.is_event is (reason is not NOT_DUE)


def test_lab_sev2_waiting_90_minutes_escalates_l2_to_l3_once() -> None:
    state = start_sla("sev2", T0)
    events = []
    for minute in range(0, 91):  # a checker ticking every minute, as the SLA agent would
        decision = check_sla(state, T0 + minute * MIN)
        if decision.is_event:
            events.append((minute, decision))
        state = decision.state
    escalations = [(m, d) for m, d in events if d.reason is ESCALATED]
    assert [(m, d.from_tier, d.to_tier) for m, d in escalations] == [(61, "L2", "L3")]
    assert escalations[0][1].breached_at == T0 + 60 * MIN
    # The L3 clock restarted at minute 61 and its own 15 minutes ran out at 76: that is a second breach,
    # reported once as at_top_tier, not a second escalation.
    assert [(m, d.reason) for m, d in events] == [(61, ESCALATED), (77, AT_TOP)]


def test_lab_sev2_checked_first_at_90_minutes_escalates_once() -> None:
    first = check_sla(start_sla("sev2", T0), T0 + 90 * MIN)
    assert (first.reason, first.from_tier, first.to_tier) == (ESCALATED, "L2", "L3")
    again = check_sla(first.state, T0 + 90 * MIN)
    assert again.reason is NOT_DUE
    assert again.state == first.state


def test_the_next_deadline_restarts_from_the_escalation_under_the_new_tier() -> None:
    decision = check_sla(start_sla("sev3", T0), T0 + 300 * MIN)  # checked late: 60 min past the L1 SLA
    assert decision.state == SlaState(tier="L2", due_at=T0 + 300 * MIN + 60 * MIN, breaches=1)


CHAIN = [
    # minutes after T0 for a sev3 ticket nobody answers, reason, tier after, breaches after
    (240, NOT_DUE, "L1", 0),
    (241, ESCALATED, "L2", 1),  # next due 241 + 60 = 301
    (301, NOT_DUE, "L2", 1),
    (302, ESCALATED, "L3", 2),  # next due 302 + 15 = 317
    (317, NOT_DUE, "L3", 2),
    (318, AT_TOP, "L3", 3),  # next due 318 + 15 = 333
    (320, NOT_DUE, "L3", 3),
    (334, AT_TOP, "L3", 4),
]


def test_each_breach_escalates_once_up_to_the_top_and_then_reports_at_top_tier() -> None:
    state = start_sla("sev3", T0)
    for minute, reason, tier, breaches in CHAIN:
        decision = check_sla(state, T0 + minute * MIN)
        assert (minute, decision.reason, decision.state.tier, decision.state.breaches) == (
            minute, reason, tier, breaches)
        state = decision.state


def test_a_long_silence_escalates_one_step_not_a_burst() -> None:
    decision = check_sla(start_sla("sev3", T0), T0 + 24 * 60 * MIN)
    assert (decision.reason, decision.to_tier, decision.state.breaches) == (ESCALATED, "L2", 1)


@pytest.mark.parametrize(
    ("state", "reason"),
    [
        (SlaState(tier="L2", due_at=T0, open=False), EscalationReason.CLOSED),
        (SlaState(tier=None, due_at=None), EscalationReason.NOT_ROUTED),
        (SlaState(tier="L2", due_at=None), EscalationReason.NOT_ROUTED),
    ],
)
def test_closed_and_unrouted_clocks_never_escalate(state: SlaState, reason: EscalationReason) -> None:
    decision = check_sla(state, T0 + 10_000 * MIN)
    assert decision.reason is reason
    assert decision.state == state
    assert not decision.is_event


def test_a_custom_policy_with_four_tiers() -> None:
    policy = RoutingPolicy(
        tiers=("L1", "L2", "L3", "L4"),
        tier_of_severity=(("sev1", "L3"), ("sev2", "L2"), ("sev3", "L1")),
        sla_minutes_of_tier=(("L1", 240), ("L2", 60), ("L3", 15), ("L4", 5)),
    )
    decision = check_sla(start_sla("sev1", T0, policy), T0 + 16 * MIN, policy)
    assert (decision.reason, decision.to_tier, decision.state.due_at) == (ESCALATED, "L4", T0 + 21 * MIN)


@pytest.mark.parametrize(("alert_severity", "ticket_severity", "tier", "minutes"),
                         [("critical", "sev1", "L3", 15), ("warning", "sev2", "L2", 60), ("info", "sev3", "L1", 240)])
def test_incidents_use_the_same_clock(alert_severity: str, ticket_severity: str, tier: str, minutes: int) -> None:
    severity = severity_of_incident(alert_severity)  # type: ignore[arg-type]
    assert severity == ticket_severity
    state = start_sla(severity, T0)
    assert (state.tier, state.due_at) == (tier, T0 + minutes * MIN)
    assert check_sla(state, T0 + minutes * MIN + 1).is_event


def _routed(**overrides: object) -> TriagedTicket:
    fields: dict[str, object] = {
        "ticket_id": "T-7", "status": "routed", "severity": "sev2", "confidence": 0.8,
        "taxonomy_code": "network.dns", "tier": "L2", "sla_minutes": 60, "due_at": T0 + 60 * MIN, "decided_at": T0,
    }
    fields.update(overrides)
    return TriagedTicket.model_validate(fields)


def test_escalated_ticket_is_the_next_event_on_tickets_triaged() -> None:
    ticket = _routed()
    decision = check_sla(sla_state_of(ticket), T0 + 90 * MIN)
    event = escalated_ticket(ticket, decision, now=T0 + 90 * MIN)
    assert (event.status, event.tier, event.sla_minutes, event.seq, event.escalations) == ("escalated", "L3", 15, 2, 1)
    assert event.due_at == T0 + 105 * MIN
    assert event.decided_at == T0 + 90 * MIN
    assert event.reason.startswith("escalated: L2 -> L3")
    assert check_sla(sla_state_of(event), T0 + 90 * MIN).reason is NOT_DUE


@pytest.mark.parametrize("status", ["resolved", "human_review"])
def test_tickets_that_are_not_open_do_not_escalate(status: str) -> None:
    assert not check_sla(sla_state_of(_routed(status=status)), T0 + 1000 * MIN).is_event


def test_escalated_ticket_refuses_a_non_event() -> None:
    ticket = _routed()
    with pytest.raises(ValueError):
        escalated_ticket(ticket, check_sla(sla_state_of(ticket), T0), now=T0)
