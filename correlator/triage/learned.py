"""A learned classifier beside the rules: how the model's vote and the rules' answer combine, and its confidence.

The model itself (character n-gram TF-IDF and a linear model, trained on labelled tickets and reviewer
overrides) lives outside `correlator/` (`stream/triage_model.py`, scikit-learn); it is passed in as an object
with a `vote(text, rules)` method, so everything here stays pure and runs without scikit-learn.

How a decision is reached (`combine`), in order:
1. The rules stand when they are sure (confidence at least `rules_sure`): a decision the rule table is certain of
   (an application outage that blocks all users) is not second-guessed by a model trained on a few hundred texts.
2. Otherwise the most probable code and severity win, by the model's probabilities blended with the rules' own
   belief by how many labels the model has (`blend_k`: weight n/(n+k) on the model; `severity_k` for severity
   when set), except that the taxonomy's precedence is kept: when the rules chose a protected code (security by default: DESIGN.md, security beats
   every network-shaped symptom) on firm evidence and the model chose a code below it, the rules' code stands.
   With `hold_rules` (off by default since the fifth round; see CombineConfig), on each axis the rules' own
   label stands unless the model's weighted mass for the winner exceeds the rules' weighted mass for their label
   (`held`): the rules' belief spreads their doubt over the other labels, so below a confidence of 1/K their
   label is not the top of it and even a model of ten labels (weight 0.06) flipped the answer; with few labels
   the blend was then worse than the rules alone (issue 22).
3. Confidence: the probability of the code times that of the severity (of the blended answer, or with
   `gate_on="agreement"` of the model's own unblended answer, which must then be the answer given), mapped
   through the calibration curve fitted on held-out folds of the training data. Until that curve has been fitted on enough reviewers' labels
   (`lesser_until`; by default never, so always), the gate reads the lesser of it and the rules' support for
   the same answer (their confidence where they agree, at most their doubt where they do not): a curve fitted
   on the rules' author's texts, where the rules are nearly always right, is overconfident on other text
   (benchmarks/triage_shift.py).
4. Unmatched text stays unmatched (DESIGN.md): a decision of `unknown.uncategorized` on text that fired no rule
   keeps the rules' confidence ceiling (at most 0.25).
The reason line names the model version, the probabilities, the rules' answer and the nearest reviewed tickets.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal, Protocol, cast

from correlator.models import TicketSeverity
from correlator.triage.classifier import (
    MAX_NO_MATCH_CONFIDENCE,
    Classification,
    RuleClassifier,
)
from correlator.triage.taxonomy import DEFAULT_PRECEDENCE, SEVERITIES, UNKNOWN_CODE

__all__ = [
    "DEFAULT_COMBINE",
    "Calibration",
    "CombineConfig",
    "LearnedClassifier",
    "ModelVote",
    "Neighbour",
    "Pick",
    "TriageModel",
    "blended",
    "combine",
    "gated_confidence",
    "held",
    "own_pick",
    "propose",
    "raw_pick",
    "rules_support",
    "scored_pick",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Neighbour:
    """A labelled (reviewed) ticket near the text, by the model's own vectors: evidence and a proposal."""

    ticket_id: str
    taxonomy_code: str
    severity: TicketSeverity
    similarity: float
    source: str = "review"
    text: str = ""

    def cite(self) -> str:
        """The short form the reason line uses."""
        return f"{self.ticket_id} {self.taxonomy_code}/{self.severity} ({self.similarity:.2f})"


