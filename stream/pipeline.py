"""Stage 1's stages (`stream.stages`): normalize (`alerts.raw` -> `alerts`) and correlate (`alerts` ->
`incidents`, with its idle timer).

Only wiring lives here: records are decoded, handed to `correlator`, and what comes back is sent on. Every
consumed topic is read as raw bytes and decoded here, so that a record Faust could not decode is not
dropped by Faust with a log line but dead-lettered with its reason, like any other bad record.

Cost per record, not per alert: normalize turns a batch of raw bodies into one record per partition of
`alerts`, and correlate folds a whole `take_events` batch into one engine call per partition, publishes its
events as whole record batches, and writes each changed key once per checkpoint (`stream.checkpoint`).
A batch is taken in steps of at most `step_bytes` of record values (`stream.batches.steps`), which bounds
what a step holds in memory; a step is the same as a smaller batch would have been.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

from faust.types import TP, EventT, TopicT

from correlator import metrics
from correlator.config import CorrelationConfig
from correlator.engine import Correlator
from correlator.eventtime import arrival_of
from correlator.keys import DEFAULT_KEY_CONFIG, KeyConfig
from correlator.models import Census, IncidentEvent
from correlator.records import AlertRecord
from correlator.sources import SOURCES, detect_source, normalize
from correlator.stage2.watermark import SourceMark, source_mark
from stream import tally
from stream.app import App
from stream.batches import (
    PARTS_PER_OFFSET,
    Segment,
    decode_batch,
    encode_batch,
    pack_records,
    steps,
)
from stream.checkpoint import Checkpointer, CheckpointStore
from stream.consumer import committed_offset
from stream.deadletters import DeadLetters, category_of, reason_of
from stream.hop import count_received, numbered, partition_parts
from stream.idle import TICK_S, IdleClocks
from stream.incident_records import CENSUS_HEADERS, encode_incident_event
from stream.provenance import SourceCheck
from stream.sends import Record, cached_partition, send_batches
from stream.settings import Settings
from stream.stages import HeldUntilCheckpoint, PerBatch, StageSpec
from stream.state import TableStore
from stream.topics import changelog_name

__all__ = ["CENSUS_MAX_IDS", "CorrelateStage", "NormalizeStage", "Pipeline", "Route", "census_values", "install", "source_of_key"]

log = logging.getLogger(__name__)

NORMALIZE_BATCH, CORRELATE_BATCH, BATCH_WITHIN_S = 500, 1000, 0.02
CENSUS_S = 10.0


Route = Callable[[Sequence[tuple[IncidentEvent, bytes]], Mapping[int, SourceMark], bool],
                 Awaitable[list[asyncio.Future[Any]]]]
"""A hook handed every event a commit publishes, with its encoded value, and the marks of the commit's partitions
(how far each has published, `correlator.stage2.watermark`), taken with the events they cover; its sends'
futures are waited for with the events' own, before the checkpoint writes the state that produced them. The flag:
events said again after a broker loss (`Pipeline._say_again`), not new ones."""


def key_config(settings: Settings) -> KeyConfig:
    """How the adapters name an alert's scope, from the worker's settings."""
    return KeyConfig(scope_labels=settings.scope_labels)


@dataclass
class Pipeline:
    """The agents' shared state on one worker: an engine per owned partition of `alerts`."""

    app: App
    config: CorrelationConfig
    table: Any
    topics: dict[str, TopicT]
    engines: dict[int, Correlator] = field(default_factory=dict)
    stores: dict[int, TableStore] = field(default_factory=dict)
    """Each engine's store (the engine sees it as a `correlator.state.StateStore`)."""
    clocks: IdleClocks = field(default_factory=IdleClocks)
    alerts_partitions: int = 4
    incidents_partitions: int = 4
    _partition_cache: dict[str, int] = field(default_factory=dict)
    _incident_partitions: dict[str, int] = field(default_factory=dict)
    checkpoint_s: float = 0.0
    """Seconds between state checkpoints (`checkpoint`); 0 checkpoints at every commit."""
    checkpoints: Checkpointer = field(init=False)
    """Events sent, records of `alerts` held and the clock of the state checkpoints (`stream.checkpoint`)."""
    _touched: set[int] = field(default_factory=set)
    normalized: int = 0
    """Alerts this worker's normalize agent has parsed (shown by `/stats`, cheap to poll unlike /metrics)."""
    last_census: float = 0.0
    route: Route | None = None
    """Where else the published events go, inside the commit (stage 2 sets it; see `commit_many`)."""
    letters: DeadLetters | None = None
    """The dead-letter sender every agent of the worker refuses records through (`install` sets it)."""
    keys: KeyConfig = DEFAULT_KEY_CONFIG
    """How normalize names scopes, services and symptoms (the settings' scope labels)."""
    sources: SourceCheck | None = None
    """What correlate checks an `alerts` record's source offsets against before trusting them (`install` sets it)."""
    read_to: dict[tuple[str, int], int] = field(default_factory=dict)
    """The next offset of each (topic, partition) the agents read from (`note_read`), for `records_waiting`."""
    census_after_loss: bool = True
    """After the broker lost its topics, say which incidents each engine holds open (`census_lost`;
    `Settings.reconcile_after_loss`)."""
    route_after_loss: bool = True
    """After the broker lost its topics, hand `route` each engine's open incidents again (`census_lost`,
    `Correlator.restate`; `Settings.stage2_restate_after_loss`)."""
    incidents_after_loss: bool = False
    """After the broker lost its topics, say each engine's open incidents again on `incidents` too (`_say_again`;
    `Settings.restate_incidents_after_loss`)."""
    _census_due: set[int] = field(default_factory=set)
    """Partitions whose engine was built (or rebuilt by a rollback) after a loss and before a checkpoint wrote it:
    their census (and open incidents routed again) goes out before their next input once the agents resumed
    (`census_lost`), and stays due across a revocation (the rejoin's rebalance revokes them, and a checkpoint may have
    cleared their loss mark meanwhile)."""
    resumed: Callable[[], bool] | None = None
    """Whether the agents resumed after the last loss (the broker watch: the group's rejoin ended; `stream.worker`
    sets it); None: always. A census waits for it (`census_lost`)."""

    def __post_init__(self) -> None:
        self.checkpoints = Checkpointer(self.app, self._touched_stores, self.checkpoint_s)

    @property
    def alerts_topic(self) -> str:
        """Name of the topic whose partitions the engines follow."""
        return self.topic_name("alerts")

    def engine(self, partition: int) -> Correlator:
        """The engine of a partition, built on first use from whatever the table restored."""
        engine = self.engines.get(partition)
        if engine is None:
            store = self.stores[partition] = TableStore(self.table, partition)
            engine = Correlator(self.config, store)
            engine.watermark = store.watermark  # saved with the progress its keys came with (stream.checkpoint)
            self.engines[partition] = engine
            self._forget_sources(partition)  # if its partition is lost (`Checkpointer.lose`)
            log.info("correlation engine for partition %d: %d keys restored, progress %s, watermark %s", partition,
                     len(engine.store), store.progress or "none", store.watermark)
        return engine

    def broker_lost(self) -> None:
        """The broker lost its topics (stream/recovery.py): `alerts.raw` offsets start again at 0, so every engine,
        held now or built later from the table's local data, forgets the old ones and rewrites its keys."""
        self.checkpoints.lose(self.table, range(self.alerts_partitions))
        if self.sources is not None:
            self.sources.forget()
        for partition in list(self.engines):
            self._forget_sources(partition)
        if self._says_after_loss():
            # Held or not: the consumer may see the broker go (a rebalance that revokes every partition, dropping
            # the engines) a moment before the broker watch does, and an engine built on the next input only would
            # say nothing when none comes (census41's real-broker test: revoked 2 ms before the loss, no census).
            self._census_due.update(range(self.alerts_partitions))

    def _says_after_loss(self) -> bool:
        """Whether an engine built after a loss says something (`census_lost`): its census, its open incidents to
        stage 2 again, or both."""
        return self.census_after_loss or self.incidents_after_loss or (self.route_after_loss and self.route is not None)

    def store(self, partition: int) -> TableStore:
        """The store of a partition's engine (building the engine on first use)."""
        self.engine(partition)
        return self.stores[partition]

    def rollback(self, failed: Sequence[EventT[Any]]) -> list[EventT[Any]]:
        """After a failed batch or checkpoint: every engine is rebuilt from the table (the last checkpoint's
        state, rewritten whole at the next one); the input held since then and `failed` are to be folded again."""
        replay = self.checkpoints.rollback(failed)
        for partition in list(self.engines):
            del self.engines[partition], self.stores[partition]
            self.store(partition).rewrite()
            self._touched.add(partition)
        return replay

    def _forget_sources(self, partition: int) -> None:
        if self.checkpoints.forget(self.stores[partition]):
            self._touched.add(partition)  # the next checkpoint writes every key and the progress to the new changelog
            if self._says_after_loss():
                self._census_due.add(partition)  # notify learns what closed, stage 2 what it had not read

    async def census_lost(self) -> None:
        """Say, on every partition of `incidents`, which incidents each engine built after a loss holds open (a
        `Census` per partition, at the engine's watermark, before its next input): the broker took the closes it
        had published and notify had not read, and the engine keeps only open incidents, so notify held those
        firing, paged them alone and never resolved them (session 38's chaos soak, mechanism 1b). Notify closes
        what the census does not name (`correlator.notify.state`). Like stage 2's restatement, a rollback before
        the checkpoint that writes the store says it again, counting the state rebuilt; after it, never. Before the
        census, the engine's open incidents are said again (`_say_again`): to stage 2 with `route_after_loss`, on
        `incidents` with `incidents_after_loss`.

        It waits until the agents resumed after the loss (`resumed`: the group's rejoin ended), so that it is
        published to, and read by, the group as it stands after the loss rather than in the middle of its rejoin.
        (Seen first as the cause of a group whose commits of `incidents` stopped short of its end after the loss in
        two quick chaos soaks; a third with the census off stopped short too: that is not the census's.)"""
        if not self._census_due or (self.resumed is not None and not self.resumed()):
            return
        if getattr(self.app, "rebalancing", False):
            return  # a partition just assigned may not be restored yet: an engine built now would lack its state
        owned = {tp.partition for tp in self.app.assignor.assigned_actives() if tp.topic == self.alerts_topic}
        for partition in sorted(self._census_due):
            if partition not in owned:
                continue  # revoked by the rejoin's rebalance: due until this worker owns it again
            held = partition in self.engines
            engine = self.engine(partition)  # the rejoin dropped it: built again from the table, as its next input would
            if not held:  # with no input yet: its idle clocks start now, or it never says idle and stage 2 waits on it
                self.clocks.start(partition, time.monotonic())
            self._census_due.discard(partition)
            if engine.watermark == float("-inf"):
                continue
            await self._say_again(partition, engine)
            if not self.census_after_loss:
                continue
            open_ids: dict[int, list[str]] = {q: [] for q in range(self.incidents_partitions)}
            for inc in engine.open_incidents():
                open_ids[cached_partition(self._incident_partitions, inc.id, self.incidents_partitions)].append(inc.id)
            values = census_values(partition, engine.watermark, open_ids)
            count = sum(len(ids) for ids in open_ids.values())
            if values is None:
                log.warning("stage 1: no census of partition %d after the broker lost its topics: %d open incidents, "
                            "more than %d on one partition of incidents (one record); notify closes none of them",
                            partition, count, CENSUS_MAX_IDS)
                continue
            topic = self.topic_name("incidents")
            for q, value in values:
                self.checkpoints.sent(await send_batches(self.app, topic, q, [
                    (f"census-{partition}".encode(), value, list(CENSUS_HEADERS))]))
            log.info("stage 1: census of partition %d after the broker lost its topics: %d open incidents at %s",
                     partition, count, engine.watermark)

    async def _say_again(self, partition: int, engine: Correlator) -> None:
        """Say the engine's open incidents again, as last published (`Correlator.restate`), to the readers that may
        have lost them with the broker; one that holds an incident's event counts it a duplicate (same seq).

        To `route` (`route_after_loss`): the routing records stage 2 had not folded went with the broker, and a new
        incident in one was never grouped (stage 1 says nothing more of it until it changes) while notify, which had
        read it on `incidents`, paged it alone at the cause wait (session 39's traced chaos soak: a rebalance begun
        2.5 s before the broker stopped left routing partition 2 unread, and four of fault 4's children went with
        it). Stage 2 counts the ones it holds as duplicates.

        To `incidents` (`incidents_after_loss`, off by default): the same cut rebalance leaves `incidents` unread
        too, and notify never learns of an incident whose only event went with the broker: it is never paged, alone
        or in a cause, and never closed (session 41's quick chaos soak t5, child42: `mobservice/docker_cpu_core_5_pct`,
        published 0.8 s after its notify's partition was revoked, said again to stage 2 only, which left it a cause
        of its own; notify never held it). The census closes what notify holds that stage 1 no longer does; this
        opens what stage 1 holds that notify never read. Before the route: notify reads each incident before
        stage 2's assignment of it, as from a commit. Off because in three loaded quick chaos soaks with it on
        (child42 t1-t3) notify did not apply runs of stage 2's restated assignments after the restart (Tansu's
        `UnknownError` rollbacks) and paged 134, 255 and 148 of these incidents alone."""
        to_incidents = self.incidents_after_loss
        to_route = self.route_after_loss and self.route is not None
        if not (to_incidents or to_route):
            return
        restated = engine.restate()
        if not restated:
            return
        published = [(ev, encode_incident_event(ev)) for ev in restated]  # not counted again as events made
        if to_incidents:
            self.checkpoints.sent(await self.publish(published))
        if to_route:
            assert self.route is not None
            self.checkpoints.sent(await self.route(published, {partition: self.mark(partition)}, True))
        log.info("stage 1: %d open incidents of partition %d said again after the broker lost its topics (%s)",
                 len(restated), partition, ", ".join(w for w, on in (("incidents", to_incidents), ("route", to_route))
                                                      if on))

    def partition_of(self, key: str) -> int:
        """The partition of `alerts` a correlation key belongs to, as a keyed Kafka producer would pick it."""
        return cached_partition(self._partition_cache, key, self.alerts_partitions)

    def count_normalized(self, alerts: int) -> None:
        """Alerts parsed by normalize (`stream.tally` calls it once the fold that parsed them succeeded)."""
        self.normalized += alerts

    def mark_input(self, partition: int) -> None:
        """Input arrived: the idle clocks of the partition restart."""
        self.clocks.mark_input(partition, time.monotonic())

    def note_read(self, events: Sequence[EventT[Any]]) -> None:
        """The agents took these records: their partitions are read up to the last of them."""
        for event in events:
            msg = event.message
            tp = (msg.topic, msg.partition)
            if tp not in self.read_to:  # the first since it was assigned: beside the restore line, where reading resumed
                log.info("%s partition %d: first record read at offset %d (group's committed offset %s)", msg.topic,
                         msg.partition, msg.offset, committed_offset(self.app.consumer, TP(msg.topic, msg.partition)))
            self.read_to[tp] = msg.offset + 1

    def forget_read(self, topic: str, partitions: Iterable[int]) -> None:
        """Forget how far this worker read revoked partitions: another owner reads on, and a stale position would
        count its records as waiting here once the partition comes back, holding idleness back until a new one."""
        for p in partitions:
            self.read_to.pop((topic, p), None)

    def records_waiting(self, topic: str, partition: int) -> bool:
        """Whether the log holds records of `topic`/`partition` this worker has not taken yet: the end offset its
        consumer last saw is past what the agents read. False while either is unknown (nothing read here yet, a
        partition no longer assigned); Tansu under-reports end offsets, never over (tests/test_broker.py)."""
        read = self.read_to.get((topic, partition))
        if read is None:
            return False
        try:
            end = self.app.consumer.highwater(TP(topic, partition))
        except Exception:  # noqa: BLE001 - not assigned any more, or no fetch answered yet: not known to wait
            return False
        return end is not None and end > read

    def input_waiting(self) -> set[int]:
        """Partitions of `alerts` whose input is still in the log, not silent: their own records are waiting, or
        this worker's normalize has raw records waiting (what they hold is bound for every partition)."""
        raw = self.topic_name("alerts_raw")
        if any(self.records_waiting(raw, tp.partition) for tp in self.app.assignor.assigned_actives()
               if tp.topic == raw):
            return set(self.engines)
        return {p for p in self.engines if self.records_waiting(self.alerts_topic, p)}

    def drop(self, partitions: Iterable[int]) -> None:
        """Forget engines of partitions this worker no longer owns (their state lives on in the changelog)."""
        partitions = list(partitions)
        for p in partitions:
            self.engines.pop(p, None)
            self.stores.pop(p, None)
        self.clocks.drop(partitions)
        self.forget_read(self.alerts_topic, partitions)
        self._touched -= set(partitions)  # a census still due stays due: an engine built here again says it
        self.checkpoints.forget_held(self.alerts_topic, partitions)

    def hold(self, events: Sequence[EventT[Any]]) -> None:
        """Keep the input's messages unacknowledged (Faust's `take_events` acks them) until a checkpoint."""
        self.checkpoints.hold(events)

    async def deadletter(self, agent: str, event: EventT[Any], reason: str, category: str) -> None:
        """Send the record to the dead-letter topic with the reason in headers (bounded if too large; counted
        once delivered, which the agent's `guarded` batch waits for)."""
        assert self.letters is not None, "install() sets the dead-letter sender"
        await self.letters.send(agent, event, reason, category)

    async def refuse(self, agent: str, event: EventT[Any], exc: Exception) -> None:
        """Dead-letter a record its decoder refused: the error's category and reason, `internal_error` for an
        error no decoder names (a bug on that input, redriven once fixed)."""
        await self.deadletter(agent, event, reason_of(exc), category_of(exc))

    def encode(self, events: Sequence[IncidentEvent], received_ms: int | None) -> list[bytes]:
        """The values of incident events about to be published; observes their counts and latencies."""
        now_s = time.time()
        values = [encode_incident_event(ev) for ev in events]
        for kind, n in Counter(ev.kind for ev in events).items():  # a labelled child's lookup costs more than its inc
            metrics.INCIDENT_EVENTS.labels(kind).inc(n)
        for ev in events:
            if received_ms is not None:
                metrics.CORRELATION_LATENCY.observe(max(0.0, now_s - received_ms / 1000.0))
            if ev.kind in ("opened", "updated"):  # resolutions wait out resolve_hold by design: not latency
                metrics.CORRELATION_EVENT_LATENCY.observe(max(0.0, now_s - ev.last_seen))
        return values

    async def publish(self, published: Sequence[tuple[IncidentEvent, bytes]]) -> list[asyncio.Future[Any]]:
        """Send encoded incident events keyed by incident id, a partition's in whole batches; the futures."""
        by_partition: dict[int, list[Record]] = {}
        for ev, value in published:  # an incident's updates share its id: its partition is hashed once (cached)
            partition = cached_partition(self._incident_partitions, ev.incident_id, self.incidents_partitions)
            by_partition.setdefault(partition, []).append((ev.incident_id.encode(), value, []))
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
        # The marks are taken before the first await, with the engines' state that made these events: a
        # commit of the idle timer running meanwhile must not lend them a later one.
        marks = {p: self.mark(p) for p, _, _ in items} if self.route is not None else {}
        published: list[tuple[IncidentEvent, bytes]] = []
        for _, events, received_ms in items:
            published.extend(zip(events, self.encode(events, received_ms), strict=True))
        if published:
            self.checkpoints.sent(await self.publish(published))
        if self.route is not None:
            self.checkpoints.sent(await self.route(published, marks, False))
        self._touched.update(p for p, _, _ in items)
        self.checkpoints.changed()
        await self.checkpoint_if_due()

    def mark(self, partition: int) -> SourceMark:
        """How far a partition has published (for stage 2's low watermark): its engine's release point, or its
        watermark once the idle timer has flushed it."""
        engine = self.engines[partition]
        return source_mark(engine.release_point, engine.watermark, self.clocks.flushed(partition))

    async def checkpoint_if_due(self) -> None:
        """A checkpoint (`stream.checkpoint`) when one is due: after every commit, on the idle timer and when the
        app stops."""
        await self.checkpoints.if_due()

    def _touched_stores(self) -> list[CheckpointStore]:
        stores: list[CheckpointStore] = []
        for p in sorted(self._touched):
            if p in self.engines:
                self.stores[p].watermark = self.engines[p].watermark  # written with the progress
                stores.append(self.stores[p])
        self._touched.clear()
        return stores

    def census(self) -> None:
        """Recount the state gauge from the engines this worker holds (they change hands on rebalance); open
        incidents are counted by service by the observe timer (stream/observe.py)."""
        metrics.STATE_KEYS.set(sum(len(e.store) for e in self.engines.values()))


