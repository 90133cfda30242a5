"""The weekly summary: headline figures of an ISO week against the week before, the noisiest services and
symptoms, the longest incidents, SLA breaches, the review queue's share and override rate, and recurring
blockers, built from the hourly aggregates. Pure and deterministic: the same aggregates give the same summary.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping

from pydantic import BaseModel, ConfigDict

from correlator.insight.aggregates import Duration, HourAggregate, LongIncident, add_into, longest
from correlator.insight.trends import DAY_S, WEEK_S, Trends, recurring

__all__ = ["HEADLINES", "Headline", "Ranked", "WeeklySummary", "build_summary", "iso_week", "parse_week",
           "week_containing"]

_WEEK = re.compile(r"^(\d{4})-W(\d{2})$")
TOP = 5
BLOCKER_WEEKS = 4


def parse_week(text: str) -> float:
    """Start (Monday 00:00 UTC, epoch seconds) of an ISO week written `2026-W49`; ValueError if it is not one."""
    match = _WEEK.match(text.strip())
    if match is None:
        raise ValueError(f"not an ISO week: {text!r} (expected e.g. 2026-W49)")
    try:
        day = dt.date.fromisocalendar(int(match[1]), int(match[2]), 1)
    except ValueError as exc:
        raise ValueError(f"not an ISO week: {text!r} ({exc})") from None
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp()


def iso_week(start: float) -> str:
    """`2026-W49` for a time in that week."""
    year, week, _ = dt.datetime.fromtimestamp(start, dt.UTC).isocalendar()
    return f"{year}-W{week:02d}"


def week_containing(t: float) -> float:
    """Start of the ISO week `t` falls in (Monday 00:00 UTC)."""
    day = dt.datetime.fromtimestamp(t, dt.UTC).date()
    monday = day - dt.timedelta(days=day.weekday())
    return dt.datetime(monday.year, monday.month, monday.day, tzinfo=dt.UTC).timestamp()


class Headline(BaseModel):
    """One headline figure this week and the week before."""

    model_config = ConfigDict(frozen=True)

    name: str
    label: str
    this_week: int | float | None
    last_week: int | float | None
    """Counts stay integers; ratios and minutes are floats; None where there is nothing to divide."""
    unit: str = ""

    @property
    def change(self) -> float | None:
        """This week minus last week (None if either is missing)."""
        if self.this_week is None or self.last_week is None:
            return None
        return self.this_week - self.last_week


class Ranked(BaseModel):
    """A name and its count, in a top list."""

    model_config = ConfigDict(frozen=True)

    name: str
    count: int


class WeeklySummary(BaseModel):
    """Everything the weekly report shows; rendered by `correlator.insight.report`."""

    week: str
    start: float
    end: float
    headlines: list[Headline]
    noisy_services: list[Ranked]
    noisy_symptoms: list[Ranked]
    longest: list[LongIncident]
    breaches_by_service: list[Ranked]
    breaches_by_tier: list[Ranked]
    tickets_by_taxonomy: list[Ranked]
    daily: list[tuple[float, int, int]]
    """(day start, alerts, incidents opened) per day of the week: the charts' data."""
    blockers: dict[str, Trends]
    narrative: str | None = None


HEADLINES: tuple[tuple[str, str, str], ...] = (
    ("records", "raw alert records in", ""),
    ("duplicates", "duplicates removed", ""),
    ("alerts", "distinct alerts", ""),
    ("incidents_opened", "incidents opened", ""),
    ("incidents_resolved", "incidents resolved (of those opened)", ""),
    ("noise_reduction", "noise reduction", "%"),
    ("mtta", "mean time to acknowledge", "min"),
    ("mttr", "mean time to resolve", "min"),
    ("sla_breaches", "SLA breaches (tickets + incidents)", ""),
    ("escalations", "escalations", ""),
    ("tickets", "tickets in", ""),
    ("review_share", "share sent to human review", "%"),
    ("override_rate", "override rate of reviews", "%"),
)
"""(name, label, unit) of each headline figure, in the order shown."""


