"""The crash-safe commit order, written once: output, then changed keys, then progress, then outbox, then acks.

Every changelog-backed store of the worker (`stream.state.TableStore` of stage 1, `stream.stage2_state.
GroupTableStore` of stage 2, `stream.docstore.DocStore` of the ticket and incident-SLA desk) implements one
Protocol, `CheckpointStore`, and one `Checkpointer` writes any set of them in this order:

1. wait for the output the stage published before its state (stage 1's incident events and routing records,
   stage 2's parents); a failure raises here, before any state;
2. each store's changed keys, as record batches on the store's changelog partition;
3. each store's progress (which input it covers; the desk's outbox marker), always as a one-record batch:
   Tansu 0.6.0 reports a changelog's true end offset only after one (it under-reports after a multi-record
   batch, and Faust recovers only up to it);
4. for stores that decide events with their state (an outbox: the desk's escalations and review decisions),
   wait for that state, send the events, wait for them, then a marker saying up to which number they are out;
5. wait for the keys and progress of steps 2-3, then acknowledge the input held since the last checkpoint.

A checkpoint's keys and progress are one record as far as a restore can tell: each key record carries the
checkpoint's id (header `aiops-checkpoint`), the progress record names it as committed (`aiops-commit`), and
a table restored from its changelog (or kept as a standby) applies a checkpoint's keys only when that progress
record is read (`CommitGate`, installed on every table by `stream.app`). The keys of a checkpoint whose progress
never landed (a crash between the two, or a standby of a partition whose owner died mid-checkpoint) are never
applied: every store comes back as its last progress left it, keys and progress of the same checkpoint, and
its stage reads again, from that progress, the input whose state was lost. The table's local data is written
the same way (keys and progress together, with no await between), so a stage rebuilt from it after a failed
checkpoint sees one checkpoint too. Records without an id (a store with no progress record, the outbox's
`mark_sent` marker) are applied as they come.

So a crash at any point loses nothing: output already out is regenerated with the same ids and seq if the
state did not make it (known gap, hop42 in benchmarks/RESULTS.md, not fixed: a refold in other batches can give a
seq other content than the first fold gave it, and every reader keeps the first); state already out is never re-applied, because the progress committed with it says which
input it covers; an outbox event decided but not known to be out is sent again, byte for byte, by whoever
loads the store next; input not yet acknowledged is read again. The input is acknowledged only once the keys
and progress covering it are delivered (one round trip per checkpoint, not per batch): Faust flushes the
producer before it commits acknowledged offsets, but commits whether or not the sends succeeded, so input
acknowledged when its state was merely handed to the producer was committed with that state lost. Seen with
stage 2's changelog refusing its checkpoints: every other checkpoint acknowledged its input (the refusal showed
only at the next one), the rollback after that refusal rebuilt the stage without that input's state, and it was
never read again (four lone incidents never grouped, `tests/test_rebalance_release.py`).

Writing state once per interval rather than per batch is what keeps a live stream cheap: a storm's key (or a
cause) changes in nearly every small batch, and its whole state would otherwise be encoded and sent each time.

A broker that lost its topics (the embedded one keeps them in memory) starts every input again at offset 0 and
re-creates the changelogs empty, so a store (`InputStore`) must forget the input offsets its progress names and
write everything it holds to the new changelog, and must go on doing so whenever it is built again from the
table's local data until a checkpoint has written it there: `Checkpointer.lose` marks a table's partitions,
`forget` applies the rule to a store held or just built, and `write` clears the mark.

A failed checkpoint (or fold) is undone by `rollback`: the held input comes back unacknowledged, to be
folded again on the state the stage rebuilds from its table (`stream.stages` runs that retry).
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, cast

import orjson

from stream.sends import raise_failed, send_batches

if TYPE_CHECKING:  # the stores import this module without loading Faust
    from faust.types import EventT, TopicT

__all__ = ["CHECKPOINT_HEADER", "COMMIT_HEADER", "ChangelogRecord", "CheckpointStore", "Checkpointer", "CommitGate",
           "InputStore", "Outbound", "changelog_of"]

ChangelogRecord = tuple[bytes, bytes | None]
"""A changelog record to send: table key and value (None for a tombstone)."""

CHECKPOINT_HEADER = "aiops-checkpoint"
"""Header of a checkpoint's key records: the checkpoint's id (applied on restore only with its commit)."""
COMMIT_HEADER = "aiops-commit"
"""Header of a checkpoint's progress record: the id of the checkpoint it commits."""


