"""Issue 17's development figures for topology paths: stage 2 with and without the topology file, development sets only.

The scoring protocol keeps the held-out seeds (`rca_sets.HELD_OUT`) for one run of `accuracy_rca.py` after the
rules are frozen; this script never builds them. It scores rca-micross, the TUNING, DEVELOPMENT and
DEVELOPMENT_TOPOLOGY cascade seeds, the SEEN cascade seeds (checks) and the noise tuning/development variants,
and audits every join through a topology path: how many joined a child of a fault the cause held no child of yet
(read from the truth), the error the sixth round read.

    python benchmarks/topology_dev.py            # every development set (about 30 s)
    python benchmarks/topology_dev.py --quick    # rca-micross and the tuning and development cascades
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import rca_sets  # noqa: E402
from accuracy_rca import parents_of, row, stage2, stage2_report  # noqa: E402
from rca_sets import DataSet  # noqa: E402

from correlator.models import IncidentEvent  # noqa: E402
from correlator.stage2 import Assignment, GroupingConfig, ParentEvent, Relation  # noqa: E402


def development_sets(quick: bool) -> list[DataSet]:
    """rca-micross and the cascade and noise seeds a helper may read (never HELD_OUT)."""
    base = rca_sets.micross()
    seeds = [*rca_sets.TUNING["cascades"], *rca_sets.DEVELOPMENT["cascades"],
             *rca_sets.DEVELOPMENT_TOPOLOGY["cascades"]]
    if quick:
        return [base, *(rca_sets.cascades(seed=s) for s in seeds[:2])]
    sets = [base, *(rca_sets.cascades(seed=s) for s in [*seeds, *rca_sets.SEEN["cascades"]])]
    for seed in (*rca_sets.TUNING["noise"], *rca_sets.DEVELOPMENT["noise"]):
        sets += [rca_sets.noisy(base, seed=seed, during_faults=everywhere) for everywhere in (False, True)]
    return sets


def with_and_without(data: DataSet) -> tuple[float, float, int, int]:
    """F1 without the file, F1 with it, joins through a path, and those that brought a fault new to the cause."""
    grouping = GroupingConfig()
    joins: list[Assignment] = []

    def hear(item: IncidentEvent | ParentEvent | Assignment) -> None:
        if isinstance(item, Assignment):
            joins.append(item)

    filed = stage2_report(data, grouping, topology=True, listener=hear)
    fault = {i.id: Counter(data.truth[m] for m in i.members).most_common(1)[0][0]
             for i in filed.incidents if i.members}
    held: dict[str, set[str | None]] = {}  # parent -> faults of the children it holds, as assignments arrive
    paths = wrong = 0
    for a in joins:
        mine, theirs = fault.get(a.child_id), held.setdefault(a.parent_id, set())
        if a.relation is Relation.TOPOLOGY:
            paths += 1
            wrong += mine not in theirs
        theirs.add(mine)
    without = row(data, "", stage2(data, grouping, topology=False)).score.f1
    return without, row(data, "", parents_of(filed)).score.f1, paths, wrong


def main(argv: list[str] | None = None) -> int:
    """Print one line per development set."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="rca-micross and two cascade seeds")
    args = parser.parse_args(argv)
    print("| set | F1 without the file | F1 with it | with >= without | path joins | bringing a fault new to the cause |")
    print("|---|---:|---:|---|---:|---:|")
    for data in development_sets(args.quick):
        none, filed, paths, wrong = with_and_without(data)
        print(f"| {data.name} | {none:.3f} | {filed:.3f} | {'yes' if filed >= none else 'no'} | {paths} | {wrong} |",
              flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