def _total(aggs: Iterable[HourAggregate]) -> HourAggregate:
    total = HourAggregate(hour=0)
    for agg in aggs:
        add_into(total, agg)
    return total


def _ratio(part: int, whole: int) -> float | None:
    return round(100.0 * part / whole, 1) if whole else None


def _minutes(duration: Duration | None) -> float | None:
    mean = duration.mean_s if duration is not None else None
    return None if mean is None else round(mean / 60.0, 1)


def figures(total: HourAggregate) -> dict[str, float | None]:
    """The headline figures of a period's total aggregate, by name (None where there is nothing to divide)."""
    c = total.counts.get
    alerts, incidents = c("alerts", 0), c("incidents_opened", 0)
    reviews = c("approves", 0) + c("overrides", 0)
    return {
        "records": alerts + c("duplicates", 0), "duplicates": c("duplicates", 0), "alerts": alerts,
        "incidents_opened": incidents, "incidents_resolved": c("incidents_resolved", 0),
        "noise_reduction": round(100.0 * (1 - incidents / alerts), 1) if alerts else None,
        "mtta": _minutes(total.times.get("ack")), "mttr": _minutes(total.times.get("resolve")),
        "sla_breaches": c("ticket_breaches", 0) + c("incident_breaches", 0),
        "escalations": c("ticket_escalations", 0) + c("incident_escalations", 0),
        "tickets": c("tickets", 0), "review_share": _ratio(c("tickets_review", 0), c("tickets", 0)),
        "override_rate": _ratio(c("overrides", 0), reviews),
    }


def _top(split: Mapping[str, int], n: int = TOP) -> list[Ranked]:
    return [Ranked(name=k, count=v) for k, v in sorted(split.items(), key=lambda kv: (-kv[1], kv[0]))[:n] if v]


def _sum_splits(total: HourAggregate, counts: Iterable[str], dimension: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for count in counts:
        for name, n in total.split(count, dimension).items():
            out[name] = out.get(name, 0) + n
    return out


def build_summary(aggs: Iterable[HourAggregate], week_start: float, top: int = TOP) -> WeeklySummary:
    """The summary of the ISO week starting at `week_start`, against the week before, from hourly aggregates
    (any number per hour: they are added). Recurring blockers cover the `BLOCKER_WEEKS` weeks ending with it."""
    hours = list(aggs)
    end = week_start + WEEK_S
    this = [a for a in hours if week_start <= a.hour < end]
    total, before = _total(this), _total(a for a in hours if week_start - WEEK_S <= a.hour < week_start)
    now, then = figures(total), figures(before)
    breaches = ("ticket_breaches", "incident_breaches")
    daily = []
    for day in range(7):
        lo = week_start + day * DAY_S
        one = _total(a for a in this if lo <= a.hour < lo + DAY_S).counts
        daily.append((lo, one.get("alerts", 0), one.get("incidents_opened", 0)))
    return WeeklySummary(
        week=iso_week(week_start), start=week_start, end=end,
        headlines=[Headline(name=n, label=label, unit=unit, this_week=now[n], last_week=then[n])
                   for n, label, unit in HEADLINES],
        noisy_services=_top(total.split("alerts", "service"), top),
        noisy_symptoms=_top(total.split("alerts", "symptom"), top),
        longest=longest(total.longest, top),
        breaches_by_service=_top(_sum_splits(total, breaches, "service"), top),
        breaches_by_tier=_top(_sum_splits(total, breaches, "tier"), top),
        tickets_by_taxonomy=_top(total.split("tickets", "taxonomy"), top),
        daily=daily,
        blockers={by: recurring(hours, by, end, BLOCKER_WEEKS * WEEK_S, top) for by in ("taxonomy", "tag", "service")},
    )
