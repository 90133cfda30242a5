"""Stage 2: stage-1 incident events -> routed by cluster -> Grouper -> parents on `incidents`.

Installed when `Settings.stage2` is on (the default):

* the route, a hook in the correlate agent's commit (`Pipeline.route`): every stage-1 event that commit
  publishes on `incidents` is also sent to the internal topic `<app id>-stage2-route`, on the partition of
  its routing key, as one record per partition per commit (a JSON array of the events, the bytes already
  encoded for `incidents`). Stage 2 does not read `incidents` back: Faust's per-message consume and
  decode of every event, and a second hop to re-key it, cost more than grouping it (stage 2 took half the
  pipeline's alerts/s that way).
* `stage2_group` reads the routing topic and folds each partition's events into its own `Grouper`, whose
  state is a changelog-backed table (`stream.stage2_state`) written at checkpoints (`stream.checkpoint`,
  every `checkpoint_interval` as stage 1's); it publishes on `incidents`, with the headers of
  `stream.incident_records` (`aiops-stage: 2`, `aiops-kind`):
  - `ParentEvent` keyed by parent id (`opened`, throttled `updated`, `resolved`; `children` lists members);
  - `Assignment` keyed by the child's incident id, one per child that joins an existing parent (or moves,
    on a merge), with the relation and the one-line reason: this is how a child names its parent. Keyed
    by child id it lands on the same `incidents` partition as the child's own events, so a consumer
    partitioned by incident id sees both. The child that opens a parent gets no assignment record: the
    parent's `opened` event names it (`first_child`), so a reader maps child -> parent from `opened`
    events' `first_child` and assignments (and every parent event lists all `children` so far).
* the idle timer releases held children of quiet partitions and reloads the topology file when its mtime
  changes (no restart).

Delivery. The route records go out inside stage 1's commit, and its checkpoint waits for them with the
events on `incidents` before it writes the state that produced them, so a crash loses none, and one that
strikes before stage 1's progress makes it regenerates them (same ids, same seq) in a new record, which
the Grouper drops event by event (it keeps each child's latest seq). A routing record redelivered to
stage 2 itself after its checkpoint is skipped by its offset (`GroupTableStore.seen`); one read again
because the crash came before the checkpoint is folded again on the state that does not hold it, and
regenerates the same parents and seq. Stage 2 so sees exactly the events
stage 1 published, in the order each stage-1 partition published them. Its limits: only this pipeline's
correlate agent feeds it (an `IncidentEvent` another producer writes to `incidents` is not grouped; it
may write a JSON array of them to the routing topic instead), and every worker of a deployment must run
with the same `AIOPS_STAGE2` (a worker without stage 2 routes nothing).

Cost. What stage 2 sends (routing records, parents and assignments, its changelog) goes to the producer as
whole record batches (`stream.sends`), one delivery future per batch, and its state goes out once per
checkpoint. Per 100,000 alerts of `benchmarks/pipeline_throughput.py --stage2` (9,815 stage-1 events, labels
only) the worker spends about 0.2 CPU s in stage 2's code (half of it grouping) and publishes 5,084 records
on `incidents`; the run as a whole is 13% slower than stage 1 alone (median of 15 pairs; figures in
`benchmarks/RESULTS.md`), the rest being those records' way through producer, broker and consumer.

The routing key, and its limit. Related incidents must meet on one Grouper. Stage 2 never relates two
incidents whose clusters are known and differ (`GroupingConfig.separate_labels`, "cluster" by default), so
keying by the cluster loses no relation between incidents that both name one: the key is the first value
of the first separate label the incident carries (stage 1 appends label values, so the first one is stable
across an incident's events), else one default key; the partition is the key's murmur2 hash, as a keyed
Kafka producer would pick it. What it costs: (1) parallelism is the number of clusters, and a deployment
without cluster labels runs stage 2 on one partition (stage 2 works per incident event, about 150,000
events/s on one core, well above what the pipeline feeds it); (2) an incident without a cluster cannot
join a cluster's cause, though the Grouper alone would let it (the veto needs both sides); (3) an incident
whose first events carry no cluster and later ones do changes key, and is then a child on two partitions;
(4) an incident seen in two clusters is routed by the first only. Order: events of one incident keep their
order (one stage-1 partition, one key); across stage-1 partitions the routing topic interleaves commits,
which the Grouper's reorder buffer (`lateness_s`) absorbs as long as stage-1 partitions' watermarks stay
within it of each other; a child later than that is still assigned, and counted `late`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from faust.types import EventT, TopicT
from pydantic import TypeAdapter, ValidationError

from correlator.models import IncidentEvent
from correlator.stage2 import Assignment, Grouper, GroupingConfig, GroupingOutput, ParentEvent, Relation
from correlator.topology import Topology, TopologyError
from correlator.validation import first_error
from stream.app import App
from stream.checkpoint import Checkpointer, CheckpointStore
from stream.commands.replay import read_topology
from stream.idle import TICK_S, IdleClocks
from stream.incident_records import ASSIGNMENT_HEADERS, PARENT_HEADERS, STAGE_HEADER, is_stage2_record
from stream.pipeline import BATCH_WITHIN_S, Pipeline
from stream.sends import Record, cached_partition, key_partition, send_batches
from stream.settings import Settings
from stream.stage2_state import GroupTableStore
from stream.stages import HeldUntilCheckpoint, StageSpec
from stream.topics import STAGE2_CHANGELOG, STAGE2_ROUTE, changelog_name, internal_topic_name

__all__ = ["STAGE_HEADER", "GroupStage", "Stage2", "TopologyWatcher", "grouping_config", "install_stage2",
           "is_stage2_record", "route_key"]

log = logging.getLogger(__name__)

DEFAULT_ROUTE_KEY = "-"
"""Routing key of incidents that carry no cluster."""
GROUP_BATCH = 1000
MAX_ROUTE_RECORD_BYTES = 512 * 1024
"""Encoded events per routing record, at most (one event alone may exceed it): under Kafka's 1 MB default."""
_EVENTS = TypeAdapter(list[IncidentEvent])


