"""Triage accuracy on a labelled set, and what the confidence gate buys.

Data: `benchmarks/data/triage_eval.ndjson` by default, one labelled text a line (`text`, `taxonomy_code`,
`severity`, and optionally `lang`, `split`, `id`). Hand-written for this project, modelled on typical NOC and
helpdesk phrasing (see `benchmarks/data/triage_eval.README.md`). The `heldout` split was written and committed
before any classifier rule existed and has not been tuned against; the `tuned` split is what the rules and the
confidence were adjusted on. Report both. `--data` evaluates another file of the same shape (a blind set).

Prints, per section (all, then each split present; `--quick`: all only): per-code precision, recall and
support, accuracy (taxonomy, severity, both), the share auto-routed vs sent to human review at the threshold,
accuracy overall vs among auto-routed tickets vs among those held for review, and a reliability table: for
thresholds 0.3..0.8, the share routed and the share right among those routed. A gate that earns its keep shows
routed accuracy well above overall, rising with the threshold.

With the `learn` extra installed (and not `--quick` or `--rules-only`), the same run also scores the learned
classifier (rules + model, stream/triage_model.py): on the author's set by out-of-fold decisions (each text
decided by a model trained without its fold), on any other `--data` by a model trained on the whole author's
set, which never sees that file; then prints the two side by side. The training data written from the labelling
guideline (`data/triage_guideline.ndjson`, see its header) joins the training either way (beside every fold on
the author's set, never scored), as `aiops triage train` ships it; `--without-guideline` leaves it out.

    python benchmarks/triage_eval.py [--quick] [--json] [--errors] [--threshold 0.5] [--data PATH] [--rules-only]
                                     [--without-guideline]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from correlator.triage import DEFAULT_TAXONOMY, Classification, RouteDecision, RoutingPolicy, build_classifier, route
from stream.commands.train import GUIDELINE_SET
from stream.triage_model import comment_line, learn_available

DATA = Path(__file__).resolve().parent / "data" / "triage_eval.ndjson"
SPLITS = ("tuned", "heldout")
RELIABILITY_THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
REQUIRED = frozenset({"text", "taxonomy_code", "severity"})


@dataclass(frozen=True)
class Outcome:
    """One labelled text and what triage made of it."""

    record: dict[str, Any]
    result: Classification
    decision: RouteDecision

    @property
    def code_ok(self) -> bool:
        return bool(self.result.taxonomy_code == self.record["taxonomy_code"])

    @property
    def severity_ok(self) -> bool:
        return bool(self.result.severity == self.record["severity"])

    @property
    def routed(self) -> bool:
        return self.decision.status == "routed"


def load(path: Path) -> list[dict[str, Any]]:
    """The labelled records, refusing a line that lacks a label; `lang` and `split` may be absent; blank and `#`
    comment lines are skipped."""
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if comment_line(line):
            continue
        record = json.loads(line)
        missing = REQUIRED - record.keys()
        if missing:
            raise ValueError(f"{path}:{number}: missing {sorted(missing)}")
        record.setdefault("id", f"#{number}")
        records.append(record)
    return records


def evaluate(records: Iterable[dict[str, Any]], policy: RoutingPolicy,
             results: Sequence[Classification] | None = None) -> list[Outcome]:
    """Gate every record, classified by the rules unless `results` (one per record) are given."""
    rows = list(records)
    if results is None:
        classifier = build_classifier()
        results = [classifier.classify(record["text"]) for record in rows]
    return [Outcome(record, result, route(result, policy)) for record, result in zip(rows, results, strict=True)]


def learned_results(records: Sequence[dict[str, Any]], data: Path, guideline: bool = True
                    ) -> tuple[list[Classification], str]:
    """The learned classifier's decisions on `records` and how it was trained (see module docstring)."""
    from correlator.triage import RuleClassifier
    from correlator.triage.learned import LearnedClassifier
    from stream.triage_model import out_of_fold, read_labels, train

    rules = RuleClassifier()
    author, _ = read_labels(DATA.read_text(encoding="utf-8").splitlines(), "author")
    extra = read_labels(GUIDELINE_SET.read_text(encoding="utf-8").splitlines(), "guideline")[0] if guideline else []
    beside = f" and the {len(extra)} of {GUIDELINE_SET.name}" if extra else ""
    if data.resolve() == DATA:
        decided = [c for _, c, _ in out_of_fold(author, rules, always=extra)]
        return decided, (f"out-of-fold ({len(author)} texts, each decided by a model trained without its fold"
                         f"{beside})")
    model = train(author + extra, rules)
    texts = [r["text"] for r in records]
    return LearnedClassifier(rules, model).classify_many(texts), (
        f"trained on the {len(author)} texts of {DATA.name}{beside}, model {model.version}; {data.name} unseen")


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def per_code(outcomes: Sequence[Outcome]) -> list[dict[str, Any]]:
    """Precision, recall and support of each taxonomy code."""
    rows = []
    for code in DEFAULT_TAXONOMY:
        tp = sum(o.code_ok and o.result.taxonomy_code == code for o in outcomes)
        predicted = sum(o.result.taxonomy_code == code for o in outcomes)
        support = sum(o.record["taxonomy_code"] == code for o in outcomes)
        rows.append({"code": code, "precision": _ratio(tp, predicted), "recall": _ratio(tp, support),
                     "predicted": predicted, "support": support})
    return rows


