"""Where stage 2 is wrong and the better 60 s baseline right, and the reverse, on development data only (issue 17,
session 33, noise19; it never builds a held-out seed).

Pairs of alerts are counted by contingency over (truth, stage-2 parent, baseline group), so no pair list is built:

* stage 2 wrong, baseline right: pairs stage 2 merged across two true incidents that the baseline splits (charged to
  `stage 1 same child` when both alerts sit in one stage-1 incident, else to `stage 2 join`, and to fault+fault,
  noise+fault or noise+noise), and pairs of one fault stage 2 split that the baseline keeps together (charged to the
  piece outside the fault's main parent: how its first stage-1 incident was placed, and whether a noise alert opened
  that incident);
* baseline wrong, stage 2 right: the same two counts the other way round.

    python benchmarks/baseline_diff.py                      # the DEVELOPMENT and TUNING noise seeds, both variants
    python benchmarks/baseline_diff.py --seeds 6143 --everywhere
    python benchmarks/baseline_diff.py --set lull_s=120     # stage 2 with a GroupingConfig field changed
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections import Counter, defaultdict
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import rca_sets  # noqa: E402
from accuracy_rca import parents_of, stage2_report, time_only  # noqa: E402
from rca_sets import DataSet  # noqa: E402

from correlator.replay import ReplayIncident  # noqa: E402
from correlator.scoring import pairwise_score  # noqa: E402
from correlator.stage2 import GroupingConfig  # noqa: E402


def _noise(fault: str) -> bool:
    return fault.startswith("noise-")


def _pairs(counts: Counter[tuple[str, ...]] | Counter[str]) -> int:
    return sum(n * (n - 1) // 2 for n in counts.values())


def compare(data: DataSet, grouping: GroupingConfig) -> list[str]:
    """Lines of text: the two scores, the four counts, and stage 2's wrong pairs by kind."""
    report = stage2_report(data, grouping, False)
    ours, truth = parents_of(report), data.truth
    plain, scoped = time_only(data.alerts, 60.0), time_only(data.alerts, 60.0, scoped=True)
    f_plain, f_scoped = pairwise_score(plain, truth).f1, pairwise_score(scoped, truth).f1
    base = plain if f_plain >= f_scoped else scoped
    child: dict[str, ReplayIncident] = {fp: inc for inc in report.incidents for fp in inc.members}
    merged: Counter[str] = Counter()
    by_parent: dict[str, list[str]] = defaultdict(list)
    for fp, p in ours.items():
        by_parent[p].append(fp)
    for fps in by_parent.values():
        cells = list(Counter((child[fp].id, truth[fp], base[fp]) for fp in fps).items())
        for i, ((c1, t1, g1), n1) in enumerate(cells):
            for (c2, t2, g2), n2 in cells[i + 1:]:
                if t1 == t2 or g1 == g2:
                    continue
                both = "noise+noise" if _noise(t1) and _noise(t2) else "noise+fault" if _noise(t1) or _noise(t2) \
                    else "fault+fault"
                merged[f"{'stage 1 same child' if c1 == c2 else 'stage 2 join'}: {both}"] += n1 * n2
    split: Counter[str] = Counter()
    by_fault: dict[str, list[str]] = defaultdict(list)
    for fp, f in truth.items():
        by_fault[f].append(fp)
    for fps in by_fault.values():
        cells2 = Counter((ours[fp], base[fp]) for fp in fps)
        main = Counter(ours[fp] for fp in fps).most_common(1)[0][0]
        for (p, g), n in cells2.items():
            together = cells2.get((main, g), 0)
            if p == main or not together:
                continue
            first = min((child[fp] for fp in fps if ours[fp] == p), key=lambda c: c.first_seen)
            opened = "noise-opened stage-1 incident, " if _noise(truth[first.members[0]]) else ""
            how = first.parent.relation.value if first.parent is not None else "unplaced"
            split[f"{opened}placed by {how}"] += n * together
    base_merged = base_split = 0
    by_group: dict[str, list[str]] = defaultdict(list)
    for fp, g in base.items():
        by_group[g].append(fp)
    for fps in by_group.values():  # pairs the baseline merges across truth that stage 2 splits
        n = len(fps)
        base_merged += (n * (n - 1) // 2 - _pairs(Counter(truth[fp] for fp in fps))
                        - _pairs(Counter(ours[fp] for fp in fps)) + _pairs(Counter((truth[fp], ours[fp]) for fp in fps)))
    for fps in by_fault.values():  # pairs of one fault the baseline splits that stage 2 keeps together
        base_split += _pairs(Counter(ours[fp] for fp in fps)) - _pairs(Counter((ours[fp], base[fp]) for fp in fps))
    lines = [f"## {data.name}: stage 2 {pairwise_score(ours, truth).f1:.4f}, better baseline "
             f"{max(f_plain, f_scoped):.4f} ({'60 s gap' if f_plain >= f_scoped else 'scope, then 60 s gap'})",
             f"stage 2 wrong, baseline right: merged {sum(merged.values()):,}, split {sum(split.values()):,}; "
             f"baseline wrong, stage 2 right: merged {base_merged:,}, split {base_split:,}"]
    lines += [f"  merged {n:>8,}  {kind}" for kind, n in merged.most_common()]
    lines += [f"  split  {n:>8,}  {kind}" for kind, n in split.most_common()]
    return lines


def main(argv: list[str] | None = None) -> int:
    """Print the comparison for each development or tuning noise set asked for."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    allowed = (*rca_sets.DEVELOPMENT["noise"], *rca_sets.TUNING["noise"])
    parser.add_argument("--seeds", type=int, nargs="*", default=list(allowed), help="development or tuning noise seeds")
    parser.add_argument("--everywhere", action="store_true", help="only noise everywhere (default: both variants)")
    parser.add_argument("--between", action="store_true", help="only noise between faults")
    parser.add_argument("--set", nargs="*", default=[], help="GroupingConfig field=value pairs")
    args = parser.parse_args(argv)
    if any(s not in allowed for s in args.seeds):
        raise SystemExit(f"only development or tuning noise seeds: {allowed}")
    grouping = replace(GroupingConfig(), **{k: ast.literal_eval(v) for k, _, v in (p.partition("=") for p in args.set)})
    variants = [v for v in (False, True) if not (args.everywhere and not v) and not (args.between and v)]
    base = rca_sets.micross()
    for seed in args.seeds:
        for everywhere in variants:
            print("\n".join(compare(rca_sets.noisy(base, seed=seed, during_faults=everywhere), grouping)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
