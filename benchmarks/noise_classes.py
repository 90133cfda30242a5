"""Where the better 60 s baseline beats stage 2 on the "noise everywhere" sets, by mechanism, with a pair-level oracle
ceiling per class (issue 17, session 41, noise42; development and tuning seeds only, never a held-out or seen one).

Pairs stage 2 (no file) gets wrong and the better baseline right are counted by contingency, as `baseline_diff.py`
does, and charged to one class each:

* merged (stage 2 together, truth apart, baseline apart): `stage 1` when both alerts sit in one stage-1 incident,
  else `stage 2`, by the relation that placed the later-joined side (a noise child joined by `entity`, a fault child
  joined to a noise-opened parent, ...) and, for noise beside a fault, where the noise child started against its
  fault's alerts in that parent (before its first, inside its span, after its last);
* split (truth together, stage 2 apart, baseline together): by how the piece outside the fault's main parent was
  placed (its first child's relation and the first words of its reason line) and who opened it (noise or fault).

Each pair is also marked `jitter` when the same seed built without jitter (`noisy(..., jitter_s=0)`: the same noise
alerts, every start at its recorded time, input order unchanged) has stage 2 right on it: the out-of-order share.
The ceiling of a class is the pairwise F1 with that class's pairs made right and nothing else changed (a merged pair
no longer a false positive; a split pair a true positive): what a perfect rule for the class could reach at most.

    python benchmarks/noise_classes.py                     # DEVELOPMENT and TUNING "noise everywhere"
    python benchmarks/noise_classes.py --seeds 6143 --set burst_companions=True
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

from correlator.replay import ReplayIncident  # noqa: E402
from correlator.scoring import pairwise_score  # noqa: E402
from correlator.stage2 import GroupingConfig  # noqa: E402


def _noise(fault: str) -> bool:
    return fault.startswith("noise-")


def _p(n: int) -> int:
    return n * (n - 1) // 2


def _reason(inc: ReplayIncident) -> str:
    a = inc.parent
    if a is None:
        return "unplaced"
    return a.relation.value


def _opening(inc: ReplayIncident) -> str:
    a = inc.parent
    if a is None or a.relation.value != "first":
        return ""
    text = a.explanation
    if "symptom of its own" in text:
        return "a late symptom"
    if "started alone" in text:
        return "started alone"
    if "no related incident" in text:
        return "nothing related open"
    return text[:50]


def classify(seed: int, grouping: GroupingConfig) -> tuple[str, float, float, Counter[str], tuple[int, int, int]]:
    """(set name, stage-2 F1, better baseline F1, pairs by class, (tp, fp, fn) of stage 2)."""
    base = rca_sets.micross()
    data = rca_sets.noisy(base, seed=seed, during_faults=True)
    twin = rca_sets.noisy(base, seed=seed, during_faults=True, jitter_s=0.0)
    report = stage2_report(data, grouping, False)
    ours, truth = parents_of(report), data.truth
    still = parents_of(stage2_report(twin, grouping, False))
    plain, scoped = time_only(data.alerts, 60.0), time_only(data.alerts, 60.0, scoped=True)
    f_plain, f_scoped = pairwise_score(plain, truth).f1, pairwise_score(scoped, truth).f1
    better = plain if f_plain >= f_scoped else scoped
    child: dict[str, ReplayIncident] = {fp: inc for inc in report.incidents for fp in inc.members}
    start = {a.fingerprint: a.starts_at for a in data.alerts}
    kinds: Counter[str] = Counter()
    by_parent: dict[str, list[str]] = defaultdict(list)
    for fp, p in ours.items():
        by_parent[p].append(fp)
    for fps in by_parent.values():
        span: dict[str, tuple[float, float]] = {}
        for fp in fps:
            t = truth[fp]
            lo, hi = span.get(t, (start[fp], start[fp]))
            span[t] = (min(lo, start[fp]), max(hi, start[fp]))
        cells = list(Counter((child[fp].id, truth[fp], better[fp], still[fp]) for fp in fps).items())
        inc_of = {child[fp].id: child[fp] for fp in fps}
        for i, ((c1, t1, g1, s1), n1) in enumerate(cells):
            for (c2, t2, g2, s2), n2 in cells[i + 1:]:
                if t1 == t2 or g1 == g2:
                    continue
                jit = " [jitter]" if s1 != s2 else ""
                if c1 == c2:
                    both = "noise+noise" if _noise(t1) and _noise(t2) else "noise+fault" if _noise(t1) or _noise(t2) \
                        else "fault+fault"
                    kinds[f"merged, stage 1 same child: {both}{jit}"] += n1 * n2
                    continue
                a, b = inc_of[c1], inc_of[c2]
                if _noise(t1) != _noise(t2):
                    (nc, nt), (fc, ft) = ((a, t1), (b, t2)) if _noise(t1) else ((b, t2), (a, t1))
                    if nc.parent is not None and nc.parent.relation.value != "first":
                        lo, hi = span[ft]
                        where = "before" if nc.first_seen < lo else "after" if nc.first_seen > hi else "inside"
                        kinds[f"merged, stage 2: noise child joined by {_reason(nc)}, {where} its fault{jit}"] += n1 * n2
                    else:
                        kinds[f"merged, stage 2: fault child joined a noise-opened parent by {_reason(fc)}{jit}"] \
                            += n1 * n2
                else:
                    later = a if a.first_seen >= b.first_seen else b
                    both = "noise+noise" if _noise(t1) else "fault+fault"
                    kinds[f"merged, stage 2: {both}, later joined by {_reason(later)}{jit}"] += n1 * n2
    opener_of: dict[str, str] = {}
    for inc in report.incidents:
        if inc.parent is not None and inc.parent.relation.value == "first":
            opener_of[inc.parent.parent_id] = truth[inc.members[0]]
    by_fault: dict[str, list[str]] = defaultdict(list)
    for fp, f in truth.items():
        by_fault[f].append(fp)
    for fps in by_fault.values():
        main = Counter(ours[fp] for fp in fps).most_common(1)[0][0]
        cells2 = Counter((ours[fp], better[fp], still[fp]) for fp in fps)
        main_cells = {(g, s): n for (p, g, s), n in cells2.items() if p == main}
        for (p, g, s), n in cells2.items():
            if p == main:
                continue
            first = min((child[fp] for fp in fps if ours[fp] == p), key=lambda c: c.first_seen)
            opened = "noise-opened piece" if _noise(truth[first.members[0]]) else "fault-opened piece"
            if first.parent is not None and first.parent.relation.value != "first":
                opener = opener_of.get(p)
                opened += ", in a noise-opened parent" if opener is not None and _noise(opener) else ""
            why = _opening(first)
            for (g2, s2), m in main_cells.items():
                if g2 != g:
                    continue
                jit = " [jitter]" if s2 == s else ""
                kinds[f"split, {opened}, placed by {first.parent.relation.value if first.parent else '-'}"
                      f"{' (' + why + ')' if why else ''}{jit}"] += n * m
    pred_pairs = sum(_p(n) for n in Counter(ours.values()).values())
    true_pairs = sum(_p(n) for n in Counter(truth.values()).values())
    tp = sum(_p(n) for n in Counter((ours[i], truth[i]) for i in truth).values())
    return data.name, pairwise_score(ours, truth).f1, max(f_plain, f_scoped), kinds, (tp, pred_pairs - tp,
                                                                                       true_pairs - tp)


def ceiling(tpfpfn: tuple[int, int, int], merged: int, split: int) -> float:
    """Pairwise F1 with `merged` false-positive pairs removed and `split` false-negative pairs made true."""
    tp, fp, fn = tpfpfn
    tp, fp, fn = tp + split, fp - merged, fn - split
    return 2 * tp / (2 * tp + fp + fn)


def _family(kind: str) -> str:
    """A class without its jitter mark and its noise-timing detail: the unit a ceiling is given for."""
    return kind.replace(" [jitter]", "")


def coarse(kind: str) -> str:
    """The mechanism a class belongs to (the brief's: noise glued by stage 1 or 2, a fault split, faults merged)."""
    if kind.startswith("merged, stage 1 same child: noise+fault"):
        return "noise glued to a fault by stage 1 (one stage-1 incident)"
    if kind.startswith("merged, stage 2: fault child joined a noise-opened parent"):
        return "noise glued by stage 2: a fault's child joined a parent a noise alert opened"
    if kind.startswith("merged, stage 2: noise child joined"):
        return "noise glued by stage 2: a noise child joined a fault's parent"
    if "fault+fault" in kind:
        return "two faults merged (stage 1 or 2)"
    if "noise+noise" in kind:
        return "two noise alerts merged (stage 1 or 2)"
    if kind.startswith("split") and "placed by first" in kind and "noise-opened piece" not in kind:
        return "a fault split: a piece of it opened its own parent"
    if kind.startswith("split") and "noise-opened" in kind:
        return "a fault split: a piece opened by, or joined to, a noise alert's incident or parent"
    return "a fault split: a piece joined another parent (entity, merged, burst)"


def main(argv: list[str] | None = None) -> int:
    """Print, per set, each class's pairs (and its jitter share) and the ceilings of the classes."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    allowed = (*rca_sets.DEVELOPMENT["noise"], *rca_sets.TUNING["noise"])
    parser.add_argument("--seeds", type=int, nargs="*", default=list(allowed), help="development or tuning noise seeds")
    parser.add_argument("--min-pairs", type=int, default=200, help="print classes with at least this many pairs")
    parser.add_argument("--set", nargs="*", default=[], help="GroupingConfig field=value pairs")
    args = parser.parse_args(argv)
    if any(s not in allowed for s in args.seeds):
        raise SystemExit(f"only development or tuning noise seeds: {allowed}")
    grouping = replace(GroupingConfig(), **{k: ast.literal_eval(v) for k, _, v in (p.partition("=") for p in args.set)})
    total: Counter[str] = Counter()
    ceilings: dict[str, list[tuple[float, float, float]]] = defaultdict(list)
    mech: dict[str, list[tuple[float, float, float]]] = defaultdict(list)
    mech_pairs: Counter[str] = Counter()
    for seed in args.seeds:
        name, f1, base_f1, kinds, tpfpfn = classify(seed, grouping)
        print(f"## {name}: stage 2 {f1:.4f}, better baseline {base_f1:.4f}", flush=True)
        fams: Counter[str] = Counter()
        for k, n in kinds.items():
            fams[_family(k)] += n
        for k, n in fams.most_common():
            jit = kinds.get(k + " [jitter]", 0)
            merged, split = (n, 0) if k.startswith("merged") else (0, n)
            top = ceiling(tpfpfn, merged, split)
            if seed in rca_sets.DEVELOPMENT["noise"]:
                ceilings[k].append((f1, top, base_f1))
            if n >= args.min_pairs:
                print(f"  {n:>7,}  (jitter {jit:>6,})  ceiling {top:.4f}  {k}")
        total.update(kinds)
        by_mech: Counter[str] = Counter()
        for k, n in fams.items():
            by_mech[coarse(k)] += n
        for m, n in by_mech.items():
            mech_pairs[m] += n
            if seed in rca_sets.DEVELOPMENT["noise"]:
                merged, split = (n, 0) if not m.startswith("a fault split") else (0, n)
                mech[m].append((f1, ceiling(tpfpfn, merged, split), base_f1))
        jit_all = sum(n for k, n in kinds.items() if k.endswith("[jitter]"))
        if seed in rca_sets.DEVELOPMENT["noise"]:
            mech_pairs["(any class, right on the unjittered twin: jitter)"] += jit_all
    print("\n## Over the DEVELOPMENT sets asked for: pairs (jitter share), mean F1 -> mean ceiling, sets whose "
          "ceiling reaches the better baseline (stage 2 alone already does on those marked before the slash)")
    fam_total: Counter[str] = Counter()
    for k, n in total.items():
        fam_total[_family(k)] += n
    for k, n in fam_total.most_common():
        rows = ceilings.get(k, [])
        if not rows or n < args.min_pairs:
            continue
        mean_f1 = sum(r[0] for r in rows) / len(rows)
        mean_top = sum(r[1] for r in rows) / len(rows)
        already = sum(r[0] >= r[2] for r in rows)
        reach = sum(r[1] >= r[2] for r in rows)
        print(f"  {n:>8,} ({total.get(k + ' [jitter]', 0):>6,})  {mean_f1:.4f} -> {mean_top:.4f}  "
              f"{already}/{reach} of {len(rows)}  {k}")
    print("\n## By mechanism, over the DEVELOPMENT sets asked for (same columns)")
    for m, n in mech_pairs.most_common():
        rows = mech.get(m, [])
        if not rows:
            print(f"  {n:>8,}  {m}")
            continue
        mean_f1 = sum(r[0] for r in rows) / len(rows)
        mean_top = sum(r[1] for r in rows) / len(rows)
        print(f"  {n:>8,}  {mean_f1:.4f} -> {mean_top:.4f}  {sum(r[0] >= r[2] for r in rows)}/"
              f"{sum(r[1] >= r[2] for r in rows)} of {len(rows)}  {m}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
