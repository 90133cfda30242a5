"""Records handed to Kafka as whole record batches, past Faust's per-message send path.

`Topic.send` and `Table.send_changelog` cost, per record, a Faust future message, callbacks, sensors and a
buffer task, then aiokafka's own future, partitioner call and batch lookup: about 60-100 µs, more than
correlating the alerts that caused the record. The agents that send many records per commit (incident
events, changelog keys, stage 2's output) build aiokafka record batches themselves instead, one delivery
future per batch, and check those futures after the producer's flush (which waits for them like for any
other send). The partition of a keyed record is picked here as a keyed producer would pick it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any, cast

from aiokafka.partitioner import DefaultPartitioner

__all__ = ["PARTITION_CACHE_KEYS", "Fault", "Record", "SendFailed", "cached_partition", "key_partition",
           "raise_failed", "send_batches", "set_fault"]

Record = tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]
"""Key, value (None: a tombstone) and headers of one record to send."""

Fault = Callable[[str, int], BaseException | None]
"""A test seam: given a batch's topic and partition, the error its delivery fails with (None: sent as usual)."""

_PARTITIONER = DefaultPartitioner()
_FAULT: list[Fault] = []


def set_fault(fault: Fault | None) -> None:
    """Install (None: remove) the fault seam: a broker refusing a topic, for the tests of failed batches."""
    _FAULT[:] = [] if fault is None else [fault]
_EVERY: dict[int, list[int]] = {}


class SendFailed(RuntimeError):
    """A batch the broker did not accept; the agent stops and its input is redelivered."""


def key_partition(key: bytes, partitions: int) -> int:
    """The partition a keyed Kafka producer puts `key` on (murmur2, aiokafka's and Java's default)."""
    every = _EVERY.get(partitions)
    if every is None:
        every = _EVERY[partitions] = list(range(partitions))
    return int(_PARTITIONER(key, every, every))


PARTITION_CACHE_KEYS = 16384
"""Most keys `cached_partition` remembers before it starts again empty."""


def cached_partition(cache: dict[str, int], key: str, partitions: int) -> int:
    """`key_partition` of a str key, memoized in `cache` (murmur2 in Python costs microseconds a key).

    Keys come from alert labels, i.e. from outside, so the cache is bounded: past PARTITION_CACHE_KEYS keys it
    starts again empty, rather than growing with every service name a source has ever sent.
    """
    partition = cache.get(key)
    if partition is None:
        if len(cache) >= PARTITION_CACHE_KEYS:
            cache.clear()
        partition = cache[key] = key_partition(key.encode(), partitions)
    return partition


async def send_batches(app: Any, topic: str, partition: int, records: Iterable[Record]) -> list[asyncio.Future[Any]]:
    """Hand records for one partition of `topic` to the app's producer as whole batches, in order.

    Returns one delivery future per batch; `raise_failed` checks them once a flush has waited for them.
    """
    if _FAULT and (error := _FAULT[0](topic, partition)) is not None:
        failed: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        failed.set_exception(error)
        return [failed]
    kafka = cast(Any, app.producer)._ensure_producer()  # Faust keeps its aiokafka producer private
    futures: list[asyncio.Future[Any]] = []
    batch = None
    for key, value, headers in records:
        if batch is None or batch.append(timestamp=None, key=key, value=value, headers=headers) is None:
            if batch is not None:
                batch.close()
                futures.append(await kafka.send_batch(batch, topic, partition=partition))
            batch = kafka.create_batch()
            batch.append(timestamp=None, key=key, value=value, headers=headers)  # a first record always fits
    if batch is not None:
        batch.close()
        futures.append(await kafka.send_batch(batch, topic, partition=partition))
    return futures


def raise_failed(futures: Iterable[asyncio.Future[Any]]) -> None:
    """Raise the first delivery failure among flushed sends, so the agent stops and its input is redelivered."""
    for future in futures:
        if future.done() and not future.cancelled() and future.exception() is not None:
            raise SendFailed(f"record batch not delivered: {future.exception()!r}") from future.exception()
