"""The agents: normalize (`alerts.raw` -> `alerts`), correlate (`alerts` -> `incidents`) and the idle timer.

Only wiring lives here: records are decoded, handed to `correlator`, and what comes back is sent on. Every
consumed topic is read as raw bytes and decoded here, so that a record Faust could not decode is not
dropped by Faust with a log line but dead-lettered with its reason, like any other bad record.

Cost per record, not per alert: normalize turns a batch of raw bodies into one record per partition of
`alerts`, and correlate folds a whole `take_events` batch into one engine call per partition, publishes its
events as whole record batches, and writes each changed key once per checkpoint (`Pipeline.checkpoint`).
A batch is taken in steps of at most `step_bytes` of record values (`stream.batches.steps`), which bounds
what a step holds in memory; a step is the same as a smaller batch would have been.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import orjson
from faust.types import EventT, TopicT

from correlator import metrics
from correlator.config import CorrelationConfig
from correlator.engine import Correlator
from correlator.models import Alert, IncidentEvent
from correlator.records import AlertRecord, record_of
from correlator.sources import SOURCES, SourceError, detect_source, parse
from stream.app import App
from stream.batches import (
    MAX_ALERTS_PER_RECORD, PARTS_PER_OFFSET, BatchError, Segment, decode_batch, encode_batch, pack_records, steps,
)
from stream.idle import IdleClocks
from stream.sends import Record, cached_partition, key_partition, raise_failed, send_batches
from stream.settings import Settings
from stream.state import TableStore

__all__ = ["Pipeline", "Route", "install", "correlation_config"]

log = logging.getLogger(__name__)

NORMALIZE_BATCH, CORRELATE_BATCH, BATCH_WITHIN_S = 500, 1000, 0.02
TICK_S = 0.5
CENSUS_S = 10.0


Route = Callable[[Sequence[tuple[IncidentEvent, bytes]]], Awaitable[None]]
"""A hook handed every event a commit publishes, with its encoded value, before the commit's first flush."""


def correlation_config(settings: Settings) -> CorrelationConfig:
    """The engine's configuration from the worker's settings."""
    return CorrelationConfig(
        window_s=settings.window, allowed_lateness_s=settings.allowed_lateness,
        max_lifetime_s=settings.max_incident_lifetime, max_alerts=settings.max_incident_alerts,
        update_interval_s=settings.update_interval, resolve_hold_s=settings.resolve_hold,
        stale_after_s=settings.stale_after,
    )