def changelog_of(table: Any) -> str:
    """Kafka name of a Faust table's changelog, where its stores' checkpoints go (`CheckpointStore.changelog_topic`)
    and what `Checkpointer.lose` marks."""
    return str(table.changelog_topic.get_topic_name())


@dataclass(frozen=True, slots=True)
class Outbound:
    """An outbox event waiting to be sent: the topic (a key of the outputs mapping), its key, its JSON value,
    and its number in the store's outbox (0 until the store numbers it)."""

    topic: str
    key: str
    value: dict[str, Any]
    n: int = 0

    def to_list(self) -> list[Any]:
        """Compact form inside a stored document."""
        return [self.n, self.topic, self.key, self.value]

    @classmethod
    def from_list(cls, item: Sequence[Any]) -> Outbound:
        """Inverse of `to_list`."""
        n, topic, key, value = item
        return cls(topic=topic, key=key, value=value, n=int(n))


class CheckpointStore(Protocol):
    """One partition of a changelog-backed table, as the `Checkpointer` writes it."""

    @property
    def partition(self) -> int:
        """The table's (and its changelog's) partition."""
        ...

    @property
    def changelog_topic(self) -> str:
        """Kafka name of the store's changelog."""
        ...

    def write_keys(self) -> list[ChangelogRecord]:
        """The keys changed since the last checkpoint, written to the table's local data; their records."""
        ...

    def write_progress(self) -> ChangelogRecord | None:
        """The record saying which input the keys just written cover (None: this store keeps none now)."""
        ...

    def pending(self) -> list[Outbound]:
        """Events decided with the state and not yet known to be out, oldest first ([] for a store whose
        stage publishes before it checkpoints)."""
        ...

    def mark_sent(self, n: int) -> ChangelogRecord | None:
        """Events up to number `n` are out: the record that says so (None: nothing to record)."""
        ...

    def rewrite(self) -> None:
        """Write everything the store holds at the next checkpoint: after a failed one the changelog may lack
        what the table's local data already has."""
        ...


class InputStore(CheckpointStore, Protocol):
    """A store that a broker which lost its topics leaves stale (`Checkpointer.lose`): its changelog is gone, and its
    progress may name offsets of its stage's input (stage 1's `alerts.raw` offsets, stage 2's routing offset)."""

    def forget_input(self) -> None:
        """Forget those offsets, if any, and mark everything held for the next checkpoint: the input starts again at
        offset 0 (the old offsets would make new records look applied, and skip them) and the changelog that held
        the state is gone."""
        ...


def _no_stores() -> list[CheckpointStore]:
    return []


