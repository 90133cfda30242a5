"""Where an `alerts` record says its alerts came from, checked before correlate trusts it.

A segment of an `alerts` record names its source, (`alerts.raw` partition, offset * PARTS_PER_OFFSET + part),
and correlate skips every later segment at or below the highest source it applied (`TableStore.seen`): that is
how a redelivery is applied once. `alerts` is a topic any producer can write, so one record naming a source the
broker never held (partition 0, offset 10^15) would make the engine skip every real record of that raw
partition from then on, silently, and the progress is checkpointed: a restart would not undo it.

So before correlate applies a segment that would move the progress, it asks whether that raw record exists:
normalize in this process read it (the common case, no request), or its offset is below `alerts.raw`'s end
offset (one ListOffsets, cached, refreshed only when a source passes the cached end), or, as Tansu 0.6.0
under-reports the end after a multi-record batch, a fetch of that very offset returns it. A record naming a
source that does not exist is dead-lettered whole, category `forged_source`. When the broker cannot answer the
check, the segment is taken as before (logged): a check must never lose a real record.

The limit: a forged source within what `alerts.raw` holds passes. It can make the engine skip the real segments
of that raw partition between the progress and it that were not applied yet (at most that partition's current
backlog), never later ones. Only the broker's ACLs (just the workers write `alerts`, deploy/README.md) close it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from stream.batches import PARTS_PER_OFFSET
from stream.security import client_options

if TYPE_CHECKING:
    from stream.batches import Segment
    from stream.settings import Settings

__all__ = ["ForgedSource", "SourceCheck"]

log = logging.getLogger(__name__)

FETCH_TIMEOUT_MS = 1000


class ForgedSource(ValueError):
    """An `alerts` record names a raw record `alerts.raw` does not hold: it would make correlate skip real ones."""

    category = "forged_source"


class SourceCheck:
    """What this worker knows exists on `alerts.raw` (per partition, the offset below which records exist), and the
    broker look-ups that extend it (see the module doc)."""

    def __init__(self, settings: Settings, topic: str, partitions: int) -> None:
        self._settings = settings
        self._topic = topic
        self._partitions = partitions
        self._known: dict[int, int] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self._lock = asyncio.Lock()

    def read(self, partition: int, offset: int) -> None:
        """Normalize in this process read this raw record: it exists."""
        if offset >= self._known.get(partition, 0):
            self._known[partition] = offset + 1

    def forget(self) -> None:
        """The broker lost its topics (stream/recovery.py): raw offsets start again at 0."""
        self._known.clear()

    async def check(self, segments: Sequence[Segment], progress: dict[int, int]) -> None:
        """`ForgedSource` when a segment that would move `progress` names a raw record that does not exist."""
        for segment in segments:
            source = segment.source
            if source is None or source[1] <= progress.get(source[0], -1):
                continue  # no source, or one the progress covers already: it moves nothing
            partition, offset = source[0], source[1] // PARTS_PER_OFFSET
            if offset < self._known.get(partition, 0):
                continue
            if not 0 <= partition < self._partitions:
                raise ForgedSource(f"source partition {partition} of a segment: {self._topic} has "
                                   f"{self._partitions} partitions")
            if not await self._exists(partition, offset):
                raise ForgedSource(f"source {self._topic}:{partition}@{offset} of a segment does not exist "
                                   f"(end offset {self._known.get(partition, 0)}): a record naming it would make "
                                   "correlate skip real ones")

    async def _exists(self, partition: int, offset: int) -> bool:
        """Ask the broker: the end offsets first, then a fetch of the offset itself; True when it cannot answer."""
        async with self._lock:
            try:
                consumer = await self._connect()
                tps = [TopicPartition(self._topic, p) for p in range(self._partitions)]
                for tp, end in (await consumer.end_offsets(tps)).items():
                    self._known[tp.partition] = max(self._known.get(tp.partition, 0), end)
                if offset < self._known.get(partition, 0):
                    return True
                tp = TopicPartition(self._topic, partition)
                consumer.assign([tp])
                consumer.seek(tp, offset)
                fetched = await consumer.getmany(tp, timeout_ms=FETCH_TIMEOUT_MS)
                found = [r.offset for r in fetched.get(tp, []) if r.offset >= offset]
            except (KafkaError, OSError) as exc:  # OSError: TimeoutError and refused connections
                log.warning("could not check that %s:%d@%d exists, taking it as it is: %r", self._topic, partition,
                            offset, exc)
                return True
            if found:
                self.read(partition, max(found))
            return bool(found)

    async def _connect(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self._settings.bootstrap_servers, group_id=None, enable_auto_commit=False,
                client_id=f"{self._settings.app_id}-sources", max_partition_fetch_bytes=64 << 20,
                fetch_max_wait_ms=100, **client_options(self._settings))
            await consumer.start()
            self._consumer = consumer
        return self._consumer

    async def stop(self) -> None:
        """Close the look-up client (the app's stop hook)."""
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            try:
                await consumer.stop()
            except Exception:  # noqa: BLE001 - closing a client to a dead broker must not block the stop
                log.debug("closing the source check's consumer failed", exc_info=True)
