"""What a worker wrote, kept as objects by the record's bytes, so its own readers of those records skip the decode.

A worker reads back much of what it publishes: stage 2 folds the routing records stage 1 wrote a moment before,
and decoding them again (pydantic, about 9-12 us an event) was a tenth of stage 2's share of the worker's CPU
(issue 19). The writer keeps each value's bytes with the object they encode (`ReadBack.keep`); a reader
that gets a record with exactly those bytes takes the object (`ReadBack.take`), anything else it decodes as
before. Keyed by the bytes, so a reader gets what decoding its record would give: the writer keeps only values
whose decode gives the object back (for stage 2: `finite_event`, tests/test_readback.py). A record read by
another worker, or read again after a rollback, is decoded; what no reader takes ages out by `max_bytes`.
Memory: an entry holds its value's bytes and the object (a decoded stage-1 event is about 2.6 KB beside its
770 bytes of JSON), only while a reader is behind the writer, so about 4.4x `max_bytes` at most.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from correlator.models import IncidentEvent

__all__ = ["ReadBack", "finite_event"]

T = TypeVar("T")


@dataclass
class ReadBack(Generic[T]):
    """Objects by the bytes that encode them, at most `max_bytes` of bytes not yet taken; each taken at most once."""

    max_bytes: int
    """Bound on the bytes of values kept and not yet taken: past it the oldest age out (their reader decodes)."""
    hits: int = 0
    """Reads that took an object."""
    misses: int = 0
    """Reads that found none (decoded)."""
    peak: int = 0
    """The most bytes held at once."""
    _items: OrderedDict[bytes, T] = field(default_factory=OrderedDict)
    _bytes: int = 0

    def keep(self, value: bytes, obj: T) -> None:
        """Hold `obj` as what `value` decodes to; the oldest values age out past `max_bytes`."""
        if value in self._items:  # the same bytes again (a batch folded again): one entry
            self._items[value] = obj
            return
        self._items[value] = obj
        self._bytes += len(value)
        while self._bytes > self.max_bytes:
            old, _ = self._items.popitem(last=False)
            self._bytes -= len(old)
        self.peak = max(self.peak, self._bytes)

    def take(self, value: bytes | None) -> T | None:
        """The object kept for exactly `value`'s bytes, forgotten as it is taken; None: decode it."""
        obj = self._items.pop(value, None) if value else None
        if obj is None:
            self.misses += 1
            return None
        self.hits += 1
        assert value is not None
        self._bytes -= len(value)
        return obj

    def status(self) -> dict[str, int]:
        """Hits, misses, entries and bytes held, and the peak, for a status view."""
        return {"hits": self.hits, "misses": self.misses, "held": len(self._items), "bytes": self._bytes,
                "peak_bytes": self.peak}

    def __len__(self) -> int:
        return len(self._items)


def finite_event(event: IncidentEvent) -> bool:
    """Whether `event`'s JSON (`encode_incident_event`) decodes back to it: its floats are finite (orjson writes NaN
    and infinities as null, which the model refuses); every other field is a JSON type already."""
    d = event.__dict__
    return (math.isfinite(d["first_seen"]) and math.isfinite(d["last_seen"]) and math.isfinite(d["window_start"])
            and math.isfinite(d["emitted_at"]))