def grouping_config(settings: Settings) -> GroupingConfig:
    """The Grouper's configuration from the worker's settings (the rest at its defaults)."""
    return GroupingConfig(gap_s=settings.stage2_gap, max_hops=settings.stage2_hops)


def route_key(ev: IncidentEvent, config: GroupingConfig) -> str:
    """The key that brings related incidents together: the first known value of the first separating label."""
    for label in config.separate_labels:
        for value in ev.entities.get(label, ()):
            if value.lower() not in config.placeholder_values:
                return value
    return DEFAULT_ROUTE_KEY


@dataclass
class TopologyWatcher:
    """The topology file, re-read when its mtime or size changes; a bad new version keeps the old one."""

    path: Path | None
    max_hops: int
    topology: Topology | None = None
    _stamp: tuple[int, int] | None = None

    def load(self) -> None:
        """Read the file at start; an unreadable topology is a configuration error and stops the worker."""
        if self.path is not None:
            self._stamp = self._stat()
            self.topology = read_topology(self.path, self.max_hops)

    def poll(self) -> bool:
        """Re-read the file if it changed since the last look; True when a new topology was taken."""
        if self.path is None:
            return False
        stamp = self._stat()
        if stamp is None or stamp == self._stamp:
            return False
        self._stamp = stamp  # a bad version is reported once, not on every tick
        try:
            topology = read_topology(self.path, self.max_hops)
        except (OSError, TopologyError) as exc:
            log.warning("stage 2: topology %s not reloaded, keeping the previous one: %s", self.path, exc)
            return False
        changed = self.topology is None or topology.version != self.topology.version
        self.topology = topology
        return changed

    def _stat(self) -> tuple[int, int] | None:
        assert self.path is not None
        try:
            st = os.stat(self.path)
        except OSError:
            return None  # gone for a moment (an editor's rename): keep what we have
        return st.st_mtime_ns, st.st_size