def source_of_key(key: bytes | str | None) -> str:
    """The adapter an `alerts.raw` record's key names (`alertmanager`, `zabbix`, `generic`), else `auto`."""
    name = key.decode("utf-8", "replace") if isinstance(key, bytes) else str(key or "")
    return name if name in SOURCES else "auto"


async def normalize_batch(pipe: Pipeline, events: Sequence[EventT[Any]]) -> None:
    """Parse raw bodies, dead-letter refusals, and send one `alerts` record per partition of `alerts`.

    Each alert goes to the partition its correlation key hashes to (Kafka's default murmur2, as for any
    producer keying by correlation key), but all alerts of one batch bound for one partition travel in one
    record. Per-key records were measured to go wrong: when correlate's batch boundary split them, the
    partition's watermark ran ahead on one key's record while another key's older alerts were still in
    flight, firing that key's timers early (21 of 170 incidents differed for 5-body batches). A record per
    partition makes each normalize batch atomic for correlate.
    """
    pipe.note_read(events)
    by_partition: dict[int, tuple[list[Segment], list[int]]] = {}
    received_ms: int | None = None
    now = time.time()
    for event in events:
        msg = event.message
        if pipe.sources is not None:
            pipe.sources.read(msg.partition, msg.offset)  # correlate then trusts this raw offset without a look-up
        body = msg.value or b""
        source = source_of_key(msg.key)
        try:
            kind = detect_source(body) if source == "auto" else source
            # Arrival is the raw record's broker time (`arrival_of`: the ingest's receive time on the hop), so a
            # re-read after a crash clamps to the same time.
            normalized = normalize(kind, body, arrival_of(msg.timestamp, now), pipe.config.time_guard, pipe.keys)
            cut = partition_parts(normalized.records, pipe.partition_of, len(body))
        except Exception as exc:  # noqa: BLE001 - whatever one record raises is that record's dead letter
            await pipe.refuse("normalize", event, exc)
            continue
        guarded = normalized.guarded
        if guarded.clamped:
            tally.inc(metrics.ALERT_TIME_ADJUSTED.labels(kind, "future"), guarded.clamped)
        if guarded.long_firing:
            tally.inc(metrics.ALERT_TIME_ADJUSTED.labels(kind, "long_firing"), guarded.long_firing)
        if guarded.too_old:
            tally.inc(metrics.ALERT_TIME_ADJUSTED.labels(kind, "too_old"), len(guarded.too_old))
            await pipe.deadletter("normalize", event, guarded.refusal(), "too_old")
        count_received(normalized.by_source, kind, normalized.own)
        tally.later(partial(pipe.count_normalized, len(normalized.records)))
        arrived_ms = int(msg.timestamp * 1000)  # Faust's Message.timestamp is in seconds (Kafka's ms / 1000)
        received_ms = arrived_ms if received_ms is None else min(received_ms, arrived_ms)
        for partition, parts in cut.items():
            segments, sizes = by_partition.setdefault(partition, ([], []))
            for part, (records, size) in enumerate(parts):
                segments.append(Segment((msg.partition, msg.offset * PARTS_PER_OFFSET + part), records))
                sizes.append(size)
    topic = pipe.topics["alerts"]
    for partition, (segments, sizes) in by_partition.items():
        # In order, so a partition's records still arrive oldest raw record first.
        for chunk in pack_records(segments, sizes=sizes):
            await topic.send(key=None, partition=partition, value=encode_batch(chunk, received_ms or 0))


