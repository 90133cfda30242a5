"""A worker whose table recovery starts waiting for the restore's end late: Faust's fetcher start in the restore step
is held `HOLD_S` (as a loaded event loop can hold it), so the changelog reader finishes a short restore first. Faust's
reader then ends the recovery and clears the end signal before anyone waits for it (`stream.restore_watch` module doc).
`stream.restore_watch` reports after `STALL_AFTER_S` (3 s here). Run as `python -m tests.late_recovery_wait_worker worker
...`."""

from __future__ import annotations

import asyncio
import logging
import sys

from faust.transport.consumer import Fetcher

from stream import restore_watch
from stream.cli import main

HOLD_S = 2.0

log = logging.getLogger(__name__)


def run(argv: list[str]) -> int:
    """Hold the fetcher start of every restore step, report stalls after 3 s, then run the CLI with `argv`."""
    start = Fetcher.maybe_start

    async def maybe_start(self: Fetcher) -> bool:
        started = await start(self)
        if self.app.tables.recovery.in_recovery:  # the restore step: the fetcher starts, then the wait for the end
            log.warning("late_recovery_wait_worker: the recovery's wait for the restore's end held %.1f s", HOLD_S)
            await asyncio.sleep(HOLD_S)
        return bool(started)

    Fetcher.maybe_start = maybe_start  # type: ignore[method-assign]
    restore_watch.STALL_AFTER_S, restore_watch.STALL_REPORT_S = 3.0, 5.0
    return main(argv)


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
