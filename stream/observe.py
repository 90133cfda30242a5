"""The worker's observe timer: gauges recomputed every `metrics_interval` rather than on every record.

Three figures are cheaper or only possible as a periodic look at the whole worker:

- noise reduction over the last 5 minutes and the last hour (`aiops_noise_reduction_ratio{window}`), from the
  worker's own counters sampled into a `correlator.noise.NoiseWindow` (the dashboard computes the same from
  the counters summed over every worker, which is what a fleet needs; this gauge is for one worker's view);
- open incidents by service (`aiops_incidents_open{service}`; `sum()` is the total), capped to the top N services with
  the rest under `service="other"`: the service comes from alert labels, i.e. from outside, and falls back
  to host names, so an uncapped label would grow with the fleet (one series per host ever alerting);
- consumer lag per partition this worker consumes (`aiops_consumer_lag_records{topic,partition}`): the
  partitions' end offsets asked from the broker, minus the offsets the group committed; series of partitions
  handed to another worker are removed, so the label set stays that of the current assignment. The topics are
  those the agents read (`lag_topics`): the pipeline's, and stage 2's routing topic when stage 2 runs.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import REGISTRY

from correlator import metrics
from correlator.keys import split_key
from correlator.noise import NoiseWindow
from stream.app import App
from stream.consumer import committed_offset
from stream.pipeline import Pipeline
from stream.settings import Settings
from stream.topics import STAGE2_ROUTE, internal_topic_name

__all__ = ["NOISE_PERIODS", "Observer", "capped_by_service", "install_observer", "lag_topics", "noise_totals"]

log = logging.getLogger(__name__)

NOISE_PERIODS: dict[str, float] = {"5m": 300.0, "1h": 3600.0}
"""The `window` label values of the noise-reduction gauge and their length in seconds."""

CONSUMED_TOPICS = ("alerts_raw", "alerts", "incidents", "tickets_raw")
"""TopicNames fields the worker's agents consume: the topics whose lag is exported."""


def lag_topics(settings: Settings) -> frozenset[str]:
    """Kafka names of the topics whose consumer lag is exported: what the worker's agents consume."""
    names = {getattr(settings.topics, name) for name in CONSUMED_TOPICS}
    if settings.stage2:  # read by stage2_group: a stage 2 falling behind shows here, not on `incidents`
        names.add(internal_topic_name(settings, STAGE2_ROUTE))
    return frozenset(names)


def noise_totals() -> tuple[float, float]:
    """This process's running totals behind noise reduction: distinct alerts, incidents opened."""
    alerts = REGISTRY.get_sample_value("aiops_alerts_distinct_total") or 0.0
    opened = REGISTRY.get_sample_value("aiops_incident_events_total", {"kind": "opened"}) or 0.0
    return alerts, opened


def capped_by_service(keys: Iterable[str], top: int) -> dict[str, int]:
    """Open incidents per service (of `scope/service/symptom`) for the `top` services with the most, and the
    rest summed under `other` (always present, so the series set stays stable)."""
    counts = Counter(split_key(key)[1] for key in keys)
    capped: dict[str, int] = {}
    for service, count in counts.most_common(top):
        if service != metrics.OTHER_SERVICES:  # a service literally named "other" joins the bucket
            capped[service] = count
    capped[metrics.OTHER_SERVICES] = sum(counts.values()) - sum(capped.values())
    return capped


@dataclass
class Observer:
    """Recomputes the periodic gauges of one worker (see the module docstring)."""

    app: App
    pipe: Pipeline
    topics: frozenset[str]
    noise: NoiseWindow
    top_services: int = 20
    _lag_series: set[tuple[str, str]] = field(default_factory=set)

    async def tick(self, now: float) -> None:
        """One round: noise reduction, open incidents by service, consumer lag."""
        self.observe_noise(now)
        self.observe_services()
        await self.observe_lag()

    def observe_noise(self, now: float) -> None:
        """Sample the running totals and set the trailing-window gauges (NaN while no alert arrived)."""
        self.noise.add(now, *noise_totals())
        for window, seconds in NOISE_PERIODS.items():
            ratio = self.noise.reduction(now, seconds)
            metrics.NOISE_REDUCTION.labels(window).set(float("nan") if ratio is None else ratio)

    def observe_services(self) -> None:
        """Replace the per-service gauge's series by this round's top services and `other`."""
        keys = [inc.key for engine in self.pipe.engines.values() for inc in engine.open_incidents()]
        capped = capped_by_service(keys, self.top_services)
        # clear() then set() in one synchronous step: no scrape can see the gauge half-filled.
        metrics.INCIDENTS_OPEN.clear()
        for service, count in capped.items():
            metrics.INCIDENTS_OPEN.labels(service).set(count)

    async def observe_lag(self) -> None:
        """End offset minus committed offset for each consumed partition this worker owns."""
        consumer = self.app.consumer
        owned = [tp for tp in self.app.assignor.assigned_actives() if tp.topic in self.topics]
        try:
            ends: dict[Any, int] = dict(await consumer.highwaters(*owned)) if owned else {}
        except Exception as exc:  # noqa: BLE001 - a rebalance or a broker hiccup: try again next round
            log.debug("consumer lag not measured this round: %r", exc)
            return
        # nothing committed yet means the group starts from the log's beginning
        seen: set[tuple[str, str]] = set()
        for tp in owned:
            end = ends.get(tp)
            if end is None:
                continue
            labels = (tp.topic, str(tp.partition))
            metrics.CONSUMER_LAG.labels(*labels).set(max(0, end - (committed_offset(consumer, tp) or 0)))
            seen.add(labels)
        for labels in self._lag_series - seen:
            metrics.CONSUMER_LAG.remove(*labels)
        self._lag_series = seen


def install_observer(app: App, settings: Settings, pipe: Pipeline) -> Observer | None:
    """Add the observe timer to `app`; nothing when metrics are off (`settings.metrics`)."""
    if not settings.metrics:
        return None
    topics = lag_topics(settings)
    # The noise history starts now, before any alert is counted: a storm that arrives before the first tick
    # is then measured from this base rather than hidden in it.
    noise = NoiseWindow.since(time.time(), *noise_totals(), horizon_s=max(NOISE_PERIODS.values()))
    observer = Observer(app, pipe, topics, noise, top_services=settings.metrics_top_services)

    @app.timer(interval=settings.metrics_interval)
    async def observe() -> None:
        await observer.tick(time.time())

    return observer