@dataclass
class Stage2:
    """Stage 2's shared state on one worker: a Grouper per owned partition of the routing topic."""

    app: App
    pipe: Pipeline
    config: GroupingConfig
    table: Any
    topics: dict[str, TopicT]
    watcher: TopologyWatcher
    checkpoint_s: float = 0.0
    """Seconds between state checkpoints (`stream.checkpoint`); 0 checkpoints at every commit."""
    clocks: IdleClocks = field(default_factory=IdleClocks)
    groupers: dict[int, Grouper] = field(default_factory=dict)
    stores: dict[int, GroupTableStore] = field(default_factory=dict)
    """Each Grouper's store (the Grouper sees it as a `correlator.stage2.GroupStore`)."""
    route_partitions: int = 4
    incidents_partitions: int = 4
    _partition_cache: dict[str, int] = field(default_factory=dict)
    routed: int = 0
    grouped: int = 0
    published: int = 0
    checkpoints: Checkpointer = field(init=False)
    """Output sent, routing records held and the clock of the state checkpoints."""
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    """Held by a fold and the checkpoint after it (the agent's and the idle timer's): a checkpoint never
    writes state whose output is not yet among what it waits for, nor acks input not yet folded."""
    _touched: set[int] = field(default_factory=set)
    offsets_lost: set[int] = field(default_factory=set)
    """Partitions whose store must forget its routing offset when next built (`broker_lost`)."""

    def __post_init__(self) -> None:
        self.checkpoints = Checkpointer(self.app, self._touched_stores, self.checkpoint_s)

    def broker_lost(self) -> None:
        """The broker lost its topics (stream/recovery.py): the routing topic's offsets start again at 0, so every
        Grouper's store, held now or built later from the table's local data, forgets the old one."""
        self.offsets_lost = set(range(self.route_partitions))
        for partition in list(self.groupers):
            self._forget_offsets(partition)

    def _forget_offsets(self, partition: int) -> None:
        self.stores[partition].forget_offsets()
        self._touched.add(partition)  # the next checkpoint writes every group and the progress anew
        self.checkpoints.changed()
        self.offsets_lost.discard(partition)

    @property
    def route_topic(self) -> str:
        """Kafka name of the routing topic."""
        return str(self.topics["route"].get_topic_name())

    def partition_of(self, key: str) -> int:
        """The routing partition of a routing key, as a keyed Kafka producer would pick it (murmur2)."""
        return cached_partition(self._partition_cache, key, self.route_partitions)

    async def route(self, published: Sequence[tuple[IncidentEvent, bytes]]) -> list[asyncio.Future[Any]]:
        """`Pipeline.route`: send a stage-1 commit's events to the routing topic, one record per partition.

        Called inside stage 1's commit, beside its events on `incidents` (see the module docstring for why
        that is the delivery guarantee); returns the delivery futures, which stage 1's next checkpoint waits
        for with its events before it writes any state (a failure raises there, so stage 1 writes no state
        after events stage 2 never got). Waiting for them here instead cost a round trip per commit. The
        values are the bytes already encoded for `incidents`, joined into a JSON array: routing costs no
        second encoding and no per-event record.
        """
        by_partition: dict[int, list[bytes]] = {}
        for ev, value in published:
            by_partition.setdefault(self.partition_of(route_key(ev, self.config)), []).append(value)
        sent: list[asyncio.Future[Any]] = []
        for partition, values in by_partition.items():
            chunks = _chunks(values, MAX_ROUTE_RECORD_BYTES)
            sent += await send_batches(self.app, self.route_topic, partition,
                                       ((None, b"[" + b",".join(chunk) + b"]", []) for chunk in chunks))
        self.routed += len(published)
        return sent

    def grouper(self, partition: int) -> Grouper:
        """The Grouper of a routing partition, built on first use from whatever the table restored."""
        grouper = self.groupers.get(partition)
        if grouper is None:
            store = self.stores[partition] = GroupTableStore(self.table, partition)
            grouper = Grouper(self.config, self.watcher.topology, store)
            grouper.watermark = max(grouper.watermark, store.watermark)
            self.groupers[partition] = grouper
            log.info("stage-2 grouper for partition %d: %d groups restored", partition, len(store))
            if partition in self.offsets_lost:
                self._forget_offsets(partition)
        return grouper

    def mark_input(self, partition: int) -> None:
        """Input arrived: the idle clocks of the partition restart."""
        self.clocks.mark_input(partition, time.monotonic())

    def drop(self, partitions: Iterable[int]) -> None:
        """Forget Groupers of partitions this worker no longer owns (their state lives on in the changelog)."""
        partitions = list(partitions)
        for p in partitions:
            self.groupers.pop(p, None)
            self.stores.pop(p, None)
        self.clocks.drop(partitions)
        self._touched -= set(partitions)
        self.checkpoints.forget_held(self.route_topic, partitions)

    def reload_topology(self) -> None:
        """Hand a changed topology file to every Grouper; children assigned from now on use it."""
        if self.watcher.poll():
            for grouper in self.groupers.values():
                grouper.set_topology(self.watcher.topology)
            version = self.watcher.topology.version if self.watcher.topology else None
            log.info("stage 2: topology %s reloaded (%s)", self.watcher.path, version)

    async def publish(self, out: GroupingOutput) -> list[asyncio.Future[Any]]:
        """Send parent events keyed by parent id and assignments keyed by child id, marked as stage 2's.

        Each on the partition its key hashes to (as a keyed producer would put it, so an assignment lands
        beside its child's own events), a partition's records in one record batch; the batches' futures.
        """
        by_partition: dict[int, list[Record]] = {}
        for parent in out.parents:
            key = parent.parent_id.encode()
            by_partition.setdefault(key_partition(key, self.incidents_partitions), []).append(
                (key, _dump(parent), PARENT_HEADERS))
        sent = len(out.parents)
        for assignment in out.assignments:
            # The child that opens a parent is named by the parent's `opened` event (`first_child`, and
            # `reason` is its explanation): on short independent storms nearly every child opens its own
            # parent, and these records were a third of what stage 2 publishes (and everyone re-reads).
            if assignment.relation is not Relation.FIRST:
                key = assignment.child_id.encode()
                by_partition.setdefault(key_partition(key, self.incidents_partitions), []).append(
                    (key, _dump(assignment), ASSIGNMENT_HEADERS))
                sent += 1
        topic = str(self.topics["incidents"].get_topic_name())
        futures: list[asyncio.Future[Any]] = []
        for partition, records in by_partition.items():
            futures += await send_batches(self.app, topic, partition, records)
        self.published += sent
        return futures

    async def commit(self, partition: int, out: GroupingOutput) -> None:
        """Publish what a fold produced and mark its partition's state for the next checkpoint.

        The checkpoint (`stream.checkpoint`, every `checkpoint_interval` as stage 1's) waits for what was
        published, then writes the changed groups, then the progress, and only then acknowledges the routing
        records: a crash before it re-reads them and regenerates the same parents (ids derive from the first
        child, seq from the group), which readers drop by seq. Written per routing batch instead, with three
        producer flushes each, the state took 6,752 changelog records per 100,000 alerts of the throughput
        benchmark's storm; per checkpoint 1,833 (a group changed in several batches is written once, and one
        opened and closed between two checkpoints never).
        """
        self.checkpoints.sent(await self.publish(out))
        self._touched.add(partition)
        self.checkpoints.changed()

    def rollback(self, failed: Sequence[EventT[Any]]) -> list[EventT[Any]]:
        """After a failed batch or checkpoint: every Grouper is rebuilt from the table (the last checkpoint's
        state, rewritten whole at the next one); the input held since then and `failed` are to be folded again."""
        replay = self.checkpoints.rollback(failed)
        for partition in list(self.groupers):
            del self.groupers[partition], self.stores[partition]
            self.grouper(partition)
            self.stores[partition].rewrite()
            self._touched.add(partition)
        return replay

    def _touched_stores(self) -> list[CheckpointStore]:
        stores: list[CheckpointStore] = []
        for p in sorted(self._touched):
            grouper = self.groupers.get(p)
            if grouper is not None:
                self.stores[p].watermark = grouper.watermark  # written with the progress
                stores.append(self.stores[p])
        self._touched.clear()
        return stores

    def status(self) -> dict[str, Any]:
        """What the `/stage2/` view shows: partitions, throughput counters, state size, topology."""
        counters: dict[str, int] = {}
        for g in self.groupers.values():
            for name, value in g.counters.as_dict().items():
                counters[name] = counters.get(name, 0) + value
        topology = self.watcher.topology
        return {"partitions": sorted(self.groupers), "routed": self.routed, "grouped": self.grouped,
                "published": self.published, "groups": sum(len(g.store) for g in self.groupers.values()),
                "counters": counters, "topology": topology.version if topology is not None else None}


