"""After triage, pure: review, resolution, ticket and incident SLA clocks, request bodies, raw ticket input."""

from __future__ import annotations

import random
from typing import Any

import orjson
import pytest

from correlator.models import IncidentEvent, Ticket
from correlator.triage import RoutingPolicy, RuleClassifier
from correlator.triage.incident_sla import (
    IncidentClock,
    acknowledge,
    check_incident,
    clock_purgeable,
    closed_clock,
    incident_event_value,
    on_incident_event,
    on_incident_events,
)
from correlator.triage.lifecycle import (
    FieldError,
    InputError,
    Refused,
    ReviewRequest,
    TicketRecord,
    TicketResolution,
    approve,
    check_ticket,
    event_of,
    label_of,
    open_ticket,
    override,
    parse_review,
    parse_ticket_input,
    purgeable,
    resolve,
)
from correlator.triage.sla import EscalationReason

T0 = 1_700_000_000.0
MIN = 60.0
DOWN = "The whole app is down, all users cannot log in!"
VAGUE = "Hmm, something just feels a bit off lately."
RULES = RuleClassifier()


def ticket(text: str, ticket_id: str = "T-1", **extra: Any) -> TicketRecord:
    return open_ticket(Ticket(ticket_id=ticket_id, text=text, created_at=T0, **extra), RULES.classify(text), T0)


def who(name: str = "alice", **fields: Any) -> ReviewRequest:
    return ReviewRequest(who=name, **fields)


# -- triage and the gate -------------------------------------------------------------------------------------

def test_the_lab_cases_open_routed_and_held() -> None:
    down, vague = ticket(DOWN), ticket(VAGUE, "T-2")
    assert (down.latest.status, down.latest.severity, down.latest.tier, down.latest.due_at) == (
        "routed", "sev1", "L3", T0 + 15 * MIN)
    assert (vague.latest.status, vague.latest.tier, vague.latest.due_at) == ("human_review", None, None)
    assert (vague.predicted_severity, vague.predicted_confidence) == ("sev3", 0.2)


def test_a_sub_minute_sla_counts_seconds_and_reports_whole_minutes() -> None:
    policy = RoutingPolicy(sla_minutes_of_tier=(("L1", 240), ("L2", 60), ("L3", 0.05)))
    record = open_ticket(Ticket(ticket_id="T", text=DOWN, created_at=T0), RULES.classify(DOWN), T0, policy)
    assert (record.latest.due_at, record.latest.sla_minutes) == (T0 + 3.0, 1)


# -- ticket clocks -------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("after", "escalates"), [(15 * MIN - 1, False), (15 * MIN, False), (15 * MIN + 1, True)])
def test_ticket_clock_boundary(after: float, escalates: bool) -> None:
    checked = check_ticket(ticket(DOWN), T0 + after)
    assert (checked is not None) is escalates


def test_a_sev2_ticket_after_90_minutes_escalates_l2_to_l3_once() -> None:
    record = ticket("DNS lookups are slow for several users at the branch office")
    assert (record.latest.severity, record.latest.tier) == ("sev2", "L2")
    checked = check_ticket(record, T0 + 90 * MIN)
    assert checked is not None
    escalated, reason = checked
    assert (escalated.latest.status, escalated.latest.tier, escalated.latest.seq, escalated.latest.escalations) == (
        "escalated", "L3", 2, 1)
    assert reason is EscalationReason.ESCALATED
    assert check_ticket(escalated, T0 + 90 * MIN) is None
    again = check_ticket(escalated, T0 + 106 * MIN)  # L3's 15 minutes ran out: nowhere higher to go
    assert again is not None and again[1] is EscalationReason.AT_TOP_TIER and again[0].latest.tier == "L3"


@pytest.mark.parametrize("text", [VAGUE])
def test_held_and_resolved_tickets_never_escalate(text: str) -> None:
    assert check_ticket(ticket(text), T0 + 10_000 * MIN) is None
    closed = resolve(ticket(DOWN), "helpdesk", T0 + MIN)
    assert closed is not None and check_ticket(closed, T0 + 10_000 * MIN) is None


def test_resolution_closes_once() -> None:
    closed = resolve(ticket(DOWN), "bob", T0 + MIN, "fixed")
    assert closed is not None
    assert (closed.latest.status, closed.latest.seq, closed.latest.due_at, closed.latest.reason) == (
        "resolved", 2, None, "resolved by bob: fixed")
    assert closed.closed_at == T0 + MIN
    assert resolve(closed, "bob", T0 + 2 * MIN) is None


