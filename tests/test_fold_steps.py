"""A stage folds a large batch in byte-bounded steps and gives the event loop a turn after each, so the worker's
HTTP ingest and views are not held for a whole catch-up batch (`stream.pipeline.in_steps`)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

from stream.pipeline import in_steps


def test_the_loop_runs_between_steps() -> None:
    events = [SimpleNamespace(message=SimpleNamespace(value=b"x" * 100)) for _ in range(10)]
    seen: list[tuple[int, int]] = []  # (records in the step, turns the other task had before it)
    turns = 0

    async def other() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    async def fold(step: Sequence[Any]) -> None:
        seen.append((len(step), turns))  # synchronous, as a step's decode and engine call are

    async def main() -> None:
        task = asyncio.ensure_future(other())
        await asyncio.sleep(0)
        await in_steps(events, 300, fold)  # 3 records of 100 bytes a step
        task.cancel()

    asyncio.run(main())
    assert [n for n, _ in seen] == [3, 3, 3, 1]
    assert all(after > before for (_, before), (_, after) in zip(seen, seen[1:]))