def _dump(model: ParentEvent | Assignment) -> bytes:
    return orjson.dumps(model.model_dump(mode="json"))


def _chunks(values: list[bytes], limit: int) -> list[list[bytes]]:
    """Values in order, cut into runs of at most `limit` bytes (a value larger than that runs alone)."""
    chunks: list[list[bytes]] = [[]]
    size = 0
    for value in values:
        if chunks[-1] and size + len(value) > limit:
            chunks.append([])
            size = 0
        chunks[-1].append(value)
        size += len(value) + 1
    return chunks if chunks[0] else []


class RoutedError(ValueError):
    """A routing record that is not a JSON array of incident events; `category` is its dead-letter label."""

    category = "invalid_incident_event"


def _decode_routed(raw: bytes | None) -> list[IncidentEvent]:
    """The events of one routing record; `RoutedError` when it is not a JSON array of incident events."""
    try:
        return _EVENTS.validate_json(raw or b"")  # one pass in pydantic-core: no dicts in between
    except ValidationError as exc:
        first = first_error(exc)
        raise RoutedError(f"not a JSON array of incident events: {first.field}: {first.reason}") from None


async def group_batch(stage: Stage2, events: Sequence[EventT[Any]]) -> None:
    """Fold a batch of routing records into the Groupers of their partitions, commit what came out, and
    checkpoint if one is due."""
    async with stage.lock:
        stage.checkpoints.hold(events)
        await _fold(stage, events)
        await stage.checkpoints.if_due()


