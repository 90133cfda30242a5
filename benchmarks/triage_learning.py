"""Triage that learns from its reviewers: a learning curve and a reliability diagram, on the blind set.

Learning curve: the author's set (`data/triage_eval.ndjson`) stands in for reviewer overrides arriving one by
one, in a shuffled order (labelled as overrides, so the calibration is fitted on them: what it would be fitted
on in service); after n of them (0 = the rules alone) a model is trained on those n (with its
calibration on their own held-out folds) and the blind set (`data/triage_blind.ndjson`, never trained on) is
scored: both right overall, the share auto-routed at the threshold and both right among those. Several shuffles;
the table gives the median and the range. The training data shipped beside the reviews (`data/triage_guideline.ndjson`,
written from the labelling guideline) is in every model, as `aiops triage train` ships it, so 0 overrides is the
rules with a model of that set alone; `--without-guideline` leaves it out (0 is then the rules alone).

Reliability diagram: the confidence the gate reads from the learned classifier (bins of 0.1) against the share of
decisions with code and severity both right, on the author's set out-of-fold and on the blind set.

    python benchmarks/triage_learning.py [--seeds 3] [--threshold 0.5] [--without-guideline]   # writes the PNGs

Author's-set curve (`--author`; the blind set is not read): the same curve made out of the author's set alone, to
choose and check the combination without the set it is scored on. Its two languages are the parts: n shuffled
texts of one (as overrides) train the model, the other's texts are scored, both directions pooled; with the
rules whole (drop 0) and with the patterns that match only the scored language removed (drop 1, the coverage
shift of benchmarks/triage_shift.py: rules that cover the scored text worse, as on the blind set). Beside the
rules alone, the blend with the rules' label held (`hold_rules`; off by default since the fifth shift round) and
without.

    python benchmarks/triage_learning.py --author [--seeds 3]              # prints a table, writes nothing
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from triage_eval import DATA, evaluate, load, section

from correlator.triage import Classification, RoutingPolicy, RuleClassifier
from correlator.triage.learned import LearnedClassifier
from stream.commands.train import GUIDELINE_SET
from stream.triage_model import Example, out_of_fold, read_labels, train

HERE = Path(__file__).resolve().parent
BLIND = HERE / "data" / "triage_blind.ndjson"
CURVE_PNG = HERE / "triage_learning_curve.png"
RELIABILITY_PNG = HERE / "triage_reliability.png"
STEPS = (0, 10, 20, 40, 60, 80, 100, 120, 140)


def blind_figures(records: list[dict[str, Any]], results: Sequence[Classification] | None,
                  policy: RoutingPolicy) -> dict[str, float]:
    """Both right overall, routed share and routed both right on the blind set for one set of decisions."""
    data = section(evaluate(records, policy, results))
    return {"both": data["accuracy"]["both"] or 0.0, "share": data["auto_routed"]["share"] or 0.0,
            "routed_both": data["auto_routed"]["accuracy"]["both"] or 0.0}


def curve(author: list[Example], blind: list[dict[str, Any]], seeds: int, policy: RoutingPolicy,
          base: Sequence[Example] = ()) -> list[dict[str, Any]]:
    """For each number of overrides fed in (beside the `base` training data), the blind-set figures per shuffle."""
    import random

    rules = RuleClassifier()
    texts = [r["text"] for r in blind]
    steps = [*STEPS, len(author)]
    rows = []
    for n in steps:
        runs = []
        for seed in range(seeds):
            order = [replace(e, source="override") for e in author]
            random.Random(seed).shuffle(order)
            fed = [*base, *order[:n]]
            results = LearnedClassifier(rules, train(fed, rules)).classify_many(texts) if fed else None
            runs.append(blind_figures(blind, results, policy))
            if n == 0 or n == len(author):
                break  # the same for every shuffle
        rows.append({"n": n, "runs": runs, "base": len(base)})
        print(f"  {n:>4} overrides: both right " + ", ".join(f"{r['both']:.3f}" for r in runs), flush=True)
    return rows


AUTHOR_STEPS = (0, 10, 20, 40, 80)


def author_curve(records: list[dict[str, Any]], seeds: int) -> str:
    """The author's-set learning curve (see the module docstring): a markdown table of both right, pooled."""
    import random

    from triage_shift import ablated_rules, example

    from correlator.triage.learned import DEFAULT_COMBINE, combine

    configs = {"held": replace(DEFAULT_COMBINE, hold_rules=True),
               "unheld": replace(DEFAULT_COMBINE, hold_rules=False)}
    lines = ["| drop | labels fed in | rules alone | blend, rules' label held | blend, unheld (before) |",
             "|---:|---:|---|---|---|"]
    for drop in (0.0, 1.0):
        for n in AUTHOR_STEPS:
            right: dict[str, list[int]] = {"rules": [], **{k: [] for k in configs}}
            total = 0
            for seed in range(seeds if n else 1):
                counts = dict.fromkeys(right, 0)
                total = 0
                for lang in ("en", "lv"):
                    rules = ablated_rules(records, lang, drop, 0)
                    source = [example(r, "override") for r in records if r["lang"] == lang]
                    scored = [r for r in records if r["lang"] != lang]
                    said = [rules.classify(r["text"]) for r in scored]
                    total += len(scored)
                    counts["rules"] += sum(_right(c, r) for c, r in zip(said, scored, strict=True))
                    if not n:
                        continue
                    random.Random(seed).shuffle(source)
                    model = train(source[:n], rules)
                    votes = model.votes([r["text"] for r in scored], said)
                    for name, config in configs.items():
                        decided = [combine(c, v, rules.config.taxonomy, config) for c, v in zip(said, votes, strict=True)]
                        counts[name] += sum(_right(c, r) for c, r in zip(decided, scored, strict=True))
                for key, value in counts.items():
                    right[key].append(value)
            cells = []
            for key in ("rules", *configs):
                values = sorted(v / total for v in right[key]) if n or key == "rules" else []
                cells.append("-" if not values else f"{statistics.median(values):.3f}"
                             + (f" ({values[0]:.3f}-{values[-1]:.3f})" if values[-1] > values[0] else ""))
            lines.append(f"| {drop:g} | {n} | " + " | ".join(cells) + " |")
            print(lines[-1], flush=True)
    return "\n".join(lines)


