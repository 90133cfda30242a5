"""Unit tests of the notify stage's decisions (correlator/notify/): routes file, routing, payloads, noise
controls, silences and mutes, ordering and rate limits, the loop guard. Fixed clocks, no I/O."""

from __future__ import annotations

import json
from typing import Any

import pytest

from correlator.models import Alert
from correlator.notify import (
    Acknowledgement,
    Delivery,
    Escalation,
    NotifyConfig,
    NotifyFileError,
    NotifyPolicy,
    NotifyRecord,
    NotifyState,
    Silence,
    Step,
    Subject,
    labels_of,
    on_record,
    on_tick,
    parse_notify,
    routes_for,
    status_of,
    verify_signature,
)
from correlator.notify.payloads import SIGNATURE_HEADER, TIMESTAMP_HEADER
from correlator.notify.silences import (
    active_silences,
    expired,
    incident_mute,
)
from correlator.sources.screening import (
    MUTE_LABEL,
    is_own_incident_alert,
    mark_source_mute,
    source_mute,
    without_own_alerts,
)
from correlator.triage.incident_sla import (
    IncidentClock,
    escalation_event,
    incident_event_value,
)
from correlator.triage.sla import Escalation as SlaEscalation
from correlator.triage.sla import EscalationReason, SlaState

from .notifying import ISSUE_ROUTES, T0, assignment, cause, incident, routes
from .paths import ROOT

STAGE1 = NotifyPolicy(page_causes=False)


def fold(records: list[tuple[float, NotifyRecord | None]], config: NotifyConfig | None = None,
         silences: list[Silence] | None = None, policy: NotifyPolicy = STAGE1,
         state: NotifyState | None = None) -> tuple[NotifyState, list[Delivery], list[Step]]:
    """Apply records at their times (None: a timer tick); every delivery made, in order."""
    state = state if state is not None else NotifyState()
    config = config or routes()
    made: list[Delivery] = []
    steps: list[Step] = []
    for now, record in records:
        if record is None:
            step = on_tick(state, now, config, silences or [], policy)
        else:
            step = on_record(state, record, now, config, silences or [], policy)
        made += step.deliveries
        steps.append(step)
    return state, made, steps


def sent(deliveries: list[Delivery]) -> list[tuple[str, str, str]]:
    """(receiver, action, subject) of each delivery."""
    return [(d.receiver, d.action, d.subject_id) for d in deliveries]


# ---------------------------------------------------------------- the routes file


def test_the_issue_routes_file_parses() -> None:
    config = parse_notify(ISSUE_ROUTES)
    assert [r.name for r in config.receivers] == ["oncall", "chat", "hook", "am"]
    assert [r.type for r in config.receivers] == ["pagerduty", "slack", "webhook", "alertmanager"]
    assert config.routes[0].continue_ and not config.routes[1].continue_
    assert config.routes[2].match == {} and config.routes[2].match_re == {}


GROWN = """
defaults: {hold: {for: 1m, alerts: 5}, renotify: 2h}
link: "https://aiops.example/incidents/"
receivers:
  - {name: oncall, type: pagerduty, routing_key: K, timeout: 5s, retries: 3, rate_limit: {count: 10, per: 1m}}
  - {name: am, type: alertmanager, url: "http://am:9093", repost: 30s, labels: {team: sre}}
routes:
  - {match: {severity: critical}, receiver: oncall, hold: {for: 0s}, renotify: 0}
  - {receiver: am, escalations: false}
"""


def test_the_grown_shape_parses_with_durations() -> None:
    config = parse_notify(GROWN)
    oncall, am = config.receivers
    assert oncall.url == "https://events.pagerduty.com/v2/enqueue"  # PagerDuty's when no url is given
    assert (oncall.timeout, oncall.retries, oncall.rate_limit and oncall.rate_limit.per) == (5.0, 3, 60.0)
    assert am.type == "alertmanager" and am.repost == 30.0 and am.labels == {"team": "sre"}
    assert config.hold_of(config.routes[0]).for_s == 0.0 and config.renotify_of(config.routes[0]) == 0.0
    assert config.hold_of(config.routes[1]).for_s == 60.0 and config.renotify_of(config.routes[1]) == 7200.0


