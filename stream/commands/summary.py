"""`aiops summary [--week 2026-W49] [--format md|html] [--out DIR]`: the weekly operations report.

Reads the hourly aggregates of the week, the week before and the three before that (recurring blockers) from each
worker named (`--url`, as `aiops trends`), builds the summary (`correlator.insight.build_summary`) and writes it:
with `--out DIR`, `report.md` or `report.html` and its PNG charts into DIR; without, the Markdown on stdout.
Deterministic: the same aggregates give the same bytes, charts included (no timestamps in the PNGs).

An optional narrative comes through the same plug-in seam as the triage classifier (`--narrator
package.module:factory`): the factory returns an object with `narrate(summary_dict) -> str`; a narrator that
fails or is missing leaves the report without one, and says why on stderr.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from correlator.insight import (
    WeeklySummary,
    build_summary,
    parse_week,
    render_html,
    render_markdown,
    week_containing,
)
from correlator.insight.summary import BLOCKER_WEEKS
from correlator.insight.trends import WEEK_S
from correlator.triage.plugin import PluginError, load_object
from stream.api_client import ApiError
from stream.commands.trends import add_api_flags, fetch_hours

__all__ = ["configure", "draw_charts", "run", "write_report"]


def configure(parser: argparse.ArgumentParser) -> None:
    """Flags of `aiops summary`."""
    parser.add_argument("--week", default=None, help="ISO week, e.g. 2026-W49 (default: the last whole week)")
    parser.add_argument("--format", choices=("md", "html"), default="md", help="report format (default md)")
    parser.add_argument("--out", type=Path, default=None, help="write the report and its PNG charts into DIR "
                        "(default: the Markdown on stdout, no charts)")
    parser.add_argument("--json", action="store_true", help="print the summary's data as JSON instead")
    parser.add_argument("--narrator", metavar="MODULE:FACTORY", default=None,
                        help="optional plug-in writing a paragraph on top (narrate(summary) -> str)")
    add_api_flags(parser)


def draw_charts(summary: WeeklySummary, out: Path) -> dict[str, str]:
    """PNG charts of the week into `out` (title -> file name); none when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("aiops summary: matplotlib is not installed (pip install '.[bench]'): no charts", file=sys.stderr)
        return {}
    charts: dict[str, str] = {}
    days = [time.strftime("%a", time.gmtime(d)) for d, _, _ in summary.daily]
    fig, ax = plt.subplots(figsize=(7, 3.2))
    ax.bar(days, [a for _, a, _ in summary.daily], color="#9bb8d3", label="distinct alerts")
    ax.bar(days, [n for _, _, n in summary.daily], color="#c0392b", label="incidents opened")
    ax.set_title(f"Alerts and incidents per day, {summary.week}")
    ax.legend()
    charts["Alerts and incidents per day"] = _save(fig, out / "alerts_incidents.png")
    rows = summary.tickets_by_taxonomy[::-1]
    if rows:
        fig, ax = plt.subplots(figsize=(7, 3.2))
        ax.barh([r.name for r in rows], [r.count for r in rows], color="#5d8aa8")
        ax.set_title(f"Tickets by taxonomy code, {summary.week}")
        fig.tight_layout()
        charts["Tickets by taxonomy code"] = _save(fig, out / "tickets_taxonomy.png")
    plt.close("all")
    return charts


def _save(fig: Any, path: Path) -> str:
    fig.savefig(path, dpi=90, metadata={"Software": None})  # no version or date: the same bytes every run
    return path.name


def write_report(summary: WeeklySummary, out: Path, fmt: str) -> Path:
    """Write the report and its charts into `out`; the report's path."""
    out.mkdir(parents=True, exist_ok=True)
    charts = draw_charts(summary, out)
    path = out / f"report.{fmt}"
    path.write_text(render_html(summary, charts) if fmt == "html" else render_markdown(summary, charts))
    return path


def narrate(summary: WeeklySummary, path: str) -> WeeklySummary:
    """The summary with the plug-in's narrative, or unchanged (and why, on stderr) when it fails."""
    try:
        narrator = load_object(path, "narrate", None)
        text = narrator.narrate(summary.model_dump(mode="json"))
    except (PluginError, Exception) as exc:  # noqa: BLE001 - any narrator failure: the report goes out without it
        print(f"aiops summary: no narrative: {exc}", file=sys.stderr)
        return summary
    return summary.model_copy(update={"narrative": str(text)})


def run(args: argparse.Namespace) -> int:
    """Write or print the weekly report; 1 when the worker cannot answer, 2 on a bad flag."""
    try:
        start = parse_week(args.week) if args.week else week_containing(time.time()) - WEEK_S
    except ValueError as exc:
        print(f"aiops summary: --week: {exc}", file=sys.stderr)
        return 2
    try:
        hours = fetch_hours(args, start - BLOCKER_WEEKS * WEEK_S, start + WEEK_S)
    except ApiError as exc:
        print(f"aiops summary: {exc}", file=sys.stderr)
        return 1
    summary = build_summary(hours, start)
    if args.narrator:
        summary = narrate(summary, args.narrator)
    if args.json:
        print(orjson.dumps(summary.model_dump(mode="json")).decode())
    elif args.out is None:
        print(render_markdown(summary))
    else:
        print(write_report(summary, args.out, args.format))
    return 0