@dataclass
class Pipeline:
    """The agents' shared state on one worker: an engine per owned partition of `alerts`."""

    app: App
    config: CorrelationConfig
    table: Any
    topics: dict[str, TopicT]
    engines: dict[int, Correlator] = field(default_factory=dict)
    clocks: IdleClocks = field(default_factory=IdleClocks)
    alerts_partitions: int = 4
    incidents_partitions: int = 4
    _partition_cache: dict[str, int] = field(default_factory=dict)
    checkpoint_s: float = 0.0
    """Seconds between state checkpoints (`checkpoint`); 0 checkpoints at every commit."""
    _events_sent: list[asyncio.Future[Any]] = field(default_factory=list)
    _state_sent: list[asyncio.Future[Any]] = field(default_factory=list)
    _held: list[Any] = field(default_factory=list)
    """Messages of `alerts` folded since the last checkpoint: acknowledged only once their state is sent."""
    _touched: set[int] = field(default_factory=set)
    _last_checkpoint: float = 0.0
    normalized: int = 0
    """Alerts this worker's normalize agent has parsed (shown by `/stats`, cheap to poll unlike /metrics)."""
    last_census: float = 0.0
    sources_lost: set[int] = field(default_factory=set)
    """Partitions whose engine must forget its `alerts.raw` offsets when next built (`broker_lost`)."""
    route: Route | None = None
    """Where else the published events go, inside the commit (stage 2 sets it; see `commit_many`)."""

    @property
    def alerts_topic(self) -> str:
        """Name of the topic whose partitions the engines follow."""
        return self.topic_name("alerts")

    def engine(self, partition: int) -> Correlator:
        """The engine of a partition, built on first use from whatever the table restored."""
        engine = self.engines.get(partition)
        if engine is None:
            store = TableStore(self.table, partition)
            engine = Correlator(self.config, store)
            engine.watermark = max(engine.watermark, store.watermark)
            self.engines[partition] = engine
            if partition in self.sources_lost:
                self._forget_sources(partition)
            log.info("correlation engine for partition %d: %d keys restored", partition, len(engine.store))
        return engine

    def broker_lost(self) -> None:
        """The broker lost its topics (stream/recovery.py): `alerts.raw` offsets start again at 0, so every engine,
        held now or built later from the table's local data, forgets the old ones and rewrites its keys."""
        self.sources_lost = set(range(self.alerts_partitions))
        for partition in list(self.engines):
            self._forget_sources(partition)

    def _forget_sources(self, partition: int) -> None:
        self._table_store(partition).forget_sources()
        self._touched.add(partition)  # the next checkpoint writes every key and the progress to the new changelog
        self.sources_lost.discard(partition)

    def partition_of(self, key: str) -> int:
        """The partition of `alerts` a correlation key belongs to, as a keyed Kafka producer would pick it."""
        return cached_partition(self._partition_cache, key, self.alerts_partitions)

    def mark_input(self, partition: int) -> None:
        """Input arrived: the idle clocks of the partition restart."""
        self.clocks.mark_input(partition, time.monotonic())

    def drop(self, partitions: Iterable[int]) -> None:
        """Forget engines of partitions this worker no longer owns (their state lives on in the changelog)."""
        partitions = list(partitions)
        for p in partitions:
            self.engines.pop(p, None)
        self.clocks.drop(partitions)
        gone = set(partitions)
        self._touched -= gone
        # Never acknowledged: their state was not written, so the partition's next owner reads them again.
        self._held = [m for m in self._held if m.partition not in gone]

    def hold(self, events: Sequence[EventT]) -> None:
        """Keep the input's messages unacknowledged (Faust's `take_events` acks them) until a checkpoint."""
        for event in events:
            event.message.incref()
            self._held.append(event.message)

    async def deadletter(self, agent: str, event: EventT, reason: str, category: str) -> None:
        """Send the original bytes to the dead-letter topic with the reason in headers, and count it."""
        msg = event.message
        headers = {
            "reason": reason.encode(), "category": category.encode(), "agent": agent.encode(),
            "topic": msg.topic.encode(), "partition": str(msg.partition).encode(),
            "offset": str(msg.offset).encode(),
        }
        await self.topics["deadletter"].send(key=msg.key, value=msg.value, headers=headers)
        metrics.DEADLETTERS.labels(agent, category).inc()
        log.warning("dead-lettered %s:%d@%d: %s", msg.topic, msg.partition, msg.offset, reason)

    def encode(self, events: Sequence[IncidentEvent], received_ms: int | None) -> list[bytes]:
        """The values of incident events about to be published; observes their counts and latencies."""
        now_s = time.time()
        values = [orjson.dumps(ev.model_dump(mode="json")) for ev in events]
        for ev in events:
            metrics.INCIDENT_EVENTS.labels(ev.kind).inc()
            if received_ms is not None:
                metrics.CORRELATION_LATENCY.observe(max(0.0, now_s - received_ms / 1000.0))
            if ev.kind in ("opened", "updated"):  # resolutions wait out resolve_hold by design: not latency
                metrics.CORRELATION_EVENT_LATENCY.observe(max(0.0, now_s - ev.last_seen))
        return values

    async def publish(self, published: Sequence[tuple[IncidentEvent, bytes]]) -> list[asyncio.Future[Any]]:
        """Send encoded incident events keyed by incident id, a partition's in whole batches; the futures."""
        by_partition: dict[int, list[Record]] = {}
        for ev, value in published:
            key = ev.incident_id.encode()
            by_partition.setdefault(key_partition(key, self.incidents_partitions), []).append((key, value, []))
        topic = self.topic_name("incidents")
        futures: list[asyncio.Future[Any]] = []
        for partition, records in by_partition.items():
            futures += await send_batches(self.app, topic, partition, records)
        return futures

    def topic_name(self, field_name: str) -> str:
        """Kafka name of one of the pipeline's topics."""
        return str(self.topics[field_name].get_topic_name())

    async def commit(self, partition: int, events: Sequence[IncidentEvent], received_ms: int | None) -> None:
        """Commit one partition (see `commit_many`)."""
        await self.commit_many([(partition, events, received_ms)])

    async def commit_many(self, items: Sequence[tuple[int, Sequence[IncidentEvent], int | None]]) -> None:
        """Publish the events a batch caused (and hand them to `route`), then checkpoint if one is due."""
        published: list[tuple[IncidentEvent, bytes]] = []
        for _, events, received_ms in items:
            published.extend(zip(events, self.encode(events, received_ms), strict=True))
        if published:
            self._events_sent += await self.publish(published)
            if self.route is not None:
                await self.route(published)
        self._touched.update(p for p, _, _ in items)
        await self.checkpoint_if_due()

    async def checkpoint_if_due(self) -> None:
        """`checkpoint` when `checkpoint_due`: after every commit, on the idle timer and when the app stops."""
        if self.checkpoint_due(time.monotonic()):
            await self.checkpoint()

    def checkpoint_due(self, now: float) -> bool:
        """Whether there is state to write and it is time: the interval has passed, or Faust is rebalancing or
        stopping (it waits for every message in flight to be acknowledged, and held ones are only by a checkpoint)."""
        if not (self._touched or self._held):
            return False
        return (now - self._last_checkpoint >= self.checkpoint_s or bool(getattr(self.app, "rebalancing", False))
                or self.app.should_stop)

    async def checkpoint(self) -> None:
        """Wait for the events published so far, send the changed keys, then the progress; acknowledge the input.

        In that order, so that a crash at any point loses nothing: events already out are regenerated
        with the same ids and seq if the state did not make it; state already out is never re-applied,
        because the progress written last says which segments it covers; input not yet acknowledged is read
        again by whoever owns the partition next. The keys and the progress are not waited for: they go as
        separate record batches on the changelog partition, which the producer delivers in order (one batch
        in flight per partition), so the progress still follows the keys it covers, always as a one-record
        batch, which Tansu 0.6.0 needs to report the changelog's true end offset (it under-reports after a
        multi-record batch, and Faust recovers only up to it). Faust flushes the producer before it commits
        the offsets of acknowledged input, and the next checkpoint waits for this one's state with its
        events, so a failed delivery stops the agent one checkpoint later, before anything more is acked.

        Writing state once per interval rather than per batch is what keeps a live stream cheap: a storm's key
        changes in nearly every small batch, and its whole state would otherwise be encoded and sent each time.
        """
        self._last_checkpoint = time.monotonic()
        waiting = self._events_sent + self._state_sent
        self._events_sent, self._state_sent = [], []
        if waiting:
            await asyncio.gather(*waiting, return_exceptions=True)
            raise_failed(waiting)  # before the state that follows them: the input is redelivered instead
        stores = [self._table_store(p) for p in sorted(self._touched) if p in self.engines]
        self._touched.clear()
        sent: list[asyncio.Future[Any]] = []
        for store in stores:
            changes = store.write_keys()
            if changes:
                sent += await send_batches(self.app, store.changelog_topic, store.partition,
                                           ((k, v, []) for k, v in changes))
        for store in stores:
            key, value = store.write_progress(self.engines[store.partition].watermark)
            sent += await send_batches(self.app, store.changelog_topic, store.partition, [(key, value, [])])
        self._state_sent = sent
        held, self._held = self._held, []
        consumer = self.app.consumer
        for message in held:
            message.ack(consumer)

    def _table_store(self, partition: int) -> TableStore:
        store = self.engines[partition].store
        assert isinstance(store, TableStore)
        return store

    def census(self) -> None:
        """Recount the state gauges from the engines this worker holds (they change hands on rebalance)."""
        metrics.STATE_KEYS.set(sum(len(e.store) for e in self.engines.values()))
        metrics.INCIDENTS_OPEN.set(sum(len(e.open_incidents()) for e in self.engines.values()))


