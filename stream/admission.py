"""The backlog behind the alert ingest, measured on an interval for `correlator.backlog.BacklogMeter`.

Every `admission_interval` the probe asks the broker two things about the topics that feed correlation
(`alerts.raw`, `alerts`): their end offsets (one ListOffsets request) and what the consumer group (the app
id, shared by every worker) committed on them (one OffsetFetch to the group coordinator). Their difference
is the backlog in records, the growth of the committed offsets the drain rate.

Why the group's committed offsets and not this worker's own consumer positions: the ingest writes to any
partition, and with several workers (or `--role ingest` fronts, which consume nothing) no one process sees
every partition's position. The committed offsets trail the positions by the commit interval (a few seconds),
which only makes the backlog look a little larger than it is; the limits are far above that. The cost
(`benchmarks/admission_cost.py`) is two small requests per interval, whatever the request rate.

A probe that fails (broker down, coordinator moving) keeps the last verdict until it is `max_age` old, then
the backlog is unknown and nothing is shed on it: the broker-down path answers 503 by itself.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from mode import Service

from correlator import metrics
from correlator.backlog import UNKNOWN, Backlog, BacklogLimits, BacklogMeter, BacklogSample
from stream.security import client_options
from stream.settings import Settings

__all__ = ["FED_TOPICS", "BacklogProbe", "limits_of"]

log = logging.getLogger(__name__)

FED_TOPICS = ("alerts_raw", "alerts")
"""TopicNames fields whose backlog is what correlation still has to fold."""


def limits_of(settings: Settings) -> BacklogLimits:
    """The meter's limits from the settings; samples count as current for five intervals (at least 10 s)."""
    horizon = max(10.0, 5 * settings.admission_interval)
    return BacklogLimits(records=settings.admission_backlog_records, seconds=settings.admission_backlog_seconds,
                         rate_window=horizon, max_age=horizon)


class BacklogProbe(Service):
    """Measures the group's backlog on an interval and keeps the verdict for the ingest (see the module doc)."""

    def __init__(self, settings: Settings, *, clock: Callable[[], float] = time.monotonic, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.meter = BacklogMeter(limits_of(settings))
        self._settings = settings
        self._interval = settings.admission_interval
        self._group = settings.app_id
        self._clock = clock
        self._partitions = [TopicPartition(getattr(settings.topics, field), p)
                            for field in FED_TOPICS for p in range(settings.partitions_for(field))]
        self._consumer: AIOKafkaConsumer | None = None
        self._admin: AIOKafkaAdminClient | None = None
        self.probes = 0
        self.probe_seconds = 0.0
        """Wall time spent in probes: what admission control costs this process."""

    @staticmethod
    def wanted(settings: Settings) -> bool:
        """True when a limit is set (both at 0: admission control is off and nothing is probed)."""
        return limits_of(settings).enabled

    async def _connect(self) -> tuple[AIOKafkaConsumer, AIOKafkaAdminClient]:
        """A group-less consumer (end offsets) and an admin client (the group's offsets), connected once;
        a broker down at start is retried at the next probe."""
        if self._consumer is None or self._admin is None:
            options = {"bootstrap_servers": self._settings.bootstrap_servers,
                       "client_id": f"{self._settings.app_id}-admission", **client_options(self._settings)}
            consumer = AIOKafkaConsumer(group_id=None, enable_auto_commit=False, **options)
            admin = AIOKafkaAdminClient(**options)
            try:
                await consumer.start()
                await admin.start()
            except BaseException:
                await self._close(consumer, admin)
                raise
            self._consumer, self._admin = consumer, admin
        return self._consumer, self._admin

    async def on_stop(self) -> None:
        """Close both clients."""
        consumer, admin, self._consumer, self._admin = self._consumer, self._admin, None, None
        await self._close(consumer, admin)

    @staticmethod
    async def _close(consumer: AIOKafkaConsumer | None, admin: AIOKafkaAdminClient | None) -> None:
        for close in (consumer.stop if consumer else None, admin.close if admin else None):
            if close is not None:
                try:
                    await close()
                except Exception:  # noqa: BLE001 - closing a client to a dead broker must not block the stop
                    log.debug("closing an admission client failed", exc_info=True)

    @Service.task
    async def _poll(self) -> None:
        while not self.should_stop:
            await self.measure_once()
            await self.sleep(self._interval)

    async def measure_once(self) -> Backlog:
        """One probe, folded into the meter; the gauges follow. A failed probe changes nothing."""
        started = time.perf_counter()
        try:
            sample = await asyncio.wait_for(self._sample(), timeout=max(2.0, 2 * self._interval))
        except Exception as exc:  # noqa: BLE001 - a broker hiccup: the verdict ages out instead (max_age)
            log.debug("backlog not measured this round: %r", exc)
            return self.verdict()
        finally:
            self.probes += 1
            self.probe_seconds += time.perf_counter() - started
        verdict = self.meter.observe(sample)
        metrics.INGEST_BACKLOG_RECORDS.set(verdict.records)
        metrics.INGEST_BACKLOG_SECONDS.set(verdict.seconds if verdict.seconds != float("inf") else -1)
        metrics.INGEST_SHEDDING.set(1 if verdict.shed else 0)
        return verdict

    def verdict(self) -> Backlog:
        """The current verdict (UNKNOWN while no recent probe succeeded)."""
        current = self.meter.current(self._clock())
        if current is UNKNOWN:
            metrics.INGEST_SHEDDING.set(0)
        return current

    async def _sample(self) -> BacklogSample:
        consumer, admin = await self._connect()
        ends = await consumer.end_offsets(self._partitions)
        committed = await admin.list_consumer_group_offsets(self._group, partitions=self._partitions)
        done = {tp: meta.offset for tp, meta in committed.items() if meta is not None and meta.offset >= 0}
        never = [tp for tp in self._partitions if tp not in done]
        if never:  # a partition the group never committed on: its whole log is the backlog
            done.update(await consumer.beginning_offsets(never))
        lag: dict[str, int] = {}
        consumed: dict[str, int] = {}
        for tp in self._partitions:
            lag[tp.topic] = lag.get(tp.topic, 0) + max(0, ends.get(tp, 0) - done.get(tp, 0))
            consumed[tp.topic] = consumed.get(tp.topic, 0) + done.get(tp, 0)
        return BacklogSample(self._clock(), lag, consumed)