def _med(rows: list[dict[str, float]], key: str) -> tuple[float, float, float]:
    values = [r[key] for r in rows]
    return statistics.median(values), min(values), max(values)


def curve_table(rows: list[dict[str, Any]]) -> str:
    """The markdown table of the curve: median (min-max) over shuffles."""
    lines = ["| overrides fed in | both right (blind) | auto-routed share | both right among routed |",
             "|---:|---|---|---|"]
    for row in rows:
        cells = []
        for key in ("both", "share", "routed_both"):
            med, lo, hi = _med(row["runs"], key)
            cells.append(f"{med:.3f}" + (f" ({lo:.3f}-{hi:.3f})" if hi > lo else ""))
        alone = " (guideline set alone)" if row.get("base") else " (rules alone)"
        lines.append(f"| {row['n']}{alone if row['n'] == 0 else ''} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def bins(pairs: Sequence[tuple[float, bool]]) -> list[tuple[float, float, int]]:
    """(mean confidence, share right, count) per 0.1-wide bin of confidence, empty bins left out."""
    out = []
    for b in range(10):
        inside = [(c, ok) for c, ok in pairs if b / 10 <= c < (b + 1) / 10 or (b == 9 and c == 1.0)]
        if inside:
            out.append((statistics.fmean(c for c, _ in inside), sum(ok for _, ok in inside) / len(inside),
                        len(inside)))
    return out


def _right(result: Classification, record: dict[str, Any] | Example) -> bool:
    code = record["taxonomy_code"] if isinstance(record, dict) else record.taxonomy_code
    severity = record["severity"] if isinstance(record, dict) else record.severity
    return result.taxonomy_code == code and result.severity == severity


def plot(rows: list[dict[str, Any]], reliability: dict[str, list[tuple[float, float, int]]],
         rules_alone: float | None = None) -> None:
    """Write the learning curve (with the rules alone's both right as a line, when given) and the reliability
    diagram."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    xs = [r["n"] for r in rows]
    for key, label in (("both", "both right, all blind tickets"), ("routed_both", "both right among auto-routed"),
                       ("share", "share auto-routed")):
        meds = [_med(r["runs"], key) for r in rows]
        ax.plot(xs, [m for m, _, _ in meds], marker="o", label=label)
        ax.fill_between(xs, [lo for _, lo, _ in meds], [hi for _, _, hi in meds], alpha=0.15)
    ax.axhline(0.70, color="grey", ls=":", lw=1)
    ax.axhline(0.85, color="grey", ls=":", lw=1)
    if rules_alone is not None:
        ax.axhline(rules_alone, color="C3", ls="--", lw=1, label=f"both right, rules alone ({rules_alone:.3f})")
    zero = "the guideline set alone" if rows and rows[0].get("base") else "rules alone"
    ax.set(xlabel=f"reviewed tickets fed in (author's set, shuffled; 0 = {zero})", ylabel="share",
           ylim=(0, 1), title="Triage on the blind set (251) vs reviews learned from")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(CURVE_PNG, dpi=110)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(5.2, 5.0))
    ax.plot([0, 1], [0, 1], color="grey", ls="--", lw=1, label="perfect calibration")
    for name, points in reliability.items():
        ax.plot([c for c, _, _ in points], [r for _, r, _ in points], marker="o", label=name)
        for c, r, n in points:
            ax.annotate(str(n), (c, r), fontsize=7, xytext=(3, -9), textcoords="offset points")
    ax.set(xlabel="confidence the gate reads (bin mean)", ylabel="share with code and severity both right",
           xlim=(0, 1), ylim=(0, 1.02), title="Learned triage: reliability (numbers: tickets per bin)")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(RELIABILITY_PNG, dpi=110)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the curve and the reliability figures, print the tables, write the PNGs."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seeds", type=int, default=3, help="shuffles per point (default %(default)s)")
    parser.add_argument("--threshold", type=float, default=RoutingPolicy().threshold)
    parser.add_argument("--without-guideline", action="store_true",
                        help=f"leave {GUIDELINE_SET.name} out of every model")
    parser.add_argument("--author", action="store_true",
                        help="the curve on the author's set alone, in language folds (the blind set is not read)")
    args = parser.parse_args(argv)
    policy = RoutingPolicy(threshold=args.threshold)
    if args.author:
        print(f"author's-set curve: {DATA.name} in language folds, {args.seeds} shuffles (the blind set is not read)")
        print(author_curve(load(DATA), args.seeds))
        return 0
    author, _ = read_labels(DATA.read_text(encoding="utf-8").splitlines(), "author")
    base = [] if args.without_guideline else read_labels(GUIDELINE_SET.read_text(encoding="utf-8").splitlines(),
                                                          "guideline")[0]
    blind = load(BLIND)
    rules = RuleClassifier()
    print(f"learning curve: {len(author)} author texts as overrides beside {len(base)} of {GUIDELINE_SET.name}, "
          f"{len(blind)} blind texts, {args.seeds} shuffles")
    rows = curve(author, blind, args.seeds, policy, base)
    oof = out_of_fold(author, rules, always=base)
    full = LearnedClassifier(rules, train(author + base, rules)).classify_many([r["text"] for r in blind])
    reliability = {
        f"author's set, out-of-fold ({len(author)})": bins([(c.confidence, _right(c, author[i])) for i, c, _ in oof]),
        f"blind set ({len(blind)})": bins([(c.confidence, _right(c, r)) for c, r in zip(full, blind, strict=True)]),
    }
    print(curve_table(rows))
    for name, points in reliability.items():
        print(f"reliability, {name}: " + "  ".join(f"{c:.2f}->{r:.2f} (n={n})" for c, r, n in points))
    plot(rows, reliability, blind_figures(blind, None, policy)["both"] if base else None)
    print(f"wrote {CURVE_PNG.name} and {RELIABILITY_PNG.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