@pytest.mark.parametrize(("closed_after", "now_after", "expected"), [
    (None, 10**6, False), (0.0, 3599.0, False), (0.0, 3600.0, True)])
def test_purgeable_after_retention(closed_after: float | None, now_after: float, expected: bool) -> None:
    closed_at = None if closed_after is None else T0 + closed_after
    assert purgeable(closed_at, T0 + now_after, 3600.0) is expected


# -- review ----------------------------------------------------------------------------------------------------

def test_approve_routes_the_held_ticket_as_triaged_with_who_and_when() -> None:
    routed = approve(ticket(VAGUE), who("alice"), T0 + 5 * MIN)
    latest = routed.latest
    assert (latest.status, latest.severity, latest.tier, latest.seq, latest.confidence) == ("routed", "sev3", "L1", 2, 1.0)
    assert (latest.decided_at, latest.due_at) == (T0 + 5 * MIN, T0 + 5 * MIN + 240 * MIN)
    [review] = routed.reviews
    assert (review.action, review.who, review.at) == ("approve", "alice", T0 + 5 * MIN)
    assert latest.reason.startswith("approved by alice")


def test_override_routes_with_the_new_severity_and_code() -> None:
    change = who("bob", severity="sev1", taxonomy_code="network.dns")
    routed = override(ticket(VAGUE), change, T0 + MIN)
    latest = routed.latest
    assert (latest.status, latest.severity, latest.taxonomy_code, latest.tier) == ("routed", "sev1", "network.dns", "L3")
    assert latest.reason == "override by bob: severity sev3 -> sev1, taxonomy unknown.uncategorized -> network.dns"
    label = label_of(routed)
    assert (label["taxonomy_code"], label["severity"], label["split"], label["source"], label["text"]) == (
        "network.dns", "sev1", "review", "override", VAGUE)
    assert label["predicted"] == {"severity": "sev3", "taxonomy_code": "unknown.uncategorized", "confidence": 0.2}


def test_override_keeps_what_it_does_not_name_and_may_reroute_a_routed_ticket() -> None:
    routed = override(ticket(DOWN), who(severity="sev3"), T0 + MIN)
    assert (routed.latest.severity, routed.latest.tier, routed.latest.taxonomy_code) == (
        "sev3", "L1", ticket(DOWN).latest.taxonomy_code)


@pytest.mark.parametrize("step", ["approve_routed", "approve_resolved", "override_resolved"])
def test_review_refuses_what_the_state_does_not_allow(step: str) -> None:
    record = ticket(DOWN)
    closed = resolve(record, "x", T0)
    assert closed is not None
    with pytest.raises(Refused):
        if step == "approve_routed":
            approve(record, who(), T0)
        elif step == "approve_resolved":
            approve(closed, who(), T0)
        else:
            override(closed, who(severity="sev1"), T0)


def test_events_carry_subject_and_review() -> None:
    routed = approve(ticket(VAGUE), who(), T0)
    value = event_of(routed, review=routed.reviews[-1])
    assert (value["subject"], value["review"]["who"], value["status"]) == ("ticket", "alice", "routed")
    assert "review" not in event_of(routed)


# -- request bodies --------------------------------------------------------------------------------------------

BODIES: list[tuple[Any, str, list[str]]] = [
    ({"who": "a", "severity": "sev1"}, "override", []),
    ({"who": "a", "taxonomy_code": "network.dns"}, "override", []),
    ({"who": "a"}, "approve", []),
    ({"who": "a", "note": "ok"}, "ack", []),
    ({}, "approve", ["who"]),
    ({"who": "   "}, "approve", ["who"]),
    ({"who": 7}, "approve", ["who"]),
    ({"who": "a"}, "override", ["body"]),
    ({"who": "a", "severity": "sev9"}, "override", ["severity"]),
    ({"who": "a", "taxonomy_code": "network.bogus"}, "override", ["taxonomy_code"]),
    ({"who": "a", "severity": "sev1"}, "approve", ["body"]),
    ({"who": "a", "sevrity": "sev1"}, "override", ["sevrity", "body"]),
    ([1, 2], "approve", ["body"]),
]


@pytest.mark.parametrize(("body", "action", "fields"), BODIES)
def test_request_bodies_name_the_field_and_reason(body: Any, action: str, fields: list[str]) -> None:
    parsed = parse_review(body, action)  # type: ignore[arg-type]
    if not fields:
        assert isinstance(parsed, ReviewRequest)
        return
    assert isinstance(parsed, list) and all(isinstance(e, FieldError) and e.reason for e in parsed)
    assert [e.field for e in parsed][:len(fields)] == fields[:len(parsed)]
    assert {e.field for e in parsed} <= set(fields)


