"""`stream.eager.first_step` and the consumer's `wait_first` that uses it (no broker): a coroutine that finishes in
its first step costs no Task; one that waits runs on in a Task exactly as it would have from the start (results,
exceptions and cancellation included), and a suspended flow still abandons a record's callback that waits."""

from __future__ import annotations

import asyncio
import warnings
from pathlib import Path
from typing import Any

import pytest
from mode.utils.locks import Event

from stream.app import make_app
from stream.consumer import Consumer
from stream.eager import first_step
from stream.settings import Settings


async def _add(a: int, b: int) -> int:
    return a + b


async def _after(fut: asyncio.Future[int], log: list[str]) -> int:
    try:
        first = await fut
        await asyncio.sleep(0)  # a second wait, a bare yield to the loop
        return first * 10
    except asyncio.CancelledError:
        log.append("cancelled")
        raise
    finally:
        log.append("finally")


async def _fails_at(where: str, fut: asyncio.Future[int] | None = None) -> int:
    if where == "first":
        raise ValueError("at once")
    assert fut is not None
    await fut
    raise ValueError("after the wait")


def test_a_coroutine_that_finishes_in_its_first_step_gives_its_result_without_a_task() -> None:
    async def run() -> tuple[Any, Any, int]:
        before = len(asyncio.all_tasks())
        step = first_step(_add(2, 3))
        return step.result, step.rest, len(asyncio.all_tasks()) - before

    assert asyncio.run(run()) == (5, None, 0)


def test_a_coroutine_that_waits_goes_on_in_a_task_with_what_it_waited_for() -> None:
    async def run() -> tuple[int, list[str]]:
        log: list[str] = []
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        step = first_step(_after(fut, log))
        assert step.rest is not None and log == []
        task = asyncio.ensure_future(step.rest)
        await asyncio.sleep(0)
        assert not task.done()  # still waiting on the future its first step yielded
        fut.set_result(4)
        return await task, log

    assert asyncio.run(run()) == (40, ["finally"])


@pytest.mark.parametrize("where", ["first", "later"])
def test_an_exception_comes_out_where_awaiting_the_coroutine_would_raise_it(where: str) -> None:
    async def run() -> None:
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        step = first_step(_fails_at(where, fut))  # "first" raises here
        assert step.rest is not None
        fut.set_result(1)
        await step.rest

    with pytest.raises(ValueError, match="at once" if where == "first" else "after the wait"):
        asyncio.run(run())


def test_cancelling_the_task_cancels_the_coroutine_inside() -> None:
    async def run() -> tuple[bool, list[str]]:
        log: list[str] = []
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        step = first_step(_after(fut, log))
        assert step.rest is not None
        task = asyncio.ensure_future(step.rest)
        await asyncio.sleep(0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return task.cancelled(), log

    assert asyncio.run(run()) == (True, ["cancelled", "finally"])


def _consumer(tmp_path: Path) -> Consumer:
    """A worker's consumer, made inside the running loop as a worker's is (a Service keeps the loop it was made in)."""
    consumer = make_app(Settings(data_dir=tmp_path)).consumer
    assert isinstance(consumer, Consumer)
    return consumer


def test_the_consumer_hands_over_a_record_that_its_queues_take_at_once(tmp_path: Path) -> None:
    """The consumer loop's call: `wait_first(on_message(record), flow_suspended.wait())`. The callback runs in the
    caller's turn, no Task is made, and the flow's wait, never started, is closed (no 'never awaited' warning)."""

    async def run() -> Any:
        consumer = _consumer(tmp_path)
        flow = Event()
        before = len(asyncio.all_tasks())
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            results = await consumer.wait_first(_add(1, 1), flow.wait())
        assert len(asyncio.all_tasks()) == before
        return results

    results = asyncio.run(run())
    assert (results.results, results.stopped) == ([2], False)


def test_the_consumer_still_waits_for_a_record_whose_callback_waits(tmp_path: Path) -> None:
    async def run() -> tuple[Any, list[str]]:
        consumer = _consumer(tmp_path)
        log: list[str] = []
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_later(0.01, fut.set_result, 3)
        results = await consumer.wait_first(_after(fut, log), Event().wait())
        return results, log

    results, log = asyncio.run(run())
    assert (results.results, results.stopped, log) == ([30], False, ["finally"])


def test_a_suspended_flow_still_abandons_a_callback_that_waits(tmp_path: Path) -> None:
    """As with Faust's own `wait_first`: a rebalance suspends the flow while a callback waits on a full queue (or
    on the flow itself); the consumer's loop goes on and the callback is cancelled, not left hanging."""

    async def run() -> tuple[Any, list[str]]:
        consumer = _consumer(tmp_path)
        log: list[str] = []
        never: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        suspended = Event()
        asyncio.get_running_loop().call_later(0.01, suspended.set)
        results = await consumer.wait_first(_after(never, log), suspended)
        await asyncio.sleep(0)  # the cancellation reaches the callback
        assert (results.done, results.stopped) == ([suspended], False)  # the flow won; the callback was dropped
        return results, log

    results, log = asyncio.run(run())
    assert results.results == [True] and log == ["cancelled", "finally"]


def test_a_callback_that_stops_the_consumer_reads_as_stopped(tmp_path: Path) -> None:
    """As `Service.wait_first` reports it: the callback finished, but the service stopped meanwhile."""

    async def run() -> Any:
        consumer = _consumer(tmp_path)

        async def stops() -> int:
            consumer._stopped.set()  # what `Service.stop` sets first
            return 1

        return await consumer.wait_first(stops(), Event().wait())

    assert asyncio.run(run()) == ([], [], True)