def _source_of(event: EventT) -> str:
    key = event.message.key
    name = key.decode("utf-8", "replace") if isinstance(key, bytes) else str(key or "")
    return name if name in SOURCES else "auto"


async def normalize_batch(pipe: Pipeline, events: Sequence[EventT]) -> None:
    """Parse raw bodies, dead-letter refusals, and send one `alerts` record per partition of `alerts`.

    Each alert goes to the partition its correlation key hashes to (Kafka's default murmur2, as for any
    producer keying by correlation key), but all alerts of one batch bound for one partition travel in one
    record. Per-key records were measured to go wrong: when correlate's batch boundary split them, the
    partition's watermark ran ahead on one key's record while another key's older alerts were still in
    flight, firing that key's timers early (21 of 170 incidents differed for 5-body batches). A record per
    partition makes each normalize batch atomic for correlate.
    """
    by_partition: dict[int, list[Segment]] = {}
    received_ms: int | None = None
    for event in events:
        msg = event.message
        body = msg.value or b""
        source = _source_of(event)
        try:
            alerts = parse(detect_source(body) if source == "auto" else source, body)
        except SourceError as exc:
            await pipe.deadletter("normalize", event, str(exc), exc.category)
            continue
        pipe.normalized += len(alerts)
        arrived_ms = int(msg.timestamp * 1000)  # Faust's Message.timestamp is in seconds (Kafka's ms / 1000)
        received_ms = arrived_ms if received_ms is None else min(received_ms, arrived_ms)
        for partition, records in _split_by_partition(pipe, alerts).items():
            segments = by_partition.setdefault(partition, [])
            for part, start in enumerate(range(0, len(records), MAX_ALERTS_PER_RECORD)):
                origin = (msg.partition, msg.offset * PARTS_PER_OFFSET + part)
                segments.append(Segment(origin, records[start:start + MAX_ALERTS_PER_RECORD]))
    metrics.RECORDS_CONSUMED.labels("normalize").inc(len(events))
    topic = pipe.topics["alerts"]
    for partition, segments in by_partition.items():
        # In order, so a partition's records still arrive oldest raw record first.
        for chunk in pack_records(segments):
            await topic.send(key=None, partition=partition, value=encode_batch(chunk, received_ms or 0))


