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
    with `stage2_lone_causes` off, only once the parent groups two incidents (`correlator.stage2.publishing`);
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
`benchmarks/RESULTS.md`), the rest being those records' way through producer, broker and consumer. Nearly
all of those records are the `opened` and `resolved` of causes of one incident: `stage2_lone_causes` off
leaves them out (session 29: stage 2's CPU per alert 0.98-1.02x stage 1's under load instead of 1.30-1.46x;
1.26-1.37x instead of 1.43-1.63x on a quiet machine; RESULTS.md, "causes of one incident").

The routing key is the scope of the incident's key (`correlator.stage2.routing`: the engine's hard boundary,
so it parts no two incidents that could share a parent); the partition is its murmur2 hash, as a keyed Kafka
producer would pick it.

Event time, and order. Events of one incident keep their order (one stage-1 partition, one key); across
stage-1 partitions the routing topic interleaves commits, and in a catch-up one stage-1 partition may fold
minutes of alerts before another starts. So stage 2 does not take its event time from the events: each
routing record carries the marks of the sending worker's stage-1 partitions (header `aiops-marks`: how far
each has published, and whether it is idle), taken with the events they cover and put on the last record of
the commit, and stage 2 decides and releases only up to the low watermark of its sources
(`correlator.stage2.watermark`, where the rule and its reasons are). Route partitions that got no events in
a commit hear of the new marks from the idle timer's heartbeat (an empty array under the same header), sent
only when a mark stage 2 waits for moved, so a quiet deployment writes nothing. A stage-1 partition assigned
here without input since counts as idle after `idle_flush`; one whose owner stops reporting (it died, or runs
without stage 2) is waited for `idle_advance` at most. The marks are saved with stage 2's progress, so a
restart goes on with the ones that covered its routing offset. Before a record's marks are noted, the marks held
say which of its children were on time for their own stage-1 partition (`correlator.stage2.on_own_time`): a late one
of those is placed by its first alert (`GroupingConfig.idle_placed`), as a source back from idle with a backlog sends.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from functools import partial
from pathlib import Path
from typing import Any

import orjson
from faust.types import EventT, TopicT
from pydantic import TypeAdapter, ValidationError

from correlator.models import IncidentEvent
from correlator.stage2 import (
    DEFAULT_GROUPING, MARKS_HEADER, RESTATED_HEADER, Assignment, Grouper, GroupingConfig, GroupingOutput, LateChildren, LowWatermark,
    ParentEvent, Progress, SourceMark, decided_to, decode_marks, encode_marks, idle_release, on_own_time, progress_due,
    published, report_due, route_key,
)
from correlator.topology import Topology, TopologyError
from correlator.validation import first_error
from stream.app import App
from stream.checkpoint import Checkpointer, CheckpointStore
from stream.commands.replay import read_topology
from stream.idle import TICK_S, IdleClocks
from stream.incident_records import (
    ASSIGNMENT_HEADERS, PARENT_HEADERS, PROGRESS_HEADERS, STAGE_HEADER, header_value, is_stage2_record,
)
from stream.pipeline import BATCH_WITHIN_S, Pipeline
from stream.sends import Record, cached_partition, send_batches
from stream.settings import Settings
from stream.stage2_state import GroupTableStore
from stream.stages import HeldUntilCheckpoint, StageSpec
from stream.topics import STAGE2_CHANGELOG, STAGE2_ROUTE, changelog_name, internal_topic_name

__all__ = ["STAGE_HEADER", "GroupStage", "RoutedError", "Stage2", "TopologyWatcher", "changed_rules", "decode_routed",
           "install_stage2", "is_stage2_record"]

log = logging.getLogger(__name__)

GROUP_BATCH = 1000
MAX_ROUTE_RECORD_BYTES = 512 * 1024
"""Encoded events per routing record, at most (one event alone may exceed it): under Kafka's 1 MB default."""
_EVENTS = TypeAdapter(list[IncidentEvent])


