"""Metric definitions (prometheus-client): names, help and bounded labels, in one place.

Only definitions live here; the stream layer increments them. Labels are always drawn from small closed sets
(a source name, an agent, a refusal category, an event kind, a tier), never an alert or incident id. The one
label fed by alert data, `service` on `aiops_incidents_open`, is capped to the top services plus
an `other` bucket by the stream layer (`stream/observe.py`).

Every worker exports its own series; the dashboard and the recording rules in `deploy/prometheus/` sum them.
`disable()` swaps every metric for a no-op, for measuring what the metrics cost (setting `AIOPS_METRICS`).
"""

from __future__ import annotations

import platform

from prometheus_client import Counter, Gauge, Histogram, Info, disable_created_metrics

from correlator.version import version

# No `<counter>_created` series: they doubled every counter and histogram on /metrics for a timestamp that
# Prometheus (without created-timestamp ingestion) stores as one more series. Process-wide, set before any scrape.
disable_created_metrics()  # type: ignore[no-untyped-call]  # prometheus-client leaves it untyped

__all__ = [
    "BUILD_INFO",
    "ALERTS_RECEIVED",
    "ALERT_DUPLICATES",
    "ALERT_RECORDS_CORRELATED",
    "ALERTS_DISTINCT",
    "ALERTS_LATE",
    "ALERT_TIME_ADJUSTED",
    "DEADLETTERS",
    "DEADLETTER_RETRIES",
    "DEADLETTERS_REPEATED",
    "BATCHES_UNACKED",
    "BATCH_RETRIES",
    "INCIDENT_EVENTS",
    "INCIDENTS_OPEN",
    "RECORDS_CONSUMED",
    "SEGMENTS_SKIPPED",
    "CORRELATION_LATENCY",
    "STATE_KEYS",
    "INGEST_REQUESTS",
    "INGEST_REFUSALS",
    "INGEST_ITEMS",
    "INGEST_SECONDS",
    "INGEST_BACKLOG_RECORDS",
    "INGEST_BACKLOG_SECONDS",
    "INGEST_SHEDDING",
    "AUTH_REFUSALS",
    "CONSOLE_STREAMS",
    "TICKETS_TRIAGED",
    "TICKET_DUPLICATES",
    "TICKETS_FORWARDED",
    "TRIAGED_EVENTS",
    "SLA_ESCALATIONS",
    "SLA_BREACHES",
    "REVIEWS",
    "OUTBOX_RESENT",
    "REVIEW_QUEUE",
    "SLA_CLOCKS_OPEN",
    "NOISE_REDUCTION",
    "NOTIFICATIONS",
    "NOTIFICATION_LATENCY",
    "NOTIFICATION_RETRIES",
    "NOTIFICATIONS_SILENCED",
    "CORRELATION_EVENT_LATENCY",
    "CONSUMER_LAG",
    "BROKER_RECOVERIES",
    "GROUP_OUTSIDE",
    "OTHER_SERVICES",
    "NO_TIER",
    "disable",
    "enabled",
]

ALERTS_RECEIVED = Counter(
    "aiops_alerts_received_total", "Alerts parsed from raw records, by source", ["source"])
RECORDS_CONSUMED = Counter(
    "aiops_records_consumed_total",
    "Kafka records an agent has handled, processed or dead-lettered alike (counted per batch), by agent", ["agent"])
DEADLETTERS = Counter(
    "aiops_deadletters_total", "Records refused and sent to the dead-letter topic, by agent and reason",
    ["agent", "reason"])
DEADLETTER_RETRIES = Counter(
    "aiops_deadletter_retries_total", "Dead letters the broker did not take and that were sent again (a dead "
    "letter is retried with backoff until delivered, never skipped)")
DEADLETTERS_REPEATED = Counter(
    "aiops_deadletters_repeated_total", "Records read again that this worker had already dead-lettered (a batch "
    "folded again, a re-read after a rebalance): counted here, not sent twice, by agent", ["agent"])
BATCHES_UNACKED = Counter(
    "aiops_batches_unacknowledged_total", "Consumed batches that failed as a whole (not one bad record: a broker "
    "fault) while the worker was stopping or rebalancing, left unacknowledged for the partition's next owner, "
    "by agent",
    ["agent"])
