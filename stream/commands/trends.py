"""`aiops trends [--since 30d] [--by tag|taxonomy|service|symptom] [--json]`: recurring blockers, from the worker's
analytics store: the top items with their counts per week and whether each is rising.

The hourly aggregates are read from each worker named (`--url`, repeatable; default the settings' `api_url`, else
this machine's worker) and added up, and the trend is computed here by the same function as `GET /trends`
(`correlator.insight.recurring`), so one worker or several give one answer.
"""

from __future__ import annotations

import argparse
import sys
import time

import orjson

from correlator.config import parse_duration
from correlator.insight import BY, HourAggregate, Trends, read_hours, recurring
from correlator.insight.trends import DAY_S, WEEK_S, weeks_of
from stream.api_client import ApiError, client_of
from stream.settings import Settings

__all__ = ["configure", "fetch_hours", "render_trends", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    """Flags of `aiops trends`."""
    parser.add_argument("--since", default="30d", help="how far back, e.g. 30d, 56d (default %(default)s; whole "
                        "weeks ending now)")
    parser.add_argument("--by", choices=sorted(BY), default="tag", help="what recurs (default %(default)s)")
    parser.add_argument("--top", type=int, default=10, help="how many items (default %(default)s)")
    parser.add_argument("--until", type=float, default=None, help="end of the period, epoch seconds (default now)")
    parser.add_argument("--json", action="store_true", help="print the answer as JSON")
    add_api_flags(parser)


def add_api_flags(parser: argparse.ArgumentParser) -> None:
    """`--url` (repeatable) and `--token`: which workers to read, with what token."""
    parser.add_argument("--url", action="append", default=None, help="a worker's web API, once per worker "
                        "(default: AIOPS_API_URL, else http://127.0.0.1:<AIOPS_WEB_PORT>)")
    parser.add_argument("--token", default=None, help="bearer token (default: AIOPS_API_TOKEN)")


def settings_of(args: argparse.Namespace) -> Settings:
    """The settings, with `--token` over `AIOPS_API_TOKEN`."""
    return Settings.from_args(api_token=args.token)


def fetch_hours(args: argparse.Namespace, since: float, until: float) -> list[HourAggregate]:
    """The hourly aggregates in [since, until) of every worker named, not yet added up."""
    settings = settings_of(args)
    hours: list[HourAggregate] = []
    for url in args.url or [None]:
        hours += read_hours(client_of(settings, url).get("/insight/hours", {"since": since, "until": until}))
    return hours


def render_trends(trends: Trends) -> str:
    """A table: item, total, count per week (oldest first), trend."""
    weeks = [time.strftime("%d %b", time.gmtime(w)) for w in trends.weeks]
    width = max([len(trends.by), *(len(i.item) for i in trends.items)])
    lines = [f"{trends.by:<{width}}  total  " + "  ".join(f"{w:>6}" for w in weeks) + "  trend"]
    lines += [f"{i.item:<{width}}  {i.total:>5}  " + "  ".join(f"{n:>6}" for n in i.weekly) + f"  {i.trend.value}"
              for i in trends.items]
    return "\n".join(lines) if trends.items else f"nothing recurring by {trends.by} in these weeks"


def run(args: argparse.Namespace) -> int:
    """Print the recurring blockers; 1 when the worker cannot answer, 2 on a bad flag."""
    try:
        since_s = parse_duration(args.since)
    except ValueError as exc:
        print(f"aiops trends: --since: {exc}", file=sys.stderr)
        return 2
    until = args.until if args.until is not None else time.time()
    try:
        hours = fetch_hours(args, until - weeks_of(since_s) * WEEK_S - DAY_S, until)
    except ApiError as exc:
        print(f"aiops trends: {exc}", file=sys.stderr)
        return 1
    trends = recurring(hours, args.by, until, since_s, args.top)
    print(orjson.dumps(trends.model_dump(mode="json")).decode() if args.json else render_trends(trends))
    return 0
