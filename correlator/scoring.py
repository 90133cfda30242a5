"""Scoring a grouping against ground truth: pairwise precision, recall and F1, and compression.

A pair of alerts is a true positive when both the truth and the grouping put them together. Counting goes
through the contingency table (sum of n choose 2 per cell), so a million alerts cost one pass, not a
million squared pairs.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["PairwiseScore", "pairwise_score"]


@dataclass(frozen=True, slots=True)
class PairwiseScore:
    """Pairwise precision/recall/F1 of a grouping, and how much it compresses (1 - groups / items)."""

    precision: float
    recall: float
    f1: float
    items: int
    groups: int
    true_groups: int

    @property
    def compression(self) -> float:
        """1 - predicted groups / items: the noise reduction of this grouping."""
        return 1.0 - self.groups / self.items if self.items else 0.0

    def line(self) -> str:
        """One human line: P, R, F1, compression, groups."""
        return (f"precision {self.precision:.3f}  recall {self.recall:.3f}  F1 {self.f1:.3f}  "
                f"compression {self.compression:.1%}  ({self.groups} groups for {self.true_groups} true, "
                f"{self.items} items)")


def _pairs(n: int) -> int:
    return n * (n - 1) // 2


def pairwise_score(predicted: Mapping[str, str], truth: Mapping[str, str]) -> PairwiseScore:
    """Score `predicted` (item -> group) against `truth` (item -> true group) over the items in both.

    An item missing from `predicted` is counted as a group of its own (the grouping lost it), so dropping
    alerts can never raise a score.
    """
    items = list(truth)
    pred = {i: predicted.get(i, f"\0missing:{i}") for i in items}
    cells = Counter((pred[i], truth[i]) for i in items)
    tp = sum(_pairs(n) for n in cells.values())
    pred_pairs = sum(_pairs(n) for n in Counter(pred.values()).values())
    true_pairs = sum(_pairs(n) for n in Counter(truth.values()).values())
    precision = tp / pred_pairs if pred_pairs else 1.0
    recall = tp / true_pairs if true_pairs else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return PairwiseScore(precision, recall, f1, len(items), len(set(pred.values())), len(set(truth.values())))
