"""A worker whose group coordination stalls for good once its coordinator is lost while a flag file exists: aiokafka's
coordinator lookup awaits a future that never completes, as in rejoin41's chaos soak, where a worker's lookup waited on
a metadata refresh that never completed after a broker restart and the worker never came back into its group (its
fetcher, producer and agents went on). Run as `python -m tests.outside_worker FLAG worker ...`; the product code
carries no switch for it."""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path
from typing import Any

from aiokafka.consumer.group_coordinator import GroupCoordinator

from stream.cli import main

log = logging.getLogger(__name__)


def run(flag: Path, argv: list[str]) -> int:
    """Stall the coordinator lookup while `flag` exists; then the CLI."""
    lookup = GroupCoordinator.ensure_coordinator_known

    async def stalled(self: Any) -> None:
        if self.coordinator_id is None and flag.exists():  # noqa: ASYNC240 - one stat per lookup, in a test's worker
            log.warning("stalled: the group coordinator lookup never completes")
            await asyncio.get_running_loop().create_future()
        await lookup(self)

    GroupCoordinator.ensure_coordinator_known = stalled  # type: ignore[method-assign]
    return main(argv)


if __name__ == "__main__":
    sys.exit(run(Path(sys.argv[1]), sys.argv[2:]))