@pytest.mark.parametrize(("text", "expected"), [
    ("routes: [{receiver: x}]", "routes[0].receiver: unknown receiver 'x' (receivers: none)"),
    ("receivers: [{name: a, type: slack, url: u, tmeout: 3}]", "tmeout: unknown key (known here: name, timeout,"),
    ("routes: [{recever: x}]", "routes[0].recever: unknown key (known here: match, match_re, receiver, continue"),
    ("receivers: [{name: a, type: smoke}]", "does not match any of the expected tags: 'pagerduty'"),
    ("receivers: [{name: a, type: slack, url: u}]\nroutes: [{receiver: a, match_re: {s: '('}}]",
     "routes[0].match_re.s: not a regular expression"),
    ("receivers: [{name: a, type: slack, url: u}, {name: a, type: slack, url: v}]", "receiver names given twice: a"),
    ("receivers: [{name: a, type: slack, url: u, timeout: soon}]", "not a duration: 'soon'"),
    ("receivers: [{name: a, type: pagerduty}]", "routing_key: missing required field"),
    ("routes: [{receiver: a, hold: {for: 1m, alerst: 3}}]", "hold.alerst: unknown key (known here: for, alerts, "),
    ("receivers: [\n  - {name: a", "malformed YAML"),
    ("- a\n- b", "expected a mapping at the top, got list"),
    ("receivrs: []", "receivrs: unknown key (known here: receivers, routes, defaults, link, source)"),
])
def test_a_bad_file_is_one_line_naming_place_and_reason(text: str, expected: str) -> None:
    with pytest.raises(NotifyFileError) as caught:
        parse_notify(text)
    assert expected in str(caught.value)
    assert "\n" not in str(caught.value)


def test_an_empty_file_is_no_receivers() -> None:
    assert parse_notify("").receivers == [] and parse_notify("{}").routes == []


# ---------------------------------------------------------------- routing


def _subject(**fields: Any) -> Subject:
    return Subject(**{"id": "inc-1", "kind": "incident", "severity": "warning", "services": ["checkout"],
                      "scope": "cluster=prod", **fields})


@pytest.mark.parametrize(("fields", "receivers"), [
    ({"severity": "critical"}, ["oncall", "chat"]),           # continue: true goes on; first match of the rest
    ({"severity": "critical", "services": ["search"]}, ["oncall", "hook"]),
    ({"services": ["payments"]}, ["chat"]),                    # match_re, first match ends the walk
    ({"services": ["checkoutx"]}, ["hook"]),                   # match_re is anchored
    ({"services": ["search"]}, ["hook"]),                      # the default
    ({"kind": "cause", "services": ["auth", "payments"]}, ["chat"]),  # any of a cause's services
])
def test_routes_first_match_wins_continue_goes_on(fields: dict[str, Any], receivers: list[str]) -> None:
    taken = routes_for(routes(), labels_of(_subject(**fields)))
    assert [route.receiver for _, route in taken] == receivers


def test_labels_carry_scope_pairs_and_tier_on_escalation() -> None:
    labels = labels_of(_subject(scope="cluster=prod,env=eu", escalated_tier="L3"))
    assert labels["cluster"] == ("prod",) and labels["env"] == ("eu",) and labels["tier"] == ("L3",)


def test_escalation_passes_routes_that_refuse_escalations() -> None:
    config = parse_notify(GROWN)
    labels = labels_of(_subject())
    assert [r.receiver for _, r in routes_for(config, labels)] == ["am"]
    assert routes_for(config, labels, escalation=True) == []


# ---------------------------------------------------------------- payloads


def _bodies(deliveries: list[Delivery]) -> dict[tuple[str, str], Any]:
    return {(d.receiver, d.action): json.loads(d.body) for d in deliveries}


