"""Issue 17, session 33 (noise19): one stage-2 rule off and on, on development data and the checks, in one run.

Prints F1 over parents with `GroupingConfig` at its defaults (off) and with the given fields changed (on), without
the topology file and with it, on the sets of `accuracy_rca.py --sets dev` (rca-micross, the DEVELOPMENT and TUNING
noise and cascade seeds), the DEVELOPMENT_TOPOLOGY cascades and the checks (MicroSS x2, two clusters, generated
storms); then the mean over the `--sets dev` sets and the decision rule's verdict (the one declared for noise18's
rules in benchmarks/RESULTS.md, and for this session's in its noise19 section, committed before the run). It never
builds a held-out seed.

    python benchmarks/rule_dev.py lull_s=60                    # the decision run, about 6 min quiet
    python benchmarks/rule_dev.py lull_s=60 --noise            # only rca-micross and the noise sets (a quick look)
    python benchmarks/rule_dev.py lull_s=60 --base resume_below=0   # "off" with other fields changed too
"""

from __future__ import annotations

import argparse
import ast
import statistics
import sys
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import rca_sets  # noqa: E402
from accuracy_rca import development_sets, f1_pair, generated, overlaid, time_only  # noqa: E402

from correlator.scoring import pairwise_score  # noqa: E402
from correlator.stage2 import GroupingConfig  # noqa: E402

TOLERANCE = 0.002
"""The most a set other than the cascades may fall, with the file or without (the decision rule); the cascades (the
development, tuning and DEVELOPMENT_TOPOLOGY seeds) may not fall at all."""


def settings(pairs: list[str]) -> dict[str, Any]:
    """`field=value` pairs as GroupingConfig keyword arguments (values as Python literals)."""
    known = {f.name for f in fields(GroupingConfig)}
    out: dict[str, Any] = {}
    for pair in pairs:
        name, _, value = pair.partition("=")
        if name not in known:
            raise SystemExit(f"GroupingConfig has no field {name!r}")
        out[name] = ast.literal_eval(value)
    return out


def compare(off: GroupingConfig, on: GroupingConfig, *, noise_only: bool = False,
            cascade_tolerance: float = 0.0, baseline: bool = True) -> bool | None:
    """Print one line per set (F1 off / on, without the file and with it, and the better baseline if asked), then
    the mean over the `--sets dev` sets, the falls and the verdict; the verdict (None with `noise_only`): the mean
    rose, no set fell (the cascades by more than `cascade_tolerance`, any other by more than TOLERANCE), and with the
    file is nowhere worse than without where it held with the rule off."""
    base = rca_sets.micross()
    dev = development_sets(base)
    if noise_only:
        dev = [d for d in dev if d is base or "noise" in d.name]
    extra = [] if noise_only else [rca_sets.cascades(seed=s) for s in rca_sets.DEVELOPMENT_TOPOLOGY["cascades"]]
    checks = [] if noise_only else [overlaid(base), rca_sets.two_clusters(base), generated(100_000)]
    print("| set | no file: off | no file: on | file: off | file: on |" + (" better baseline |" if baseline else ""))
    print("|---|---:|---:|---:|---:|" + ("---:|" if baseline else ""))
    means: tuple[list[float], list[float]] = ([], [])
    falls: list[str] = []
    worse: list[str] = []
    for data in [*dev, *extra, *checks]:
        (c_off, file_off), (c_on, file_on) = f1_pair(data, off), f1_pair(data, on)
        if data in dev:
            means[0].append(c_off)
            means[1].append(c_on)
        tolerance = cascade_tolerance if "cascades" in data.name else TOLERANCE
        falls += [f"{data.name} {a:.4f} -> {b:.4f}" for a, b in ((c_off, c_on), (file_off, file_on))
                  if a is not None and b is not None and round(b, 4) < round(a, 4) - tolerance]
        if data in dev or data in extra:
            if file_off is not None and file_on is not None and file_off >= c_off and file_on < c_on:
                worse.append(f"{data.name}: with the file {file_on:.4f} < without {c_on:.4f}")
        text = " | ".join("-" if c is None else f"{c:.4f}" for c in (c_off, c_on, file_off, file_on))
        if baseline:
            best = max(pairwise_score(time_only(data.alerts, 60.0, scoped=s), data.truth).f1 for s in (False, True))
            text += f" | {best:.4f}"
        print(f"| {data.name} | {text} |", flush=True)
    before, after = statistics.fmean(means[0]), statistics.fmean(means[1])
    print(f"\nmean stage-2 F1 without the file over the {len(means[0])} sets: {before:.4f} -> {after:.4f}")
    print(f"falls (cascades: by more than {cascade_tolerance}, at 4 decimals; others: by more than {TOLERANCE}):",
          "; ".join(falls) or "none")
    print("with the file worse than without where it held with the rule off:", "; ".join(worse) or "none")
    if noise_only:
        return None
    ships = after > before and not falls and not worse
    print("verdict:", "ships on" if ships else "does not meet the decision rule")
    return ships


def main(argv: list[str] | None = None) -> int:
    """The comparison of `compare` for the rule given as field=value pairs (the cascades may not fall at all)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("on", nargs="+", help="field=value pairs: the rule on")
    parser.add_argument("--base", nargs="*", default=[], help="field=value pairs for both columns")
    parser.add_argument("--noise", action="store_true", help="rca-micross and the noise sets only (no verdict)")
    args = parser.parse_args(argv)
    off = replace(GroupingConfig(), **settings(args.base))
    on = replace(off, **settings(args.on))
    print(f"off: {', '.join(args.base) or 'defaults'}; on: {', '.join(args.on)}")
    compare(off, on, noise_only=args.noise)
    return 0

if __name__ == "__main__":
    raise SystemExit(main())