def accuracy(outcomes: Sequence[Outcome]) -> dict[str, float | None]:
    """Share right on taxonomy, on severity, and on both."""
    n = len(outcomes)
    return {
        "taxonomy": _ratio(sum(o.code_ok for o in outcomes), n),
        "severity": _ratio(sum(o.severity_ok for o in outcomes), n),
        "both": _ratio(sum(o.code_ok and o.severity_ok for o in outcomes), n),
    }


def reliability(outcomes: Sequence[Outcome], thresholds: Sequence[float] = RELIABILITY_THRESHOLDS,
                policy: RoutingPolicy | None = None) -> list[dict[str, Any]]:
    """For each threshold, the share the gate would route and the share right (code and severity) among them."""
    base = policy or RoutingPolicy()
    rows = []
    for threshold in thresholds:
        gate = RoutingPolicy(threshold=threshold, tiers=base.tiers, tier_of_severity=base.tier_of_severity,
                             sla_minutes_of_tier=base.sla_minutes_of_tier)
        routed = [o for o in outcomes if route(o.result, gate).status == "routed"]
        rows.append({"threshold": threshold, "routed": len(routed), "share": _ratio(len(routed), len(outcomes)),
                     "both": accuracy(routed)["both"]})
    return rows


def section(outcomes: Sequence[Outcome]) -> dict[str, Any]:
    """Every figure of one section, JSON-ready."""
    routed = [o for o in outcomes if o.routed]
    held = [o for o in outcomes if not o.routed]
    langs = sorted({o.record["lang"] for o in outcomes if "lang" in o.record})
    return {
        "n": len(outcomes),
        "per_code": per_code(outcomes),
        "accuracy": accuracy(outcomes),
        "auto_routed": {"n": len(routed), "share": _ratio(len(routed), len(outcomes)), "accuracy": accuracy(routed)},
        "human_review": {"n": len(held), "share": _ratio(len(held), len(outcomes)), "accuracy": accuracy(held)},
        "reliability": reliability(outcomes),
        "by_lang": {lang: accuracy([o for o in outcomes if o.record.get("lang") == lang]) for lang in langs},
    }


def _f(value: float | None) -> str:
    return "  n/a" if value is None else f"{value:.3f}"


def _acc_line(label: str, acc: dict[str, float | None]) -> str:
    return f"accuracy {label}: taxonomy {_f(acc['taxonomy'])}  severity {_f(acc['severity'])}  both {_f(acc['both'])}"


