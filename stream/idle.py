"""Per-partition idle clocks, shared by the agents that fold event time (stage 1's correlate, stage 2's group).

When a partition goes quiet, an engine that moves time only on its input needs two steps from the outside:
after `flush_s` of silence it releases what it holds for reordering, without moving event time; after
`advance_s` event time starts to follow the wall clock (by the whole silence, then tick by tick), so that a
quiet partition still closes windows and resolves what is due. Until then a pause of the producers (a replay
in bursts, a rebalance) changes nothing. The clock reading (`time.monotonic()`) is passed in.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

__all__ = ["IdleClocks", "TICK_S"]

TICK_S = 0.5
"""How often the agents' idle timers look at their partitions: a due flush or advance waits up to this long."""


@dataclass
class IdleClocks:
    """When each partition last had input, and which idle steps are due; for the partitions of one agent."""

    flush_s: float = 1.0
    advance_s: float = 10.0
    _last_input: dict[int, float] = field(default_factory=dict)
    _last_moved: dict[int, float] = field(default_factory=dict)
    _flushed: set[int] = field(default_factory=set)

    def mark_input(self, partition: int, now: float) -> None:
        """Input arrived: the partition's clocks restart, and its next silence flushes again."""
        self._last_input[partition] = self._last_moved[partition] = now
        self._flushed.discard(partition)

    def start(self, partition: int, now: float) -> None:
        """A partition with an engine and no input yet (built after a broker loss, `Pipeline.census_lost`): its
        silence counts from now, so it flushes and advances as one whose input stopped now. Without it the partition
        never went idle: no input, no clock (census41's real-broker test: stage 2 waited on its mark for good)."""
        self._last_input.setdefault(partition, now)
        self._last_moved.setdefault(partition, now)

    def drop(self, partitions: Iterable[int]) -> None:
        """Forget partitions this worker no longer owns."""
        for p in partitions:
            self._last_input.pop(p, None)
            self._last_moved.pop(p, None)
            self._flushed.discard(p)

    def flushed(self, partition: int) -> bool:
        """Whether the partition has flushed since its last input: it holds nothing back until new input."""
        return partition in self._flushed

    def flush_due(self, partition: int, now: float) -> bool:
        """Whether the partition has been quiet `flush_s` and has not flushed since its last input (it now has)."""
        if partition in self._flushed or now - self._last_input.get(partition, now) < self.flush_s:
            return False
        self._flushed.add(partition)
        return True

    def advance_due(self, partition: int, now: float) -> float | None:
        """Seconds event time moves now: None until quiet `advance_s`, then the time since the last advance.

        The first advance covers the whole silence since the last input.
        """
        if now - self._last_input.get(partition, now) < self.advance_s:
            return None
        step = now - self._last_moved.get(partition, now)
        self._last_moved[partition] = now
        return step