@dataclass(frozen=True, slots=True)
class Calibration:
    """A monotone map from a raw score to the chance of being right: points (x ascending, y), linear between.

    Fitted by isotonic regression on out-of-fold scores; held as plain numbers so applying it is pure. `reviews`
    is how many of the scores it was fitted on were reviewers' labels (not the rules' author's): what the gate
    asks before it trusts the curve on its own.
    """

    xs: tuple[float, ...] = (0.0, 1.0)
    ys: tuple[float, ...] = (0.0, 1.0)
    reviews: int = 0

    def __post_init__(self) -> None:
        if len(self.xs) != len(self.ys) or not self.xs:
            raise ValueError("calibration needs as many ys as xs, and at least one point")
        if any(b < a for a, b in zip(self.xs, self.xs[1:], strict=False)):
            raise ValueError("calibration xs must ascend")
        if any(not 0.0 <= y <= 1.0 for y in self.ys):
            raise ValueError("calibration ys must be in [0, 1]")

    def __call__(self, raw: float) -> float:
        """The calibrated confidence of a raw score (clamped to the fitted range at either end)."""
        xs, ys = self.xs, self.ys
        if raw <= xs[0]:
            return ys[0]
        if raw >= xs[-1]:
            return ys[-1]
        i = bisect.bisect_right(xs, raw)
        x0, x1, y0, y1 = xs[i - 1], xs[i], ys[i - 1], ys[i]
        return y0 if x1 == x0 else y0 + (y1 - y0) * (raw - x0) / (x1 - x0)


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelVote:
    """What the model says about one text: a probability per code and per severity, and the nearest tickets."""

    version: str
    codes: Mapping[str, float]
    severities: Mapping[str, float]
    neighbours: tuple[Neighbour, ...] = ()
    calibration: Calibration = Calibration()
    trained_on: int = 0


class TriageModel(Protocol):
    """A trained model: its version, and its vote on a text given what the rules said about it."""

    @property
    def version(self) -> str:
        """Content hash of the artifact: what an audit names as the model that decided."""
        ...

    def vote(self, text: str, rules: Classification) -> ModelVote:
        """Probabilities and neighbours for one text."""
        ...

    def votes(self, texts: Sequence[str], rules: Sequence[Classification]) -> list[ModelVote]:
        """The same for many texts at once (one pass through the model: what a batch or a benchmark wants)."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class CombineConfig:
    """How the rules and the model combine (chosen on the author's set only, by benchmarks/triage_shift.py).

    `blend_k`: the model's probabilities weigh n/(n+blend_k) against the rules' belief (n: labels it was trained
    on; 0: the model alone). `lesser_until`: the gate reads the lesser of the calibrated and the rules' confidence
    until the calibration was fitted on at least this many reviewers' labels (0: never; the default, infinity,
    always: in the shift protocol a curve fitted on 40 reviews still routed tickets right only 0.70-0.76 of the
    time). `disagree`: the rules' support for an answer not theirs: `doubt` (1 - their confidence) or `strict`
    (also at most their confidence, so in practice only agreement routes). `belief`: the rules' belief on each
    axis when blending: their confidence on each (`each`; a joint of about c squared) or its square root, so the
    joint of a model with no labels is the rules' own confidence (`joint`). `severity_k`: the same weighing for
    severity alone (None: `blend_k`). Severity is mostly policy (the guideline: who is affected and how hard),
    which the rules state and a model must infer from a few hundred labels, so it may need more of them before
    it outweighs the rules there than on the code. `gate_on`: what the model's side of the gate reads: its
    calibrated confidence in the blended answer (`blend`), or in its own answer, unblended, which must be the
    answer given (`agreement`; else only its doubt): blending pulls the answer towards the rules', so a
    blended answer that agrees with them is weaker evidence than the model agreeing on its own.

    `hold_rules`: the rules' label on an axis is overturned only when the model's weighted mass for the winner
    exceeds the rules' weighted mass for their own label (`held`); off, the plain most probable blended label
    wins (the behaviour before the fix, kept to measure against).

    Defaults: the fifth round of the shift protocol (session 30, its decision rule committed before the grid
    ran; the model trained beside the guideline-written set, `benchmarks/data/triage_guideline.ndjson`): blend
    320 with belief `each`, severity weighed alike, the gate on agreement, lesser always, strict, the rules
    standing when sure (0.95), and `hold_rules` off: the held blend routed one ticket fewer right (348 vs 349)
    though it had more both right (1,820 vs 1,689 of 2,940 scored). The few-labels defect `hold_rules` fixes
    comes back for a model of a few labels alone (`aiops triage train --no-author-set --no-guideline-set`); the
    shipped sets put at least 342 labels under every model (weight 342/662 at least).
    """

    rules_sure: float = 0.95
    protected_codes: tuple[str, ...] = ("security.incident",)
    protected_firm: float = 0.5
    precedence: tuple[str, ...] = DEFAULT_PRECEDENCE
    cite: int = 3
    blend_k: float = 320.0
    lesser_until: float = math.inf
    disagree: Literal["doubt", "strict"] = "strict"
    belief: Literal["each", "joint"] = "each"
    severity_k: float | None = None
    gate_on: Literal["blend", "agreement"] = "agreement"
    hold_rules: bool = False

    def __post_init__(self) -> None:
        if self.blend_k < 0 or self.lesser_until < 0 or (self.severity_k or 0.0) < 0:
            raise ValueError("blend_k, severity_k and lesser_until must not be negative")


DEFAULT_COMBINE = CombineConfig()


def _best(probs: Mapping[str, float], allowed: Sequence[str]) -> tuple[str, float]:
    ranked = sorted(((p, k) for k, p in probs.items() if k in allowed), key=lambda pk: (-pk[0], pk[1]))
    if not ranked:
        raise ValueError("the model gave no probability for any allowed label")
    return ranked[0][1], ranked[0][0]


def _rank(code: str, precedence: Sequence[str]) -> int:
    return precedence.index(code) if code in precedence else len(precedence)


def _rules_code_firm(rules: Classification, config: CombineConfig) -> bool:
    """Whether the rules' code is protected and firm enough to hold against the model."""
    return rules.taxonomy_code in config.protected_codes and rules.confidence >= config.protected_firm