def test_pagerduty_trigger_ack_resolve_share_the_incident_id_as_dedup_key() -> None:
    config = routes(ISSUE_ROUTES.replace("match_re: {service: \"checkout|payments\"}", "match: {service: none}"))
    records: list[tuple[float, NotifyRecord | None]] = [
        (T0, incident(severity="critical", alerts=3, entities={"host": ["db1"]})),
        (T0 + 1, Acknowledgement(incident_id="inc-1", who="alice", at=T0 + 1)),
        (T0 + 2, incident(seq=2, status="resolved", severity="critical", alerts=3)),
    ]
    _, made, _ = fold(records, config)
    pd = [d for d in made if d.receiver == "oncall"]
    assert [d.action for d in pd] == ["trigger", "acknowledge", "resolve"]
    trigger, ack, resolve = (json.loads(d.body) for d in pd)
    assert {e["dedup_key"] for e in (trigger, ack, resolve)} == {"inc-1"}
    assert [e["event_action"] for e in (trigger, ack, resolve)] == ["trigger", "acknowledge", "resolve"]
    assert ack == {"routing_key": "R0UTINGKEY", "event_action": "acknowledge", "dedup_key": "inc-1"}
    payload = trigger["payload"]
    assert payload["summary"] == "checkout/5xx [cluster=prod]: 3 alerts, critical"
    assert (payload["severity"], payload["source"], payload["component"]) == ("critical", "db1", "checkout")
    assert (payload["group"], payload["class"], payload["timestamp"]) == ("cluster=prod", "5xx", "2026-05-28T20:26:40.000Z")
    details = payload["custom_details"]
    assert details["alert_count"] == 3 and details["services"] == ["checkout"]
    assert details["members_sample"] == ["fp0", "fp1", "fp2"]
    assert details["link"] == trigger["client_url"] == "http://localhost:6066/incidents/inc-1"


def test_a_cause_page_lists_its_children_and_why_they_were_grouped() -> None:
    records: list[tuple[float, NotifyRecord | None]] = [
        (T0, incident("inc-1", alerts=2)), (T0, incident("inc-2", service="payments", alerts=2)),
        (T0, assignment("inc-1")), (T0, assignment("inc-2")),
        (T0 + 1, cause(children=["inc-1", "inc-2"], services=["checkout", "payments"])),
    ]
    _, made, _ = fold(records, policy=NotifyPolicy())
    assert sent(made) == [("oncall", "trigger", "cause-1"), ("chat", "trigger", "cause-1")]
    details = _bodies(made)[("oncall", "trigger")]["payload"]["custom_details"]
    assert [c["incident_id"] for c in details["children"]] == ["inc-1", "inc-2"]
    assert details["children"][1]["why_grouped"] == "shares host=db1 with cause-1"
    assert details["children_total"] == 2 and details["kind"] == "cause"


def test_alertmanager_alert_is_labelled_reposted_and_ended() -> None:
    config = routes(ISSUE_ROUTES.replace("{receiver: hook}", "{receiver: am}"))
    records: list[tuple[float, NotifyRecord | None]] = [
        (T0, incident(service="search", scope="cluster=prod,env=eu", symptom="latency")),
        (T0 + 31, None),  # the hold (30 s by default) is over
        (T0 + 60, None), (T0 + 91, None),  # repost every 60 s
        (T0 + 100, incident(seq=2, status="resolved", service="search", scope="cluster=prod,env=eu",
                            symptom="latency")),
    ]
    _, made, _ = fold(records, config)
    assert [d.action for d in made] == ["trigger", "refresh", "resolve"]
    assert made[0].url == "http://127.0.0.1:9093/api/v2/alerts"
    first, _, last = (json.loads(d.body)[0] for d in made)
    assert first["labels"] == {"alertname": "CorrelatedIncident", "incident_id": "inc-1", "service": "search",
                               "severity": "warning", "scope": "cluster=prod,env=eu", "cluster": "prod",
                               "env": "eu", "kind": "incident"}
    assert first["endsAt"] == "2026-05-28T20:31:11.000Z"  # four reposts ahead of T0 + 31
    assert last["endsAt"] == "2026-05-28T20:28:20.000Z"  # the resolve time, T0 + 100
    assert is_own_incident_alert(first["labels"])  # and so it is not correlated again when it comes back


