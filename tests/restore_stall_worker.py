"""A worker whose first table recovery waits for changelog offsets that are never written: the highwater Faust reads
for one active changelog partition is raised by `EXTRA`, as a highwater read from a lost broker (or a record the
consumer skipped) leaves it. `stream.restore_watch` reports after `STALL_AFTER_S` (3 s here). Run as
`python -m tests.restore_stall_worker worker ...`."""

from __future__ import annotations

import sys
from typing import Any

from faust.tables.recovery import Recovery

from stream import restore_watch
from stream.cli import main

EXTRA = 5


def run(argv: list[str]) -> int:
    """Raise the first active highwater once, report stalls after 3 s, then run the CLI with `argv`."""
    build = Recovery._build_highwaters
    raised: list[Any] = []

    async def build_highwaters(self: Recovery, consumer: Any, tps: Any, destination: Any, title: str) -> None:
        await build(self, consumer, tps, destination, title)
        if title == "active" and not raised and destination:
            tp = min(destination, key=lambda t: (t.topic, t.partition))
            destination[tp] += EXTRA
            raised.append(tp)
            print(f"injected: highwater of {tp.topic}:{tp.partition} raised to {destination[tp]}", flush=True)

    Recovery._build_highwaters = build_highwaters  # type: ignore[method-assign]
    restore_watch.STALL_AFTER_S, restore_watch.STALL_REPORT_S = 3.0, 5.0
    return main(argv)


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
