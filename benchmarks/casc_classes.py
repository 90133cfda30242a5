"""Issue 17, session 36 (casc22): the cascades' wrong pairs by the generator's alert kind, on development data only.

Kinds (from `rca_sets.cascades`' shape): `root` the fault's own symptom, `host` its host's `node/HostLoadHigh`,
`hop1` a trace error into the root's service, `hop2` a trace error one hop further up. Every wrongly split pair is
charged to the alert outside its fault's main parent (the parent holding most of it; half to each when neither is
in it), as `opened apart` when that parent's most alerts are the fault's own, else `joined other`; every wrongly
merged pair to the foreign fault's alert (`foreign <kind>`). Casc20/casc21 counted the same with a scratch reader.
Never builds a held-out or seen seed.

    python benchmarks/casc_classes.py                       # TUNING, DEVELOPMENT and DEVELOPMENT_TOPOLOGY cascades
    python benchmarks/casc_classes.py --climb 20 6367       # with GroupingConfig.climb_s=20, one seed
    python benchmarks/casc_classes.py --set victims_first_apart=True   # any fields changed (rule_dev.py's FIELD=VALUE)
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter, defaultdict
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import rca_sets  # noqa: E402
from accuracy_rca import stage2_report  # noqa: E402
from rca_sets import DataSet  # noqa: E402
from rule_dev import settings  # noqa: E402

from correlator.stage2 import DEFAULT_GROUPING, GroupingConfig  # noqa: E402

SEEDS = (*rca_sets.TUNING["cascades"], *rca_sets.DEVELOPMENT["cascades"], *rca_sets.DEVELOPMENT_TOPOLOGY["cascades"])


def kinds(data: DataSet) -> dict[str, str]:
    """Alert fingerprint -> its kind in its fault."""
    symptoms = set(rca_sets._SYMPTOMS)
    root = {data.truth[a.fingerprint]: a.service for a in data.alerts if a.symptom in symptoms}
    out = {}
    for a in data.alerts:
        if a.symptom in symptoms:
            out[a.fingerprint] = "root"
        elif a.symptom == "HostLoadHigh":
            out[a.fingerprint] = "host"
        else:
            out[a.fingerprint] = "hop1" if a.service == root.get(data.truth[a.fingerprint]) else "hop2"
    return out


def classes(data: DataSet, grouping: GroupingConfig, topology: bool) -> tuple[Counter[str], Counter[str]]:
    """Wrongly split and wrongly merged pairs by class."""
    report = stage2_report(data, grouping, topology)
    assert report.parents is not None
    kind = kinds(data)
    parent = {fp: p.id for p in report.parents for fp in p.members}
    by_fault: dict[str, Counter[str]] = defaultdict(Counter)
    by_parent: dict[str, Counter[str]] = defaultdict(Counter)
    for fp, fault in data.truth.items():
        by_fault[fault][parent[fp]] += 1
        by_parent[parent[fp]][fault] += 1
    split: Counter[str] = Counter()
    merged: Counter[str] = Counter()
    for fp, fault in data.truth.items():
        p, cells = parent[fp], by_fault[fault]
        main = cells.most_common(1)[0][0]
        owner = by_parent[p].most_common(1)[0][0]
        if p != main:
            how = "opened apart" if owner == fault else "joined other"
            split[f"{kind[fp]} {how}"] += cells[main] + 0.5 * (sum(cells.values()) - cells[main] - cells[p])
        if fault != owner:
            here = by_parent[p]
            merged[f"foreign {kind[fp]}"] += here[owner] + 0.5 * (sum(here.values()) - here[owner] - here[fault])
    return split, merged


def main(argv: list[str] | None = None) -> int:
    """One line per seed and file setting: totals, then the nine largest classes (thousands of pairs)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("seeds", nargs="*", type=int, default=list(SEEDS))
    parser.add_argument("--climb", type=float, default=None, help="GroupingConfig.climb_s (default: main's)")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="another GroupingConfig field changed (repeatable)")
    args = parser.parse_args(argv)
    if any(s not in SEEDS for s in args.seeds):
        parser.error("development, tuning and DEVELOPMENT_TOPOLOGY cascades only")
    grouping = DEFAULT_GROUPING if args.climb is None else replace(DEFAULT_GROUPING, climb_s=args.climb)
    grouping = replace(grouping, **settings(args.set))
    for seed in args.seeds:
        data = rca_sets.cascades(seed=seed)
        for topology in (False, True):
            split, merged = classes(data, grouping, topology)
            top = sorted([*split.items(), *merged.items()], key=lambda kv: -kv[1])[:9]
            print(f"{seed} {'file' if topology else 'none'}: split {sum(split.values()) / 1e3:.1f}k, merged "
                  f"{sum(merged.values()) / 1e3:.1f}k | " + ", ".join(f"{k} {v / 1e3:.1f}" for k, v in top), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
