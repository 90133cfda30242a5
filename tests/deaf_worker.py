"""A worker one of whose stages reads nothing of its input from when a flag file appears until the broker loses its
topics (the stage's owner's `broker_lost`, which removes the flag): what the stage skips meanwhile is what a broker
restart takes before it was read. Run as `python -m tests.deaf_worker STAGE FLAG worker ...`, STAGE one of:

- `notify`: notify drops its batches of `incidents` (session 38's chaos soak: notify thousands of records behind at
  the stop; `tests/test_reconcile_broker.py`);
- `stage2`: stage 2 drops its batches of the routing topic (session 39's traced chaos soak: a rebalance begun 2.5 s
  before the broker stopped left a routing partition unread; `tests/test_stage1_restate.py`).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from stream.cli import main
from stream.notify.stage import Notify, NotifyStage
from stream.stage2_agent import GroupStage, Stage2

log = logging.getLogger(__name__)

STAGES: dict[str, tuple[Any, Any]] = {"notify": (NotifyStage, Notify), "stage2": (GroupStage, Stage2)}
"""The stage whose fold goes deaf, and the owner whose `broker_lost` makes it hear again."""


def run(stage: str, flag: Path, argv: list[str]) -> int:
    """Drop `stage`'s batches while `flag` exists; the broker's loss removes it. Then the CLI."""
    stage_cls, owner_cls = STAGES[stage]
    fold, lost = stage_cls.fold, owner_cls.broker_lost

    async def deaf(self: Any, events: Sequence[Any]) -> None:
        if flag.exists():  # noqa: ASYNC240 - a stat per batch, in a test's worker
            log.warning("deaf %s: %d records not read", stage, len(events))
            return
        await fold(self, events)

    def hears_again(self: Any) -> None:
        flag.unlink(missing_ok=True)
        lost(self)

    stage_cls.fold = deaf
    owner_cls.broker_lost = hears_again
    return main(argv)


if __name__ == "__main__":
    sys.exit(run(sys.argv[1], Path(sys.argv[2]), sys.argv[3:]))