def changed_rules(config: GroupingConfig) -> dict[str, Any]:
    """The fields of `config` unlike the engine's defaults, as JSON values: `/stage2/` shows them, so an operator
    sees which rules a worker runs (every worker of a deployment must run the same)."""
    changed = {f.name: getattr(config, f.name) for f in fields(config)
               if getattr(config, f.name) != getattr(DEFAULT_GROUPING, f.name)}
    return {name: sorted(value) if isinstance(value, frozenset) else value for name, value in changed.items()}


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
    lone_causes: bool = True
    """Publish parents of one child too (`Settings.stage2_lone_causes`, `correlator.stage2.publishing`)."""
    progress_s: float = 0.25
    """Without lone causes: at most one `Progress` (per partition of `incidents`) per this many seconds (0: none)."""
    restate_after_loss: bool = True
    """After the broker lost its topics, say every open group again (`Grouper.restate`; `Settings.
    stage2_restate_after_loss`)."""
    restate_closed: bool = True
    """The restatement says the closes of the groups still held too (`Grouper.restate(closed=...)`; `Settings.
    reconcile_after_loss`)."""
    _restate: set[int] = field(default_factory=set)
    """Routing partitions whose Grouper was built (or rebuilt by a rollback) after a loss and before a checkpoint
    wrote it: their open groups go out again at the next fold or tick (`restate_lost`)."""
    _progress: Progress | None = None
    """The last progress sent."""
    _late: LateChildren = field(default_factory=LateChildren)
    """Children that arrived behind a progress sent, named in the next one once placed (each partition's set is its
    store's `late`: saved with its progress)."""
    _covered: dict[int, float] = field(default_factory=dict)
    """The highest `decided` a progress sent for each partition (by this worker, or restored: the store's
    `covered`); kept across a rollback, as the progresses sent since the last checkpoint are out."""
    _partition_cache: dict[str, int] = field(default_factory=dict)
    _incidents_partition_cache: dict[str, int] = field(default_factory=dict)
    """Partitions of `incidents` by record key: a parent's events (its `opened` and `resolved` at least) share one."""
    routed: int = 0
    grouped: int = 0
    published: int = 0
    progress_records: int = 0
    """`Progress` records sent (one per partition of `incidents` per report)."""
    checkpoints: Checkpointer = field(init=False)
    """Output sent, routing records held and the clock of the state checkpoints."""
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    """Held by a fold and the checkpoint after it (the agent's and the idle timer's): a checkpoint never
    writes state whose output is not yet among what it waits for, nor acks input not yet folded."""
    _touched: set[int] = field(default_factory=set)
    sources: int = 4
    """Stage-1 partitions (of `alerts`) that feed every Grouper: the sources of its low watermark."""
    lows: dict[int, LowWatermark] = field(default_factory=dict)
    """The sources' marks as each routing partition has heard them."""
    marks: dict[int, SourceMark] = field(default_factory=dict)
    """The marks of this worker's stage-1 partitions, as routed so far (never ahead of the events sent)."""
    _unfed: dict[int, float] = field(default_factory=dict)
    """Stage-1 partitions assigned here that have had no input yet (no engine), and since when."""
    _reported: dict[int, tuple[dict[int, SourceMark], float]] = field(default_factory=dict)
    """What each routing partition was last told of this worker's marks, and when."""

    def __post_init__(self) -> None:
        self.checkpoints = Checkpointer(self.app, self._touched_stores, self.checkpoint_s)

    def broker_lost(self) -> None:
        """The broker lost its topics (stream/recovery.py): the routing topic's offsets start again at 0, so every
        Grouper's store, held now or built later from the table's local data, forgets the old one."""
        self.checkpoints.lose(self.table, range(self.route_partitions))
        for partition in list(self.groupers):
            self._forget_offsets(partition)

    def _forget_offsets(self, partition: int) -> None:
        if self.checkpoints.forget(self.stores[partition]):
            self._touched.add(partition)  # the next checkpoint writes every group and the progress anew
            if self.restate_after_loss:
                self._restate.add(partition)  # and what notify may not have read goes out again (`restate_lost`)

    async def restate_lost(self) -> None:
        """Publish every open group again on the partitions built after a loss (`Grouper.restate`), before their
        next input: the broker took with it the parents and assignments on `incidents` that notify had not read, and
        without them notify pages each child of a cause alone once its cause wait ends (soak38's chaos soak). A
        rollback before the checkpoint that writes the store rebuilds it while its partition is still lost, so the
        restatement goes out again; after that checkpoint it never does."""
        for partition in sorted(self._restate):
            grouper = self.groupers.get(partition)
            self._restate.discard(partition)
            if grouper is None or grouper.watermark == float("-inf"):
                continue
            out = grouper.restate(closed=self.restate_closed)
            if out.parents:
                closed = sum(p.status != "firing" for p in out.parents)
                log.info("stage 2: %d open causes and %d closes of routing partition %d said again after the broker "
                         "lost its topics", len(out.parents) - closed, closed, partition)
                await self.commit(partition, out)

    @property
    def route_topic(self) -> str:
        """Kafka name of the routing topic."""
        return str(self.topics["route"].get_topic_name())

    def partition_of(self, key: str) -> int:
        """The routing partition of a routing key, as a keyed Kafka producer would pick it (murmur2)."""
        return cached_partition(self._partition_cache, key, self.route_partitions)

    async def route(self, published: Sequence[tuple[IncidentEvent, bytes]], marks: Mapping[int, SourceMark],
                    restated: bool = False) -> list[asyncio.Future[Any]]:
        """`Pipeline.route`: send a stage-1 commit's events to the routing topic, one record per partition.

        Called inside stage 1's commit, beside its events on `incidents` (see the module docstring for why
        that is the delivery guarantee); returns the delivery futures, which stage 1's next checkpoint waits
        for with its events before it writes any state (a failure raises there, so stage 1 writes no state
        after events stage 2 never got). Waiting for them here instead cost a round trip per commit. The
        values are the bytes already encoded for `incidents`, joined into a JSON array: routing costs no
        second encoding and no per-event record. The last record to each partition carries the marks of
        every stage-1 partition of this worker, the commit's own (`marks`) included. `restated`: events said again
        after a broker loss (`Pipeline._say_again`), every record marked so (`RESTATED_HEADER`).
        """
        by_partition: dict[int, list[bytes]] = {}
        for ev, value in published:
            by_partition.setdefault(self.partition_of(route_key(ev)), []).append(value)
        current = {**self.current_marks(), **marks}
        header = [(MARKS_HEADER, encode_marks(current))]
        every = [(RESTATED_HEADER, b"1")] if restated else []
        now = time.monotonic()
        sent: list[asyncio.Future[Any]] = []
        for partition, values in by_partition.items():
            chunks = _chunks(values, MAX_ROUTE_RECORD_BYTES)
            sent += await send_batches(self.app, self.route_topic, partition, (
                (None, b"[" + b",".join(chunk) + b"]", every + header if i == len(chunks) - 1 else every)
                for i, chunk in enumerate(chunks)))
            self._reported[partition] = (current, now)
        # Only now, with the events they cover on their way: a heartbeat must never carry a mark ahead of them.
        self.marks.update(marks)
        for p in marks:
            self._unfed.pop(p, None)
        self.routed += len(published)
        return sent

    def current_marks(self) -> dict[int, SourceMark]:
        """The marks this worker reports: its stage-1 partitions' as routed, and idle ones for those without
        input since they were assigned `idle_flush` ago."""
        since = time.monotonic() - self.clocks.flush_s
        idle = {p: SourceMark(float("-inf"), idle=True) for p, at in self._unfed.items() if at <= since}
        # Only partitions this worker still owns (revoked ones lose their engine): their next owner reports them.
        return {**idle, **{p: m for p, m in self.marks.items() if p in self.pipe.engines}}

    def notice_sources(self, assigned: Iterable[int], now: float) -> None:
        """Note the stage-1 partitions assigned here: those without an engine count as idle `idle_flush` on."""
        owned = set(assigned)
        for p in owned - set(self.pipe.engines) - set(self.marks):
            self._unfed.setdefault(p, now)
        for p in set(self._unfed) - owned:
            del self._unfed[p]

    async def heartbeat(self, now: float) -> None:
        """Tell each routing partition of marks it has not heard (`report_due`): an empty array with the marks.

        Not waited for: a lost heartbeat is sent again at the next tick (its partition counts as not told).
        """
        current = self.current_marks()
        header = [(MARKS_HEADER, encode_marks(current))]
        for partition in range(self.route_partitions):
            reported, at = self._reported.get(partition, (None, 0.0))
            if report_due(reported, current, at, now, self.clocks.advance_s / 4):
                futures = await send_batches(self.app, self.route_topic, partition, [(None, b"[]", header)])
                self._reported[partition] = (current, now)
                for future in futures:
                    future.add_done_callback(partial(self._heartbeat_done, partition))

    def _heartbeat_done(self, partition: int, future: asyncio.Future[Any]) -> None:
        if future.cancelled() or future.exception() is not None:
            self._reported.pop(partition, None)

    def grouper(self, partition: int) -> Grouper:
        """The Grouper of a routing partition, built on first use from whatever the table restored."""
        grouper = self.groupers.get(partition)
        if grouper is None:
            store = self.stores[partition] = GroupTableStore(self.table, partition)
            grouper = Grouper(self.config, self.watcher.topology, store)
            # Event time as saved with the progress its groups came with (stream.checkpoint), not the latest event
            # they hold: that may come from a source ahead of the low watermark, and would release children early.
            grouper.watermark = store.watermark
            self.lows[partition] = LowWatermark(self.sources, self.clocks.advance_s, time.monotonic(),
                                                store.marks)  # the store's dict: saved with the progress
            self._late.pending[partition] = store.late  # the store's set, as the marks
            self._covered[partition] = max(self._covered.get(partition, float("-inf")), store.covered)
            self.groupers[partition] = grouper
            log.info("stage-2 grouper for partition %d: %d groups restored", partition, len(store))
            self._forget_offsets(partition)  # if its partition is lost (`Checkpointer.lose`)
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
            self.lows.pop(p, None)
            self._late.pending.pop(p, None)  # the new owner restores them from the changelog
            self._covered.pop(p, None)
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
        # `correlator.stage2.publishing` says what goes out: no assignment for the child that opens a parent (its
        # events name it), and, with lone_causes off, no event of a parent until it groups two incidents.
        out = published(out, self.lone_causes)
        by_partition: dict[int, list[Record]] = {}
        for key, value, headers in self._records(out):
            by_partition.setdefault(cached_partition(self._incidents_partition_cache, key, self.incidents_partitions),
                                    []).append((key.encode(), value, headers))
        sent = len(out.parents) + len(out.assignments)
        topic = str(self.topics["incidents"].get_topic_name())
        futures: list[asyncio.Future[Any]] = []
        for partition, records in by_partition.items():
            futures += await send_batches(self.app, topic, partition, records)
        self.published += sent
        return futures

    @staticmethod
    def _records(out: GroupingOutput) -> Iterator[tuple[str, bytes, list[tuple[str, bytes]]]]:
        """Key, value and headers of each record `out` puts on `incidents`: parents by parent id, assignments by
        child id."""
        for parent in out.parents:
            yield parent.parent_id, _dump(parent), PARENT_HEADERS
        for assignment in out.assignments:
            yield assignment.child_id, _dump(assignment), ASSIGNMENT_HEADERS

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

    async def report_progress(self) -> None:
        """Without lone causes: tell every partition of `incidents` how far each routing partition of this worker
        has decided (`correlator.stage2.Progress`), after what the folds published, when `progress_due` says so.

        A few records a second whatever the load (one per partition of `incidents` per `progress_s`), where a cause
        of one incident was two records per incident; notify pages an incident no cause names once every routing
        partition's progress covers it."""
        if self.lone_causes or self.progress_s <= 0:
            return
        now = time.time()
        last = self._progress
        if last is not None and now - last.emitted_at < self.progress_s:
            return  # not due whatever moved (`progress_due`): spare building the progress after each fold
        decided = {p: decided_to(g.released_to, g.watermark, (g.oldest_held(),)) for p, g in self.groupers.items()}
        decided = {p: at for p, at in decided.items() if at > float("-inf")}
        had = [p for p, pending in self._late.pending.items() if pending]
        late = self._late.placed(self.groupers)
        if not progress_due(last, decided, now, self.progress_s, bool(late)):
            return  # nothing late was placed (a placed one makes it due: the interval passed above)
        progress = Progress(decided=decided, emitted_at=now, late=late)
        value = progress.model_dump_json().encode()  # a few a second: orjson's speed is not needed (int keys)
        topic = str(self.topics["incidents"].get_topic_name())
        futures: list[asyncio.Future[Any]] = []
        for target in range(self.incidents_partitions):
            futures += await send_batches(self.app, topic, target, [(b"stage2-progress", value, PROGRESS_HEADERS)])
        self._progress = progress
        self.progress_records += self.incidents_partitions
        self.checkpoints.sent(futures)
        # What it covers and names goes into the partitions' next checkpoint, after it (it waits for `futures`).
        moved = [p for p, at in decided.items() if at > self._covered.get(p, float("-inf"))]
        for p in moved:
            self._covered[p] = decided[p]
        self._touch([*moved, *(p for p in had if p in self.groupers)])

    def note_late(self, partition: int, events: Sequence[IncidentEvent]) -> None:
        """Before the partition's Grouper takes `events`: note those behind the progresses sent (`LateChildren`)."""
        covered = self._covered.get(partition, float("-inf"))
        if self._late.note(partition, self.groupers[partition], events,
                           None if covered == float("-inf") else covered):
            self._touch([partition])

    def _touch(self, partitions: Iterable[int]) -> None:
        """The stores of `partitions` changed outside a fold's output: written at the next checkpoint."""
        for p in partitions:
            self._touched.add(p)
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
                self.stores[p].covered = self._covered.get(p, float("-inf"))
                stores.append(self.stores[p])
        self._touched.clear()
        return stores

    def status(self) -> dict[str, Any]:
        """What the `/stage2/` view shows: partitions, the rules unlike the defaults, throughput counters, state
        size, topology."""
        counters: dict[str, int] = {}
        for g in self.groupers.values():
            for name, value in g.counters.as_dict().items():
                counters[name] = counters.get(name, 0) + value
        topology = self.watcher.topology
        now = time.monotonic()
        lows = {p: low.low(now) for p, low in sorted(self.lows.items())}
        return {"partitions": sorted(self.groupers), "rules": changed_rules(self.config), "routed": self.routed,
                "grouped": self.grouped,
                "published": self.published, "progress": self.progress_records, "groups": sum(len(g.store) for g in self.groupers.values()),
                "counters": counters, "topology": topology.version if topology is not None else None,
                "low_watermark": {str(p): {"at": None if low.at == float("-inf") else low.at,
                                           "drained": low.drained} for p, low in lows.items()}}