def _split_by_partition(pipe: Pipeline, alerts: Sequence[Alert]) -> dict[int, list[AlertRecord]]:
    out: dict[int, list[AlertRecord]] = {}
    by_source: dict[str, int] = {}
    for alert in alerts:
        by_source[alert.source] = by_source.get(alert.source, 0) + 1
        out.setdefault(pipe.partition_of(alert.key), []).append(record_of(alert))
    for source, count in by_source.items():  # one metric update per source, not per alert
        metrics.ALERTS_RECEIVED.labels(source).inc(count)
    return out


async def correlate_batch(pipe: Pipeline, events: Sequence[EventT]) -> None:
    """Fold a batch of `alerts` records into the engines of their partitions and publish what changed.

    Segments already applied (by this worker or by one before a crash) are skipped by their source offset.
    """
    pipe.hold(events)
    by_partition: dict[int, list[AlertRecord]] = {}
    sources: dict[int, dict[str, tuple[int, int]]] = {}
    received: dict[int, int] = {}
    for event in events:
        try:
            segments, received_ms = decode_batch(event.message.value)
        except BatchError as exc:
            await pipe.deadletter("correlate", event, str(exc), BatchError.category)
            continue
        p = event.message.partition
        store = pipe.engine(p).store
        assert isinstance(store, TableStore)
        records = by_partition.setdefault(p, [])
        touched = sources.setdefault(p, {})
        for segment in segments:
            if store.seen(segment.source):
                metrics.SEGMENTS_SKIPPED.inc()
                continue
            store.advance_progress(segment.source)
            _take_segment(store, segment, records, touched)
        if received_ms:
            received[p] = min(received.get(p, received_ms), received_ms)
    metrics.RECORDS_CONSUMED.labels("correlate").inc(len(events))
    done: list[tuple[int, Sequence[IncidentEvent], int | None]] = []
    for p, records in by_partition.items():
        engine = pipe.engine(p)
        before = replace(engine.counters)
        out = engine.ingest(records)
        metrics.ALERT_RECORDS_CORRELATED.inc(len(records))
        store = engine.store
        assert isinstance(store, TableStore)
        for key, source in sources.get(p, {}).items():
            store.note_source(key, source)
        pipe.mark_input(p)
        _count(before, engine)
        done.append((p, out, received.get(p)))
    await pipe.commit_many(done)


