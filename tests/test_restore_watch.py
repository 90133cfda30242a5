"""`stream.restore_watch`: when a rebalance is reported, and the await chain that names a task's step (pure). The
report itself, from a worker whose table recovery waits for offsets never written: tests/test_group_recovery.py."""

from __future__ import annotations

import asyncio

from stream.restore_watch import StallClock, await_chain


def test_a_rebalance_is_reported_once_it_lasts_too_long_then_every_interval() -> None:
    clock = StallClock(after_s=30.0, every_s=15.0)
    assert clock.due(1, True, 100.0) is None
    assert clock.due(1, True, 129.0) is None
    assert clock.due(1, True, 131.0) == 31.0
    assert clock.due(1, True, 140.0) is None  # reported 9 s ago
    assert clock.due(1, True, 146.5) == 46.5


def test_a_new_rebalance_or_none_under_way_starts_the_clock_again() -> None:
    clock = StallClock(after_s=30.0, every_s=15.0)
    clock.due(1, True, 0.0)
    assert clock.due(2, True, 31.0) is None  # another rebalance began: 0 s of it so far
    assert clock.due(2, True, 62.0) == 31.0
    assert clock.due(2, False, 63.0) is None
    assert clock.due(2, True, 64.0) is None  # the same count again after an end: a fresh start
    assert clock.due(2, True, 95.0) == 31.0


def test_the_await_chain_names_each_coroutine_a_task_waits_in() -> None:
    async def inner(gate: asyncio.Event) -> None:
        await gate.wait()

    async def outer(gate: asyncio.Event) -> None:
        await inner(gate)

    async def main() -> list[str]:
        gate = asyncio.Event()
        task = asyncio.ensure_future(outer(gate))
        await asyncio.sleep(0.01)
        chain = await_chain(task)
        gate.set()
        await task
        return chain

    chain = asyncio.run(main())
    names = [name.rsplit(".", 1)[-1] for name in chain]
    assert names[:3] == ["outer", "inner", "wait"], chain
