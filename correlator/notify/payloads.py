"""Request bodies for each receiver type, built from a subject: pure functions of data and `now`.

* PagerDuty Events API v2: `trigger` (payload summary, severity, source, component, group, class, custom details),
  `acknowledge`, `resolve`; `dedup_key` is the subject's id, so PagerDuty itself absorbs a re-delivery. A
  re-notify or an escalation is a `trigger` again with the same key: PagerDuty adds it to the open alert's log.
* Alertmanager API v2 (`POST /api/v2/alerts`): one alert per subject, `alertname="CorrelatedIncident"`,
  `incident_id`, service, scope (and each scope label), severity; `endsAt` four repost intervals ahead while
  open (as Prometheus does), the resolve time once resolved.
* Webhook: the notification as JSON, signed: `X-Aiops-Signature: sha256=<hex>` is HMAC-SHA256 with the
  receiver's secret over `<X-Aiops-Timestamp>.<body>` (the timestamp is signed so that a captured request
  cannot be replayed later; `verify_signature` is the receiver's check).
* Slack incoming webhook: `{"text": ...}` with the same facts as the page.

An incident's page that carries its cause (`state`, the handover) says what the cause is: its summary first, then
what paged (`carried_summary`), and the cause's facts under `cause`; an `update` is sent to each open receiver
when that starts and when the cause changes (PagerDuty: a trigger with the same dedup key, added to the open
alert's log; Alertmanager: the alert re-posted, its annotations replaced; Slack and webhooks: a message).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

import orjson

from correlator.keys import scope_pairs
from correlator.notify.config import (
    AlertmanagerReceiver,
    NotifyConfig,
    PagerDutyReceiver,
    SlackReceiver,
    WebhookReceiver,
)
from correlator.notify.models import Action, Subject
from correlator.sources.screening import INCIDENT_ALERTNAME, INCIDENT_ID_LABEL

__all__ = [
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "Request",
    "alertmanager_alert",
    "build_request",
    "carried_summary",
    "iso",
    "notice",
    "pagerduty_event",
    "sign",
    "slack_message",
    "summary_of",
    "verify_signature",
]

SIGNATURE_HEADER: Final = "X-Aiops-Signature"
TIMESTAMP_HEADER: Final = "X-Aiops-Timestamp"
SUMMARY_MAX: Final = 1024  # PagerDuty truncates a longer summary; we cut it ourselves, readably
SAMPLE_MAX: Final = 10
_PD_SEVERITY: Final = {"critical": "critical", "warning": "warning", "info": "info"}
_JSON: Final = {"Content-Type": "application/json"}

Request = tuple[str, dict[str, str], str]
"""(url, headers, body) of one delivery."""


def iso(seconds: float) -> str:
    """RFC 3339 in UTC with milliseconds, as PagerDuty and Alertmanager read it."""
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def summary_of(subject: Subject) -> str:
    """One line: what, where, how much (`checkout/5xx [cluster=a]: 12 alerts, critical`), at most 1024 chars."""
    what = "/".join(p for p in (",".join(subject.services[:3]) or "unknown", subject.symptom) if p)
    if subject.kind == "cause":
        what = f"cause across {', '.join(subject.services[:5]) or 'unknown'}"
        if len(subject.services) > 5:
            what += f" and {len(subject.services) - 5} more"
    scope = f" [{subject.scope}]" if subject.scope else ""
    children = f", {len(subject.children)} incidents" if subject.kind == "cause" else ""
    line = f"{what}{scope}: {subject.alert_count} alerts{children}, {subject.severity}"
    return line if len(line) <= SUMMARY_MAX else line[:SUMMARY_MAX - 1] + "…"


def carried_summary(cause: Mapping[str, Any], own: str) -> str:
    """The summary of an incident's page that carries its cause: the cause's, then what paged first."""
    line = f"{cause.get('summary', '')} (paged first as {own})"
    return line if len(line) <= SUMMARY_MAX else line[:SUMMARY_MAX - 1] + "…"


def notice(subject: Subject, children: Sequence[Subject], action: Action, now: float, link: str) -> dict[str, Any]:
    """The facts every receiver gets, as JSON values (the webhook body, PagerDuty's custom details)."""
    summary = summary_of(subject)
    if subject.cause_facts:  # its page stands for its cause: say what the cause is first
        summary = carried_summary(subject.cause_facts, summary)
    facts: dict[str, Any] = {
        "action": action, "incident_id": subject.id, "kind": subject.kind, "status": subject.status,
        "summary": summary, "severity": subject.severity, "services": subject.services,
        "symptom": subject.symptom, "scope": subject.scope, "alert_count": subject.alert_count,
        "firing_count": subject.firing_count, "first_seen": iso(subject.first_seen), "last_seen": iso(subject.last_seen),
        "members_sample": subject.member_sample[:SAMPLE_MAX], "link": link + subject.id, "sent_at": iso(now),
    }
    if subject.why:
        facts["why_grouped"] = subject.why
    if subject.kind == "cause":
        known = {c.id: c for c in children}
        facts["children"] = [_child(known.get(child_id), child_id) for child_id in subject.children[:SAMPLE_MAX]]
        facts["children_total"] = len(subject.children)
    if subject.cause_facts:
        facts["cause"] = dict(subject.cause_facts)
    if subject.acked_by:
        facts["acknowledged_by"] = subject.acked_by
    if subject.escalated_tier:
        facts["escalated_to"] = subject.escalated_tier
    if action == "resolve" and subject.reason:
        facts["reason"] = subject.reason  # why it closed, when it says (a reconciliation after a broker loss)
    return facts


def _child(child: Subject | None, child_id: str) -> dict[str, Any]:
    """One child in a cause's page: its id always, its details when this worker holds them (a child's events
    may live on another worker's partitions)."""
    if child is None:
        return {"incident_id": child_id}
    return {"incident_id": child.id, "service": ",".join(child.services), "symptom": child.symptom,
            "alert_count": child.alert_count, "why_grouped": child.why}


def pagerduty_event(receiver: PagerDutyReceiver, subject: Subject, facts: Mapping[str, Any], action: Action,
                    config: NotifyConfig) -> dict[str, Any]:
    """A PagerDuty Events API v2 event; `dedup_key` is the subject's id."""
    event_action = {"acknowledge": "acknowledge", "resolve": "resolve"}.get(action, "trigger")
    event: dict[str, Any] = {"routing_key": receiver.routing_key, "event_action": event_action,
                             "dedup_key": subject.id}
    if event_action != "trigger":
        return event
    details = {k: v for k, v in facts.items() if k not in ("summary", "severity")}
    event["payload"] = {
        "summary": facts["summary"], "severity": _PD_SEVERITY.get(subject.severity, "warning"),
        "source": subject.hosts[0] if subject.hosts else (subject.services[0] if subject.services else config.source),
        "component": ",".join(subject.services[:5]), "group": subject.scope or ",".join(subject.services[:5]),
        "class": subject.symptom or subject.kind, "timestamp": iso(subject.first_seen), "custom_details": details,
    }
    event["client"] = receiver.client
    event["client_url"] = facts["link"]
    event["links"] = [{"href": facts["link"], "text": "Incident in the correlator"}]
    return event


def alertmanager_alert(receiver: AlertmanagerReceiver, subject: Subject, facts: Mapping[str, Any],
                       now: float) -> list[dict[str, Any]]:
    """The body of `POST /api/v2/alerts`: the subject as one alert, ended at its close when resolved."""
    labels = {**receiver.labels, **scope_pairs(subject.scope), "alertname": INCIDENT_ALERTNAME,
              INCIDENT_ID_LABEL: subject.id, "service": ",".join(subject.services[:5]) or "unknown",
              "severity": subject.severity, "kind": subject.kind}
    if subject.scope:
        labels["scope"] = subject.scope
    ends = subject.closed_at if not subject.open and subject.closed_at is not None else now + 4 * receiver.repost
    annotations = {"summary": str(facts["summary"]), "link": str(facts["link"]),
                   "alert_count": str(subject.alert_count)}
    if subject.why:
        annotations["why_grouped"] = subject.why
    if subject.kind == "cause":
        annotations["children"] = ",".join(subject.children[:SAMPLE_MAX])
    if subject.cause_facts:
        annotations["cause_id"] = str(subject.cause_facts.get("cause_id", ""))
        annotations["children"] = ",".join(subject.cause_facts.get("children", ()))
    return [{"labels": labels, "annotations": annotations, "startsAt": iso(subject.first_seen),
             "endsAt": iso(ends), "generatorURL": str(facts["link"])}]


def slack_message(receiver: SlackReceiver, subject: Subject, facts: Mapping[str, Any], action: Action
                  ) -> dict[str, Any]:
    """A Slack incoming-webhook message: one headline and the facts a person acts on."""
    head = {"trigger": "FIRING", "renotify": "STILL FIRING", "escalate": f"ESCALATED to {subject.escalated_tier}",
            "acknowledge": f"ACKNOWLEDGED by {subject.acked_by}", "resolve": "RESOLVED",
            "refresh": "FIRING", "update": f"NOW THE PAGE OF {subject.cause_facts.get('cause_id', 'its cause')}"
            if subject.cause_facts else "UPDATED"}[action]
    lines = [f"*[{head}]* {facts['summary']}", f"<{facts['link']}|{subject.id}>"]
    if subject.why:
        lines.append(f"why grouped: {subject.why}")
    if action == "resolve" and subject.reason:
        lines.append(f"reason: {subject.reason}")
    for child in facts.get("children", ()):
        about = f" {child['service']}/{child['symptom']}: {child['alert_count']} alerts" if "service" in child else ""
        lines.append(f"• {child['incident_id']}{about}")
    message: dict[str, Any] = {"text": "\n".join(lines)}
    if receiver.channel:
        message["channel"] = receiver.channel
    return message


def sign(secret: str, timestamp: str, body: str) -> str:
    """The webhook signature: `sha256=` and the hex HMAC-SHA256 of `<timestamp>.<body>` with the secret."""
    mac = hmac.new(secret.encode(), f"{timestamp}.{body}".encode(), hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify_signature(secret: str, timestamp: str, body: str, signature: str, now: float,
                     tolerance_s: float = 300.0) -> bool:
    """A receiver's check: the signature is ours and the timestamp within `tolerance_s` of `now`."""
    try:
        fresh = abs(now - float(timestamp)) <= tolerance_s
    except ValueError:
        return False
    return fresh and hmac.compare_digest(sign(secret, timestamp, body), signature)


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def build_request(receiver: PagerDutyReceiver | SlackReceiver | WebhookReceiver | AlertmanagerReceiver,
                  subject: Subject, children: Sequence[Subject], action: Action, now: float,
                  config: NotifyConfig) -> Request:
    """(url, headers, body) of one notification to one receiver."""
    facts = notice(subject, children, action, now, config.link)
    if isinstance(receiver, PagerDutyReceiver):
        return receiver.url, dict(_JSON), _dumps(pagerduty_event(receiver, subject, facts, action, config))
    if isinstance(receiver, AlertmanagerReceiver):
        url = receiver.url.rstrip("/") + "/api/v2/alerts"
        return url, dict(_JSON), _dumps(alertmanager_alert(receiver, subject, facts, now))
    if isinstance(receiver, SlackReceiver):
        return receiver.url, dict(_JSON), _dumps(slack_message(receiver, subject, facts, action))
    body = _dumps(facts)
    headers = {**receiver.headers, **_JSON}
    if receiver.secret:
        timestamp = f"{now:.0f}"
        headers[TIMESTAMP_HEADER] = timestamp
        headers[SIGNATURE_HEADER] = sign(receiver.secret, timestamp, body)
    return receiver.url, headers, body