def _dump(model: ParentEvent | Assignment) -> bytes:
    """A stage-2 record's value: the same bytes as `orjson.dumps(model.model_dump(mode="json"))` (every field of
    these frozen models is a JSON type or a str Enum, which orjson writes as its value; a frozen model's `__dict__`
    holds exactly its fields, in order: tests/test_stage2_publishing.py), in a fifth of the time (0.7 us against
    3.6 a parent event): the dump built a second dict per record, and there is one per cause of one incident."""
    return orjson.dumps(model.__dict__)


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


def decode_routed(raw: bytes | None) -> list[IncidentEvent]:
    """The events of one routing record (stage 1's output to stage 2, on `<app id>-stage2-route`); `RoutedError` when
    it is not a JSON array of incident events. Public for the readers of that topic outside the stage (the soak)."""
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
    on_time: dict[int, set[str]] = {}
    now = time.monotonic()
    for event in events:
        msg = event.message
        stage.grouper(msg.partition)
        store = stage.stores[msg.partition]
        if store.seen(msg.offset):
            continue
        store.offset = msg.offset  # written with the progress, after the keys it covers
        try:
            evs, marks = decode_routed(msg.value), _marks_of(msg.headers)
        except Exception as exc:  # noqa: BLE001 - whatever one record raises is that record's dead letter
            await stage.pipe.refuse("stage2_group", event, exc)
            continue
        by_partition.setdefault(msg.partition, []).extend(evs)
        if _restated(msg.headers):  # on time when first routed: late only because the broker took that record
            on_time.setdefault(msg.partition, set()).update(ev.incident_id for ev in evs)
        if marks:  # after the record's events: a record's marks cover the events it carries
            low, lateness = stage.lows[msg.partition], stage.groupers[msg.partition].config.lateness_s
            on_time.setdefault(msg.partition, set()).update(on_own_time(evs, low.marks, marks, lateness))
            low.note(marks, now)
    await stage.restate_lost()  # before the new input: what it says comes after what was already decided
    for p, evs in by_partition.items():
        stage.note_late(p, evs)
        out = stage.groupers[p].ingest(evs, watermark=stage.lows[p].low(now).at, on_time=on_time.get(p, ()))
        stage.grouped += len(evs)
        stage.mark_input(p)
        await stage.commit(p, out)
    await stage.report_progress()