async def _fold(stage: Stage2, events: Sequence[EventT[Any]]) -> None:
    by_partition: dict[int, list[IncidentEvent]] = {}
    for event in events:
        msg = event.message
        stage.grouper(msg.partition)
        store = stage.stores[msg.partition]
        if store.seen(msg.offset):
            continue
        store.offset = msg.offset  # written with the progress, after the keys it covers
        try:
            by_partition.setdefault(msg.partition, []).extend(_decode_routed(msg.value))
        except Exception as exc:  # noqa: BLE001 - whatever one record raises is that record's dead letter
            await stage.pipe.refuse("stage2_group", event, exc)
    for p, evs in by_partition.items():
        out = stage.groupers[p].ingest(evs)
        stage.grouped += len(evs)
        stage.mark_input(p)
        await stage.commit(p, out)


def _idle_output(stage: Stage2, p: int, grouper: Grouper, now: float) -> GroupingOutput:
    """Two idle steps, as stage 1's: release held children, then let event time follow the wall clock.

    Releasing moves event time just far enough (the latest held child's first alert plus the lateness), so
    that repeated pauses never push the watermark past what stage 1 has reported by more than the lateness.
    """
    out = GroupingOutput()
    if stage.clocks.flush_due(p, now):
        held = [ev.first_seen for _, ev in grouper.store.held_items()]
        if held:
            out.extend(grouper.advance(max(held) + grouper.config.lateness_s))
    step = stage.clocks.advance_due(p, now)
    if step is not None:
        out.extend(grouper.advance(grouper.watermark + step))
    return out


async def tick(stage: Stage2) -> None:
    """Idle timer: topology reload, the idle steps of every quiet partition, and a checkpoint if one is due."""
    stage.reload_topology()
    async with stage.lock:
        now = time.monotonic()
        for p, grouper in list(stage.groupers.items()):
            if grouper.watermark == float("-inf"):
                continue
            out = _idle_output(stage, p, grouper, now)
            if out.parents or out.assignments or stage.stores[p].dirty:
                await stage.commit(p, out)
        await stage.checkpoints.if_due()


def _bytes_topic(app: App, name: str, partitions: int, **options: Any) -> TopicT:
    return app.topic(name, partitions=partitions, key_type=bytes, value_type=bytes, key_serializer="raw",
                     value_serializer="raw", **options)


def _stage2(app: App, settings: Settings, pipe: Pipeline) -> Stage2:
    partitions = settings.partitions_for("incidents")
    route = _bytes_topic(app, internal_topic_name(settings, STAGE2_ROUTE), partitions, internal=True)
    changelog = _bytes_topic(app, changelog_name(settings, STAGE2_CHANGELOG), partitions, compacting=True,
                             acks=False, internal=True)
    table = app.Table("stage2-state", partitions=partitions, key_type=bytes, value_type=bytes,
                      changelog_topic=changelog)
    config = grouping_config(settings)
    watcher = TopologyWatcher(settings.stage2_topology, config.max_hops)
    watcher.load()
    return Stage2(app, pipe, config, table, {"incidents": pipe.topics["incidents"], "route": route}, watcher,
                  checkpoint_s=settings.checkpoint_interval, route_partitions=partitions,
                  incidents_partitions=partitions, clocks=IdleClocks(settings.idle_flush, settings.idle_advance))


def install_stage2(app: App, settings: Settings, pipe: Pipeline) -> Stage2 | None:
    """Hook stage 2 into stage 1's commit, add its table and `/stage2/` view; nothing unless on. Its stage is
    `GroupStage` (run by `stream.stages.StageRunner`)."""
    if not settings.stage2:
        return None
    stage = _stage2(app, settings, pipe)
    pipe.route = stage.route

    @app.page("/stage2/")
    async def stage2_status(web: Any, request: Any) -> Any:
        return web.json(stage.status())

    return stage


@dataclass
class GroupStage(HeldUntilCheckpoint):
    """The routing topic -> parents and assignments on `incidents`, through the Groupers (`correlator.stage2`)."""

    stage: Stage2
    spec: StageSpec = StageSpec("stage2_group", GROUP_BATCH, BATCH_WITHIN_S, tick_s=TICK_S)

    @property
    def state(self) -> Stage2:
        """Stage 2's Groupers."""
        return self.stage

    @property
    def source(self) -> TopicT:
        """The routing topic."""
        return self.stage.topics["route"]

    async def fold(self, events: Sequence[EventT[Any]]) -> None:
        """`group_batch`."""
        await group_batch(self.stage, events)

    async def tick(self) -> None:
        """Topology reload and the idle steps (`tick`)."""
        await tick(self.stage)
