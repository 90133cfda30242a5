"""The development protocol for learned triage: choose under simulated distribution shift, on the author's set only.

Why a protocol of its own. The rules were tuned on the author's set (`data/triage_eval.ndjson`), so in plain
cross-validation there the rules' answer is nearly always right: a model fed that answer learns to copy it, and
a calibration fitted there learns that a confident copy is right. Both fail on text the rules' author never
saw. Choosing on plain cross-validation rewards exactly that shortcut. This protocol never reads the blind set
(`data/triage_blind.ndjson`); it makes the shift out of the author's set itself, in two ways at once:

1. **Language shift for the model**: train on one language's texts (81), score the other's (en -> lv, lv -> en).
   Character n-grams carry little across the two languages, so the model meets vocabulary it never saw.
2. **Coverage shift for the rules**: the rules lose a share `drop` (0, 0.5, 1) of the rule patterns that match
   some text of the scored language and no text of the training language. By construction the rules answer
   the training texts exactly as before (they stay "fitted to their author's set") and cover the scored
   language worse: the rules-copy shortcut and an overconfident calibration now cost what they cost on text
   the rules were not written for. Rules without a pattern left are removed.
3. **Reviewers' labels**: `overrides` (0 or 40) texts of the scored language join the training set as reviewer
   overrides (source `override`), the rest are scored: what "calibration has seen real overrides" means here.

Conditions: drop in {0, 0.5, 1} x overrides in {0, 40}, both directions; a random drop or choice of overrides
is repeated for seeds 0 and 1. Per condition the decisions of all its runs are pooled. Threshold 0.5.

Candidates (a grid, all decided by the same rule): the rules' answer as model features (`rules_weight` 1) or
not (0); calibration on every label or on reviewers' labels only; blending the model with the rules by how many
labels it has (`blend_k` 0 = off, 40, 160; the rules' belief per axis their confidence, `each`, or its square
root, `joint`, added in a second round after the first showed `each` squares it; in a third round, once the rules
stated the labelling guideline's severity policy, severity weighed apart with `severity_k` 160 or 640, so the
model needs more labels to outweigh the rules there); the gate on the calibrated confidence alone, or on the
lesser of it and the rules' support (`lesser_until` 30 = until the curve has seen 30 reviewers' labels, or
always), where a disagreement counts the rules' doubt (`doubt`) or routes nothing (`strict`); in a fourth round
(after the third showed blending towards the rules loosens the gate: a blended answer agrees with them more
often than the model does), the model's side of the gate read from its own unblended answer (`gate_on`
`agreement`), for the blended candidates that gate on the lesser always.

**Decision rule, fixed before the grid was run**: (1) the gate's promise first: the smallest, over conditions,
of both-right among routed tickets, capped at 0.85 (a candidate that keeps >= 0.85 everywhere ties with every
other that does; a condition where nothing is routed keeps the promise); (2) then the most tickets routed and
right, pooled over all conditions; (3) then the most tickets both right overall. The winner is printed first;
the rules alone, on the same ablated rules, are printed beside every condition.

**Fifth round** (`--round 5`, the default; issue 22, session 30), after the few-labels fix (`hold_rules`) and a
second labelled set written from the labelling guideline (`data/triage_guideline.ndjson`, 180 texts, never
derived from the blind set). The pool is both sets; the scored texts of a scenario are the scored language's
texts of both (overrides still come from the author's set only), so every candidate is scored on the same texts,
and the rules' coverage shift drops patterns that match only the scored language in either set. Candidates:
the training data (`author`: the training language's author texts, as in rounds 1-4; `guideline`: those and the
training language's guideline texts), the few-labels fix on or off (`hold_rules`), `blend_k` 80/160/320,
`severity_k` None (= blend_k)/640/1280, and whether the rules stand when sure (`rules_sure` 0.95, or never: 1.01);
all with round 4's gate (on agreement, lesser always, strict), no rules' answer as features, calibration on every
label. Same decision rule. `--round 4` reruns rounds 1-4's grid on the author's set alone.

    python benchmarks/triage_shift.py [--json PATH] [--round 5|4]     # 10-25 minutes on 2 busy cores
"""

from __future__ import annotations

import argparse
import itertools
import json
import pickle
import random
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from triage_eval import DATA, evaluate, load

