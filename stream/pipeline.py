"""The agents: normalize (`alerts.raw` -> `alerts`), correlate (`alerts` -> `incidents`) and the idle timer.

Only wiring lives here: records are decoded, handed to `correlator`, and what comes back is sent on. Every
consumed topic is read as raw bytes and decoded here, so that a record Faust could not decode is not
dropped by Faust with a log line but dead-lettered with its reason, like any other bad record.

Cost per record, not per alert: normalize turns each raw body into one record per correlation key, and
correlate folds a whole `take_events` batch into one engine call per partition and one table write per
changed key.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import faust
import orjson
from faust.types import EventT, TopicT

from correlator import metrics
from correlator.config import CorrelationConfig
from correlator.engine import Correlator
from correlator.models import Alert, IncidentEvent
from correlator.records import AlertRecord, dict_of_record, record_from_dict, record_of
from correlator.sources import SOURCES, SourceError, detect_source, parse
from stream.app import App
from stream.settings import Settings
from stream.state import TableStore

__all__ = ["Pipeline", "install", "correlation_config", "encode_batch", "decode_batch", "BatchError"]

log = logging.getLogger(__name__)

NORMALIZE_BATCH, CORRELATE_BATCH, BATCH_WITHIN_S = 500, 1000, 0.02
TICK_S = 0.5
CENSUS_S = 10.0


def correlation_config(settings: Settings) -> CorrelationConfig:
    """The engine's configuration from the worker's settings."""
    return CorrelationConfig(
        window_s=settings.window, allowed_lateness_s=settings.allowed_lateness,
        max_lifetime_s=settings.max_incident_lifetime, max_alerts=settings.max_incident_alerts,
        update_interval_s=settings.update_interval, resolve_hold_s=settings.resolve_hold,
        stale_after_s=settings.stale_after,
    )


class BatchError(ValueError):
    """A record on `alerts` that is neither a batch written by normalize nor one normalized Alert."""

    category = "bad_alert_record"


def encode_batch(records: Sequence[AlertRecord], received_ms: int) -> bytes:
    """Value of one `alerts` record: the alerts of one key from one or more raw bodies."""
    return orjson.dumps({"received_ms": received_ms, "alerts": [dict_of_record(r) for r in records]})


def decode_batch(raw: bytes | None) -> tuple[list[AlertRecord], int | None]:
    """Alerts of one `alerts` record: a normalize batch, or one `Alert` JSON from any other producer."""
    try:
        doc = orjson.loads(raw or b"")
    except orjson.JSONDecodeError as exc:
        raise BatchError(f"malformed JSON: {exc}") from None
    if isinstance(doc, dict) and isinstance(doc.get("alerts"), list):
        try:
            return [record_from_dict(d) for d in doc["alerts"]], doc.get("received_ms")
        except (KeyError, TypeError) as exc:
            raise BatchError(f"batch entry without field {exc}") from None
    if isinstance(doc, dict):
        try:
            return [record_of(Alert.model_validate(doc))], None
        except ValueError as exc:
            raise BatchError(f"not an Alert: {exc}".splitlines()[0]) from None
    raise BatchError(f"expected a JSON object, got {type(doc).__name__}")


@dataclass
class Pipeline:
    """The agents' shared state on one worker: an engine per owned partition of `alerts`."""

    app: App
    config: CorrelationConfig
    table: Any
    topics: dict[str, TopicT]
    engines: dict[int, Correlator] = field(default_factory=dict)
    last_input: dict[int, float] = field(default_factory=dict)
    last_census: float = 0.0
    sync_marker: bool = True

    @property
    def alerts_topic(self) -> str:
        """Name of the topic whose partitions the engines follow."""
        return str(self.topics["alerts"].get_topic_name())

    def engine(self, partition: int) -> Correlator:
        """The engine of a partition, built on first use from whatever the table restored."""
        engine = self.engines.get(partition)
        if engine is None:
            engine = Correlator(self.config, TableStore(self.table, partition))
            self.engines[partition] = engine
            log.info("correlation engine for partition %d: %d keys restored", partition, len(engine.store))
        return engine

    def drop(self, partitions: Iterable[int]) -> None:
        """Forget engines of partitions this worker no longer owns (their state lives on in the changelog)."""
        for p in partitions:
            self.engines.pop(p, None)
            self.last_input.pop(p, None)

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

    async def publish(self, events: Sequence[IncidentEvent], received_ms: int | None) -> None:
        """Send incident events keyed by incident id, and observe the correlation latency."""
        topic = self.topics["incidents"]
        now_s = time.time()
        for ev in events:
            await topic.send(key=ev.incident_id.encode(), value=orjson.dumps(ev.model_dump(mode="json")))
            metrics.INCIDENT_EVENTS.labels(ev.kind).inc()
            if received_ms is not None:
                metrics.CORRELATION_LATENCY.observe(max(0.0, now_s - received_ms / 1000.0))

    async def flush(self, partition: int) -> None:
        """Write the partition's changed keys to the table and its changelog."""
        engine = self.engines[partition]
        store = engine.store
        assert isinstance(store, TableStore)
        if store.flush() and self.sync_marker:
            await self._end_offset_marker(partition)

    async def _end_offset_marker(self, partition: int) -> None:
        """Make the changelog's end offset true on Tansu 0.6.0 (see Settings.changelog_sync_marker).

        Tansu under-reports a partition's end offset after a multi-record batch until a one-record batch
        follows, and Faust recovers a table only up to the end offset it is told: without this marker a
        restarted worker would miss the last state writes. So: send what is queued, then one tombstone for
        a key no incident uses, alone in its batch.
        """
        producer = self.app.producer
        await producer.flush()
        self.table.send_changelog(partition, f"{partition}|", None, value_serializer="raw")
        await producer.flush()

    def census(self) -> None:
        """Recount the state gauges from the engines this worker holds (they change hands on rebalance)."""
        metrics.STATE_KEYS.set(sum(len(e.store) for e in self.engines.values()))
        metrics.INCIDENTS_OPEN.set(sum(len(e.open_incidents()) for e in self.engines.values()))


