"""The deterministic classifier: the rule table applied to folded text, with precedence and a severity matrix.

How a decision is reached, in order:
1. Every rule whose patterns match the folded text fires once; its weight is added to its effect's tally.
2. Taxonomy: among codes whose evidence is firm (at least `firm_score`), the earliest in `precedence` wins;
   with no firm code the highest evidence wins (ties by precedence); with none at all, `unknown.uncategorized`.
3. Impact and scope: the level with the most evidence (ties to the worse level); an axis the text says nothing
   about is taken from the winning code's profile.
4. Severity: the matrix cell for (impact, scope), unless the code's profile fixes it (requests are sev3).
5. Confidence in the decision as a whole (DESIGN.md: it is what the gate reads), so that the gate holds back
   the tickets triage is likely to get wrong, and most of those are wrong on severity, not on the code:
   - the code: its evidence capped at 1, minus `conflict_penalty` times the strongest rival code's;
   - each axis: the chance its level is right. A level the text names gets `cue_floor` plus the rest of the
     way in proportion to its evidence, times its share of the evidence for all levels named (conflicting
     cues make a coin flip); if the code's profile has the same level, the two count as independent
     reasons. A level taken from the profile alone gets that profile's credit for the axis times the code's
     confidence (a default is a guess, and how good a guess depends on the code);
   - the severity: the chance that the (impact, scope) cell lands on the chosen severity when each axis is
     right with its chance and otherwise on one of its other levels alike. The matrix decides how much an
     unsure axis matters: with no impact the scope cannot change sev3, with blocked impact it decides all;
   - the whole: the lesser of the code's and the severity's (a decision is as sure as its weakest part);
     without a code, the severity's alone (DESIGN.md: an application outage keeps its severity and
     confidence). Hedges ("something feels off") then scale it down. Text with no code, impact or scope
     evidence gets `no_match_confidence` (at most 0.25).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from correlator.models import TicketSeverity
from correlator.triage.rules import DEFAULT_RULES, Rule
from correlator.triage.taxonomy import (
    DEFAULT_PRECEDENCE,
    DEFAULT_PROFILE,
    DEFAULT_PROFILES,
    DEFAULT_SEVERITY_MATRIX,
    DEFAULT_TAXONOMY,
    IMPACTS,
    SCOPES,
    UNKNOWN_CODE,
    CodeProfile,
    Impact,
    Scope,
)
from correlator.triage.text import compile_patterns, fold

__all__ = [
    "Classification", "Classifier", "TriageConfig", "DEFAULT_TRIAGE_CONFIG", "RuleClassifier",
    "MAX_NO_MATCH_CONFIDENCE",
]

MAX_NO_MATCH_CONFIDENCE = 0.25


@dataclass(frozen=True, slots=True, kw_only=True)
class Classification:
    """What triage decided about one text: severity, confidence, one taxonomy code, tags and a one-line reason."""

    severity: TicketSeverity
    confidence: float
    taxonomy_code: str
    tags: tuple[str, ...] = ()
    reason: str = ""
    classifier: str = "rules"
    model_version: str | None = None  # the learned model that decided (correlator/triage/learned.py), if any


class Classifier(Protocol):
    """Anything that classifies ticket text; the rule classifier and any plug-in share this seam."""

    def classify(self, text: str) -> Classification:
        """Classify one ticket or alert text."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class TriageConfig:
    """Everything the deterministic classifier reads, with the defaults of DESIGN.md.

    Rules voting for a code outside `taxonomy` are inactive, so a narrowed taxonomy stays closed. `plugin` is an
    import path (`package.module:factory`) of an optional classifier; None keeps the deterministic one only.
    """

    taxonomy: tuple[str, ...] = DEFAULT_TAXONOMY
    precedence: tuple[str, ...] = DEFAULT_PRECEDENCE
    rules: tuple[Rule, ...] = DEFAULT_RULES
    profiles: tuple[CodeProfile, ...] = DEFAULT_PROFILES
    matrix: tuple[tuple[Impact, Scope, TicketSeverity], ...] = DEFAULT_SEVERITY_MATRIX
    firm_score: float = 0.5
    cue_floor: float = 0.5
    conflict_penalty: float = 0.25
    max_hedge: float = 0.5
    no_match_confidence: float = 0.2
    plugin: str | None = None
    plugin_timeout_s: float = 2.0
    plugin_options: tuple[tuple[str, str], ...] = ()  # what the plug-in's factory reads (an endpoint, a model)

    def __post_init__(self) -> None:
        if UNKNOWN_CODE not in self.taxonomy:
            raise ValueError(f"taxonomy must contain {UNKNOWN_CODE}")
        if not 0.0 <= self.no_match_confidence <= MAX_NO_MATCH_CONFIDENCE:
            raise ValueError(f"no_match_confidence must be in [0, {MAX_NO_MATCH_CONFIDENCE}]")
        if {(i, s) for i, s, _ in self.matrix} != {(i, s) for i in IMPACTS for s in SCOPES}:
            raise ValueError("severity matrix must name every (impact, scope) pair")
        names = [r.name for r in self.rules]
        if len(names) != len(set(names)):
            raise ValueError("rule names must be unique: the reason names them")
        if not 0.0 <= self.max_hedge < 1.0:
            raise ValueError("max_hedge must be in [0, 1)")
        if not 0.0 <= self.cue_floor <= 1.0:
            raise ValueError("cue_floor must be in [0, 1]")