from correlator.triage import Classification, RoutingPolicy, RuleClassifier
from correlator.triage.learned import CombineConfig, ModelVote, combine
from correlator.triage.rules import Rule
from correlator.triage.text import compile_patterns, fold
from stream.commands.train import GUIDELINE_SET
from stream.triage_model import Example, ModelParams, calibrate, fit, oof_votes

LANGS = ("en", "lv")
DROPS = (0.0, 0.5, 1.0)
OVERRIDES = (0, 40)
SEEDS = (0, 1)
SEVERITY_KS = (160.0, 640.0)
PROMISE = 0.85
DATA_VARIANTS = ("author", "guideline")


@dataclass(frozen=True)
class Candidate:
    """One combination of the mechanisms under test."""

    rules_weight: float
    calibrate_on: str
    blend_k: float
    lesser_until: int
    disagree: str
    belief: str = "each"
    severity_k: float | None = None
    gate_on: str = "blend"
    data: str = "author"
    hold_rules: bool = True
    rules_sure: float = 0.95

    def label(self) -> str:
        gate = "model" if self.lesser_until == 0 else (
            f"lesser<{self.lesser_until}rev" if self.lesser_until < 10**6 else "lesser always")
        gate += f"/{self.disagree}" if self.lesser_until else ""
        gate += ", on agreement" if self.gate_on == "agreement" else ""
        blend = f"{self.blend_k:g}" + (f"/{self.belief}" if self.blend_k else "")
        blend += f", sev {self.severity_k:g}" if self.severity_k is not None else ""
        fifth = f"data {self.data}, {'held' if self.hold_rules else 'unheld'}, sure {self.rules_sure:g}, "
        return f"{fifth}rules-feat {self.rules_weight:g}, calib {self.calibrate_on}, blend {blend}, gate {gate}"

    def combine_config(self) -> CombineConfig:
        return CombineConfig(blend_k=self.blend_k, lesser_until=self.lesser_until,
                             disagree="strict" if self.disagree == "strict" else "doubt",
                             belief="joint" if self.belief == "joint" else "each", severity_k=self.severity_k,
                             gate_on="agreement" if self.gate_on == "agreement" else "blend",
                             hold_rules=self.hold_rules, rules_sure=self.rules_sure)


def fifth_round() -> list[Candidate]:
    """Round 5's grid (see the module docstring)."""
    return [Candidate(0.0, "all", k, 10**9, "strict", "each", sk, "agreement", data, hold, sure)
            for data, hold, k, sk, sure in itertools.product(DATA_VARIANTS, (True, False), (80.0, 160.0, 320.0),
                                                             (None, 640.0, 1280.0), (0.95, 1.01))]


def candidates() -> list[Candidate]:
    """Rounds 1-4's grid (see the module docstring)."""
    gates = [(0, "doubt"), (30, "doubt"), (30, "strict"), (10**9, "doubt"), (10**9, "strict")]
    blends = [(0.0, "each"), (40.0, "each"), (160.0, "each"), (40.0, "joint"), (160.0, "joint")]
    grid = [Candidate(rw, cal, k, until, dis, belief) for rw, cal, (k, belief), (until, dis)
            in itertools.product((1.0, 0.0), ("all", "reviews"), blends, gates)]
    # Third round (issue 22, guideline severity): severity weighed apart from the code, on the blended candidates.
    grid += [replace(c, severity_k=sk) for c in grid if c.blend_k for sk in SEVERITY_KS]
    # Fourth round: the gate reads the model's own unblended answer, which must agree (blended, lesser always).
    return grid + [replace(c, gate_on="agreement") for c in grid if c.blend_k and c.lesser_until > 10**6]


def ablated_rules(records: Sequence[dict[str, Any]], train_lang: str, drop: float, seed: int) -> RuleClassifier:
    """The default rules less a share `drop` of the patterns that match the scored language only."""
    base = RuleClassifier().config
    folded = [(r["lang"], fold(r["text"])) for r in records]
    only_target: list[tuple[str, str]] = []
    for rule in base.rules:
        for pattern in rule.patterns:
            regex = compile_patterns((pattern,))
            langs = {lang for lang, text in folded if regex.search(text)}
            if langs and train_lang not in langs:
                only_target.append((rule.name, pattern))
    rng = random.Random(seed)
    dropped = set(rng.sample(only_target, round(drop * len(only_target))))
    kept: list[Rule] = []
    for rule in base.rules:
        patterns = tuple(p for p in rule.patterns if (rule.name, p) not in dropped)
        if patterns:
            kept.append(replace(rule, patterns=patterns))
    return RuleClassifier(replace(base, rules=tuple(kept)))