def test_webhook_is_signed_over_timestamp_and_body() -> None:
    config = routes(ISSUE_ROUTES.replace('receiver: hook}', 'receiver: hook, hold: {for: 0}}'))
    _, made, _ = fold([(T0, incident(service="search"))], config)
    (hook,) = made
    stamp, signature = hook.headers[TIMESTAMP_HEADER], hook.headers[SIGNATURE_HEADER]
    assert signature.startswith("sha256=") and stamp == f"{T0:.0f}"
    assert verify_signature("s3cret", stamp, hook.body, signature, now=T0 + 10)
    assert not verify_signature("wrong", stamp, hook.body, signature, now=T0 + 10)
    assert not verify_signature("s3cret", stamp, hook.body.replace("search", "evil"), signature, now=T0 + 10)
    assert not verify_signature("s3cret", stamp, hook.body, signature, now=T0 + 3600)  # a replay, much later
    body = json.loads(hook.body)
    assert (body["action"], body["incident_id"], body["services"]) == ("trigger", "inc-1", ["search"])


def test_slack_message_says_what_and_links() -> None:
    _, made, _ = fold([(T0, incident(severity="critical"))])
    text = _bodies(made)[("chat", "trigger")]["text"]
    assert text.startswith("*[FIRING]* checkout/5xx [cluster=prod]: 1 alerts, critical")
    assert "<http://localhost:6066/incidents/inc-1|inc-1>" in text


# ---------------------------------------------------------------- noise controls


HOLDS = ISSUE_ROUTES.replace("{receiver: hook}", "{receiver: hook, hold: {for: 60s, alerts: 5}}")


@pytest.mark.parametrize(("severity", "alerts", "tick", "pages"), [
    ("critical", 1, None, True),       # critical pages at once by default
    ("warning", 1, T0 + 59, False),    # held for the route's 60 s
    ("warning", 1, T0 + 60, True),     # ... and paged when they are over
    ("warning", 5, None, True),        # or at once when it reaches 5 alerts
    ("warning", 4, T0 + 30, False),
])
def test_hold_by_time_or_count(severity: str, alerts: int, tick: float | None, pages: bool) -> None:
    records: list[tuple[float, NotifyRecord | None]] = [(T0, incident(service="search", severity=severity,
                                                                      alerts=alerts))]
    if tick is not None:
        records.append((tick, None))
    _, made, _ = fold(records, routes(HOLDS))
    assert ("hook", "trigger", "inc-1") in sent(made) if pages else not [d for d in made if d.receiver == "hook"]


def test_a_flap_shorter_than_the_hold_never_pages() -> None:
    records: list[tuple[float, NotifyRecord | None]] = [
        (T0, incident(service="search")), (T0 + 20, incident(seq=2, status="resolved", service="search")),
        (T0 + 120, None)]
    state, made, steps = fold(records, routes(HOLDS))
    assert made == []
    assert steps[1].dropped == [("hook", "held_back")]
    assert status_of(state.subjects["inc-1"]) == "resolved"


def test_renotify_while_open_until_acknowledged() -> None:
    config = routes(ISSUE_ROUTES.replace("receiver: chat}", "receiver: chat, renotify: 10m}"))
    records: list[tuple[float, NotifyRecord | None]] = [
        (T0, incident(severity="critical")), (T0 + 599, None), (T0 + 600, None), (T0 + 1199, None),
        (T0 + 1200, None), (T0 + 1300, Acknowledgement(incident_id="inc-1", who="bob", at=T0 + 1300)),
        (T0 + 1800, None), (T0 + 5 * 3600, None)]
    _, made, _ = fold(records, config)
    chat = [d.action for d in made if d.receiver == "chat"]
    assert chat == ["trigger", "renotify", "renotify", "acknowledge"]
    oncall = [d.action for d in made if d.receiver == "oncall"]
    assert oncall == ["trigger", "acknowledge"]  # 4 h default renotify, but acknowledged before it came


def test_redelivered_events_change_nothing() -> None:
    first = incident(severity="critical")
    _, made, steps = fold([(T0, first), (T0 + 1, first), (T0 + 2, incident(seq=2, severity="critical",
                                                                          status="resolved")),
                           (T0 + 3, incident(seq=2, severity="critical", status="resolved"))])
    assert [d.action for d in made] == ["trigger", "trigger", "resolve", "resolve"]  # oncall and chat, once each
    assert steps[1].deliveries == [] and steps[3].deliveries == []


