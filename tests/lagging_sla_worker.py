"""A worker whose incident SLA agent folds slowly (`LAG_S` a batch), so that its queue of `incidents` records
runs behind notify's, which reads the same records (the chaos soak's survivor at load 15+). Run as
`python -m tests.lagging_sla_worker worker ...`."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from typing import Any

from stream.cli import main
from stream.tickets import IncidentSlaStage

LAG_S = 5.0


def run(argv: list[str]) -> int:
    """Slow the incident SLA agent's folds down, then run the CLI with `argv`."""
    fold = IncidentSlaStage.fold

    async def slow(self: IncidentSlaStage, events: Sequence[Any]) -> None:
        await asyncio.sleep(LAG_S)
        await fold(self, events)

    IncidentSlaStage.fold = slow  # type: ignore[method-assign]
    return main(argv)


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