@dataclass
class Run:
    """One scenario: its training examples, the scored records, the rules it used, and the model's votes."""

    condition: tuple[float, int]
    data: str
    train: list[Example]
    scored: list[dict[str, Any]]
    rules: RuleClassifier
    said: list[Classification]
    oof: dict[float, list[tuple[int, Classification, ModelVote]]]
    votes: dict[float, list[ModelVote]]


def example(record: dict[str, Any], source: str) -> Example:
    """A labelled record as a training example."""
    return Example(record["id"], record["text"], record["taxonomy_code"], record["severity"], source)


def scenarios(records: list[dict[str, Any]], extra: Sequence[dict[str, Any]] = ()
              ) -> Iterator[tuple[tuple[float, int], str, list[Example], list[dict[str, Any]], RuleClassifier,
                              list[Example]]]:
    """Every (condition, direction, seed): training examples (the author's set and overrides), scored records
    (the scored language's, of `records` less the overrides and of `extra`), ablated rules, and the training
    language's `extra` records as examples (what the `guideline` data variant adds to the training)."""
    pool = [*records, *extra]
    for drop, overrides, train_lang in itertools.product(DROPS, OVERRIDES, LANGS):
        seeds = SEEDS if (0.0 < drop < 1.0 or overrides) else SEEDS[:1]
        for seed in seeds:
            source = [r for r in records if r["lang"] == train_lang]
            target = [r for r in records if r["lang"] != train_lang]
            rng = random.Random(1000 + seed)
            fed = set(rng.sample(range(len(target)), overrides))
            train = [example(r, r["split"]) for r in source] + [example(target[i], "override") for i in sorted(fed)]
            scored = [r for i, r in enumerate(target) if i not in fed] + [r for r in extra if r["lang"] != train_lang]
            beside = [example(r, str(r.get("source", "guideline"))) for r in extra if r["lang"] == train_lang]
            yield (drop, overrides), f"{train_lang}->{'lv' if train_lang == 'en' else 'en'} seed {seed}", train, \
                scored, ablated_rules(pool, train_lang, drop, seed), beside


def prepare(records: list[dict[str, Any]], extra: Sequence[dict[str, Any]] = (), weights: Sequence[float] = (1.0, 0.0),
            variants: Sequence[str] = ("author",)) -> list[Run]:
    """Train every scenario's models once per feature weight and data variant: out-of-fold votes and votes on the
    scored texts."""
    runs = []
    for condition, name, base, scored, rules, beside in scenarios(records, extra):
        said = [rules.classify(r["text"]) for r in scored]
        for data in variants:
            train = base + beside if data == "guideline" else base
            oof, votes = {}, {}
            for weight in weights:
                params = ModelParams(rules_weight=weight)
                oof[weight] = oof_votes(train, rules, params)
                votes[weight] = fit(train, rules, params).votes([r["text"] for r in scored], said)
            runs.append(Run(condition, data, train, scored, rules, said, oof, votes))
            print(f"  trained drop {condition[0]:g}, overrides {condition[1]}, {name}, data {data}: {len(train)} "
                  f"train, {len(scored)} scored", flush=True)
    return runs


def decide(run: Run, cand: Candidate) -> list[Classification]:
    """The candidate's decisions on a run's scored texts."""
    config = cand.combine_config()
    taxonomy = run.rules.config.taxonomy
    calibration = calibrate(run.train, run.oof[cand.rules_weight], taxonomy, config,
                            "reviews" if cand.calibrate_on == "reviews" else "all")
    return [combine(s, replace(v, calibration=calibration), taxonomy, config)
            for s, v in zip(run.said, run.votes[cand.rules_weight], strict=True)]