def test_stage_two_pages_the_cause_not_its_children() -> None:
    records: list[tuple[float, NotifyRecord | None]] = [
        (T0, incident("inc-1", severity="critical")), (T0 + 1, incident("inc-2", severity="critical")),
        (T0 + 2, assignment("inc-1")), (T0 + 2, assignment("inc-2")),
        (T0 + 3, cause(children=["inc-1", "inc-2"])), (T0 + 100, None),
        (T0 + 200, incident("inc-1", 2, status="resolved", severity="critical")),
        (T0 + 201, cause(seq=2, children=["inc-1", "inc-2"], status="resolved")),
    ]
    state, made, _ = fold(records, policy=NotifyPolicy())
    assert {d.subject_id for d in made} == {"cause-1"}
    assert [d.action for d in made if d.receiver == "oncall"] == ["trigger", "resolve"]
    assert status_of(state.subjects["inc-2"]) == "grouped"


def test_a_child_no_cause_names_pages_after_the_wait() -> None:
    policy = NotifyPolicy(cause_wait_s=30.0)
    records: list[tuple[float, NotifyRecord | None]] = [
        (T0, incident("inc-1", severity="critical")), (T0 + 29, None), (T0 + 30, None)]
    _, _, steps = fold(records, policy=policy)
    assert steps[1].deliveries == [] and ("oncall", "trigger", "inc-1") in sent(steps[2].deliveries)


def test_escalation_repages_the_cause_and_reaches_the_tier_route() -> None:
    text = ISSUE_ROUTES.replace("routes:", "routes:\n  - {match: {tier: L3}, receiver: am, continue: true}")
    clock = IncidentClock(incident_id="inc-1", key="k", service="checkout", symptom="5xx", severity="critical",
                          seq=1, opened_at=T0, tier="L3", due_at=T0 + 900, breaches=1)
    decision = SlaEscalation(state=SlaState(tier="L3", due_at=T0 + 1800, open=True, breaches=1), reason=EscalationReason.ESCALATED,
                             from_tier="L2", to_tier="L3", breached_at=T0 + 900)
    escalation = Escalation.from_value(incident_event_value(clock, escalation_event(clock, decision, T0 + 900)))
    assert escalation is not None and (escalation.incident_id, escalation.tier) == ("inc-1", "L3")
    records: list[tuple[float, NotifyRecord | None]] = [
        (T0, incident("inc-1", severity="critical")), (T0, assignment("inc-1")), (T0, cause(children=["inc-1"])),
        (T0 + 900, escalation)]
    _, _, steps = fold(records, routes(text), policy=NotifyPolicy())
    assert sent(steps[-1].deliveries) == [("oncall", "escalate", "cause-1"), ("chat", "escalate", "cause-1"),
                                          ("am", "trigger", "cause-1")]
    assert Escalation.from_value({"ticket_id": "t-1", "status": "escalated"}) is None  # a ticket's


# ---------------------------------------------------------------- silences and mutes


def _silence(*matchers: dict[str, Any], starts: float = T0 - 10, ends: float = T0 + 100) -> Silence:
    return Silence.model_validate({"id": "s1", "matchers": list(matchers), "startsAt": starts, "endsAt": ends,
                                   "createdBy": "alice", "comment": "maintenance"})


@pytest.mark.parametrize(("matchers", "silenced"), [
    ([{"name": "service", "value": "checkout"}], True),
    ([{"name": "service", "value": "check.*", "isRegex": True}], True),
    ([{"name": "service", "value": "check", "isRegex": True}], False),  # anchored
    ([{"name": "service", "value": "checkout", "isEqual": False}], False),
    ([{"name": "service", "value": "checkout"}, {"name": "cluster", "value": "dev"}], False),  # all must hold
    ([{"name": "cluster", "value": "prod"}, {"name": "severity", "value": "critical"}], True),
])
def test_silence_matchers(matchers: list[dict[str, Any]], silenced: bool) -> None:
    state, made, steps = fold([(T0, incident(severity="critical"))], silences=[_silence(*matchers)])
    assert (made == []) is silenced
    assert (status_of(state.subjects["inc-1"]) == "silenced") is silenced
    assert steps[0].silenced == ([("inc-1", "silence")] if silenced else [])


