"""Metric definitions (prometheus-client): names, help and bounded labels, in one place.

Only definitions live here; the stream layer increments them. Labels are always drawn from small closed sets
(a source name, an agent, a refusal category, an event kind), never an alert or incident id.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

__all__ = [
    "ALERTS_RECEIVED",
    "ALERT_DUPLICATES",
    "ALERTS_DISTINCT",
    "ALERTS_LATE",
    "DEADLETTERS",
    "INCIDENT_EVENTS",
    "INCIDENTS_OPEN",
    "RECORDS_CONSUMED",
    "SEGMENTS_SKIPPED",
    "CORRELATION_LATENCY",
    "STATE_KEYS",
]

ALERTS_RECEIVED = Counter(
    "aiops_alerts_received_total", "Alerts parsed from raw records, by source", ["source"])
RECORDS_CONSUMED = Counter(
    "aiops_records_consumed_total", "Kafka records consumed, by agent", ["agent"])
DEADLETTERS = Counter(
    "aiops_deadletters_total", "Records refused and sent to the dead-letter topic, by agent and reason",
    ["agent", "reason"])
ALERT_DUPLICATES = Counter(
    "aiops_alert_duplicates_total", "Alert records recognised as re-sends of an alert already held")
ALERTS_DISTINCT = Counter(
    "aiops_alerts_distinct_total", "Distinct alert occurrences folded into incidents (after dedup)")
ALERTS_LATE = Counter(
    "aiops_alerts_late_total", "Alerts that arrived after the allowed lateness and took the late path")
SEGMENTS_SKIPPED = Counter(
    "aiops_segments_skipped_total", "Alert segments skipped because their source offset was already applied "
    "(redelivery after a crash)")
INCIDENT_EVENTS = Counter(
    "aiops_incident_events_total", "Incident events published, by kind", ["kind"])
INCIDENTS_OPEN = Gauge(
    "aiops_incidents_open", "Stage-1 incidents not yet resolved or expired on this worker")
STATE_KEYS = Gauge(
    "aiops_correlation_state_keys", "Correlation keys held in this worker's state tables")
CORRELATION_LATENCY = Histogram(
    "aiops_correlation_latency_seconds",
    "From a raw record's arrival on alerts.raw to the incident event it caused",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)
