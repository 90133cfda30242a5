"""Issue 17, session 33 (noise19): one stage-2 rule off and on, on development data and the checks, in one run.

Prints F1 over parents with `GroupingConfig` at its defaults (off) and with the given fields changed (on), without
the topology file and with it, on the sets of `accuracy_rca.py --sets dev` (rca-micross, the DEVELOPMENT and TUNING
noise and cascade seeds), the DEVELOPMENT_TOPOLOGY cascades and the checks (MicroSS x2, two clusters, generated
storms); then the mean over the `--sets dev` sets and the decision rule's verdict: the tenth round's (the docstring
of `rca_sets.HELD_OUT`, made exact in RESULTS.md's noise20 section before any run of it; `verdict`), kept unchanged
for the eleventh round (session 35, noise21: the same clauses over the DEVELOPMENT seeds, 6257 and 6343 included). It
never builds a held-out seed.

    python benchmarks/rule_dev.py lull_s=60                    # the decision run, about 6 min quiet
    python benchmarks/rule_dev.py lull_s=60 --noise            # only rca-micross and the noise sets (a quick look)
    python benchmarks/rule_dev.py lull_s=60 --base resume_below=0   # "off" with other fields changed too
    python benchmarks/rule_dev.py x=0 --table OUT                   # the verdict of a run's printed table
    python benchmarks/rule_dev.py --stage1 split_names_s=60 --target cascades   # a stage-1 (CorrelationConfig) rule
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
from accuracy_rca import Variant, development_sets, f1_pair, generated, overlaid, time_only  # noqa: E402

from correlator.config import CorrelationConfig  # noqa: E402
from correlator.scoring import pairwise_score  # noqa: E402
from correlator.stage2 import GroupingConfig  # noqa: E402

TOLERANCE = 0.002
"""The most any development, tuning or DEVELOPMENT_TOPOLOGY set (rca-micross included) may fall, with the file or
without, at 4 decimals (the tenth round's decision rule, the eleventh's too)."""
CHECK_TOLERANCE = 0.003
"""The most MicroSS x2 and two clusters may fall (the brief of session 34); the generated storms are only shown."""


def settings(pairs: list[str], kind: type = GroupingConfig) -> dict[str, Any]:
    """`field=value` pairs as keyword arguments of `kind` (GroupingConfig or CorrelationConfig; Python literals)."""
    known = {f.name for f in fields(kind)}
    out: dict[str, Any] = {}
    for pair in pairs:
        name, _, value = pair.partition("=")
        if name not in known:
            raise SystemExit(f"{kind.__name__} has no field {name!r}")
        out[name] = ast.literal_eval(value)
    return out


def family(name: str) -> str | None:
    """The family of a TUNING or DEVELOPMENT set by its name (None: rca-micross and the checks)."""
    if "generated storms," in name:
        return "storms"
    return "noise" if "noise" in name else "cascades" if "cascades" in name else None


def verdict(rows: dict[str, tuple[tuple[float, float | None], tuple[float, float | None]]], dev: list[str],
            extra: list[str], checks: list[str], target: str) -> tuple[bool, list[str]]:
    """The tenth round's rule over `rows` (set name -> ((no file off, file off), (no file on, file on))): the target
    family's mean over its TUNING and DEVELOPMENT sets rises without the file and with it; no other family's mean
    falls by more than `rca_sets.FAMILY_MEAN_TOLERANCE` (either way; the thirteenth round's rule); no dev, tuning or DEVELOPMENT_TOPOLOGY set falls by more than TOLERANCE and no check by more than
    CHECK_TOLERANCE (all at 4 decimals, either way); with the file >= without on every dev set where it held off.
    Returns whether it ships and the lines that say why."""
    lines: list[str] = []
    ok = True
    for fam in ("noise", "cascades", "storms"):
        names = [n for n in dev if family(n) == fam]
        for k, label in ((0, "without the file"), (1, "with the file")):
            vals = [(rows[n][0][k], rows[n][1][k]) for n in names if rows[n][0][k] is not None]
            if not vals:
                continue
            before = round(statistics.fmean(v[0] for v in vals), 4)  # type: ignore[misc]
            after = round(statistics.fmean(v[1] for v in vals), 4)  # type: ignore[misc]
            lines.append(f"{fam} mean {label} over {len(vals)} sets: {before:.4f} -> {after:.4f}")
            if fam == target and not after > before:
                ok = False
                lines.append(f"  target family's mean {label} does not rise")
            if after < before - (0.0 if fam == target else rca_sets.FAMILY_MEAN_TOLERANCE):
                ok = False
                lines.append(f"  a family's mean falls beyond its tolerance ({fam}, {label})")
    for name in [*dev, *extra, *checks]:
        tolerance = CHECK_TOLERANCE if name in checks else TOLERANCE
        for k in (0, 1):
            a, b = rows[name][0][k], rows[name][1][k]
            if a is not None and b is not None and round(b, 4) < round(a, 4) - tolerance:
                ok = False
                lines.append(f"fall beyond {tolerance}: {name} {'with' if k else 'without'} the file {a:.4f} -> {b:.4f}")
    for name in [*dev, *extra]:
        (c_off, file_off), (c_on, file_on) = rows[name]
        if file_off is not None and file_on is not None and file_off >= c_off and file_on < c_on:
            ok = False
            lines.append(f"{name}: with the file {file_on:.4f} < without {c_on:.4f}")
    return ok, lines


def compare(off: Variant, on: Variant, *, noise_only: bool = False, target: str = "noise",
            baseline: bool = True) -> bool | None:
    """Print one line per set (F1 off / on, without the file and with it, and the better baseline if asked), then
    the mean over the `--sets dev` sets and the tenth round's verdict for a rule aimed at the `target` family
    (`verdict`; None with `noise_only`)."""
    base = rca_sets.micross()
    dev = development_sets(base)
    if noise_only:
        dev = [d for d in dev if d is base or "noise" in d.name]
    extra = [] if noise_only else [rca_sets.cascades(seed=s) for s in rca_sets.DEVELOPMENT_TOPOLOGY["cascades"]]
    checks = [] if noise_only else [overlaid(base), rca_sets.two_clusters(base)]
    shown = [] if noise_only else [generated(100_000)]
    print("| set | no file: off | no file: on | file: off | file: on |" + (" better baseline |" if baseline else ""))
    print("|---|---:|---:|---:|---:|" + ("---:|" if baseline else ""))
    rows: dict[str, tuple[tuple[float, float | None], tuple[float, float | None]]] = {}
    for data in [*dev, *extra, *checks, *shown]:
        (c_off, file_off), (c_on, file_on) = rows[data.name] = f1_pair(data, off), f1_pair(data, on)
        text = " | ".join("-" if c is None else f"{c:.4f}" for c in (c_off, c_on, file_off, file_on))
        if baseline:
            best = max(pairwise_score(time_only(data.alerts, 60.0, scoped=s), data.truth).f1 for s in (False, True))
            text += f" | {best:.4f}"
        print(f"| {data.name} | {text} |", flush=True)
    before = statistics.fmean(rows[d.name][0][0] for d in dev)
    after = statistics.fmean(rows[d.name][1][0] for d in dev)
    print(f"\nmean stage-2 F1 without the file over the {len(dev)} sets: {before:.4f} -> {after:.4f}")
    ships, lines = verdict(rows, [d.name for d in dev], [d.name for d in extra], [d.name for d in checks], target)
    print("\n".join(lines))
    if noise_only:
        return None
    print("verdict:", "ships on" if ships else "does not meet the decision rule")
    return ships


def rejudge(table: str, target: str) -> bool:
    """The verdict of `verdict` over the rows of a table `compare` printed (the sets it names, by role), printed."""
    rows: dict[str, tuple[tuple[float, float | None], tuple[float, float | None]]] = {}
    dev: list[str] = []
    extra: list[str] = []
    checks: list[str] = []
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 5 or not cells[1][:1].isdigit():
            continue
        a, b, c, d = (None if x == "-" else float(x) for x in cells[1:5])
        assert a is not None and b is not None
        name = cells[0]
        if name == "generated storms":
            continue
        rows[name] = ((a, c), (b, d))
        (checks if name in ("MicroSS x2", "two clusters at once") else dev if "(" in name else extra).append(name)
    ships, lines = verdict(rows, dev, extra, checks, target)
    print("\n".join(lines))
    return ships


def main(argv: list[str] | None = None) -> int:
    """The comparison of `compare` for the rule given as field=value pairs, with the tenth round's verdict."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("on", nargs="*", help="field=value pairs: the rule on")
    parser.add_argument("--stage1", nargs="*", default=[], help="CorrelationConfig field=value pairs: the rule on")
    parser.add_argument("--base", nargs="*", default=[], help="field=value pairs for both columns")
    parser.add_argument("--noise", action="store_true", help="rca-micross and the noise sets only (no verdict)")
    parser.add_argument("--target", choices=("noise", "cascades", "storms"), default="noise", help="the family the rule aims at")
    parser.add_argument("--table", type=Path, help="judge the table a run printed (its file) instead of running")
    args = parser.parse_args(argv)
    if args.table is not None:
        print("verdict:", "ships on" if rejudge(args.table.read_text(), args.target) else
              "does not meet the decision rule")
        return 0
    if not args.on and not args.stage1:
        parser.error("give the rule: field=value pairs, --stage1 pairs, or both")
    off = replace(GroupingConfig(), **settings(args.base))
    on_grouping = replace(off, **settings(args.on))
    on: Variant = on_grouping  # with --stage1, stage 1's rule too (session 39)
    if args.stage1:
        on = (on_grouping, replace(CorrelationConfig(), **settings(args.stage1, CorrelationConfig)))
    print(f"off: {', '.join(args.base) or 'defaults'}; on: {', '.join([*args.on, *(f'stage 1 {p}' for p in args.stage1)])}")
    compare(off, on, noise_only=args.noise, target=args.target)
    return 0

if __name__ == "__main__":
    raise SystemExit(main())
