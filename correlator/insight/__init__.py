"""Operations insight, pure: hourly aggregates of the stream's decisions, recurring blockers and their trend,
and the weekly summary (`aggregates`, `trends`, `summary`, `report`). No clock is read here and no Faust is
imported: `stream/insight.py` folds the topics into the aggregates and passes the time in."""

from correlator.insight.aggregates import (
    HOUR_S,
    Duration,
    HourAggregate,
    IncidentFacts,
    LongIncident,
    TicketFact,
    expired,
    fold_ack,
    fold_incident,
    fold_incidents,
    fold_ticket,
    hour_of,
    merge,
    read_hours,
    ticket_fact,
)
from correlator.insight.report import render_html, render_markdown
from correlator.insight.summary import WeeklySummary, build_summary, iso_week, parse_week, week_containing
from correlator.insight.trends import BY, Trend, TrendItem, TrendRule, Trends, recurring, trend_of

__all__ = [
    "BY",
    "HOUR_S",
    "Duration",
    "HourAggregate",
    "IncidentFacts",
    "LongIncident",
    "TicketFact",
    "Trend",
    "TrendItem",
    "TrendRule",
    "Trends",
    "WeeklySummary",
    "build_summary",
    "expired",
    "fold_ack",
    "fold_incident",
    "fold_incidents",
    "fold_ticket",
    "hour_of",
    "iso_week",
    "merge",
    "read_hours",
    "parse_week",
    "recurring",
    "render_html",
    "render_markdown",
    "ticket_fact",
    "trend_of",
    "week_containing",
]