def test_a_silence_that_ends_lets_the_open_incident_page_and_resolves_are_sent() -> None:
    silence = _silence({"name": "service", "value": "checkout"}, ends=T0 + 100)
    records: list[tuple[float, NotifyRecord | None]] = [
        (T0, incident(severity="critical")), (T0 + 99, None), (T0 + 100, None),
        (T0 + 101, incident(seq=2, severity="critical", status="resolved"))]
    _, _, steps = fold(records, silences=[silence])
    assert steps[1].deliveries == []
    assert [d.action for d in steps[2].deliveries] == ["trigger", "trigger"]
    assert [d.action for d in steps[3].deliveries] == ["resolve", "resolve"]
    with pytest.raises(ValueError, match="endsAt must be after startsAt"):
        _silence({"name": "a", "value": "b"}, starts=T0, ends=T0)


def _alert(**extra: Any) -> Alert:
    return Alert(fingerprint="f", service="db", symptom="down", starts_at=T0, extra=extra)


@pytest.mark.parametrize(("extra", "mute", "mark"), [
    ({"status": {"state": "suppressed", "silencedBy": ["s1"], "inhibitedBy": []}}, "silenced", "silenced"),
    ({"status": {"state": "suppressed", "silencedBy": [], "inhibitedBy": ["i"]}}, "inhibited", "inhibited"),
    ({"status": {"state": "active", "silencedBy": [], "inhibitedBy": []}}, None, "none"),
    ({"maintenance": "1"}, "maintenance", "maintenance"),       # Zabbix media type parameter
    ({"maintenance": "0"}, None, "none"),
    ({"suppressed": "true"}, "maintenance", "maintenance"),
    ({}, None, None),                                            # a source that says nothing: unmarked
])
def test_source_mutes(extra: dict[str, Any], mute: str | None, mark: str | None) -> None:
    alert = _alert(**extra)
    assert source_mute(alert) == mute
    assert mark_source_mute(alert).labels.get(MUTE_LABEL) == mark


@pytest.mark.parametrize(("marks", "muted"), [
    (["silenced"], "silenced"), (["inhibited", "silenced"], "inhibited,silenced"), (["silenced", "none"], None),
    ([], None)])
def test_an_incident_is_muted_only_when_every_marked_member_is(marks: list[str], muted: str | None) -> None:
    assert incident_mute({MUTE_LABEL: marks} if marks else {}) == muted


def test_a_muted_incident_is_correlated_visible_and_not_paged() -> None:
    state, made, steps = fold([(T0, incident(severity="critical", entities={MUTE_LABEL: ["maintenance"]}))])
    assert made == [] and steps[0].silenced == [("inc-1", "source")]
    assert status_of(state.subjects["inc-1"]) == "silenced"


# ---------------------------------------------------------------- ordering and rate limits


LIMITED = ISSUE_ROUTES.replace('url: "http://127.0.0.1:9/slack"}',
                               'url: "http://127.0.0.1:9/slack", rate_limit: {count: 2, per: 60s}}')


def test_orders_grow_per_subject_and_a_resolve_follows_its_trigger() -> None:
    _, made, _ = fold([(T0, incident(severity="critical")), (T0 + 1, incident(seq=2, severity="critical",
                                                                              status="resolved"))])
    assert [d.order for d in made] == [1, 2, 3, 4]
    for receiver in ("oncall", "chat"):
        lane = [d for d in made if d.receiver == receiver]
        assert [d.action for d in lane] == ["trigger", "resolve"] and lane[0].order < lane[1].order


def test_rate_limit_queues_pages_in_order_and_drops_a_page_resolved_in_the_queue() -> None:
    records: list[tuple[float, NotifyRecord | None]] = [
        (T0, incident(f"inc-{i}", severity="warning", alerts=5, service="payments")) for i in range(4)]
    records += [(T0 + 1, incident("inc-3", 2, status="resolved", service="payments", alerts=5)),
                (T0 + 29, None), (T0 + 31, None)]
    state, made, steps = fold(records, routes(LIMITED.replace("receiver: chat}", "receiver: chat, hold: {for: 0}}")))
    assert sent(made[:2]) == [("chat", "trigger", "inc-0"), ("chat", "trigger", "inc-1")]
    assert steps[4].dropped == [("chat", "cancelled")]  # inc-3 resolved before its page left the queue
    assert steps[5].deliveries == []  # a token every 30 s
    assert sent(steps[6].deliveries) == [("chat", "trigger", "inc-2")]
    assert not state.queues["chat"]