async def in_steps(events: Sequence[EventT[Any]], step_bytes: int,
                   fold: Callable[[Sequence[EventT[Any]]], Awaitable[None]]) -> None:
    """`fold` the batch in steps of at most `step_bytes` (`stream.batches.steps`), giving the event loop a turn
    after each: a catch-up batch of 1,000 records holds up to 100,000 alerts, and folded in one go it kept the
    worker's HTTP ingest (`--role all`) and its web views waiting for the whole of it."""
    for step in steps(events, step_bytes):
        await fold(step)
        await asyncio.sleep(0)


CENSUS_MAX_IDS = 20_000
"""The most incident ids one `Census` record names: about 0.5 MB, under the broker's 1 MB default record size."""


def census_values(source: int, at: float, open_ids: dict[int, list[str]]) -> list[tuple[int, bytes]] | None:
    """The `Census` records of one stage-1 partition, (partition of `incidents`, value) each; None when one would name
    more than CENSUS_MAX_IDS: a census is whole or not at all, since notify closes what it does not name, and a record
    the broker refuses would fail the worker's tick. None leaves notify's open incidents as they are (the rule before)."""
    if any(len(ids) > CENSUS_MAX_IDS for ids in open_ids.values()):
        return None
    return [(q, Census(source=source, at=at, open=sorted(ids)).model_dump_json().encode())
            for q, ids in sorted(open_ids.items())]