def _no_match(rules: Classification) -> bool:
    """Whether the rules found nothing in the text (their answer then carries the no-match ceiling)."""
    return rules.taxonomy_code == UNKNOWN_CODE and rules.confidence <= MAX_NO_MATCH_CONFIDENCE and not any(
        t.startswith(("impact:", "scope:")) for t in rules.tags)


def _evidence(vote: ModelVote, cite: int) -> str:
    if not vote.neighbours or cite <= 0:
        return ""
    return "; similar labelled: " + ", ".join(n.cite() for n in vote.neighbours[:cite])


@dataclass(frozen=True, slots=True)
class Pick:
    """The model's choice before calibration: code and severity, their probabilities, and the raw score."""

    code: str
    p_code: float
    severity: TicketSeverity
    p_severity: float
    kept_rules_code: bool

    @property
    def raw(self) -> float:
        """The uncalibrated score: the chance of code and severity both right if the two were independent."""
        return self.p_code * self.p_severity


def _belief(chosen: str, confidence: float, labels: Sequence[str]) -> dict[str, float]:
    """The rules' answer as a distribution: their confidence on their label, the rest shared by the others."""
    rest = (1.0 - confidence) / max(1, len(labels) - 1)
    return {label: confidence if label == chosen else rest for label in labels}


def _blend(model: Mapping[str, float], rules: Mapping[str, float], weight: float) -> dict[str, float]:
    if weight >= 1.0:
        return dict(model)  # the model alone
    return {k: weight * model.get(k, 0.0) + (1.0 - weight) * rules.get(k, 0.0) for k in {*model, *rules}}


def _per_axis(rules: Classification, config: CombineConfig) -> float:
    """The rules' belief in their own label on each axis (see `belief` in CombineConfig)."""
    return math.sqrt(rules.confidence) if config.belief == "joint" else rules.confidence


def _weights(vote: ModelVote, config: CombineConfig) -> tuple[float, float]:
    """The model's weight against the rules' belief, on the code and on severity: n/(n+k), 1 when k <= 0."""
    def weight(k: float) -> float:
        return 1.0 if k <= 0 else vote.trained_on / (vote.trained_on + k)

    return weight(config.blend_k), weight(config.blend_k if config.severity_k is None else config.severity_k)