BATCH_RETRIES = Counter(
    "aiops_batch_retries_total", "Consumed batches (or idle steps) that failed as a whole (not one bad record: a "
    "broker fault) and were rolled back to the stage's last checkpoint and folded again after a backoff, by agent",
    ["agent"])
ALERT_RECORDS_CORRELATED = Counter(
    "aiops_alert_records_correlated_total", "Alert records folded into the correlation engine (firing, resolved, "
    "re-sends)")
ALERT_DUPLICATES = Counter(
    "aiops_alert_duplicates_total", "Alert records recognised as re-sends of an alert already held")
ALERTS_DISTINCT = Counter(
    "aiops_alerts_distinct_total", "Distinct alert occurrences folded into incidents (after dedup)")
ALERTS_LATE = Counter(
    "aiops_alerts_late_total", "Alerts that arrived after the allowed lateness and took the late path")
ALERT_TIME_ADJUSTED = Counter(
    "aiops_alert_time_adjusted_total", "Alerts the event-time rule acted on: reason `future` (clamped to their "
    "arrival and marked), `long_firing` (started before the horizon, still firing: correlated at arrival, marked), "
    "`too_old` (dead-lettered); source is the adapter, or `engine` for its last-line guard",
    ["source", "reason"])
ALERTS_DROPPED = Counter(
    "aiops_alerts_dropped_total", "Alerts parsed from a body and left out before correlation, by source and reason: "
    "`own_incident` (an incident the notify stage posted to an Alertmanager, come back through it: the loop "
    "guard); the raw body is kept, nothing is dead-lettered", ["source", "reason"])
SEGMENTS_SKIPPED = Counter(
    "aiops_segments_skipped_total", "Alert segments skipped because their source offset was already applied "
    "(redelivery after a crash)")
INCIDENT_EVENTS = Counter(
    "aiops_incident_events_total", "Incident events published, by kind", ["kind"])
INCIDENTS_OPEN = Gauge(
    "aiops_incidents_open", "Stage-1 incidents not yet resolved or expired on this worker, by service: its top "
    'services by open count, the rest summed under service="other" (service comes from alert labels, so it is '
    "capped); sum() gives the total", ["service"])
STATE_KEYS = Gauge(
    "aiops_correlation_state_keys", "Correlation keys held in this worker's state tables")
CORRELATION_LATENCY = Histogram(
    "aiops_correlation_latency_seconds",
    "From an alert body's arrival (the ingest's receive time, or a raw record's broker time) to the incident event it "
    "caused",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)
INGEST_REQUESTS = Counter(
    "aiops_ingest_requests_total", "HTTP requests to the ingest, health and readiness endpoints, by endpoint "
    "and status code", ["endpoint", "code"])
INGEST_REFUSALS = Counter(
    "aiops_ingest_refusals_total", "Ingest requests refused, by endpoint and reason (unauthorized, too_large, "
    "a SourceError category, broker_unavailable, send_timeout, ...)", ["endpoint", "reason"])
INGEST_ITEMS = Counter(
    "aiops_ingest_items_total", "Alerts or tickets in ingest bodies the broker acknowledged, by endpoint",
    ["endpoint"])
INGEST_SECONDS = Histogram(
    "aiops_ingest_request_seconds", "From an ingest request's arrival to its answer, by endpoint",
    ["endpoint"], buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0))
INGEST_BACKLOG_RECORDS = Gauge(
    "aiops_ingest_backlog_records", "Records on alerts.raw + alerts the consumer group has not committed, as "
    "the ingest's admission control last measured them")
INGEST_BACKLOG_SECONDS = Gauge(
    "aiops_ingest_backlog_seconds", "That backlog in seconds at the measured drain rate (or how long it has "
    "not moved), as admission control last measured it")
INGEST_SHEDDING = Gauge(
    "aiops_ingest_shedding", "1 while the alert ingest answers 503 because the backlog is above its limit")
CONSOLE_STREAMS = Gauge(
    "aiops_console_event_streams", "Server-sent event streams (GET /ui/events) the console has open; a browser "
    "opens at most 6 connections to one worker, so a page that leaves its stream open costs the others one")