def tally(records: Sequence[dict[str, Any]], results: Sequence[Classification] | None, rules: RuleClassifier,
          policy: RoutingPolicy) -> dict[str, int]:
    """Counts: scored, both right, routed, routed and both right (the rules alone when `results` is None)."""
    decided = list(results) if results is not None else [rules.classify(r["text"]) for r in records]
    outs = evaluate(records, policy, decided)
    return {"n": len(outs), "right": sum(o.code_ok and o.severity_ok for o in outs),
            "routed": sum(o.routed for o in outs), "routed_right": sum(o.routed and o.code_ok and o.severity_ok
                                                                      for o in outs)}


def pooled(runs: Sequence[Run], decide_run: Any, policy: RoutingPolicy, data: str = "author"
           ) -> dict[tuple[float, int], dict[str, int]]:
    """Per condition, the counts of all its runs (of one data variant) added up."""
    out: dict[tuple[float, int], dict[str, int]] = {}
    for run in runs:
        if run.data != data:
            continue
        counts = tally(run.scored, decide_run(run), run.rules, policy)
        total = out.setdefault(run.condition, dict.fromkeys(counts, 0))
        for key, value in counts.items():
            total[key] += value
    return out


def score(per: dict[tuple[float, int], dict[str, int]]) -> tuple[float, int, int]:
    """The decision rule's key: worst routed precision (capped at the promise), routed right, both right."""
    worst = min(min(PROMISE, c["routed_right"] / c["routed"]) if c["routed"] else PROMISE for c in per.values())
    return (round(worst, 4), sum(c["routed_right"] for c in per.values()), sum(c["right"] for c in per.values()))


def _row(name: str, per: dict[tuple[float, int], dict[str, int]]) -> str:
    cells = []
    for cond in sorted(per):
        c = per[cond]
        precision = f"{c['routed_right'] / c['routed']:.2f}" if c["routed"] else " n/a"
        cells.append(f"{c['right'] / c['n']:.2f} {c['routed'] / c['n']:>4.0%} {precision}")
    return f"{name:<72} | " + " | ".join(cells)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the grid, print every candidate (best first) beside the rules alone, name the winner."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--json", type=Path, default=None, help="also write every figure to this file")
    parser.add_argument("--threshold", type=float, default=RoutingPolicy().threshold)
    parser.add_argument("--cache", type=Path, default=None,
                        help="keep the trained runs in this pickle and reuse them (the slow part: ~25 minutes)")
    parser.add_argument("--round", type=int, choices=(4, 5), default=5,
                        help="5: the fifth round's grid on both sets; 4: rounds 1-4's grid on the author's set")
    args = parser.parse_args(argv)
    policy = RoutingPolicy(threshold=args.threshold)
    records = load(DATA)
    extra = load(GUIDELINE_SET) if args.round == 5 else []
    print(f"triage shift protocol, round {args.round}: {len(records)} texts of {DATA.name}"
          + (f" and {len(extra)} of {GUIDELINE_SET.name}" if extra else "") + " (the blind set is not read)")
    if args.cache is not None and args.cache.is_file():
        runs = pickle.loads(args.cache.read_bytes())  # noqa: S301 - our own file, written below
    else:
        runs = prepare(records, extra, (0.0,), DATA_VARIANTS) if args.round == 5 else prepare(records)
        if args.cache is not None:
            args.cache.write_bytes(pickle.dumps(runs))
    rules_alone = pooled(runs, lambda run: None, policy)
    grid = fifth_round() if args.round == 5 else candidates()
    results = {cand: pooled(runs, lambda run, c=cand: decide(run, c), policy, cand.data) for cand in grid}
    ranked = sorted(results, key=lambda c: score(results[c]), reverse=True)
    conds = sorted(rules_alone)
    print("cells: both right, routed share, both right among routed; per (drop, overrides) condition, pooled")
    print(f"{'':<72} | " + " | ".join(f"drop {d:g} ovr {o:<3}    " for d, o in conds))
    print(_row("rules alone (same ablated rules)", rules_alone))
    for cand in ranked:
        print(_row(cand.label(), results[cand]) + f"  key {score(results[cand])}")
    winner = ranked[0]
    print(f"\nchosen by the decision rule: {winner.label()}  {winner}")
    if args.json:
        args.json.write_text(json.dumps({
            "conditions": [list(c) for c in conds],
            "rules_alone": {str(c): v for c, v in rules_alone.items()},
            "candidates": [{"candidate": vars(c), "key": score(results[c]),
                            "per": {str(k): v for k, v in results[c].items()}} for c in ranked]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
