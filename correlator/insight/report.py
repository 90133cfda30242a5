"""The weekly summary as Markdown or HTML, for an engineering manager on Monday. Pure text from a
`WeeklySummary`; the charts are files the caller drew and names here (`charts`: title -> file name).
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Mapping, Sequence

from correlator.insight.summary import Headline, Ranked, WeeklySummary
from correlator.insight.trends import Trends

__all__ = ["render_html", "render_markdown", "report_sections"]

Table = tuple[list[str], list[list[str]]]
"""Header and rows of one table."""


def _num(value: float | None, unit: str = "") -> str:
    if value is None:
        return "–"
    text = f"{value:,.1f}" if unit in ("%", "min") else f"{value:,.0f}"
    return f"{text} {unit}".rstrip() if unit == "min" else f"{text}{unit}"


def _change(h: Headline) -> str:
    change = h.change
    if change is None:
        return "–"
    if change == 0:
        return "same"
    points = " pts" if h.unit == "%" else (" min" if h.unit == "min" else "")
    return f"{change:+,.1f}{points}" if h.unit else f"{change:+,.0f}"


def _day(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%a %d %b")


def _duration(seconds: float) -> str:
    minutes = seconds / 60.0
    return f"{minutes / 60.0:.1f} h" if minutes >= 90 else f"{minutes:.0f} min"


def _ranked(rows: Sequence[Ranked], what: str) -> Table:
    return [what, "count"], [[r.name, f"{r.count:,}"] for r in rows]


def _blockers(trends: Trends) -> Table:
    weeks = [dt.datetime.fromtimestamp(w, dt.UTC).strftime("%d %b") for w in trends.weeks]
    return ([trends.by, "total", *[f"week of {w}" for w in weeks], "trend"],
            [[i.item, str(i.total), *map(str, i.weekly), i.trend.value] for i in trends.items])


def report_sections(summary: WeeklySummary) -> list[tuple[str, Table | str]]:
    """The report's sections in order: a title and a table, or a line of text when there is nothing to list."""
    s = summary
    headline: Table = (["figure", "this week", "last week", "change"],
                       [[h.label, _num(h.this_week, h.unit), _num(h.last_week, h.unit), _change(h)]
                        for h in s.headlines])
    longest: Table = (["incident", "service", "alerts", "open for"],
                      [[i.key, i.service, str(i.alerts), _duration(i.duration_s)] for i in s.longest])
    daily: Table = (["day", "alerts", "incidents"], [[_day(d), f"{a:,}", f"{n:,}"] for d, a, n in s.daily])
    sections: list[tuple[str, Table | str]] = [
        ("Headline figures", headline),
        ("Day by day", daily),
        ("Noisiest services (alerts)", _ranked(s.noisy_services, "service")),
        ("Noisiest symptoms (alerts)", _ranked(s.noisy_symptoms, "symptom")),
        ("Longest incidents (resolved)", longest),
        ("SLA breaches by service", _ranked(s.breaches_by_service, "service")),
        ("SLA breaches by tier", _ranked(s.breaches_by_tier, "tier")),
        ("Tickets by taxonomy code", _ranked(s.tickets_by_taxonomy, "taxonomy code")),
    ]
    sections += [(f"Recurring blockers by {by} (4 weeks)", _blockers(t)) for by, t in s.blockers.items()]
    return [(title, body if body[1] else "nothing this week") for title, body in sections]


def _title(s: WeeklySummary) -> str:
    last = dt.datetime.fromtimestamp(s.end - 1, dt.UTC).strftime("%d %b %Y")
    return f"Operations summary {s.week} ({_day(s.start)} – {last})"


def render_markdown(summary: WeeklySummary, charts: Mapping[str, str] | None = None) -> str:
    """The report as Markdown, with the charts as images beside it."""
    lines = [f"# {_title(summary)}", ""]
    if summary.narrative:
        lines += [summary.narrative.strip(), ""]
    for title, body in report_sections(summary):
        lines += [f"## {title}", ""]
        if isinstance(body, str):
            lines += [body, ""]
            continue
        header, rows = body
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
        lines.append("")
    for title, name in (charts or {}).items():
        lines += [f"## {title}", "", f"![{title}]({name})", ""]
    return "\n".join(lines)


def render_html(summary: WeeklySummary, charts: Mapping[str, str] | None = None) -> str:
    """The report as one self-contained HTML page (the charts referenced beside it)."""
    e = html.escape
    parts = ["<!doctype html>", '<html lang="en"><head><meta charset="utf-8">', f"<title>{e(_title(summary))}</title>",
             "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:.2em .6em;text-align:left}</style></head><body>",
             f"<h1>{e(_title(summary))}</h1>"]
    if summary.narrative:
        parts.append(f"<p>{e(summary.narrative.strip())}</p>")
    for title, body in report_sections(summary):
        parts.append(f"<h2>{e(title)}</h2>")
        if isinstance(body, str):
            parts.append(f"<p>{e(body)}</p>")
            continue
        header, rows = body
        parts.append("<table><tr>" + "".join(f"<th>{e(h)}</th>" for h in header) + "</tr>")
        parts += ["<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in rows]
        parts.append("</table>")
    for title, name in (charts or {}).items():
        parts.append(f'<h2>{e(title)}</h2><img src="{e(name)}" alt="{e(title)}">')
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