@dataclass
class Checkpointer:
    """A stage's output futures, held input and checkpoint clock; writes its stores in the safe order."""

    app: Any
    touched: Callable[[], Sequence[CheckpointStore]] = _no_stores
    """The stores changed since the last checkpoint (calling it forgets them), for `run`."""
    interval_s: float = 0.0
    """Seconds between checkpoints; 0 checkpoints whenever asked (`if_due`)."""
    outputs: Mapping[str, TopicT] = field(default_factory=dict)
    """Where outbox events go, by the topic name an `Outbound` carries."""
    on_sent: Callable[[Outbound], None] | None = None
    """Called for each outbox event once it is handed to the producer (counting)."""
    _out_sent: list[asyncio.Future[Any]] = field(default_factory=list)
    _held: list[EventT[Any]] = field(default_factory=list)
    """Input folded since the last checkpoint: acknowledged only once its state is sent."""
    lost: set[tuple[str, int]] = field(default_factory=set)
    """(changelog, partition) of each store that forgot its input (`lose`) and that no checkpoint has written since
    (by changelog: the desk's Checkpointer writes stores of two tables)."""
    _pending: bool = False
    _last: float = 0.0
    _writer: str = field(default_factory=lambda: uuid.uuid4().hex[:16])
    _numbers: Iterator[int] = field(default_factory=itertools.count)

    def hold(self, events: Sequence[EventT[Any]]) -> None:
        """Keep the input unacknowledged (Faust's `take_events` acks it) until a checkpoint."""
        for event in events:
            event.message.incref()
        self._held.extend(events)

    @property
    def held(self) -> Sequence[EventT[Any]]:
        """The input held since the last checkpoint, in the order it was folded."""
        return self._held

    def sent(self, futures: Iterable[asyncio.Future[Any]]) -> None:
        """Output of the fold: the next checkpoint waits for it before it writes any state."""
        self._out_sent.extend(futures)

    def changed(self) -> None:
        """State changed without input (an idle step): the next checkpoint is due even with nothing held."""
        self._pending = True

    def lose(self, table: Any, partitions: Iterable[int], held: Iterable[InputStore] = ()) -> None:
        """The broker lost its topics: the store of each of `partitions` of the Faust `table`, held
        now (`held`: each forgets at once; an owner that must name them to its next checkpoint calls `forget` itself)
        or built later, must forget its input (`forget`) until a checkpoint writes it. Until then the table's
        local data, which a store is built from, holds the old progress: a store dropped and built again before that
        checkpoint (a rebalance keeps revoking and assigning the same partitions while the group rejoins the new
        broker) came back with the old offsets and skipped the new records below them (stage 1: progress
        {-1: 11264} restored after a loss; stage 2: the new children of a routing partition never named,
        `tests/test_group_recovery.py`)."""
        changelog = changelog_of(table)
        self.lost = {lost for lost in self.lost if lost[0] != changelog} | {(changelog, p) for p in partitions}
        for store in held:
            self.forget(store)

    def forget(self, store: InputStore) -> bool:
        """Make `store` (held at the loss, or just built from the table's local data) forget its input if its
        partition is lost; whether it did: then its owner must name it to the next checkpoint (`touched`), which is
        due at once, with no input held."""
        if (store.changelog_topic, store.partition) not in self.lost:
            return False
        store.forget_input()
        self._pending = True
        return True

    def forget_held(self, topic: str, partitions: Iterable[int]) -> None:
        """Drop held input of revoked partitions: never acknowledged, as its state was not written, so the
        partition's next owner reads it again."""
        gone = set(partitions)
        self._held = [e for e in self._held if e.message.topic != topic or e.message.partition not in gone]

    def rollback(self, failed: Sequence[EventT[Any]] = ()) -> list[EventT[Any]]:
        """Undo what was folded since the last checkpoint: forget the output waited for and release the held input
        unacknowledged (one reference each, as `hold` took). Returns what to fold again, in order: that input,
        then the records of `failed` (the batch that failed) not among it."""
        held, self._held = self._held, []
        self._out_sent = []
        self._pending = True
        for event in held:
            event.message.decref()
        again = {id(event.message) for event in held}
        return held + [event for event in failed if id(event.message) not in again]

    def due(self, now: float) -> bool:
        """Whether there is state to write and it is time: the interval has passed, or Faust is rebalancing or
        stopping (it waits for every message in flight to be acknowledged, and held ones are only by a checkpoint)."""
        if not (self._pending or self._held):
            return False
        return (now - self._last >= self.interval_s or bool(getattr(self.app, "rebalancing", False))
                or self.app.should_stop)

    async def if_due(self) -> None:
        """`run` when `due`: after every commit, on the idle timer and when the app stops."""
        if self.due(time.monotonic()):
            await self.run()

    async def run(self) -> None:
        """Checkpoint the stores `touched` names, then acknowledge the held input (steps 1-5 of the module)."""
        self._last = time.monotonic()
        self._pending = False
        waiting, self._out_sent = self._out_sent, []
        await _delivered(waiting)  # before the state that follows them: the input is redelivered instead
        state, _ = await self.write(self.touched())
        await _delivered(state)  # before the acknowledgements: a refused state leaves its input held, to fold again
        held, self._held = self._held, []
        consumer = self.app.consumer
        for event in held:
            event.message.ack(consumer)

    async def commit(self, stores: Sequence[CheckpointStore]) -> int:
        """Write `stores` now and wait until all of it is out (the desk's path: each batch or decision is its own
        checkpoint, answered only once durable); returns the outbox events sent."""
        waiting, sent = await self.write(stores)
        await _delivered(waiting)
        return sent

    async def write(self, stores: Sequence[CheckpointStore]) -> tuple[list[asyncio.Future[Any]], int]:
        """Steps 2-4 for `stores`: the futures of the state sent last (not waited for), and how many outbox
        events went out."""
        # Each store's keys and progress go to its local data together, before the first await: whatever stops
        # this checkpoint midway (a failed send, a revocation), the table holds one checkpoint, not two halves.
        staged = [(store, store.write_keys(), store.write_progress(), self._new_id()) for store in stores]
        self.lost.difference_update((s.changelog_topic, s.partition) for s in stores)  # forgotten: local data now
        sent: list[asyncio.Future[Any]] = []
        for store, changes, progress, cp in staged:
            if changes:  # without progress, no id: nothing would ever commit them
                headers = [] if progress is None else [(CHECKPOINT_HEADER, cp)]
                sent += await send_batches(self.app, store.changelog_topic, store.partition,
                                           ((k, v, headers) for k, v in changes))
        for store, _, progress, cp in staged:
            sent += await self._one_record(store, progress, [(COMMIT_HEADER, cp)])
        due = [(store, pending) for store in stores if (pending := store.pending())]
        if due:
            await _delivered(sent)  # the state before the events it decided: a crash re-sends, never re-decides
            sent = []
            events: list[asyncio.Future[Any]] = []
            for _, pending in due:
                for event in pending:
                    sending = await self.outputs[event.topic].send(key=event.key.encode(),
                                                                   value=orjson.dumps(event.value))
                    events.append(cast("asyncio.Future[Any]", sending))  # a Faust FutureMessage
                    if self.on_sent is not None:
                        self.on_sent(event)
            await self.app.producer.flush()
            await _delivered(events)
            for store, pending in due:
                sent += await self._one_record(store, store.mark_sent(pending[-1].n))
        return sent, sum(len(pending) for _, pending in due)

    def _new_id(self) -> bytes:
        """A checkpoint id no other writer of the changelog uses (this writer's random part, then a count)."""
        return f"{self._writer}-{next(self._numbers)}".encode()

    async def _one_record(self, store: CheckpointStore, record: ChangelogRecord | None,
                          headers: list[tuple[str, bytes]] | None = None) -> list[asyncio.Future[Any]]:
        if record is None:
            return []
        return await send_batches(self.app, store.changelog_topic, store.partition,
                                  [(record[0], record[1], headers or [])])