AUTH_REFUSALS = Counter(
    "aiops_auth_refusals_total", "Requests to the web port refused for their bearer token, by the access the "
    "route needs (read, operate) and reason (no_token, unknown_token, wrong_role); ingest refusals are in "
    "aiops_ingest_refusals_total", ["access", "reason"])

# Tickets, reviews and SLA clocks (stream/tickets.py, stream/review.py).
TICKETS_TRIAGED = Counter(
    "aiops_tickets_triaged_total", "Tickets triaged, by the gate's outcome (routed, human_review) and the tier "
    "routed to (L1..L3, or none for human review)", ["status", "tier"])
TICKET_DUPLICATES = Counter(
    "aiops_ticket_duplicates_total", "tickets.raw records for a ticket already held (a re-send or a "
    "redelivery after a crash), and resolutions of a ticket already resolved; not triaged again")
TICKETS_FORWARDED = Counter(
    "aiops_tickets_forwarded_total", "tickets.raw records that arrived on another partition than their "
    "ticket id's and were forwarded to it (a producer not keying by ticket id)")
TRIAGED_EVENTS = Counter(
    "aiops_triaged_events_total", "Events sent on tickets.triaged, by subject (ticket, incident) and status",
    ["subject", "status"])
SLA_ESCALATIONS = Counter(
    "aiops_sla_escalations_total", "SLA breaches decided, by subject (ticket, incident) and reason "
    "(escalated, at_top_tier)", ["subject", "reason"])
SLA_BREACHES = Counter(
    "aiops_sla_breaches_total", "SLA breaches decided, by subject (ticket, incident), severity (sev1..sev3 for "
    "tickets, critical/warning/info for incidents), the tier whose SLA was breached, and the outcome "
    "(escalated, at_top_tier)", ["subject", "severity", "tier", "outcome"])
REVIEWS = Counter(
    "aiops_reviews_total", "Review API decisions applied, by action (approve, override, resolve, ack)", ["action"])
OUTBOX_RESENT = Counter(
    "aiops_outbox_resent_total", "Events found written but unconfirmed in restored SLA state and sent again "
    "(each at most once more, with the same seq)")
REVIEW_QUEUE = Gauge(
    "aiops_review_queue", "Tickets waiting for human review on this worker's partitions")
SLA_CLOCKS_OPEN = Gauge(
    "aiops_sla_clocks_open", "Running SLA clocks on this worker's partitions, by subject", ["subject"])

# The response stage (correlator/notify/, stream/notify/). `receiver` is a name from the notify file: bounded by it.
NOTIFICATIONS = Counter(
    "aiops_notifications_total", "Notifications by receiver, kind (trigger, acknowledge, resolve, renotify, "
    "escalate, refresh) and outcome: delivered (2xx), dead_letter (refused, or retries ran out), held_back (the "
    "incident ended inside its hold), cancelled (it ended while its page waited for the rate limit)",
    ["receiver", "kind", "outcome"])
NOTIFY_RECONCILED = Counter(
    "aiops_notify_reconciled_total", "Incidents notify closed after a broker loss because the stage-1 partition "
    "holding them no longer held them open (its census): resolved (their page was out: a resolve sent) or dropped "
    "(never paged: closed quietly)", ["outcome"])
NOTIFICATION_RETRIES = Counter(
    "aiops_notification_retries_total", "Delivery attempts that failed and were tried again, by receiver and "
    "reason (timeout, connection, http_5xx, http_429, http_408)", ["receiver", "reason"])
NOTIFICATION_LATENCY = Histogram(
    "aiops_notification_latency_seconds", "From the incident event that made a notification due to the "
    "receiver's 2xx, retries included, by receiver", ["receiver"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0))
NOTIFICATIONS_SILENCED = Counter(
    "aiops_notifications_silenced_total", "Incidents and causes that would have paged and did not, by reason: "
    "silence (a silence matched), source (muted where it came from: Alertmanager silence or inhibition, Zabbix "
    "maintenance)", ["reason"])

# Gauges recomputed by the worker's observe timer (stream/observe.py), and the event-time latency.
NOISE_REDUCTION = Gauge(
    "aiops_noise_reduction_ratio", "1 - incidents opened / distinct alerts over the trailing window (5m, 1h) on "
    "this worker; NaN while no alert arrived in it. Across workers compute it from the counters instead "
    "(job:aiops_noise_reduction:ratio5m)", ["window"])