async def correlate_batch(pipe: Pipeline, events: Sequence[EventT[Any]]) -> None:
    """Fold a batch of `alerts` records into the engines of their partitions and publish what changed.

    Segments already applied (by this worker or by one before a crash) are skipped by their source offset.
    """
    pipe.hold(events)
    pipe.note_read(events)
    by_partition: dict[int, list[AlertRecord]] = {}
    received: dict[int, int] = {}
    for event in events:
        p = event.message.partition
        store = pipe.store(p)
        try:
            decoded, received_ms = decode_batch(event.message.value)
            if pipe.sources is not None:  # a forged source offset would make the engine skip real records
                await pipe.sources.check(decoded, store.progress)  # before numbering: the ingest's have no source
            segments = numbered(decoded, event.message.offset)  # the ingest's records: by their own offset
        except Exception as exc:  # noqa: BLE001 - whatever one record raises is that record's dead letter
            await pipe.refuse("correlate", event, exc)
            continue
        records = by_partition.setdefault(p, [])
        for segment in segments:
            if store.seen(segment.source):
                tally.inc(metrics.SEGMENTS_SKIPPED)
                continue
            store.advance_progress(segment.source)
            records.extend(segment.records)
        if received_ms:
            received[p] = min(received.get(p, received_ms), received_ms)
    await pipe.census_lost()  # before the new input: an engine built after a loss counts the state it was built with
    done: list[tuple[int, Sequence[IncidentEvent], int | None]] = []
    for p, records in by_partition.items():
        engine = pipe.engine(p)
        before = replace(engine.counters)
        out = engine.ingest(records, arrival=time.time())
        tally.inc(metrics.ALERT_RECORDS_CORRELATED, len(records))
        pipe.mark_input(p)
        _count(before, engine)
        done.append((p, out, received.get(p)))
    await pipe.commit_many(done)