def _source_of(event: EventT) -> str:
    key = event.message.key
    name = key.decode("utf-8", "replace") if isinstance(key, bytes) else str(key or "")
    return name if name in SOURCES else "auto"


async def normalize_batch(pipe: Pipeline, events: Sequence[EventT]) -> None:
    """Parse raw bodies, dead-letter refusals, and send one `alerts` record per correlation key."""
    by_key: dict[str, list[AlertRecord]] = {}
    received_ms: int | None = None
    for event in events:
        body = event.message.value or b""
        source = _source_of(event)
        try:
            alerts = parse(detect_source(body) if source == "auto" else source, body)
        except SourceError as exc:
            await pipe.deadletter("normalize", event, str(exc), exc.category)
            continue
        stamp = event.message.timestamp
        received_ms = int(stamp) if received_ms is None else min(received_ms, int(stamp))
        for alert in alerts:
            metrics.ALERTS_RECEIVED.labels(alert.source).inc()
            by_key.setdefault(alert.key, []).append(record_of(alert))
    metrics.RECORDS_CONSUMED.labels("normalize").inc(len(events))
    topic = pipe.topics["alerts"]
    for key, records in by_key.items():
        await topic.send(key=key.encode(), value=encode_batch(records, received_ms or 0))


async def correlate_batch(pipe: Pipeline, events: Sequence[EventT]) -> None:
    """Fold a batch of `alerts` records into the engines of their partitions and publish what changed."""
    by_partition: dict[int, list[AlertRecord]] = {}
    received: dict[int, int] = {}
    for event in events:
        try:
            records, received_ms = decode_batch(event.message.value)
        except BatchError as exc:
            await pipe.deadletter("correlate", event, str(exc), BatchError.category)
            continue
        p = event.message.partition
        by_partition.setdefault(p, []).extend(records)
        if received_ms:
            received[p] = min(received.get(p, received_ms), received_ms)
    metrics.RECORDS_CONSUMED.labels("correlate").inc(len(events))
    for p, records in by_partition.items():
        engine = pipe.engine(p)
        before = replace(engine.counters)
        out = engine.ingest(records)
        pipe.last_input[p] = time.monotonic()
        _count(before, engine)
        await pipe.flush(p)
        await pipe.publish(out, received.get(p))


def _count(before: Any, engine: Correlator) -> None:
    after = engine.counters
    metrics.ALERT_DUPLICATES.inc(after.duplicates - before.duplicates)
    metrics.ALERTS_DISTINCT.inc(after.alerts - before.alerts)
    metrics.ALERTS_LATE.inc(after.late - before.late)


async def tick(pipe: Pipeline) -> None:
    """Idle timer: a partition that received nothing lets event time follow the wall clock.

    Without it the last alerts of a storm would wait for the next alert to move the watermark; with it a
    quiet partition releases held alerts, closes windows and resolves incidents on time.
    """
    now = time.monotonic()
    for p, engine in list(pipe.engines.items()):
        last = pipe.last_input.get(p, now)
        idle = now - last
        if idle < TICK_S or engine.watermark == float("-inf"):
            continue
        before = replace(engine.counters)
        out = engine.advance(engine.watermark + idle)
        pipe.last_input[p] = now
        _count(before, engine)
        await pipe.flush(p)
        await pipe.publish(out, None)
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
    schema = faust.Schema(key_type=str, value_type=bytes, key_serializer="raw", value_serializer="raw")
    table = app.Table("correlation-state", partitions=settings.partitions_for("alerts"), schema=schema)
    pipe = Pipeline(app, correlation_config(settings), table, topics, sync_marker=settings.changelog_sync_marker)

    @app.agent(topics["alerts_raw"], name="normalize")
    async def normalize(stream: Any) -> None:
        async for events in stream.take_events(NORMALIZE_BATCH, within=BATCH_WITHIN_S):
            await normalize_batch(pipe, events)

    @app.agent(topics["alerts"], name="correlate")
    async def correlate(stream: Any) -> None:
        async for events in stream.take_events(CORRELATE_BATCH, within=BATCH_WITHIN_S):
            await correlate_batch(pipe, events)

    @app.timer(interval=TICK_S)
    async def idle_tick() -> None:
        await tick(pipe)

    @app.on_partitions_revoked.connect
    async def on_revoked(app: Any, revoked: Any, **_: Any) -> None:
        pipe.drop(tp.partition for tp in revoked if tp.topic == names.alerts)

    return pipe
