"""Assembling and running a worker: the app, the pipeline's agents and views, the topics it needs."""

from __future__ import annotations

import logging
import logging.config

from aiokafka.errors import KafkaError

from correlator import metrics
from stream.app import App, logging_config, make_app, run_worker
from correlator.readmodel import ReadModel
from stream.broker import create_topics_sync, describe_topics_sync
from stream.console.install import install_console, install_forwarding
from stream.ingest import ENDPOINTS, install_ingest
from stream.insight import install_insight
from stream.mcp_http import install_mcp_http
from stream.membership import install_group_watch
from stream.notify.stage import install_notify
from stream.notify.views import install_notify_views
from stream.observe import install_observer
from stream.openapi import install_openapi
from stream.pipeline import CorrelateStage, NormalizeStage, Pipeline, install
from stream.recovery import LossHook, install_recovery
from stream.review import install as install_tickets
from stream.runtime import tune_gc
from stream.security import client_options
from stream.settings import Settings
from stream.stage2_agent import GroupStage, install_stage2
from stream.stages import Stage, StageRunner
from stream.tickets import IncidentSlaStage, TriageStage
from stream.topics import TopicSpec, differences, topic_specs
from stream.views import install_metrics, install_views

__all__ = ["build_ingest_app", "build_worker_app", "check_topics", "run", "ensure_topics", "tune_gc"]

log = logging.getLogger(__name__)


def build_ingest_app(settings: Settings) -> App:
    """The Faust app of `--role ingest`: the HTTP ingest, /healthz, /readyz and /metrics, no agents.

    Stateless, so any number of them can stand behind one load balancer in front of the agents' workers:
    a webhook is answered by a process that has a core free, not by one busy correlating a backlog.
    """
    app = make_app(settings)
    ingest = install_ingest(app, settings)
    install_recovery(app, settings, ingest, agents=False)
    declare_too_large()
    install_metrics(app)
    install_openapi(app)
    return app


def build_worker_app(settings: Settings) -> tuple[App, Pipeline]:
    """The Faust app with the correlation pipeline, its web views and the HTTP ingest installed."""
    app = make_app(settings)
    pipe = install(app, settings)
    model = ReadModel() if settings.console else None  # the cluster-wide read model (stream/console/feed.py)
    install_observer(app, settings, pipe)  # periodic gauges: noise reduction, lag, open incidents (by service)
    stage2 = install_stage2(app, settings, pipe)  # stage-2 grouping into causes; a no-op unless settings.stage2
    ingest = install_ingest(app, settings)
    declare_too_large()
    desk = install_tickets(app, settings, pipe)  # ticket and incident SLA tables, review API
    install_views(pipe, model)  # /incidents, /incidents/{id}: acknowledgement, SLA clock, cause from the read model
    # The stages, in one place: each consumes one topic, and the runner gives all of them the same agent loop,
    # dead-letter guard, timer, checkpoint on stop and retry of a failed batch (stream/stages.py).
    stages: list[Stage] = [NormalizeStage(pipe, settings.step_bytes), CorrelateStage(pipe, settings.step_bytes)]
    if stage2 is not None:
        stages.append(GroupStage(stage2))
    # The one agent folding stage-1 events: SLA clocks, then its readers.
    incidents = IncidentSlaStage(desk, within_s=settings.incident_batch_within)
    stages += [TriageStage(desk, settings.sla_check_interval), incidents]
    losses: list[LossHook] = [pipe.broker_lost, desk.broker_lost] + ([stage2.broker_lost] if stage2 is not None else [])
    notify = install_notify(app, settings, pipe, desk)  # the response stage; nothing unless notify_file is set
    if notify is not None:
        stages += notify[1]
        losses.append(notify[0].broker_lost)
        install_notify_views(app, notify[0], model)
    if settings.insight:  # hourly aggregates, /trends, /summary (after notify: the ack hook tells both)
        insight, tickets_hours, incident_hours = install_insight(app, settings, desk)
        losses.append(insight.broker_lost)
        stages.append(tickets_hours)
        incidents.readers.append(incident_hours)  # each event decoded once for both, one Faust delivery
    install_forwarding(app)  # an action for an item another worker owns goes to that worker
    if model is not None:
        install_console(app, settings, desk, notify[0] if notify is not None else None, model)
    assert pipe.letters is not None
    runner = StageRunner(app, pipe.letters)
    for stage in stages:
        runner.install(stage)
    # last: the broker watch lists the topics of every table and agent installed above
    watch = install_recovery(app, settings, ingest, agents=True, on_loss=losses)
    runner.trusted = install_group_watch(app, settings, watch, ingest).trusted  # notify holds outside the group
    pipe.resumed = lambda: not watch.recovery.lost  # stage 1's census after a loss waits for the group's rejoin
    install_mcp_http(app, settings)  # POST /mcp: the desk's MCP tools, behind the operator token
    install_openapi(app)  # its document lists the routes above
    return app, pipe


def declare_too_large() -> None:
    """`aiops_ingest_refusals_total{reason="too_large"}` at 0 for every endpoint, so the 413 alert
    (CorrelatorIngestBodyTooLarge) has a live series from the first scrape and `increase` sees the first 413."""
    for endpoint in ENDPOINTS:
        metrics.INGEST_REFUSALS.labels(endpoint.name, "too_large")


def ensure_topics(settings: Settings) -> list[str]:
    """Create the topics if missing (idempotent), with the replication factor and configs of `stream.topics`;
    warn about each existing topic that differs from them. Returns the ones created.

    A `--role ingest` front creates the pipeline's topics only; the changelogs and the stage-2 route topic
    belong to the agents' workers (`--role all`).
    """
    specs = topic_specs(settings, internal=settings.role == "all")
    created = create_topics_sync(settings.bootstrap_servers, {s.name: s.partitions for s in specs},
                                 configs={s.name: s.config for s in specs},
                                 replication=settings.topic_replication_factor,
                                 client_options=client_options(settings))
    if created:
        log.info("created topics %s", ", ".join(sorted(created)))
    for line in check_topics(settings, [s for s in specs if s.name not in created]):
        log.warning("%s; alter it (kafka-configs --alter, kafka-reassign-partitions) or the settings", line)
    return created


def check_topics(settings: Settings, specs: list[TopicSpec]) -> list[str]:
    """What the cluster's copies of `specs` differ in (replication factor, configs), one line per topic."""
    if not specs:
        return []
    try:
        replication, configs = describe_topics_sync(settings.bootstrap_servers, [s.name for s in specs],
                                                    client_options=client_options(settings))
    except KafkaError as exc:  # e.g. no DescribeConfigs ACL: the comparison is advice, never a reason to stop
        return [f"could not compare the existing topics with the settings: {exc!r}"]
    return differences(specs, replication, configs)


def run(settings: Settings) -> None:
    """Create the topics, then run a worker in this process until SIGINT/SIGTERM."""
    # Faust configures logging only when the worker starts: before that, the topic check's warnings would go
    # out unformatted (and the info lines not at all). The same config, so Faust's later call changes nothing.
    logging.config.dictConfig(logging_config(settings.log_level, settings.log_format))
    ensure_topics(settings)
    app = build_ingest_app(settings) if settings.role == "ingest" else build_worker_app(settings)[0]
    tune_gc()
    run_worker(app)