def blended(rules: Classification, vote: ModelVote, taxonomy: Sequence[str],
            config: CombineConfig = DEFAULT_COMBINE) -> tuple[dict[str, float], dict[str, float]]:
    """Code and severity probabilities: the model's, weighed n/(n+k) against the rules' own belief (k: `blend_k`,
    and for severity `severity_k` when set; k = 0 is the model alone)."""
    per_axis = _per_axis(rules, config)
    w_code, w_sev = _weights(vote, config)
    return (_blend(vote.codes, _belief(rules.taxonomy_code, per_axis, taxonomy), w_code),
            _blend(vote.severities, _belief(rules.severity, per_axis, SEVERITIES), w_sev))


def held(blend: Mapping[str, float], model: Mapping[str, float], rules_label: str, rules_mass: float,
         weight: float, allowed: Sequence[str]) -> tuple[str, float]:
    """One axis's answer: the most probable blended label, but the rules' label stands unless the model's
    weighted mass for the winner exceeds the rules' weighted mass for theirs (weight * p_model > (1 - weight) *
    rules_mass). Why: the rules' doubt is spread over the other labels, so when it is larger than their
    confidence their label is not the top of their own belief and a model of a few labels would decide alone.
    Returns the label and its blended probability."""
    label, p = _best(blend, allowed)
    if label == rules_label or weight * model.get(label, 0.0) > (1.0 - weight) * rules_mass:
        return label, p
    return rules_label, blend.get(rules_label, 0.0)


def raw_pick(rules: Classification, vote: ModelVote, taxonomy: Sequence[str],
             config: CombineConfig = DEFAULT_COMBINE) -> Pick:
    """The most probable code and severity (blended as configured; the rules' label held against a light model,
    see `held`), the rules' protected code kept by precedence."""
    codes, severities = blended(rules, vote, taxonomy, config)
    if config.hold_rules:
        mass, (w_code, w_sev) = _per_axis(rules, config), _weights(vote, config)
        code, p_code = held(codes, vote.codes, rules.taxonomy_code, mass, w_code, taxonomy)
        severity, p_sev = held(severities, vote.severities, rules.severity, mass, w_sev, SEVERITIES)
    else:
        (code, p_code), (severity, p_sev) = _best(codes, taxonomy), _best(severities, SEVERITIES)
    kept = _rules_code_firm(rules, config) and _rank(rules.taxonomy_code, config.precedence) < _rank(
        code, config.precedence)
    if kept:
        code, p_code = rules.taxonomy_code, codes.get(rules.taxonomy_code, 0.0)
    return Pick(code, p_code, cast(TicketSeverity, severity), p_sev, kept)


def own_pick(rules: Classification, vote: ModelVote, taxonomy: Sequence[str],
             config: CombineConfig = DEFAULT_COMBINE) -> Pick | None:
    """The model's own answer, unblended, when the gate reads it (`gate_on="agreement"`), else None."""
    if config.gate_on != "agreement":
        return None
    return raw_pick(rules, vote, taxonomy, replace(config, blend_k=0.0, severity_k=None))


def scored_pick(rules: Classification, vote: ModelVote, taxonomy: Sequence[str],
                config: CombineConfig = DEFAULT_COMBINE) -> Pick:
    """The pick whose raw score the calibration maps: the model's own when the gate reads it, else the blend's."""
    return own_pick(rules, vote, taxonomy, config) or raw_pick(rules, vote, taxonomy, config)


def rules_support(rules: Classification, code: str, severity: str, config: CombineConfig = DEFAULT_COMBINE) -> float:
    """How far the rules back an answer: their confidence when it is theirs, else their doubt (see CombineConfig)."""
    if (code, severity) == (rules.taxonomy_code, rules.severity):
        return rules.confidence
    doubt = 1.0 - rules.confidence
    return min(doubt, rules.confidence) if config.disagree == "strict" else doubt


