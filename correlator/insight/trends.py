"""Recurring blockers: the items (ticket tags, taxonomy codes, services, symptoms) that keep coming back, with
their counts per week and whether each is rising. From the hourly aggregates alone; no model call. Pure.

Weeks are 7-day periods ending at `until` (the newest is whole, never a partial calendar week that would make
any item look like it is falling on a Monday). The trend rule (`trend_of`) compares the newest week with the
mean of the weeks before it:

- `new`: nothing before, and at least `min_change` now;
- `rising`: at least `factor` times the earlier mean, and at least `min_change` more;
- `falling`: at most the earlier mean divided by `factor`, and at least `min_change` less;
- `steady`: anything else (small counts never flip the trend: 1 -> 2 is not a rising blocker).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from correlator.insight.aggregates import HourAggregate

__all__ = ["BY", "DAY_S", "WEEK_S", "Trend", "TrendItem", "TrendRule", "Trends", "recurring", "trend_of", "weeks_of"]

DAY_S = 86400
WEEK_S = 7 * DAY_S

BY: dict[str, str] = {
    "tag": "tickets|tag",
    "taxonomy": "tickets|taxonomy",
    "service": "incidents_opened|service",
    "symptom": "incidents_opened|symptom",
}
"""What `--by` counts: an item's tickets (by tag or taxonomy code) or its incidents opened (by service, symptom)."""


class Trend(StrEnum):
    """The direction of an item's newest week against the weeks before it."""

    NEW = "new"
    RISING = "rising"
    STEADY = "steady"
    FALLING = "falling"


@dataclass(frozen=True, slots=True)
class TrendRule:
    """The thresholds of `trend_of`."""

    factor: float = 1.5
    min_change: int = 2


DEFAULT_RULE = TrendRule()


def trend_of(weekly: Sequence[int], rule: TrendRule = DEFAULT_RULE) -> Trend:
    """The trend of weekly counts, oldest first (the rule in the module docstring)."""
    if not weekly:
        return Trend.STEADY
    last, before = weekly[-1], weekly[:-1]
    if not before or sum(before) == 0:
        return Trend.NEW if last >= rule.min_change else Trend.STEADY
    base = sum(before) / len(before)
    if last >= base * rule.factor and last - base >= rule.min_change:
        return Trend.RISING
    if last <= base / rule.factor and base - last >= rule.min_change:
        return Trend.FALLING
    return Trend.STEADY


class TrendItem(BaseModel):
    """One recurring item: its total over the period, its count per week (oldest first), its trend."""

    model_config = ConfigDict(frozen=True)

    item: str
    total: int
    weekly: list[int]
    trend: Trend


class Trends(BaseModel):
    """The answer of `aiops trends` and `GET /trends`."""

    by: str
    since: float
    until: float
    weeks: list[float]
    """Start of each 7-day period, epoch seconds, oldest first."""
    items: list[TrendItem]


def weeks_of(since_s: float) -> int:
    """How many whole 7-day periods cover `since_s` seconds (at least one)."""
    return max(1, math.ceil(since_s / WEEK_S))


def recurring(aggs: Iterable[HourAggregate], by: str, until: float, since_s: float = 30 * DAY_S,
              top: int = 10, rule: TrendRule = DEFAULT_RULE) -> Trends:
    """The `top` items by total over the weeks ending at `until`, with weekly counts and trends.

    Ties are broken by name, so the same aggregates always give the same list.
    """
    if by not in BY:
        raise ValueError(f"unknown --by {by!r} (one of {', '.join(BY)})")
    n = weeks_of(since_s)
    start = until - n * WEEK_S
    weekly: dict[str, list[int]] = {}
    for agg in aggs:
        if not start <= agg.hour < until:
            continue
        week = int((agg.hour - start) // WEEK_S)
        for item, count in agg.by.get(BY[by], {}).items():
            weekly.setdefault(item, [0] * n)[week] += count
    ranked = sorted(weekly.items(), key=lambda kv: (-sum(kv[1]), kv[0]))[:top]
    items = [TrendItem(item=item, total=sum(counts), weekly=counts, trend=trend_of(counts, rule))
             for item, counts in ranked]
    return Trends(by=by, since=start, until=until, weeks=[start + i * WEEK_S for i in range(n)], items=items)
