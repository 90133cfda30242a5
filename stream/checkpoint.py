"""Checkpoints of a fold's state: its output first, then the changed keys, then the progress, then the acks.

One definition for the two folds whose state lives in a changelog-backed table and whose input Faust must
not commit past that state: stage 1 (`stream.pipeline`, engines over `alerts`) and stage 2
(`stream.stage2_agent`, Groupers over the routing topic). Each has its own `Checkpoints`.

In that order, so that a crash at any point loses nothing: output already out is regenerated with the same
ids and seq if the state did not make it; state already out is never re-applied, because the progress
written last says which input it covers; input not yet acknowledged is read again by whoever owns the
partition next. The keys and the progress are not waited for: they go as separate record batches on the
changelog partition, which the producer delivers in order (one batch in flight per partition), so the
progress still follows the keys it covers, always as a one-record batch, which Tansu 0.6.0 needs to report
the changelog's true end offset (it under-reports after a multi-record batch, and Faust recovers only up to
it). Faust flushes the producer before it commits the offsets of acknowledged input, and the next checkpoint
waits for this one's state with its output, so a failed delivery stops the agent one checkpoint later,
before anything more is acked.

Writing state once per interval rather than per batch is what keeps a live stream cheap: a storm's key (or a
cause) changes in nearly every small batch, and its whole state would otherwise be encoded and sent each time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from faust.types import EventT

from stream.sends import raise_failed, send_batches

__all__ = ["Checkpoints", "StateStore"]


class StateStore(Protocol):
    """A changelog-backed store of one partition (`stream.state.TableStore`, `stream.stage2_state.GroupTableStore`)."""

    @property
    def partition(self) -> int:
        """The table's (and its changelog's) partition."""
        ...

    @property
    def changelog_topic(self) -> str:
        """Kafka name of the store's changelog."""
        ...

    def write_keys(self) -> list[tuple[bytes, bytes | None]]:
        """The keys changed since the last checkpoint, as changelog records (None: a tombstone)."""
        ...

    def write_progress(self, watermark: float) -> tuple[bytes, bytes | None]:
        """The progress record, written after the keys it covers."""
        ...


TouchedStores = Callable[[], list[tuple[StateStore, float]]]
"""The stores changed since the last checkpoint, each with its watermark; calling it forgets them."""


@dataclass
class Checkpoints:
    """A fold's output futures, held input and checkpoint clock; `run` writes its state in the safe order."""

    app: Any
    touched: TouchedStores
    interval_s: float = 0.0
    """Seconds between checkpoints; 0 checkpoints whenever asked (`if_due`)."""
    _out_sent: list[asyncio.Future[Any]] = field(default_factory=list)
    _state_sent: list[asyncio.Future[Any]] = field(default_factory=list)
    _held: list[Any] = field(default_factory=list)
    """Messages folded since the last checkpoint: acknowledged only once their state is sent."""
    _pending: bool = False
    _last: float = 0.0

    def hold(self, events: Sequence[EventT[Any]]) -> None:
        """Keep the input's messages unacknowledged (Faust's `take_events` acks them) until a checkpoint."""
        for event in events:
            event.message.incref()
            self._held.append(event.message)

    def sent(self, futures: Iterable[asyncio.Future[Any]]) -> None:
        """Output of the fold: the next checkpoint waits for it before it writes any state."""
        self._out_sent.extend(futures)

    def changed(self) -> None:
        """State changed without input (an idle step): the next checkpoint is due even with nothing held."""
        self._pending = True

    def forget_held(self, topic: str, partitions: Iterable[int]) -> None:
        """Drop held messages of revoked partitions: never acknowledged, as their state was not written, so the
        partition's next owner reads them again."""
        gone = set(partitions)
        self._held = [m for m in self._held if m.topic != topic or m.partition not in gone]

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
        """Wait for the output sent so far, send the changed keys, then the progress; acknowledge the input."""
        self._last = time.monotonic()
        self._pending = False
        waiting = self._out_sent + self._state_sent
        self._out_sent, self._state_sent = [], []
        if waiting:
            await asyncio.gather(*waiting, return_exceptions=True)
            raise_failed(waiting)  # before the state that follows them: the input is redelivered instead
        stores = self.touched()
        sent: list[asyncio.Future[Any]] = []
        for store, _ in stores:
            changes = store.write_keys()
            if changes:
                sent += await send_batches(self.app, store.changelog_topic, store.partition,
                                           ((k, v, []) for k, v in changes))
        for store, watermark in stores:
            key, value = store.write_progress(watermark)
            sent += await send_batches(self.app, store.changelog_topic, store.partition, [(key, value, [])])
        self._state_sent = sent
        held, self._held = self._held, []
        consumer = self.app.consumer
        for message in held:
            message.ack(consumer)
