"""Issue 17, session 32 (noise18): stage 2 with and without resumption on development data and the checks.

Resumption (`GroupingConfig.resume_below`): a group's only child, of fewer than resume_below alerts, that resumes
after a lull longer than gap_s carries its group on (its latest onset moves to the resumption and it accepts again).
This prints F1 over parents with the rule off (`resume_below=0`, the rule before) and on, without the topology file
and with it, in one run, on the sets of `accuracy_rca.py --sets dev` (rca-micross, the DEVELOPMENT and TUNING noise
and cascade seeds), the DEVELOPMENT_TOPOLOGY cascades and the checks: MicroSS x2, two clusters at once, generated
storms; then the mean over the `--sets dev` sets and the decision rule's verdict (benchmarks/RESULTS.md, noise18,
committed before the rule was built). It never builds a held-out seed.

    python benchmarks/resume_dev.py                    # about 5 min on a quiet machine
    python benchmarks/resume_dev.py --resume-below 3   # the decision rule's fallback
    python benchmarks/resume_dev.py --rule lone_apart  # the second rule: off / on, resumption on in both

`--rule lone_apart` compares `GroupingConfig.lone_apart` off and on instead (a lone one-alert group folds into a
bridge's group only within burst_s), resumption on in both, against the second decision rule (noise18).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import rca_sets  # noqa: E402
from accuracy_rca import development_sets, generated, overlaid, row, stage2  # noqa: E402

from correlator.stage2 import GroupingConfig  # noqa: E402

TOLERANCE = 0.002
"""The most any set may fall, with the file or without (the decision rule)."""


def main(argv: list[str] | None = None) -> int:
    """One line per set (F1 off / on, without the file and with it), then the verdict."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resume-below", type=int, default=GroupingConfig().resume_below)
    parser.add_argument("--rule", choices=("resume_below", "lone_apart"), default="resume_below")
    args = parser.parse_args(argv)
    base = rca_sets.micross()
    dev = development_sets(base)
    extra = [rca_sets.cascades(seed=s) for s in rca_sets.DEVELOPMENT_TOPOLOGY["cascades"]]
    checks = [overlaid(base), rca_sets.two_clusters(base), generated(100_000)]
    if args.rule == "lone_apart":
        configs = (GroupingConfig(lone_apart=False), GroupingConfig(lone_apart=True))
        print("lone_apart off / on (resume_below at its default)")
    else:
        configs = (GroupingConfig(resume_below=0, lone_apart=False),
                   GroupingConfig(resume_below=args.resume_below, lone_apart=False))
        print(f"resume_below 0 / {args.resume_below} (lone_apart off)")
    print("| set | no file: off | no file: on | file: off | file: on |")
    print("|---|---:|---:|---:|---:|")
    means: tuple[list[float], list[float]] = ([], [])
    falls: list[str] = []
    worse: list[str] = []
    for data in [*dev, *extra, *checks]:
        cells: list[float | None] = []
        for topology in (False, True):
            for grouping in configs:
                has = not topology or data.topology is not None
                cells.append(row(data, "", stage2(data, grouping, topology)).score.f1 if has else None)
        off, on, file_off, file_on = cells
        assert off is not None and on is not None
        if data in dev:
            means[0].append(off)
            means[1].append(on)
        falls += [f"{data.name} {a:.4f} -> {b:.4f}" for a, b in ((off, on), (file_off, file_on))
                  if a is not None and b is not None and b < a - TOLERANCE]
        if data in dev or data in extra:
            if file_off is not None and file_on is not None and file_off >= off and file_on < on:
                worse.append(f"{data.name}: with the file {file_on:.4f} < without {on:.4f}")
        text = " | ".join("-" if c is None else f"{c:.4f}" for c in cells)
        print(f"| {data.name} | {text} |", flush=True)
    before, after = statistics.fmean(means[0]), statistics.fmean(means[1])
    print(f"\nmean stage-2 F1 without the file over the {len(means[0])} sets of --sets dev: {before:.4f} -> {after:.4f}")
    print("falls by more than 0.002:", "; ".join(falls) or "none")
    print("with the file worse than without where it held with the rule off:", "; ".join(worse) or "none")
    ships = after > before and not falls and not worse
    print("verdict:", "ships on" if ships else "does not meet the decision rule")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