def gated_confidence(rules: Classification, vote: ModelVote, pick: Pick,
                     config: CombineConfig = DEFAULT_COMBINE, own: Pick | None = None) -> tuple[float, bool]:
    """The confidence the gate reads, and whether the rules' support capped it (see the module docstring).

    With `own` (the model's unblended answer, `gate_on="agreement"`) the model's side is its calibrated
    confidence in that answer when it is the one given, else at most its doubt.
    """
    confidence = vote.calibration((own or pick).raw)
    if own is not None and (own.code, own.severity) != (pick.code, pick.severity):
        confidence = min(confidence, 1.0 - confidence)
    capped = False
    if vote.calibration.reviews < config.lesser_until:
        support = rules_support(rules, pick.code, pick.severity, config)
        capped = support < confidence
        confidence = min(confidence, support)
    if pick.code == UNKNOWN_CODE and _no_match(rules):
        confidence = min(confidence, rules.confidence)
    return round(max(0.0, min(1.0, confidence)), 2), capped


def combine(rules: Classification, vote: ModelVote, taxonomy: Sequence[str],
            config: CombineConfig = DEFAULT_COMBINE) -> Classification:
    """The decision of the rules and the model together, with calibrated confidence and a reason naming both."""
    said = f"rules said {rules.taxonomy_code}/{rules.severity} ({rules.confidence:.2f})"
    if rules.confidence >= config.rules_sure:
        return replace(rules, reason=f"{rules.reason} [model {vote.version}: rules sure, they stand"
                       f"{_evidence(vote, config.cite)}]", model_version=vote.version)
    pick = raw_pick(rules, vote, taxonomy, config)
    code, severity = pick.code, pick.severity
    confidence, capped = gated_confidence(rules, vote, pick, config, own_pick(rules, vote, taxonomy, config))
    kept = " (rules' code kept: security beats network symptoms)" if pick.kept_rules_code else ""
    how = "capped by the rules' support" if capped else "calibrated confidence"
    reason = (f"model {vote.version}: {code} ({pick.p_code:.2f}){kept}, {severity} ({pick.p_severity:.2f}); {said}"
              f"{_evidence(vote, config.cite)} -> {severity}, {how} {confidence:.2f}")
    return Classification(severity=severity, confidence=confidence, taxonomy_code=code,
                          tags=rules.tags, reason=reason, classifier="learned", model_version=vote.version)


def propose(neighbours: Sequence[Neighbour]) -> dict[str, object] | None:
    """A reviewer's proposal from the nearest labelled tickets: the code and severity with the most similarity."""
    if not neighbours:
        return None
    weight: dict[tuple[str, str], float] = {}
    for n in neighbours:
        key = (n.taxonomy_code, n.severity)
        weight[key] = weight.get(key, 0.0) + n.similarity
    (code, severity), score = max(weight.items(), key=lambda kv: (kv[1], kv[0]))
    return {"taxonomy_code": code, "severity": severity, "support": round(score / sum(weight.values()), 2),
            "from": [n.ticket_id for n in neighbours if (n.taxonomy_code, n.severity) == (code, severity)]}


class LearnedClassifier:
    """The rules and a trained model together (`combine`); a Classifier like any other. Pure given the model."""

    name = "learned"

    def __init__(self, rules: RuleClassifier, model: TriageModel, config: CombineConfig = DEFAULT_COMBINE) -> None:
        self.rules = rules
        self.model = model
        self.config = config

    @property
    def version(self) -> str:
        """The model's version."""
        return self.model.version

    def classify(self, text: str) -> Classification:
        """Classify one text: the rules first, then the model's vote given theirs, then the combination."""
        said = self.rules.classify(text)
        return combine(said, self.model.vote(text, said), self.rules.config.taxonomy, self.config)

    def classify_many(self, texts: Sequence[str]) -> list[Classification]:
        """Classify many texts, the model voting on all of them in one pass."""
        said = [self.rules.classify(t) for t in texts]
        votes = self.model.votes(texts, said) if texts else []
        return [combine(s, v, self.rules.config.taxonomy, self.config) for s, v in zip(said, votes, strict=True)]