CORRELATION_EVENT_LATENCY = Histogram(
    "aiops_correlation_event_latency_seconds",
    "From the event time (startsAt) of the newest alert an opened or updated incident event covers to the event's "
    "publication: what the source's own delay, the broker and the correlator add together",
    buckets=(0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0),
)
CONSUMER_LAG = Gauge(
    "aiops_consumer_lag_records", "Records in a partition this worker consumes that its group has not committed "
    "yet (end offset - committed offset), by topic and partition", ["topic", "partition"])

BUILD_INFO = Info("aiops_build", "The running correlator's version and Python, always 1 (join on instance)")
BUILD_INFO.info({"version": version(), "python": platform.python_version()})
BROKER_RECOVERIES = Counter(
    "aiops_broker_recoveries_total", "Steps of the worker's recovery from a broker that came back without its "
    "topics (stream/recovery.py): topics_lost (once per loss), topics_created, rejoin, group_error (a stopped group "
    "coordination resumed)", ["action"])
GROUP_OUTSIDE = Gauge(
    "aiops_group_outside_seconds", "Seconds this worker has been outside its consumer group (no coordinator, a join "
    "not finished, a rejoin after a broker loss not done); 0 while a member. Past group_absence_hold (10 s) it holds "
    "its pages, past group_absence_exit (90 s, counted while the broker answers) it exits for its supervisor to "
    "restart it (stream/membership.py)")

OTHER_SERVICES = "other"
"""The `service` label value that collects every service beyond the top N."""
NO_TIER = "none"
"""The `tier` label value of a ticket that was not routed (human review)."""


def _declare_known_series() -> None:
    """Create the series of bounded label sets at 0, so each exists from the first scrape.

    Without it a series appears at its first increment already holding it, and `rate`/`increase` miss that
    first step (a storm folded within one scrape interval would show no incidents at all).
    """
    for kind in ("opened", "updated", "resolved", "expired"):
        INCIDENT_EVENTS.labels(kind)
    for source in ("alertmanager", "zabbix", "generic", "engine"):  # a wrong clock is rare: its first one counts
        for reason in ("future", "too_old"):
            if source != "engine" or reason == "future":
                ALERT_TIME_ADJUSTED.labels(source, reason)
    for reason in ("silence", "source"):
        NOTIFICATIONS_SILENCED.labels(reason)
    for action in ("topics_lost", "topics_created", "rejoin", "group_error"):
        BROKER_RECOVERIES.labels(action)
    for status, tier in (("routed", "L1"), ("routed", "L2"), ("routed", "L3"), ("human_review", NO_TIER)):
        TICKETS_TRIAGED.labels(status, tier)
    for agent in ("normalize", "correlate", "triage", "incident_sla", "stage2_group"):
        BATCHES_UNACKED.labels(agent)
        BATCH_RETRIES.labels(agent)
    severities = {"ticket": ("sev1", "sev2", "sev3"), "incident": ("critical", "warning", "info")}
    for subject, levels in severities.items():
        for outcome in ("escalated", "at_top_tier"):
            SLA_ESCALATIONS.labels(subject, outcome)
            for severity in levels:
                for tier in ("L1", "L2", "L3"):
                    SLA_BREACHES.labels(subject, severity, tier, outcome)


_declare_known_series()
_enabled = True


class _Noop:
    """Stands in for any metric or child: every update is a no-op, `labels()` returns itself."""

    def labels(self, *_: object, **__: object) -> _Noop:
        return self

    def inc(self, *_: object, **__: object) -> None:
        pass

    dec = set = observe = inc

    def remove(self, *_: object) -> None:
        pass

    def clear(self) -> None:
        pass


def disable() -> None:
    """Replace every metric of this module by a no-op (for the cost comparison; /metrics then serves zeros).

    Callers reach metrics as `metrics.NAME` at call time, so the swap reaches them; a module that imported a
    metric by name would keep the real one.
    """
    global _enabled
    noop = _Noop()
    for name in __all__:
        if isinstance(globals().get(name), Counter | Gauge | Histogram):
            globals()[name] = noop
    _enabled = False


def enabled() -> bool:
    """False once `disable()` ran."""
    return _enabled