DEFAULT_TRIAGE_CONFIG = TriageConfig()


@dataclass(slots=True)
class _Tally:
    """Evidence summed per effect, and which rules gave it."""

    codes: dict[str, float] = field(default_factory=dict)
    impacts: dict[str, float] = field(default_factory=dict)
    scopes: dict[str, float] = field(default_factory=dict)
    hedge: float = 0.0
    names: dict[str, list[str]] = field(default_factory=dict)
    phrases: dict[str, list[str]] = field(default_factory=dict)

    def add(self, rule: Rule, phrases: list[str]) -> None:
        """Count one fired rule under its effect."""
        if rule.code is not None:
            key = rule.code
            self.codes[key] = self.codes.get(key, 0.0) + rule.weight
        elif rule.impact is not None:
            key = "impact:" + rule.impact
            self.impacts[rule.impact] = self.impacts.get(rule.impact, 0.0) + rule.weight
        elif rule.scope is not None:
            key = "scope:" + rule.scope
            self.scopes[rule.scope] = self.scopes.get(rule.scope, 0.0) + rule.weight
        else:
            key = "hedge"
            self.hedge += rule.weight
        unique = list(dict.fromkeys(phrases))
        self.names.setdefault(key, []).append(f"{rule.name}({', '.join(unique)})")
        self.phrases.setdefault(key, []).extend(unique)

    @property
    def has_evidence(self) -> bool:
        """Whether any code, impact or scope rule fired (hedges alone are not evidence)."""
        return bool(self.codes or self.impacts or self.scopes)


@dataclass(frozen=True, slots=True)
class _Axis:
    """One severity axis: its level, the chance that level is right, and whether the text named it."""

    level: str
    confidence: float
    from_text: bool

    def chance(self, level: str, levels: Sequence[str]) -> float:
        """The chance of `level`: this axis's confidence for its own level, the rest shared by the others."""
        if level == self.level:
            return self.confidence
        return (1.0 - self.confidence) / (len(levels) - 1)


def _capped(score: float) -> float:
    return min(1.0, score)


def _ranked(scores: Mapping[str, float], order: Sequence[str]) -> list[str]:
    """Keys by descending capped score, ties broken by their place in `order`."""
    position = {key: i for i, key in enumerate(order)}
    return sorted(scores, key=lambda k: (-_capped(scores[k]), position.get(k, len(order))))


def _rival_penalty(scores: Mapping[str, float], winner: str, penalty: float) -> float:
    rivals = [_capped(v) for k, v in scores.items() if k != winner]
    return penalty * max(rivals, default=0.0)