def _take_segment(store: TableStore, segment: Segment, records: list[AlertRecord],
                  touched: dict[str, tuple[int, int]]) -> None:
    """Add a segment's records, minus those a key already holds (a crash lost the partition's progress)."""
    source = segment.source
    if source is None:
        records.extend(segment.records)
        return
    for record in segment.records:
        if store.applied_to_key(record.key, source):
            continue
        records.append(record)
        touched[record.key] = source


def _count(before: Any, engine: Correlator) -> None:
    after = engine.counters
    metrics.ALERT_DUPLICATES.inc(after.duplicates - before.duplicates)
    metrics.ALERTS_DISTINCT.inc(after.alerts - before.alerts)
    metrics.ALERTS_LATE.inc(after.late - before.late)


async def tick(pipe: Pipeline) -> None:
    """Idle timer, in two steps per partition that receives nothing.

    After `idle_flush` the reorder buffer is released and throttled updates go out, without moving event
    time. After `idle_advance` event time starts to follow the wall clock (by the whole silence, then tick
    by tick), so that a quiet partition still closes windows, resolves incidents and expires stale ones.
    Until then a pause of the producers (a replay in bursts, a rebalance) changes nothing.
    """
    now = time.monotonic()
    for p, engine in list(pipe.engines.items()):
        if engine.watermark == float("-inf"):
            continue
        before = replace(engine.counters)
        out: list[IncidentEvent] = []
        if pipe.clocks.flush_due(p, now):
            out += engine.flush_idle()
        step = pipe.clocks.advance_due(p, now)
        if step is not None:
            out += engine.advance(engine.watermark + step)
        _count(before, engine)
        if out:
            await pipe.commit(p, out, None)
    await pipe.checkpoint_if_due()
    if now - pipe.last_census >= CENSUS_S:
        pipe.census()
        pipe.last_census = now


def install(app: App, settings: Settings) -> Pipeline:
    """Add the correlation agents, the state table and the idle timer to `app`."""
    names = settings.topics
    topics: dict[str, TopicT] = {
        field_name: app.topic(getattr(names, field_name), partitions=settings.partitions_for(field_name),
                              key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
        for field_name in ("alerts_raw", "alerts", "incidents", "deadletter")
    }
    partitions = settings.partitions_for("alerts")
    # Bytes in, bytes out: TableStore encodes keys and values itself, so neither the write nor the
    # recovery path depends on Faust's codec choice for tables.
    changelog = app.topic(f"{settings.app_id}-correlation-state-changelog", partitions=partitions,
                          key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw",
                          compacting=True, acks=False, internal=True)
    table = app.Table("correlation-state", partitions=partitions, key_type=bytes, value_type=bytes,
                      changelog_topic=changelog)
    pipe = Pipeline(app, correlation_config(settings), table, topics, checkpoint_s=settings.checkpoint_interval,
                    clocks=IdleClocks(settings.idle_flush, settings.idle_advance), alerts_partitions=partitions,
                    incidents_partitions=settings.partitions_for("incidents"))

    @app.agent(topics["alerts_raw"], name="normalize")
    async def normalize(stream: Any) -> None:
        async for events in stream.take_events(NORMALIZE_BATCH, within=BATCH_WITHIN_S):
            for step in steps(events, settings.step_bytes):
                await normalize_batch(pipe, step)

    @app.agent(topics["alerts"], name="correlate")
    async def correlate(stream: Any) -> None:
        async for events in stream.take_events(CORRELATE_BATCH, within=BATCH_WITHIN_S):
            for step in steps(events, settings.step_bytes):
                await correlate_batch(pipe, step)

    @app.timer(interval=TICK_S)
    async def idle_tick() -> None:
        await tick(pipe)

    @app.on_partitions_revoked.connect
    async def on_revoked(app: Any, revoked: Any, **_: Any) -> None:
        pipe.drop(tp.partition for tp in revoked if tp.topic == names.alerts)

    app.stop_hooks.append(pipe.checkpoint_if_due)  # stopping: always due when something is held
    return pipe
