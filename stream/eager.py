"""Run a coroutine's first step at once, and hand a Task only what is left of it when that step blocks.

Faust's consumer passes every fetched record to its agents through `Service.wait_first(on_message(record),
flow_suspended.wait())`, which wraps both coroutines and the service's stopped and crashed events in four Tasks,
waits for the first, then cancels three: about 10 us of event-loop work per record (`benchmarks/worker_cpu_ab.py`),
for a callback that nearly always finishes without waiting (it puts the record on its agents' queues). Run first
here, such a callback needs no Task; one that does wait (a full queue, a suspended flow) goes on in a Task as
before, from where it stopped (`first_step`).
"""

from __future__ import annotations

import types
from collections.abc import Coroutine, Generator
from dataclasses import dataclass
from typing import Any

__all__ = ["Step", "first_step"]


@dataclass(frozen=True, slots=True)
class Step:
    """What a coroutine's first step gave: its result if it finished (`rest` None), else the rest to await."""

    result: Any = None
    rest: Coroutine[Any, Any, Any] | None = None


def first_step(coro: Coroutine[Any, Any, Any]) -> Step:
    """Run `coro` up to its first wait, in the caller's turn of the event loop.

    A coroutine that finishes gives its result; one that raises raises here, as awaiting it would. One that waits
    gives `rest`: an awaitable that a Task (or an `await`) drives on from that wait, so the coroutine runs exactly
    as it would have in a Task from the start, its cancellation included.
    """
    try:
        waiting = coro.send(None)
    except StopIteration as done:
        return Step(result=done.value)
    return Step(rest=_rest(coro, waiting))


async def _rest(coro: Coroutine[Any, Any, Any], waiting: Any) -> Any:
    # A native coroutine, so that whoever checks for an `Awaitable` (mode's `wait_first` does) takes it as one.
    return await _resume(coro, waiting)


@types.coroutine
def _resume(coro: Coroutine[Any, Any, Any], waiting: Any) -> Generator[Any, Any, Any]:
    # Hand the Task what the coroutine waits on (the future it yielded, still marked blocking), then pass whatever
    # the Task sends or throws in (a result, a cancellation) on to the coroutine, as `yield from` does after a first
    # step; `close()` (the Task dropped unfinished) closes the coroutine too.
    while True:
        try:
            sent = yield waiting
        except GeneratorExit:
            coro.close()
            raise
        except BaseException as exc:  # noqa: BLE001 - every exception belongs to the coroutine, as it would in a Task
            try:
                waiting = coro.throw(exc)
            except StopIteration as done:
                return done.value
            continue
        try:
            waiting = coro.send(sent)
        except StopIteration as done:
            return done.value
