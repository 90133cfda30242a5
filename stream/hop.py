"""Alert records onto `alerts` by partition of correlation key: the one way the HTTP ingest and the normalize agent
write them, and how correlate numbers records that carry no raw source.

The hop: a body that arrives over HTTP is parsed once, at the ingest (`correlator.sources.normalize`), and its
alerts go to `alerts` as compact records, each alert on the partition its correlation key hashes to (Kafka's
murmur2, `stream.sends.cached_partition`), so Alertmanager traffic spreads over partitions and workers. Raw
producers keep writing `alerts.raw`, and the normalize agent cuts and sends the same records with the same
functions (`partition_parts`), adding each raw record's (partition, offset) as the segment's source.

A record the ingest writes carries no raw source. Correlate numbers its segments by the record's own offset on
`alerts` (`numbered`) under one progress slot, `HOP_SOURCE`, so a redelivery after a crash is skipped like a
re-normalized raw record: state updates stay effectively-once on both paths.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from correlator import metrics
from correlator.records import AlertRecord
from stream.batches import (
    PARTS_PER_OFFSET,
    BatchError,
    Segment,
    encode_batch,
    pack_records,
    parts_of,
)
from stream import tally
from stream.sends import cached_partition

__all__ = ["HOP_SOURCE", "Partitioner", "Parts", "count_received", "hop_values", "numbered", "partition_parts"]

HOP_SOURCE = -1
"""The progress slot (in place of an `alerts.raw` partition) of segments numbered by their own `alerts` offset."""

Parts = dict[int, list[tuple[list[AlertRecord], int]]]
"""Per partition of `alerts`, a body's records cut into parts that each fit one record, with their bytes (a bound)."""


@dataclass
class Partitioner:
    """The partition of `alerts` a correlation key belongs to, as a keyed Kafka producer would pick it (cached)."""

    partitions: int
    _cache: dict[str, int] = field(default_factory=dict)

    def __call__(self, key: str) -> int:
        """The partition of `key`."""
        return cached_partition(self._cache, key, self.partitions)


def partition_parts(records: Sequence[AlertRecord], partition_of: Callable[[str], int], body_bytes: int) -> Parts:
    """One body's records by partition of their correlation key, in order, cut into parts (`parts_of`; raises
    `RecordTooLarge` when an alert cannot fit a record)."""
    split: dict[int, list[AlertRecord]] = {}
    for record in records:
        split.setdefault(partition_of(record.key), []).append(record)
    return {p: parts_of(rs, body_bytes, len(records)) for p, rs in split.items()}


def hop_values(parts: Parts, received_ms: int) -> list[tuple[int, bytes]]:
    """The `alerts` records the ingest writes for one body: (partition, value), each partition's parts packed in
    order, with no source (correlate numbers them, `numbered`)."""
    out: list[tuple[int, bytes]] = []
    for partition, cut in parts.items():
        segments = [Segment(None, records) for records, _ in cut]
        for chunk in pack_records(segments, sizes=[size for _, size in cut]):
            out.append((partition, encode_batch(chunk, received_ms)))
    return out


def count_received(by_source: dict[str, int], source: str = "", own: int = 0) -> None:
    """Count a body's alerts by source, one metric update per source (not per alert), and the correlator's own
    incidents the body held (`own`, left out by the loop guard) under its `source`: normalize and the ingest."""
    for name, count in by_source.items():
        tally.inc(metrics.ALERTS_RECEIVED.labels(name), count)
    if own:
        tally.inc(metrics.ALERTS_DROPPED.labels(source, "own_incident"), own)


def numbered(segments: list[Segment], offset: int) -> list[Segment]:
    """The segments of the `alerts` record at `offset`, those without a source numbered by that offset.

    `BatchError` for a record of more source-less segments than an offset can number (no writer of this
    project comes near: the ingest writes one segment per part).
    """
    if all(s.source is not None for s in segments):
        return segments
    if len(segments) > PARTS_PER_OFFSET:
        raise BatchError(f"{len(segments)} segments without a source in one record, at most {PARTS_PER_OFFSET}")
    base = offset * PARTS_PER_OFFSET
    return [s if s.source is not None else Segment((HOP_SOURCE, base + i), s.records) for i, s in enumerate(segments)]
