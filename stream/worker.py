"""Assembling and running a worker: the app, the pipeline's agents and views, the topics it needs."""

from __future__ import annotations

import logging

from stream.app import App, make_app, run_worker
from stream.broker import create_topics_sync
from stream.ingest import install_ingest
from stream.observe import install_observer
from stream.pipeline import Pipeline, install
from stream.recovery import install_recovery
from stream.review import install as install_tickets
from stream.runtime import tune_gc
from stream.security import client_options
from stream.settings import Settings
from stream.stage2_agent import install_stage2
from stream.views import install_metrics, install_views

__all__ = ["build_ingest_app", "build_worker_app", "run", "ensure_topics", "tune_gc"]

log = logging.getLogger(__name__)


def build_ingest_app(settings: Settings) -> App:
    """The Faust app of `--role ingest`: the HTTP ingest, /healthz, /readyz and /metrics, no agents.

    Stateless, so any number of them can stand behind one load balancer in front of the agents' workers:
    a webhook is answered by a process that has a core free, not by one busy correlating a backlog.
    """
    app = make_app(settings)
    ingest = install_ingest(app, settings)
    install_recovery(app, settings, ingest, agents=False)
    install_metrics(app)
    return app


def build_worker_app(settings: Settings) -> tuple[App, Pipeline]:
    """The Faust app with the correlation pipeline, its web views and the HTTP ingest installed."""
    app = make_app(settings)
    pipe = install(app, settings)
    install_views(pipe)
    install_observer(app, settings, pipe)  # periodic gauges: noise reduction, lag, open incidents by service
    install_stage2(app, settings, pipe)  # stage-2 grouping into causes; a no-op unless settings.stage2
    ingest = install_ingest(app, settings)
    install_tickets(app, settings, pipe)  # triage and SLA agents, SLA timer, review API
    # last: the broker watch lists the topics of every table and agent installed above
    install_recovery(app, settings, ingest, agents=True, on_loss=[pipe.broker_lost])
    return app, pipe


def ensure_topics(settings: Settings) -> list[str]:
    """Create the pipeline's topics if missing (idempotent); returns the ones created."""
    created = create_topics_sync(settings.bootstrap_servers, settings.topic_plan(),
                                 client_options=client_options(settings))
    if created:
        log.info("created topics %s", ", ".join(sorted(created)))
    return created


def run(settings: Settings) -> None:
    """Create the topics, then run a worker in this process until SIGINT/SIGTERM."""
    ensure_topics(settings)
    app = build_ingest_app(settings) if settings.role == "ingest" else build_worker_app(settings)[0]
    tune_gc()
    run_worker(app)
