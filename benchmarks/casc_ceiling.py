"""Issue 17, session 41 (casc42): what fixing one class of `casc_classes.py` perfectly would give, on development data.

For each of the largest classes, stage 2's F1 (without the topology file and with it) after an oracle moves the
class's alerts where they belong, everything else left as main grouped it:

* `<kind> opened apart` (split): each such alert (outside its fault's main parent, in a parent its own fault owns)
  moves into the fault's main parent;
* `foreign <kind>` (merged): each such alert (in a parent another fault owns) moves to its fault's home: the fault's
  main parent when its own fault owns it, else one new parent of the fault's own.

Two oracles per class: `alert` moves single alerts (the class as counted, stage 1's glue included: no stage-2 rule
reaches an alert glued into another fault's stage-1 incident), `child` moves whole stage-1 incidents, charged by the
kind of most of their alerts and the fault holding most of them (the most a stage-2 rule could reach). A ceiling is
the family mean over TUNING and DEVELOPMENT cascades, with 8101/8117 beside. Never builds a held-out or seen seed.

    python benchmarks/casc_ceiling.py                       # every class, alert and child oracles (about 2 min)
    python benchmarks/casc_ceiling.py 201 6211 --set victims_first_apart=False
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections import Counter, defaultdict
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import rca_sets  # noqa: E402
from accuracy_rca import stage2_report  # noqa: E402
from casc_classes import SEEDS, kinds  # noqa: E402
from rule_dev import settings  # noqa: E402

from correlator.replay import ReplayReport  # noqa: E402
from correlator.scoring import pairwise_score  # noqa: E402
from correlator.stage2 import DEFAULT_GROUPING  # noqa: E402

CLASSES = ("hop2 opened apart", "hop1 opened apart", "host opened apart", "foreign root", "foreign hop1",
           "foreign hop2", "foreign host")
"""The classes an oracle fixes one at a time (`casc_classes.py`'s names)."""
GROUPS = {"all split": tuple(c for c in CLASSES if c.endswith("apart")),
          "all merged": tuple(c for c in CLASSES if c.startswith("foreign"))}


def oracle(parent: dict[str, str], truth: dict[str, str], kind: dict[str, str], fixed: tuple[str, ...],
           units: list[list[str]]) -> dict[str, str]:
    """`parent` with the units (lists of fingerprints moved together) of the classes `fixed` moved home."""
    by_fault: dict[str, Counter[str]] = defaultdict(Counter)
    by_parent: dict[str, Counter[str]] = defaultdict(Counter)
    for fp, fault in truth.items():
        by_fault[fault][parent[fp]] += 1
        by_parent[parent[fp]][fault] += 1
    owner = {p: c.most_common(1)[0][0] for p, c in by_parent.items()}
    main = {f: c.most_common(1)[0][0] for f, c in by_fault.items()}
    out = dict(parent)
    for unit in units:
        fault = Counter(truth[fp] for fp in unit).most_common(1)[0][0]
        unit_kind = Counter(kind[fp] for fp in unit if truth[fp] == fault).most_common(1)[0][0]
        p = parent[unit[0]]
        if p != main[fault] and owner[p] == fault:
            cls, to = f"{unit_kind} opened apart", main[fault]
        elif owner[p] != fault:
            cls = f"foreign {unit_kind}"
            to = main[fault] if owner[main[fault]] == fault else f"home:{fault}"
        else:
            continue
        if cls in fixed:
            for fp in unit:
                out[fp] = to
    return out


def ceilings(report: ReplayReport, truth: dict[str, str], kind: dict[str, str]) -> dict[tuple[str, str], float]:
    """F1 by (oracle, class), ("main", "") the grouping as it is."""
    assert report.parents is not None
    parent = {fp: p.id for p in report.parents for fp in p.members}
    alert_units = [[fp] for fp in parent]
    child_units = [list(c.members) for p in report.parents for c in p.children if c.members]
    f1 = {("main", ""): pairwise_score(parent, truth).f1}
    for cls in (*CLASSES, *GROUPS):
        fixed = GROUPS.get(cls, (cls,))
        for name, units in (("alert", alert_units), ("child", child_units)):
            f1[(name, cls)] = pairwise_score(oracle(parent, truth, kind, fixed, units), truth).f1
    return f1


def main(argv: list[str] | None = None) -> int:
    """A row per seed and file setting, then the family means (TUNING and DEVELOPMENT) and their gain over main."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("seeds", nargs="*", type=int, default=list(SEEDS))
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="a GroupingConfig field changed (repeatable)")
    args = parser.parse_args(argv)
    if any(s not in SEEDS for s in args.seeds):
        parser.error("development, tuning and DEVELOPMENT_TOPOLOGY cascades only")
    grouping = replace(DEFAULT_GROUPING, **settings(args.set))
    family = {*rca_sets.TUNING["cascades"], *rca_sets.DEVELOPMENT["cascades"]}
    rows: dict[tuple[int, bool], dict[tuple[str, str], float]] = {}
    for seed in args.seeds:
        data = rca_sets.cascades(seed=seed)
        kind = kinds(data)
        for topology in (False, True):
            f1 = rows[(seed, topology)] = ceilings(stage2_report(data, grouping, topology), dict(data.truth), kind)
            print(f"{seed} {'file' if topology else 'none'}: main {f1[('main', '')]:.4f} | " + ", ".join(
                f"{c} {f1[('alert', c)]:.4f}/{f1[('child', c)]:.4f}" for c in (*CLASSES, *GROUPS)), flush=True)
    seeds = [s for s in args.seeds if s in family]
    if not seeds:
        return 0
    print(f"\nfamily mean over {len(seeds)} seeds (TUNING and DEVELOPMENT), without the file / with it; "
          "alert oracle, child oracle (gain over main)")
    print("| class | alert oracle | child oracle |\n|---|---:|---:|")

    def mean(key: tuple[str, str], topology: bool) -> float:
        return statistics.fmean(rows[(s, topology)][key] for s in seeds)

    base = (mean(("main", ""), False), mean(("main", ""), True))
    print(f"| main | {base[0]:.4f} / {base[1]:.4f} | |")
    for cls in (*CLASSES, *GROUPS):
        cells = []
        for name in ("alert", "child"):
            none, filed = mean((name, cls), False), mean((name, cls), True)
            cells.append(f"{none:.4f} / {filed:.4f} ({none - base[0]:+.4f} / {filed - base[1]:+.4f})")
        print(f"| {cls} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