# -- tickets.raw input -----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("raw", "kind"), [
    (b'{"ticket_id": "T", "text": "x", "created_at": 1}', Ticket),
    (b'{"ticket_id": "T", "status": "resolved", "who": "desk"}', TicketResolution),
])
def test_raw_input_is_a_ticket_or_a_resolution(raw: bytes, kind: type) -> None:
    assert isinstance(parse_ticket_input(raw), kind)


@pytest.mark.parametrize(("raw", "category"), [
    (b"{not json", "malformed_json"),
    (b"[1]", "not_an_object"),
    (b'{"ticket_id": "T", "text": "x"}', "invalid_ticket"),
    (b'{"status": "resolved"}', "invalid_ticketresolution"),
])
def test_bad_raw_input_names_its_category(raw: bytes, category: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_ticket_input(raw)
    assert caught.value.category == category


# -- incident clocks -------------------------------------------------------------------------------------------

def incident(kind: str = "opened", seq: int = 1, severity: str = "critical", status: str = "firing",
             incident_id: str = "inc-1", seen: float = T0) -> IncidentEvent:
    return IncidentEvent(kind=kind, incident_id=incident_id, seq=seq, key="web/Down", service="web",  # type: ignore[arg-type]
                         symptom="Down", status=status, first_seen=T0, last_seen=seen, window_start=T0,  # type: ignore[arg-type]
                         alert_count=1, distinct_fingerprints=1, firing_count=1, duplicates=0,
                         max_severity=severity, emitted_at=T0)  # type: ignore[arg-type]


def opened(severity: str = "critical") -> IncidentClock:
    clock = on_incident_event(None, incident(severity=severity), T0)
    assert clock is not None
    return clock


@pytest.mark.parametrize(("severity", "tier", "minutes"), [("critical", "L3", 15), ("warning", "L2", 60),
                                                           ("info", "L1", 240)])
def test_an_opened_incident_starts_its_severitys_clock(severity: str, tier: str, minutes: int) -> None:
    clock = opened(severity)
    assert (clock.tier, clock.due_at, clock.phase, clock.opened_at) == (tier, T0 + minutes * MIN, "open", T0)


def test_an_unacknowledged_incident_escalates_once_per_breach() -> None:
    clock = opened("warning")
    assert check_incident(clock, T0 + 60 * MIN) is None
    checked = check_incident(clock, T0 + 61 * MIN)
    assert checked is not None
    after, event, reason = checked
    assert (after.tier, after.breaches, event.ticket_id, event.status, event.tier, event.seq) == (
        "L3", 1, "incident:inc-1", "escalated", "L3", 1)
    assert reason is EscalationReason.ESCALATED
    assert check_incident(after, T0 + 61 * MIN) is None
    again = check_incident(after, T0 + 77 * MIN)
    assert again is not None and again[2] is EscalationReason.AT_TOP_TIER and again[0].tier == "L3"
    value = incident_event_value(after, event)
    assert (value["subject"], value["incident"]["incident_id"]) == ("incident", "inc-1")


def test_acknowledged_resolved_and_expired_incidents_do_not_escalate() -> None:
    acked = acknowledge(opened(), "carol", T0 + MIN, "on it")
    assert (acked.phase, acked.acked_by, acked.acked_at) == ("acknowledged", "carol", T0 + MIN)
    assert check_incident(acked, T0 + 1000 * MIN) is None
    assert acknowledge(acked, "dave", T0 + 2 * MIN) is acked  # the first acknowledgement stands
    for status in ("resolved", "expired"):
        closed = on_incident_event(opened(), incident("resolved", 2, status=status), T0 + MIN)
        assert closed is not None and (closed.phase, closed.closed_at) == (status, T0 + MIN)
        assert check_incident(closed, T0 + 1000 * MIN) is None
        with pytest.raises(Refused):
            acknowledge(closed, "carol", T0)


def test_stale_and_finished_events_change_nothing() -> None:
    clock = opened()
    assert on_incident_event(clock, incident("opened", 1), T0 + MIN) is None  # redelivered
    assert on_incident_event(None, incident("resolved", 3, status="resolved"), T0) is None


DAY = 24 * 3600.0


@pytest.mark.parametrize(("closed_seen_after", "wall_after", "horizon_after", "expected"), [
    (None, 0.0, -1e9, False),        # still open: never purged
    (0.0, DAY - 1, -1e9, False),     # closed, inside both retentions
    (0.0, DAY, -1e9, True),          # a day of wall-clock time
    (0.0, 1.0, 1.0, True),           # event time ran a day past it within a second (a replay, a catch-up)
    (0.0, 1.0, 0.0, False),          # exactly at the horizon: kept
])
def test_a_closed_clock_is_purged_by_wall_clock_or_by_event_time(
        closed_seen_after: float | None, wall_after: float, horizon_after: float, expected: bool) -> None:
    clock = opened()
    if closed_seen_after is not None:
        clock = on_incident_event(clock, incident("resolved", 2, status="resolved", seen=T0 + closed_seen_after),
                                  T0)
        assert clock is not None and clock.closed_seen == T0 + closed_seen_after
    assert clock_purgeable(clock, T0 + wall_after, T0 + horizon_after, DAY) is expected


def test_only_a_closed_clock_settles_into_its_purge_summary() -> None:
    clock = opened()
    assert closed_clock(clock) is None
    assert closed_clock(acknowledge(clock, "carol", T0 + 1)) is None  # acknowledged: it can still resolve
    closed = on_incident_event(clock, incident("resolved", 2, status="resolved", seen=T0 + 5), T0 + 9)
    assert closed is not None and closed_clock(closed) == (T0 + 9, T0 + 5)


def test_no_clock_starts_for_an_incident_older_than_the_horizon() -> None:
    # Its clock may already be purged; a redelivered "opened" must not page again for an incident long over.
    assert on_incident_event(None, incident(seen=T0 - 1), T0, horizon=T0) is None
    assert on_incident_event(None, incident(seen=T0), T0, horizon=T0) is not None


def test_a_severity_rise_moves_the_clock_up_never_later() -> None:
    clock = opened("info")  # L1, due T0 + 240 min
    raised = on_incident_event(clock, incident("updated", 2, severity="critical"), T0 + 5 * MIN)
    assert raised is not None
    assert (raised.severity, raised.tier, raised.due_at, raised.seq) == ("critical", "L3", T0 + 15 * MIN, 2)
    lowered = on_incident_event(raised, incident("updated", 3, severity="info"), T0 + 6 * MIN)
    assert lowered is not None and (lowered.severity, lowered.tier, lowered.due_at) == ("critical", "L3", T0 + 15 * MIN)


@pytest.mark.parametrize("policy", [RoutingPolicy(), RoutingPolicy(
    sla_minutes_of_tier=(("L1", 5.0), ("L2", 60.0), ("L3", 30.0)))])  # a higher tier with a longer SLA, too
def test_a_batch_of_an_incidents_events_moves_its_clock_as_each_event_in_turn(policy: RoutingPolicy) -> None:
    # `on_incident_events` folds a batch's seq-only updates into one copy: the clock it gives (or None for no
    # change) must be what `on_incident_event` gives applied to each event in turn, from any starting clock,
    # over redelivered, stale, raising, lowering, closing and late events.
    rng = random.Random(19)
    starts: list[IncidentClock | None] = [None, opened("info"), opened("warning"), opened(),
                                          acknowledge(opened("info"), "carol", T0 + MIN)]
    closed = on_incident_event(opened("warning"), incident("resolved", 2, status="resolved"), T0 + MIN)
    starts.append(closed)
    kinds = [("opened", "firing"), ("updated", "firing"), ("updated", "firing"), ("resolved", "resolved"),
             ("expired", "expired")]
    for _ in range(3000):
        start = rng.choice(starts)
        events = []
        for _ in range(rng.randint(1, 8)):
            kind, status = rng.choice(kinds)
            events.append(incident(kind, rng.randint(1, 9), rng.choice(["info", "warning", "critical"]), status,
                                   seen=T0 + rng.choice([-5.0, 0.0, 5.0])))
        horizon = rng.choice([float("-inf"), T0, T0 + 1])
        expected, changed = start, False
        for event in events:
            after = on_incident_event(expected, event, T0 + 2 * MIN, policy, horizon=horizon)
            if after is not None:
                expected, changed = after, True
        got = on_incident_events(start, events, T0 + 2 * MIN, policy, horizon=horizon)
        assert got == (expected if changed else None), (start, events)


def test_clock_survives_its_json_form() -> None:
    clock = acknowledge(opened(), "carol", T0 + MIN)
    assert IncidentClock.model_validate(orjson.loads(orjson.dumps(clock.model_dump(mode="json")))) == clock
    record = approve(ticket(VAGUE), who(), T0)
    assert TicketRecord.model_validate(orjson.loads(orjson.dumps(record.model_dump(mode="json")))) == record