async def _delivered(futures: Sequence[asyncio.Future[Any]]) -> None:
    """Wait for sends; raise the first that failed (`stream.sends.SendFailed`)."""
    if futures:
        await asyncio.gather(*futures, return_exceptions=True)
        raise_failed(futures)


class CommitGate:
    """The restore side of the order: which changelog records a table applies, and when.

    A record with `CHECKPOINT_HEADER` waits, per changelog partition, until the record with `COMMIT_HEADER` and
    the same id is read; then the checkpoint's records are applied together with it, in changelog order. Records
    of another checkpoint still waiting then are dropped: a writer sends a checkpoint's records before its
    commit, so a checkpoint committed after them means theirs never will be (its writer died midway). Whatever
    waits when the restore ends is never applied either. A record without either header is applied at once.

    The limit: on a compacted changelog (a real Kafka; Tansu never compacts) the cleaner may drop a key's last
    committed record in favour of a newer one that never committed, if no later checkpoint wrote that key again
    before the cleaner reached that segment; a restore after that lacks the key. Writing a rolled-back key again
    at the next owner's first checkpoint would close it; not done yet.
    """

    def __init__(self) -> None:
        self._waiting: dict[tuple[str, int], list[tuple[bytes, Any]]] = {}
        self.dropped = 0
        """Records of checkpoints that never committed, dropped so far (a restore that rolled keys back)."""

    def committed(self, batch: Iterable[Any]) -> list[Any]:
        """The events of `batch` (Faust changelog events) to apply now, in order; the others wait or are dropped."""
        ready: list[Any] = []
        for event in batch:
            message = event.message
            cp, commit = _checkpoint_of(message.headers)
            if cp is None:
                ready.append(event)
                continue
            tp = (message.topic, message.partition)
            if not commit:
                self._waiting.setdefault(tp, []).append((cp, event))
                continue
            waiting = self._waiting.pop(tp, [])
            ready += [e for c, e in waiting if c == cp]
            self.dropped += sum(c != cp for c, _ in waiting)
            ready.append(event)
        return ready

    def waiting(self, topic: str, partition: int) -> int:
        """Records of a changelog partition read but not applied: a checkpoint whose commit has not been read."""
        return len(self._waiting.get((topic, partition), ()))


def _checkpoint_of(headers: Any) -> tuple[bytes | None, bool]:
    """The checkpoint id a changelog record's headers carry, and whether the record commits it."""
    if not headers:
        return None, False
    for name, value in headers.items() if isinstance(headers, Mapping) else headers:
        if name == COMMIT_HEADER:
            return bytes(value), True
        if name == CHECKPOINT_HEADER:
            return bytes(value), False
    return None, False
