"""Process-level tuning shared by the worker and the benchmarks that model it (no Faust import)."""

from __future__ import annotations

import gc
from collections.abc import MutableMapping

__all__ = ["right_sized", "set_local", "tune_gc"]


def tune_gc() -> None:
    """Fewer cyclic-GC passes for a long-running worker.

    Alerts and incident state hold no reference cycles, yet with the default gen-0 threshold (700) the
    collector rescans young objects every few hundred allocations: measured 20-30% of the engine's time.
    `freeze` moves everything imported at start-up out of the collector's way for good.
    """
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


def right_sized(data: bytes) -> bytes:
    """`data` in an allocation of its own length, for bytes that stay in memory (table values).

    orjson (3.12 and later) returns bytes whose buffer keeps its working capacity: at least 4 KiB, and ~10x
    the length for larger documents. Harmless for a value sent and dropped; for one kept in a Faust table
    it is most of the table's memory (an incident SLA clock of ~450 bytes held 4 KiB).
    """
    return bytes(memoryview(data))


def set_local(data: MutableMapping[bytes, bytes], key: bytes, value: bytes | None) -> None:
    """Set (None: delete) a key of a table's local data, the value right-sized since it stays there."""
    if value is None:
        data.pop(key, None)
    else:
        data[key] = right_sized(value)