class RuleClassifier:
    """The default classifier: the rule table, precedence, and the severity matrix. Pure and deterministic."""

    name = "rules"

    def __init__(self, config: TriageConfig = DEFAULT_TRIAGE_CONFIG) -> None:
        self.config = config
        active = [r for r in config.rules if r.code is None or r.code in config.taxonomy]
        self._rules: list[tuple[Rule, re.Pattern[str]]] = [(r, compile_patterns(r.patterns)) for r in active]
        self._profiles = {p.code: p for p in config.profiles}
        self._matrix: dict[tuple[str, str], TicketSeverity] = {(i, s): sev for i, s, sev in config.matrix}
        listed = [c for c in config.precedence if c in config.taxonomy]
        self._order = listed + [c for c in config.taxonomy if c not in listed]

    def classify(self, text: str) -> Classification:
        """Classify one text; the same text always gives the same answer."""
        folded = fold(text)
        tally = self._tally(folded)
        if not tally.has_evidence:
            return self._no_match(tally, _language(text, folded))
        code, code_conf = self._pick_code(tally.codes)
        profile = self._profiles.get(code, DEFAULT_PROFILE)
        # Without a code the profile is a fallback, not evidence the code gave: its credit stands unscaled.
        scale = code_conf if code != UNKNOWN_CODE else 1.0
        impact = self._axis(tally.impacts, IMPACTS, profile.impact, profile.impact_credit * scale)
        scope = self._axis(tally.scopes, SCOPES, profile.scope, profile.scope_credit * scale)
        if profile.severity is not None:  # the code fixes it: the axes are reported, not asked
            severity, severity_conf = profile.severity, 1.0
        else:
            severity = self._matrix[(impact.level, scope.level)]
            severity_conf = self._severity_confidence(impact, scope, severity)
        confidence = min(code_conf, severity_conf) if code != UNKNOWN_CODE else severity_conf
        factor = 1.0 - min(tally.hedge, self.config.max_hedge)
        confidence = round(max(0.0, min(1.0, confidence * factor)), 2)
        confidences = (code_conf if code != UNKNOWN_CODE else None, severity_conf)
        reason = _reason(tally, code, impact, scope, severity, confidence, factor, confidences)
        return Classification(
            severity=severity,
            confidence=confidence,
            taxonomy_code=code,
            tags=_tags(tally, code, impact, scope, _language(text, folded)),
            reason=reason,
            classifier=self.name,
        )

    def _tally(self, folded: str) -> _Tally:
        tally = _Tally()
        for rule, regex in self._rules:
            phrases = [m.group(0) for m in regex.finditer(folded)]
            if phrases:
                tally.add(rule, phrases)
        return tally

    def _pick_code(self, scores: Mapping[str, float]) -> tuple[str, float]:
        """The winning code and its confidence; precedence decides among firm codes."""
        if not scores:
            return UNKNOWN_CODE, 0.0
        firm = [c for c in self._order if _capped(scores.get(c, 0.0)) >= self.config.firm_score]
        winner = firm[0] if firm else _ranked(scores, self._order)[0]
        penalty = _rival_penalty(scores, winner, self.config.conflict_penalty)
        return winner, max(0.0, _capped(scores[winner]) - penalty)

    def _axis(self, scores: Mapping[str, float], levels: Sequence[str], default: str, credit: float) -> _Axis:
        """The level the text supports best, else the code profile's level at a credited confidence."""
        if not scores:
            return _Axis(default, min(1.0, credit), from_text=False)
        level = _ranked(scores, levels)[0]
        evidence = _capped(scores[level])
        # Levels the text names split the chance by their evidence: "timeouts" against "cannot" is a coin flip.
        share = evidence / sum(_capped(v) for v in scores.values())
        floor = self.config.cue_floor
        chance = share * (floor + (1.0 - floor) * evidence)
        if level == default:
            # The text and the code's profile agree: two independent reasons, either of which may be right.
            chance = 1.0 - (1.0 - chance) * (1.0 - min(1.0, credit))
        return _Axis(level, chance, from_text=True)

    def _severity_confidence(self, impact: _Axis, scope: _Axis, severity: TicketSeverity) -> float:
        """The chance the matrix gives `severity`, each axis right with its confidence, else any other level."""
        return sum(
            impact.chance(i, IMPACTS) * scope.chance(s, SCOPES)
            for (i, s), cell in self._matrix.items()
            if cell == severity
        )

    def _no_match(self, tally: _Tally, lang: str | None) -> Classification:
        profile = self._profiles.get(UNKNOWN_CODE, DEFAULT_PROFILE)
        severity = self._matrix[(profile.impact, profile.scope)]
        confidence = self.config.no_match_confidence
        hedged = f" (hedged: {', '.join(tally.phrases['hedge'])})" if tally.hedge else ""
        reason = f"no taxonomy, impact or scope rule fired{hedged} -> {severity}, confidence {confidence:.2f}"
        tags = tuple(t for t in ("hedged" if tally.hedge else "", f"lang:{lang}" if lang else "") if t)
        return Classification(
            severity=severity,
            confidence=confidence,
            taxonomy_code=UNKNOWN_CODE,
            tags=tags,
            reason=reason,
            classifier=self.name,
        )