def _count(before: Any, engine: Correlator) -> None:
    after = engine.counters
    tally.inc(metrics.ALERT_DUPLICATES, after.duplicates - before.duplicates)
    tally.inc(metrics.ALERTS_DISTINCT, after.alerts - before.alerts)
    tally.inc(metrics.ALERTS_LATE, after.late - before.late)
    if after.clamped > before.clamped:
        tally.inc(metrics.ALERT_TIME_ADJUSTED.labels("engine", "future"), after.clamped - before.clamped)


async def tick(pipe: Pipeline) -> None:
    """Idle timer, in two steps per partition that receives nothing.

    After `idle_flush` the reorder buffer is released and throttled updates go out, without moving event
    time. After `idle_advance` event time starts to follow the wall clock (by the whole silence, then tick
    by tick), so that a quiet partition still closes windows, resolves incidents and expires stale ones.
    Until then a pause of the producers (a replay in bursts, a rebalance) changes nothing.

    Silence means nothing left to read, not nothing read lately: a partition whose records wait in the log (a
    catch-up, a worker too busy to fetch them for a second) is not idle. Released early, its reorder buffer
    let the next records' older alerts in late, and a four-partition catch-up on a loaded machine opened other
    incidents than the replay of the same alerts.
    """
    now = time.monotonic()
    await pipe.census_lost()
    waiting = pipe.input_waiting()
    for p, engine in list(pipe.engines.items()):
        if engine.watermark == float("-inf"):
            continue
        if p in waiting:
            pipe.clocks.mark_input(p, now)
            continue
        before = replace(engine.counters)
        out: list[IncidentEvent] = []
        flushed = pipe.clocks.flush_due(p, now)
        if flushed:
            out += engine.flush_idle()
        step = pipe.clocks.advance_due(p, now)
        if step is not None:
            out += engine.advance(engine.watermark + step)
        _count(before, engine)
        if out:
            await pipe.commit(p, out, None)
        elif flushed and pipe.route is not None:  # idle with nothing to publish: stage 2 waits for it no more
            await pipe.route([], {p: pipe.mark(p)}, False)
    await pipe.checkpoint_if_due()
    if now - pipe.last_census >= CENSUS_S:
        pipe.census()
        pipe.last_census = now


