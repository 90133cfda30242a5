"""A worker whose first partition assignment (as group leader) raises, as any error of a join can: aiokafka parks it
for the consumer's next `getmany`, which Faust never calls. Run as `python -m tests.group_fault_worker worker ...`."""

from __future__ import annotations

import sys
from typing import Any

from faust.assignor.partition_assignor import PartitionAssignor

from stream.cli import main


def run(argv: list[str]) -> int:
    """Make the first assignment fail, then run the CLI with `argv`."""
    assign = PartitionAssignor._perform_assignment
    failed: list[bool] = []

    def perform(self: PartitionAssignor, cluster: Any, member_metadata: Any) -> Any:
        if not failed:
            failed.append(True)
            raise RuntimeError("injected: the first partition assignment fails")
        return assign(self, cluster, member_metadata)

    PartitionAssignor._perform_assignment = perform  # type: ignore[method-assign]
    return main(argv)


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
