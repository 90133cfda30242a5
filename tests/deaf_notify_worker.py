"""A worker whose notify stage reads nothing of `incidents` from when a flag file appears until the broker loses its
topics (`Notify.broker_lost`, which removes the flag): notify lags, and what it has not read is what the memory broker
then takes with it (session 38's chaos soak: notify thousands of records behind at the stop). Run as
`python -m tests.deaf_notify_worker FLAG worker ...`."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from stream.cli import main
from stream.notify.stage import Notify, NotifyStage

log = logging.getLogger(__name__)


def run(flag: Path, argv: list[str]) -> int:
    """Drop notify's batches of `incidents` while `flag` exists; the broker's loss removes it. Then the CLI."""
    fold, lost = NotifyStage.fold, Notify.broker_lost

    async def deaf(self: NotifyStage, events: Sequence[Any]) -> None:
        if flag.exists():  # noqa: ASYNC240 - a stat per batch, in a test's worker
            log.warning("deaf notify: %d records of incidents not read", len(events))
            return
        await fold(self, events)

    def hears_again(self: Notify) -> None:
        flag.unlink(missing_ok=True)
        lost(self)

    NotifyStage.fold = deaf  # type: ignore[method-assign]
    Notify.broker_lost = hears_again  # type: ignore[method-assign]
    return main(argv)


if __name__ == "__main__":
    sys.exit(run(Path(sys.argv[1]), sys.argv[2:]))