def test_a_resolve_waits_behind_its_queued_renotify() -> None:
    config = routes(LIMITED.replace("receiver: chat}", "receiver: chat, renotify: 10s, hold: {for: 0}}"))
    records: list[tuple[float, NotifyRecord | None]] = [
        (T0, incident("inc-0", service="payments")), (T0, incident("inc-1", service="payments")),
        (T0 + 10, None),  # both due for a renotify: one token has come back (2 per 60 s), the other waits
        (T0 + 11, incident("inc-1", 2, status="resolved", service="payments")), (T0 + 60, None)]
    _, made, steps = fold(records, config)
    assert sent(steps[2].deliveries) == []  # the bucket refilled to 0.33 token only
    assert steps[3].deliveries == []  # the resolve of inc-1 waits behind its queued renotify
    actions = [(d.subject_id, d.action) for d in made]
    assert actions.index(("inc-1", "renotify")) < actions.index(("inc-1", "resolve"))


# ---------------------------------------------------------------- loop guard, state round trip


@pytest.mark.parametrize(("labels", "own"), [
    ({"alertname": "CorrelatedIncident", "incident_id": "inc-1"}, True),
    ({"alertname": "CorrelatedIncident"}, False),           # no incident named: someone else's alert
    ({"alertname": "HighLatency", "incident_id": "inc-1"}, False),
    ({}, False),
])
def test_loop_guard_recognises_its_own_incident_alerts(labels: dict[str, str], own: bool) -> None:
    assert is_own_incident_alert(labels) is own
    alerts = [Alert(fingerprint="a", service="s", symptom="x", starts_at=T0, labels=labels)]
    kept, dropped = without_own_alerts(alerts)
    assert (len(kept), dropped) == ((0, 1) if own else (1, 0))


def test_subjects_round_trip_through_json() -> None:
    state, _, _ = fold([(T0, incident(severity="critical"))])
    subject = state.subjects["inc-1"]
    again = Subject.from_dict(json.loads(json.dumps(subject.to_dict())))
    assert again == subject and again.targets["oncall"].phase == "sent"


def test_the_deploy_sample_parses_and_routes_as_its_comments_say() -> None:
    config = parse_notify((ROOT / "deploy" / "notify" / "notify.yaml").read_text())
    assert [r.type for r in config.receivers] == ["pagerduty", "slack", "webhook", "alertmanager"]
    critical = routes_for(config, labels_of(_subject(severity="critical", services=["payments"])))
    assert [route.receiver for _, route in critical] == ["oncall", "chat"]
    escalated = routes_for(config, labels_of(_subject(services=["search"], escalated_tier="L3")), escalation=True)
    assert [route.receiver for _, route in escalated] == ["oncall"]


def test_an_acknowledgement_before_the_hold_ends_means_no_page() -> None:
    records: list[tuple[float, NotifyRecord | None]] = [
        (T0, incident(service="search")), (T0 + 10, Acknowledgement(incident_id="inc-1", who="carol", at=T0 + 10)),
        (T0 + 60, None)]
    state, made, _ = fold(records)
    assert made == [] and state.subjects["inc-1"].acked_by == "carol"


def test_every_exported_name_exists() -> None:
    import importlib

    from correlator import notify
    for name in ("notify.config", "notify.models", "notify.payloads", "notify.ratelimit", "notify.retry",
                 "notify.routes", "notify.silences", "notify.state", "sources.screening"):
        module = importlib.import_module(f"correlator.{name}")
        assert all(hasattr(module, n) for n in module.__all__), name
    assert all(hasattr(notify, n) for n in notify.__all__) and len(set(notify.__all__)) == len(notify.__all__)


