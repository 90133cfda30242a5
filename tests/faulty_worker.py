"""A worker whose record batches to one topic fail while a flag file exists: a broker refusing that topic, then
taking it again (`stream.sends.set_fault`). Run as `python -m tests.faulty_worker FLAG TOPIC worker ...`."""

from __future__ import annotations

import sys
from pathlib import Path

from stream import sends
from stream.cli import main


def run(flag: Path, topic: str, argv: list[str]) -> int:
    """Install the fault for `topic` while `flag` exists, then run the CLI with `argv`."""

    def fault(name: str, partition: int) -> BaseException | None:
        return ConnectionError(f"injected: {name} unavailable") if name == topic and flag.exists() else None

    sends.set_fault(fault)
    return main(argv)


if __name__ == "__main__":
    sys.exit(run(Path(sys.argv[1]), sys.argv[2], sys.argv[3:]))