def render(name: str, data: dict[str, Any], threshold: float) -> list[str]:
    """The text form of one section."""
    lines = [f"== {name} ({data['n']} texts) ==", f"{'code':<28} {'precision':>9} {'recall':>7} {'support':>7}"]
    for row in data["per_code"]:
        lines.append(f"{row['code']:<28} {_f(row['precision']):>9} {_f(row['recall']):>7} {row['support']:>7}")
    routed, held = data["auto_routed"], data["human_review"]
    lines.append(_acc_line("overall", data["accuracy"]))
    lines.append(
        f"gate: threshold {threshold:.2f}  auto-routed {routed['n']}/{data['n']} ({100 * (routed['share'] or 0):.1f}%)"
        f"  human_review {held['n']}/{data['n']} ({100 * (held['share'] or 0):.1f}%)"
    )
    lines.append(_acc_line("auto-routed", routed["accuracy"]))
    lines.append(_acc_line("human_review", held["accuracy"]))
    both = data["accuracy"]["both"]
    lines.append(f"both right: overall {_f(both)}  auto-routed {_f(routed['accuracy']['both'])}"
                 f"  human_review {_f(held['accuracy']['both'])}")
    for lang, acc in data["by_lang"].items():
        lines.append(_acc_line(f"lang={lang}", acc))
    lines.append(f"reliability (overall both right {_f(both)}):")
    lines.append(f"  {'threshold':>9} {'routed':>7} {'share':>6} {'both right among routed':>24}")
    for row in data["reliability"]:
        lines.append(f"  {row['threshold']:>9.2f} {row['routed']:>7} {100 * (row['share'] or 0):>5.1f}%"
                     f" {_f(row['both']):>24}")
    return lines


def side_by_side(rules: dict[str, Any], learned: dict[str, Any], threshold: float) -> str:
    """Rules alone against rules + model on the same texts: both right overall and among auto-routed."""
    lines = [f"\n== same run, threshold {threshold:.2f}: rules alone vs learned ==",
             f"{'':<10} {'both right':>10} {'taxonomy':>9} {'severity':>9} {'routed share':>13} {'routed both':>12}"]
    for name, data in (("rules", rules), ("learned", learned)):
        acc, routed = data["accuracy"], data["auto_routed"]
        lines.append(f"{name:<10} {_f(acc['both']):>10} {_f(acc['taxonomy']):>9} {_f(acc['severity']):>9}"
                     f" {100 * (routed['share'] or 0):>12.1f}% {_f(routed['accuracy']['both']):>12}")
    return "\n".join(lines)


def errors(outcomes: Sequence[Outcome]) -> list[str]:
    """One line per text triaged wrongly, for reading, not for tuning the held-out split against."""
    lines = ["== errors =="]
    for o in outcomes:
        if o.code_ok and o.severity_ok:
            continue
        r, rec = o.result, o.record
        lines.append(f"{rec['id']:>5} {rec.get('split', '-'):<7} want {rec['taxonomy_code']}/{rec['severity']}"
                     f" got {r.taxonomy_code}/{r.severity} {r.confidence:.2f} {o.decision.describe()}: {rec['text']}")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    """Run the evaluation and print it; exit code 0."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="the whole set in one section, no split breakdown")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    parser.add_argument("--errors", action="store_true", help="also list every text triaged wrongly")
    parser.add_argument("--threshold", type=float, default=RoutingPolicy().threshold)
    parser.add_argument("--data", type=Path, default=DATA, help="labelled NDJSON (default: %(default)s)")
    parser.add_argument("--rules-only", action="store_true", help="leave out the learned classifier")
    parser.add_argument("--without-guideline", action="store_true",
                        help=f"train the learned classifier without {GUIDELINE_SET.name}")
    args = parser.parse_args(argv)
    records = load(args.data)
    policy = RoutingPolicy(threshold=args.threshold)
    outcomes = evaluate(records, policy)
    learned: dict[str, Any] | None = None
    if not args.rules_only and not args.quick and learn_available():
        results, how = learned_results(records, args.data, not args.without_guideline)
        learned = {"how": how, "section": section(evaluate(records, policy, results))}
    sections = {"all": outcomes}
    if not args.quick:
        present = {str(o.record["split"]) for o in outcomes if "split" in o.record}
        splits = [s for s in SPLITS if s in present] + sorted(present - set(SPLITS))
        sections.update({split: [o for o in outcomes if o.record.get("split") == split] for split in splits})
    figures = {name: section(outs) for name, outs in sections.items()}
    if args.json:
        print(json.dumps({"threshold": args.threshold, "sections": figures, "learned": learned}, indent=2))
        return 0
    print(f"triage eval: {len(outcomes)} texts from {args.data.name}, threshold {args.threshold:.2f}")
    for name, data in figures.items():
        print("\n".join(render(name, data, args.threshold)))
    if learned is not None:
        print(f"\n## learned classifier (rules + model): {learned['how']}")
        print("\n".join("  " + line for line in render("learned: all", learned["section"], args.threshold)))
        print(side_by_side(figures["all"], learned["section"], args.threshold))
    if args.errors:
        print("\n".join(errors(outcomes)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
