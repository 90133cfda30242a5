"""A worker whose stage 2 reads nothing of the routing topic from when a flag file appears until the broker loses its
topics (`Stage2.broker_lost`, which removes the flag): what stage 1 routes meanwhile is what a broker restart takes
before stage 2 folded it (session 39's traced chaos soak: a rebalance begun 2.5 s before the broker stopped left a
routing partition unread). Run as `python -m tests.deaf_stage2_worker FLAG worker ...`."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from stream.cli import main
from stream.stage2_agent import GroupStage, Stage2

log = logging.getLogger(__name__)


def run(flag: Path, argv: list[str]) -> int:
    """Drop stage 2's batches of the routing topic while `flag` exists; the broker's loss removes it. Then the CLI."""
    fold, lost = GroupStage.fold, Stage2.broker_lost

    async def deaf(self: GroupStage, events: Sequence[Any]) -> None:
        if flag.exists():  # noqa: ASYNC240 - a stat per batch, in a test's worker
            log.warning("deaf stage 2: %d routing records not read", len(events))
            return
        await fold(self, events)

    def hears_again(self: Stage2) -> None:
        flag.unlink(missing_ok=True)
        lost(self)

    GroupStage.fold = deaf  # type: ignore[method-assign]
    Stage2.broker_lost = hears_again  # type: ignore[method-assign]
    return main(argv)


if __name__ == "__main__":
    sys.exit(run(Path(sys.argv[1]), sys.argv[2:]))
