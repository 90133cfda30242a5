"""Pairwise scoring against hand-countable tables."""

from __future__ import annotations

import pytest

from correlator.scoring import pairwise_score

TRUTH = {"a": "1", "b": "1", "c": "1", "d": "2", "e": "2"}  # 3 + 1 = 4 true pairs


@pytest.mark.parametrize(("name", "predicted", "p", "r", "groups"), [
    ("perfect", {"a": "x", "b": "x", "c": "x", "d": "y", "e": "y"}, 1.0, 1.0, 2),
    ("all in one", {k: "x" for k in TRUTH}, 4 / 10, 1.0, 1),
    ("all apart", {k: k for k in TRUTH}, 1.0, 0.0, 5),
    ("one split", {"a": "x", "b": "x", "c": "z", "d": "y", "e": "y"}, 1.0, 2 / 4, 3),
    ("lost alerts count as singletons", {"a": "x", "b": "x"}, 1.0, 1 / 4, 4),
])
def test_pairwise_score(name: str, predicted: dict[str, str], p: float, r: float, groups: int) -> None:
    score = pairwise_score(predicted, TRUTH)
    assert (score.precision, score.recall, score.groups) == pytest.approx((p, r, groups)), name
    expected_f1 = 2 * p * r / (p + r) if p + r else 0.0
    assert score.f1 == pytest.approx(expected_f1)
    assert score.compression == pytest.approx(1 - groups / 5)