def _restated(headers: Any) -> bool:
    """Whether a routing record carries stage-1 incidents said again after a broker loss (`RESTATED_HEADER`)."""
    return header_value(headers, RESTATED_HEADER) is not None


def _marks_of(headers: Any) -> dict[int, SourceMark]:
    """The stage-1 marks a routing record carries (none: a record of another producer, or not the last of its
    commit); ValueError when the header is there but is no marks."""
    value = header_value(headers, MARKS_HEADER)
    return {} if value is None else decode_marks(value)


def _idle_output(stage: Stage2, p: int, grouper: Grouper, now: float) -> GroupingOutput:
    """What a partition's idle step releases (`correlator.stage2.idle_release` decides how far).

    The idle clocks are asked only when the sources are drained: a flush not taken while one is still waited
    for stays due, and the first advance then covers the whole silence.
    """
    low = stage.lows[p].low(now)
    flush = low.drained and stage.clocks.flush_due(p, now)
    step = stage.clocks.advance_due(p, now) if low.drained else None
    held = (ev.first_seen for _, ev in grouper.store.held_items())
    target = idle_release(grouper.watermark, held, grouper.config.lateness_s, low, flush, step)
    return grouper.advance(target) if target is not None else GroupingOutput()


async def tick(stage: Stage2) -> None:
    """Idle timer: topology reload, this worker's heartbeats of stage-1 marks, the idle steps of every
    routing partition, and a checkpoint if one is due."""
    stage.reload_topology()
    now = time.monotonic()
    stage.notice_sources(
        (tp.partition for tp in stage.app.assignor.assigned_actives() if tp.topic == stage.pipe.alerts_topic), now)
    await stage.heartbeat(now)
    async with stage.lock:
        await stage.restate_lost()
        now = time.monotonic()
        for p, grouper in list(stage.groupers.items()):
            out = _idle_output(stage, p, grouper, now)
            if out.parents or out.assignments or stage.stores[p].dirty:
                await stage.commit(p, out)
        await stage.report_progress()
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
    config = settings.grouping_config()
    watcher = TopologyWatcher(settings.stage2_topology, config.max_hops)
    watcher.load()
    return Stage2(app, pipe, config, table, {"incidents": pipe.topics["incidents"], "route": route}, watcher,
                  checkpoint_s=settings.checkpoint_interval, route_partitions=partitions,
                  incidents_partitions=partitions, clocks=IdleClocks(settings.idle_flush, settings.idle_advance),
                  sources=pipe.alerts_partitions, lone_causes=settings.stage2_lone_causes,
                  progress_s=settings.stage2_progress_interval,
                  restate_after_loss=settings.stage2_restate_after_loss,
                  restate_closed=settings.reconcile_after_loss)


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
