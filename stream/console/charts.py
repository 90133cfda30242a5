"""Small charts for the console, drawn on the server as inline SVG: no chart library, no script, nothing to load.

`series_chart` draws alerts per time bucket as bars and incidents as a line over them; `reduction_bar` the
alerts a person was spared as a bar split in what is left and what was folded away. Both return SVG text whose
every value is a number or escaped, ready for a template's `|safe`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from html import escape

__all__ = ["reduction_bar", "series_chart"]

WIDTH, HEIGHT, PAD = 480, 120, 18


def _clock(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%m-%d %H:%M")


def series_chart(start: float, width_s: float, counts: list[tuple[int, int]]) -> str:
    """Alerts (bars) and incidents (line) per bucket, the first and last bucket's times under the axis."""
    n = max(1, len(counts))
    top = max([a for a, _ in counts] + [i for _, i in counts] + [1])
    step = (WIDTH - 2 * PAD) / n
    scale = (HEIGHT - 2 * PAD) / top
    base = HEIGHT - PAD
    bars = "".join(
        f'<rect class="alerts" x="{PAD + k * step + 1:.1f}" y="{base - a * scale:.1f}" width="{max(step - 2, 1):.1f}" '
        f'height="{a * scale:.1f}"><title>{a} alerts, {i} incidents</title></rect>'
        for k, (a, i) in enumerate(counts))
    points = " ".join(f"{PAD + (k + 0.5) * step:.1f},{base - i * scale:.1f}" for k, (_, i) in enumerate(counts))
    labels = (f'<text x="{PAD}" y="{HEIGHT - 3}">{escape(_clock(start))}</text>'
              f'<text x="{WIDTH - PAD}" y="{HEIGHT - 3}" text-anchor="end">{escape(_clock(start + width_s * n))}</text>'
              f'<text x="{PAD}" y="12">max {top}</text>')
    return (f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="alerts and incidents over '
            f'time"><line class="axis" x1="{PAD}" y1="{base}" x2="{WIDTH - PAD}" y2="{base}"/>{bars}'
            f'<polyline class="incidents" points="{points}"/>{labels}</svg>')


def reduction_bar(alerts: int, groups: int) -> str:
    """One bar as wide as the alerts, the part a person still looks at (the groups) marked at its start."""
    kept = groups / alerts if alerts else 1.0
    inner = WIDTH - 2 * PAD
    return (f'<svg class="chart reduction" viewBox="0 0 {WIDTH} 34" role="img" aria-label="noise reduction">'
            f'<rect class="folded" x="{PAD}" y="4" width="{inner}" height="16"><title>{alerts} alerts</title></rect>'
            f'<rect class="kept" x="{PAD}" y="4" width="{max(inner * kept, 2):.1f}" height="16">'
            f'<title>{groups} groups to look at</title></rect>'
            f'<text x="{PAD}" y="32">{groups} to look at</text>'
            f'<text x="{WIDTH - PAD}" y="32" text-anchor="end">{alerts} alerts</text></svg>')
