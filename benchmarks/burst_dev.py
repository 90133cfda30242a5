"""Issue 17, session 31 (noise17c): stage 2 with and without burst-follow on development data and the checks.

Burst-follow (`GroupingConfig.burst_follow`): a child that names one entity only and relates to nothing open joins
the one group whose child started within burst_s before it, when no other group's did. This prints F1 over parents
with the rule off (the rule before) and on, without the topology file and with it, in one run, on rca-micross, the
DEVELOPMENT and TUNING noise and cascade seeds (`accuracy_rca.development_sets`) and the checks a time rule must not
break: MicroSS x2 (a renamed twin failing 30 s later in one scope), two clusters at once and generated storms. It
never builds a held-out seed. The decision rule it reports on was committed in benchmarks/RESULTS.md (noise17c)
before the rule was built.

    python benchmarks/burst_dev.py            # about 3 min on a quiet machine
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import rca_sets  # noqa: E402
from accuracy_rca import development_sets, generated, overlaid, row, stage2  # noqa: E402

from correlator.stage2 import GroupingConfig  # noqa: E402


def main() -> int:
    """One line per set: F1 off / on, without the file and with it."""
    base = rca_sets.micross()
    sets = [*development_sets(base), overlaid(base), rca_sets.two_clusters(base), generated(100_000)]
    print("| set | no file: off | no file: on | file: off | file: on |")
    print("|---|---:|---:|---:|---:|")
    for data in sets:
        cells = []
        for topology in (False, True):
            if topology and data.topology is None:
                cells += ["-", "-"]
                continue
            for on in (False, True):
                f1 = row(data, "", stage2(data, GroupingConfig(burst_follow=on), topology)).score.f1
                cells.append(f"{f1:.3f}")
        print(f"| {data.name} | {' | '.join(cells)} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
