"""The shift protocol's honesty (benchmarks/triage_shift.py): the ablated rules answer the training language exactly
as the full rules do and cover the scored language worse; overrides come only from the scored language; the
decision rule puts the gate's promise first. The rules alone, no model: fast."""

from __future__ import annotations

import sys

import pytest

from .paths import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))

from triage_eval import DATA, load  # noqa: E402
from triage_shift import LANGS, ablated_rules, candidates, fifth_round, scenarios, score  # noqa: E402

from correlator.triage import RuleClassifier  # noqa: E402
from stream.commands.train import GUIDELINE_SET  # noqa: E402

RECORDS = load(DATA)
GUIDELINE = load(GUIDELINE_SET)
FULL = RuleClassifier()


def _right(rules: RuleClassifier, lang: str) -> int:
    rows = [r for r in RECORDS if r["lang"] == lang]
    return sum((c.taxonomy_code, c.severity) == (r["taxonomy_code"], r["severity"])
               for c, r in ((rules.classify(r["text"]), r) for r in rows))


@pytest.mark.parametrize("train_lang", LANGS)
def test_ablated_rules_answer_the_training_language_as_before_and_the_other_worse(train_lang: str) -> None:
    other = next(lang for lang in LANGS if lang != train_lang)
    half, none = ablated_rules(RECORDS, train_lang, 0.5, 0), ablated_rules(RECORDS, train_lang, 1.0, 0)
    for r in RECORDS:
        if r["lang"] == train_lang:
            assert half.classify(r["text"]) == FULL.classify(r["text"]) == none.classify(r["text"]), r["id"]
    assert _right(FULL, other) > _right(half, other) > _right(none, other)


def test_overrides_come_from_the_scored_language_and_are_not_scored() -> None:
    seen = 0
    for (drop, overrides), _name, train, scored, _rules, _beside in scenarios(RECORDS):
        if drop or not overrides:
            continue
        seen += 1
        fed = [e for e in train if e.source == "override"]
        scored_ids = {r["id"] for r in scored}
        assert len(fed) == overrides and not scored_ids & {e.ticket_id for e in fed}
        assert {r["lang"] for r in scored} == {r["lang"] for r in RECORDS if r["id"] == fed[0].ticket_id}
        assert len(train) + len(scored) == len(RECORDS)
    assert seen == 4  # both directions, two seeds


def test_the_decision_rule_puts_the_promise_before_volume() -> None:
    keeps = {(0.0, 0): {"n": 100, "right": 50, "routed": 10, "routed_right": 9}}
    breaks = {(0.0, 0): {"n": 100, "right": 70, "routed": 80, "routed_right": 60}}
    silent = {(0.0, 0): {"n": 100, "right": 50, "routed": 0, "routed_right": 0}}
    assert score(keeps) > score(breaks) and score(keeps) > score(silent)
    # round 3: severity_k 160 or 640 on the 80 blended; round 4: gate on agreement for the 96 blended, lesser always
    assert len(candidates()) == len(set(candidates())) == 100 + 80 * 2 + 96


def test_the_guideline_set_trains_only_in_the_training_language_and_is_scored_in_the_other() -> None:
    # Round 5: every candidate is scored on the same texts, whichever data it trains on.
    seen = 0
    for (_drop, overrides), _name, train, scored, _rules, beside in scenarios(RECORDS, GUIDELINE):
        train_lang = next(e for e in train if e.source != "override").ticket_id
        lang = next(r["lang"] for r in RECORDS if r["id"] == train_lang)
        assert {e.source for e in beside} == {"guideline"}
        assert {r["lang"] for r in GUIDELINE if r["id"] in {e.ticket_id for e in beside}} == {lang}
        scored_extra = [r for r in scored if r.get("source") == "guideline"]
        assert len(beside) + len(scored_extra) == len(GUIDELINE)
        assert {r["lang"] for r in scored_extra} == {r["lang"] for r in GUIDELINE} - {lang}
        assert len(train) + len(scored) - len(scored_extra) == len(RECORDS)
        seen += overrides > 0
    assert seen
    assert len(fifth_round()) == len(set(fifth_round())) == 2 * 2 * 3 * 3 * 2