def test_silences_expire_on_their_own() -> None:
    early = _silence({"name": "service", "value": "a"}, starts=T0, ends=T0 + 60)
    late = early.model_copy(update={"id": "s2", "starts_at": T0 + 30, "ends_at": T0 + 600})
    assert [s.id for s in active_silences([early, late], T0 + 10)] == ["s1"]
    assert [s.id for s in active_silences([early, late], T0 + 60)] == ["s2"]  # ends_at is exclusive
    assert expired([early, late], T0 + 60) == ["s1"] and expired([early, late], T0 + 60, keep_s=3600) == []


def test_a_cause_page_names_children_this_worker_does_not_hold() -> None:
    records: list[tuple[float, NotifyRecord | None]] = [
        (T0, incident("inc-1", alerts=2)), (T0, assignment("inc-1")),
        (T0 + 1, cause(children=["inc-1", "inc-elsewhere"], services=["checkout", "auth"]))]
    _, made, _ = fold(records, policy=NotifyPolicy())
    details = _bodies(made)[("oncall", "trigger")]["payload"]["custom_details"]
    assert details["children"] == [
        {"incident_id": "inc-1", "service": "checkout", "symptom": "5xx", "alert_count": 2,
         "why_grouped": "shares host=db1 with cause-1"},
        {"incident_id": "inc-elsewhere"}]
    assert _bodies(made)[("chat", "trigger")]["text"].endswith("• inc-elsewhere")


@pytest.mark.parametrize(("starts", "ends", "error"), [
    ("2026-05-28T20:26:30Z", "2026-05-28T20:28:20Z", None),   # ISO 8601, as Alertmanager writes them
    (T0 - 10, T0 + 100, None),
    ("yesterday", T0, "invalid time 'yesterday'"),
    ("0001-01-01T00:00:00Z", T0, "a time is required"),
])
def test_silence_times_are_epoch_seconds_or_iso(starts: Any, ends: Any, error: str | None) -> None:
    body = {"id": "s1", "matchers": [{"name": "a", "value": "b"}], "startsAt": starts, "endsAt": ends,
            "createdBy": "alice"}
    if error is None:
        silence = Silence.model_validate(body)
        assert (silence.starts_at, silence.ends_at) == (T0 - 10, T0 + 100)
    else:
        with pytest.raises(ValueError, match=error):
            Silence.model_validate(body)


@pytest.mark.parametrize(("children", "muted", "pages"), [
    (["inc-1", "inc-2"], ["maintenance", "maintenance"], False),  # every child muted at its source
    (["inc-1", "inc-2"], ["maintenance", None], True),            # one is not: the cause pages
    (["inc-1", "inc-far"], ["maintenance"], True),                # one is not known here: page rather than guess
])
def test_a_cause_is_muted_at_the_source_only_when_every_child_is(children: list[str], muted: list[str | None],
                                                                 pages: bool) -> None:
    records: list[tuple[float, NotifyRecord | None]] = []
    for child, mute in zip(children, muted, strict=False):
        entities = {MUTE_LABEL: [mute]} if mute else {}
        records += [(T0, incident(child, severity="critical", entities=entities)), (T0, assignment(child))]
    records.append((T0 + 1, cause(children=children)))
    _, made, _ = fold(records, policy=NotifyPolicy())
    assert bool(made) is pages


def test_an_escalation_of_a_child_whose_cause_is_elsewhere_is_forwarded_to_it() -> None:
    here: list[tuple[float, NotifyRecord | None]] = [
        (T0, incident("inc-1", severity="critical")), (T0, assignment("inc-1", "cause-far")),
        (T0 + 900, Escalation(incident_id="inc-1", tier="L3", seq=1))]
    _, made, steps = fold(here, policy=NotifyPolicy())
    assert made == [] and steps[-1].forward == [Escalation(incident_id="cause-far", tier="L3", seq=1)]
    there: list[tuple[float, NotifyRecord | None]] = [
        (T0, cause("cause-far", children=["inc-1"])), (T0 + 900, steps[-1].forward[0])]
    _, made, _ = fold(there, policy=NotifyPolicy())
    assert sent(made) == [("oncall", "trigger", "cause-far"), ("chat", "trigger", "cause-far"),
                          ("oncall", "escalate", "cause-far"), ("chat", "escalate", "cause-far")]
