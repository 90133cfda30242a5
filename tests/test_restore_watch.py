"""`stream.restore_watch` (pure parts): when a rebalance is reported, when a partition counts as served to its end, and
the await chain that names a task's step. The report and the end of the wait, from a worker whose table recovery waits
for offsets the broker does not serve: tests/test_group_recovery.py."""

from __future__ import annotations

import asyncio

from stream.restore_watch import ChangelogWait, LostEnd, ServedEnds, StallClock, await_chain


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


def _wait(position: int | None = 0, fetch_end: int | None = 0, fetched_at: float | None = 100.0,
          fetching: str = "fetched") -> ChangelogWait:
    return ChangelogWait("t-changelog", 2, highwater=1, read=-1, position=position, fetching=fetching,
                         fetch_end=fetch_end, fetched_at=fetched_at)


def test_a_partition_fetched_to_the_broker_s_end_is_settled_after_a_while_and_a_newer_answer() -> None:
    ends = ServedEnds(after_s=5.0)
    assert ends.settled([_wait(fetched_at=100.0)], 100.0) == []
    assert ends.settled([_wait(fetched_at=104.0)], 104.0) == []  # not 5 s yet
    assert ends.settled([_wait(fetched_at=100.0)], 106.0) == []  # no fetch answered since it was first seen
    assert ends.settled([_wait(fetched_at=105.5)], 106.0) == [_wait(fetched_at=105.5)]


def test_records_the_fetch_still_has_to_give_or_a_partition_not_fetched_are_never_settled() -> None:
    ends = ServedEnds(after_s=5.0)
    for later in (0.0, 10.0):
        assert ends.settled([_wait(position=0, fetch_end=2, fetched_at=100.0 + later)], 100.0 + later) == []
        assert ends.settled([_wait(fetching="paused by Faust", fetched_at=100.0 + later)], 100.0 + later) == []
        assert ends.settled([_wait(fetch_end=None, fetched_at=None)], 100.0 + later) == []


def test_a_partition_that_stops_looking_served_starts_its_while_again() -> None:
    ends = ServedEnds(after_s=5.0)
    ends.settled([_wait(fetched_at=100.0)], 100.0)
    ends.settled([_wait(fetch_end=3, fetched_at=103.0)], 103.0)  # the fetch found more: not served
    assert ends.settled([_wait(fetched_at=106.0)], 106.0) == []  # first seen again at 106
    assert ends.settled([_wait(fetched_at=111.5)], 111.5) == [_wait(fetched_at=111.5)]


def test_a_wait_for_the_end_of_a_restore_that_already_ended_is_due_after_a_while() -> None:
    """`LostEnd`: the recovery waits for the end signal, is no longer in recovery and has nothing left to read (Faust's
    reader ended it and cleared the signal before the wait began): due once that has lasted `after_s`."""
    lost = LostEnd(after_s=1.0)
    assert [lost.due(True, False, False, now) for now in (10.0, 10.5, 11.0)] == [False, False, True]


def test_a_recovery_still_restoring_or_not_waiting_is_never_woken() -> None:
    """A restore under way (in recovery, or records left to read) or no waiter: never due, and the clock starts again."""
    lost = LostEnd(after_s=1.0)
    seen = [lost.due(True, True, False, 0.0), lost.due(True, False, True, 5.0), lost.due(False, False, False, 10.0),
            lost.due(True, False, False, 20.0), lost.due(True, True, False, 30.0), lost.due(True, False, False, 30.5)]
    assert seen == [False, False, False, False, False, False]
