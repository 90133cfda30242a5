"""Builders for notify tests: incident, cause and assignment records, and the routes file of issue 18."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from correlator.models import IncidentEvent
from correlator.notify import (
    Delivery, NotifyConfig, NotifyPolicy, NotifyRecord, NotifyState, Silence, on_record, on_tick, parse_notify,
)
from correlator.stage2 import Assignment, ParentEvent, Relation

T0 = 1_780_000_000.0
"""A fixed wall clock for unit tests."""

ISSUE_ROUTES = """
receivers:
  - {name: oncall, type: pagerduty, routing_key: "R0UTINGKEY", url: "http://127.0.0.1:9/v2/enqueue"}  # url optional
  - {name: chat, type: slack, url: "http://127.0.0.1:9/slack"}
  - {name: hook, type: webhook, url: "http://127.0.0.1:9/hook", secret: "s3cret"}
  - {name: am, type: alertmanager, url: "http://127.0.0.1:9093"}
routes:                      # first match wins; `continue: true` goes on to the next
  - {match: {severity: critical}, receiver: oncall, continue: true}
  - {match_re: {service: "checkout|payments"}, receiver: chat}
  - {receiver: hook}         # default
"""
"""The routes file exactly as issue 18 writes it."""


def routes(text: str = ISSUE_ROUTES, **urls: str) -> NotifyConfig:
    """The routes file, with receivers' URLs replaced by name (`oncall="http://..."`)."""
    config = parse_notify(text)
    if not urls:
        return config
    receivers = [r.model_copy(update={"url": urls[r.name]}) if r.name in urls else r for r in config.receivers]
    return config.model_copy(update={"receivers": receivers})


def incident(incident_id: str = "inc-1", seq: int = 1, *, status: str = "firing", service: str = "checkout",
             severity: str = "warning", alerts: int = 1, scope: str = "cluster=prod", symptom: str = "5xx",
             **extra: Any) -> IncidentEvent:
    """A stage-1 incident event."""
    kind = "opened" if seq == 1 else ("resolved" if status == "resolved" else "updated")
    key = f"{scope}/{service}/{symptom}" if scope else f"{service}/{symptom}"
    return IncidentEvent(
        kind=kind, incident_id=incident_id, seq=seq, key=key, service=service, symptom=symptom, scope=scope,
        status=status, first_seen=T0, last_seen=T0 + seq, window_start=T0, alert_count=alerts,
        distinct_fingerprints=alerts, firing_count=0 if status != "firing" else alerts, duplicates=0,
        max_severity=severity, member_sample=[f"fp{i}" for i in range(min(alerts, 3))], emitted_at=T0 + seq,
        **extra)


def cause(parent_id: str = "cause-1", seq: int = 1, *, children: list[str] | None = None, status: str = "firing",
          severity: str = "critical", services: list[str] | None = None, alerts: int = 4,
          merged_into: str | None = None) -> ParentEvent:
    """A stage-2 parent event."""
    kids = children or ["inc-1"]
    kind = "opened" if seq == 1 else ("updated" if status == "firing" else "resolved")
    return ParentEvent(kind=kind, parent_id=parent_id, seq=seq, status=status, first_seen=T0, last_seen=T0 + seq,
                       children=kids, alert_count=alerts, max_severity=severity,
                       services=services or ["checkout"], first_child=kids[0], merged_into=merged_into,
                       emitted_at=T0 + seq)


def assignment(child_id: str = "inc-1", parent_id: str = "cause-1") -> Assignment:
    """A child named to its parent."""
    return Assignment(child_id=child_id, child_key=f"cluster=prod/{child_id}/5xx", parent_id=parent_id,
                      relation=Relation.ENTITY, via="host=db1", gap_s=0.0,
                      explanation=f"shares host=db1 with {parent_id}", assigned_at=T0)


def fold_timeline(state: NotifyState, records: Sequence[tuple[float, NotifyRecord | None]], config: NotifyConfig,
                  policy: NotifyPolicy, silences: Sequence[Silence] = ()) -> tuple[list[Delivery], list[NotifyRecord]]:
    """Fold records at their times (None: a tick), each record a step forwards folded right after it, as the stage
    sends them back; the deliveries made and the records forwarded, in order."""
    made: list[Delivery] = []
    forwarded: list[NotifyRecord] = []
    for now, record in records:
        pending: list[NotifyRecord | None] = [record]
        while pending:
            item = pending.pop(0)
            step = on_tick(state, now, config, silences, policy) if item is None else \
                on_record(state, item, now, config, silences, policy)
            made += step.deliveries
            forwarded += step.forward
            pending += step.forward
    return made, forwarded