def _axis_reason(axis_name: str, axis: _Axis, tally: _Tally, code: str) -> str:
    key = f"{axis_name}:{axis.level}"
    if axis.from_text:
        return f"{axis_name} {axis.level} by {'+'.join(tally.names[key])} ({axis.confidence:.2f})"
    return f"{axis_name} {axis.level} from the {code} profile ({axis.confidence:.2f})"


def _reason(
    tally: _Tally,
    code: str,
    impact: _Axis,
    scope: _Axis,
    severity: str,
    confidence: float,
    factor: float,
    confidences: tuple[float | None, float],
) -> str:
    """One line naming the rules that fired, how they led to the decision, and what made it sure or unsure."""
    if code == UNKNOWN_CODE:
        lines = ["no taxonomy rule -> " + UNKNOWN_CODE]
    else:
        lines = [f"{code} by {'+'.join(tally.names[code])} ({_capped(tally.codes[code]):.2f})"]
        rivals = [c for c in _ranked(tally.codes, list(tally.codes)) if c != code]
        if rivals:
            lines[0] += f" over {rivals[0]} ({_capped(tally.codes[rivals[0]]):.2f})"
    lines.append(_axis_reason("impact", impact, tally, code))
    lines.append(_axis_reason("scope", scope, tally, code))
    if tally.hedge:
        lines.append(f"hedged by {', '.join(tally.phrases['hedge'])} (x{factor:.2f})")
    code_conf, severity_conf = confidences
    why = f"severity {severity_conf:.2f}"
    if code_conf is not None:
        why = f"code {code_conf:.2f}, {why}"
    return "; ".join(lines) + f" -> {severity}, confidence {confidence:.2f} ({why})"


_LV_WORDS = frozenset("un ir nav uz ar kas musu ludzu vai par kops pie bet jau ka lai pec kad".split())
_EN_WORDS = frozenset("the is and to of on in for our we not please with are from at it has have".split())


_LV_LETTERS = re.compile("[āčēģīķļņšūžĀČĒĢĪĶĻŅŠŪŽ]")


def _language(text: str, folded: str) -> str | None:
    """`lv` when Latvian letters appear, else `en` or `lv` by common function words, else None."""
    if _LV_LETTERS.search(text):
        return "lv"
    words = folded.split()
    lv = sum(w in _LV_WORDS for w in words)
    en = sum(w in _EN_WORDS for w in words)
    return "lv" if lv > en else "en" if en > lv else None


def _tags(tally: _Tally, code: str, impact: _Axis, scope: _Axis, lang: str | None) -> tuple[str, ...]:
    """Matched phrases of the winning code, the text-derived axes, the language and a hedge mark."""
    tags = {p.replace(" ", "-") for p in tally.phrases.get(code, [])}
    if impact.from_text:
        tags.add("impact:" + impact.level)
    if scope.from_text:
        tags.add("scope:" + scope.level)
    if tally.hedge:
        tags.add("hedged")
    if lang:
        tags.add("lang:" + lang)
    return tuple(sorted(tags))
