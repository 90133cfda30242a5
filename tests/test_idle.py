"""The idle clocks the folding agents share (stream/idle.py): which idle step is due when, on fixed times."""

from __future__ import annotations

import pytest

from stream.idle import IdleClocks


@pytest.mark.parametrize(("quiet_s", "flush", "advance"), [
    (0.5, False, None),     # not quiet long enough for anything
    (1.0, True, None),      # the flush step, event time stays
    (9.9, True, None),
    (10.0, True, 10.0),     # the first advance covers the whole silence
    (25.0, True, 25.0),
])
def test_steps_due_after_a_silence(quiet_s: float, flush: bool, advance: float | None) -> None:
    clocks = IdleClocks(flush_s=1.0, advance_s=10.0)
    clocks.mark_input(3, now=100.0)
    assert clocks.flush_due(3, 100.0 + quiet_s) is flush
    assert clocks.advance_due(3, 100.0 + quiet_s) == advance


def test_flush_once_per_silence_and_advance_tick_by_tick() -> None:
    clocks = IdleClocks(flush_s=1.0, advance_s=10.0)
    clocks.mark_input(0, now=0.0)
    assert clocks.flush_due(0, 2.0) and not clocks.flush_due(0, 3.0)  # once per silence
    assert clocks.advance_due(0, 12.0) == 12.0
    assert clocks.advance_due(0, 12.5) == 0.5  # then by the time since the last advance
    clocks.mark_input(0, now=13.0)  # input restarts both clocks
    assert clocks.advance_due(0, 14.0) is None and clocks.flush_due(0, 14.0)


def test_unknown_and_dropped_partitions_are_never_due() -> None:
    clocks = IdleClocks(flush_s=1.0, advance_s=10.0)
    assert not clocks.flush_due(7, 1_000.0) and clocks.advance_due(7, 1_000.0) is None
    clocks.mark_input(1, now=0.0)
    clocks.drop([1])
    assert not clocks.flush_due(1, 100.0) and clocks.advance_due(1, 100.0) is None
