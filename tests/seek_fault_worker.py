"""A worker whose record batches to one topic fail from each rebalance's seek to the committed offsets until the
rebalance ends, a window held open `HOLD_S` after the fetcher starts again (nothing is refused before the seek) (the chaos soak's broker restart: stage 2's
fold refused 3 ms after the seek, before Faust's recovery ended the rebalance). Run as
`python -m tests.seek_fault_worker TOPIC worker ...`."""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Any

from faust.transport.consumer import Fetcher

from stream import sends
from stream.cli import main
from stream.consumer import Consumer

HOLD_S = 2.0

log = logging.getLogger(__name__)


def run(topic: str, argv: list[str]) -> int:
    """Install the fault for `topic` in the window after each rebalance's seek, then run the CLI with `argv`."""
    state: dict[str, Any] = {"sought": False, "window": False}
    seek, start = Consumer.perform_seek, Fetcher.maybe_start

    async def perform_seek(self: Consumer) -> None:
        await seek(self)
        if self.app.rebalancing:
            state["sought"] = True

    async def maybe_start(self: Fetcher) -> bool:
        started = await start(self)
        if state["sought"]:  # Faust's recovery starts the fetcher after the seek, then ends the rebalance
            state["sought"], state["window"] = False, True
            log.warning("seek_fault_worker: %s refused for %.1f s after the rebalance's seek", topic, HOLD_S)
            await asyncio.sleep(HOLD_S)
            state["window"] = False  # Faust's recovery ends the rebalance next, with no await
        return bool(started)

    def fault(name: str, partition: int) -> BaseException | None:
        if name == topic and state["window"]:
            return ConnectionError(f"injected: {name} unavailable after the rebalance's seek")
        return None

    Consumer.perform_seek = perform_seek  # type: ignore[method-assign]
    Fetcher.maybe_start = maybe_start  # type: ignore[method-assign]
    sends.set_fault(fault)
    return main(argv)


if __name__ == "__main__":
    sys.exit(run(sys.argv[1], sys.argv[2:]))