def install(app: App, settings: Settings) -> Pipeline:
    """The correlation pipeline's topics, state table and dead-letter sender on `app`; its stages are
    `NormalizeStage` and `CorrelateStage` (run by `stream.stages.StageRunner`)."""
    names = settings.topics
    topics: dict[str, TopicT] = {
        field_name: app.topic(getattr(names, field_name), partitions=settings.partitions_for(field_name),
                              key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
        for field_name in ("alerts_raw", "alerts", "incidents", "deadletter")
    }
    partitions = settings.partitions_for("alerts")
    # Bytes in, bytes out: TableStore encodes keys and values itself, so neither the write nor the
    # recovery path depends on Faust's codec choice for tables.
    changelog = app.topic(changelog_name(settings, "correlation-state"), partitions=partitions,
                          key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw",
                          compacting=True, acks=False, internal=True)
    table = app.Table("correlation-state", partitions=partitions, key_type=bytes, value_type=bytes,
                      changelog_topic=changelog)
    letters = DeadLetters(app, names.deadletter, settings.deadletter_max_bytes, settings.deadletter_head_bytes)
    sources = SourceCheck(settings, names.alerts_raw, settings.partitions_for("alerts_raw"))
    pipe = Pipeline(app, settings.correlation_config(), table, topics, checkpoint_s=settings.checkpoint_interval,
                    keys=key_config(settings),
                    clocks=IdleClocks(settings.idle_flush, settings.idle_advance), alerts_partitions=partitions,
                    incidents_partitions=settings.partitions_for("incidents"), letters=letters, sources=sources,
                    census_after_loss=settings.reconcile_after_loss,
                    route_after_loss=settings.stage2_restate_after_loss,
                    incidents_after_loss=settings.restate_incidents_after_loss)
    # A record of either read twice is applied once (segment sources), so a re-read is never dropped.
    app.redelivered_topics = app.redelivered_topics | {names.alerts_raw, names.alerts}
    app.stop_hooks.append(sources.stop)
    return pipe


@dataclass
class NormalizeStage(PerBatch):
    """`alerts.raw` -> `alerts` (a `stream.stages.Stage` without state: a failed batch is simply sent again, and
    correlate skips the segments it already applied by their source offsets)."""

    pipe: Pipeline
    step_bytes: int
    spec: StageSpec = StageSpec("normalize", NORMALIZE_BATCH, BATCH_WITHIN_S, max_record_bytes=0)  # cuts large bodies

    @property
    def source(self) -> TopicT:
        """`alerts.raw`."""
        return self.pipe.topics["alerts_raw"]

    async def fold(self, events: Sequence[EventT[Any]]) -> None:
        """Normalize the batch in steps of at most `step_bytes`."""
        await in_steps(events, self.step_bytes, partial(normalize_batch, self.pipe))

    def drop(self, partitions: set[int]) -> None:
        """No state per partition, only how far it was read (`Pipeline.forget_read`)."""
        self.pipe.forget_read(self.pipe.topic_name("alerts_raw"), partitions)


@dataclass
class CorrelateStage(HeldUntilCheckpoint):
    """`alerts` -> `incidents` through the engines (`correlator.engine`), checkpointed by `Pipeline.checkpoints`."""

    pipe: Pipeline
    step_bytes: int
    spec: StageSpec = StageSpec("correlate", CORRELATE_BATCH, BATCH_WITHIN_S, tick_s=TICK_S)

    @property
    def state(self) -> Pipeline:
        """The engines' pipeline."""
        return self.pipe

    @property
    def source(self) -> TopicT:
        """`alerts`."""
        return self.pipe.topics["alerts"]

    async def fold(self, events: Sequence[EventT[Any]]) -> None:
        """Correlate the batch in steps of at most `step_bytes`."""
        await in_steps(events, self.step_bytes, partial(correlate_batch, self.pipe))

    async def tick(self) -> None:
        """The idle steps (`tick`)."""
        await tick(self.pipe)
