"""The Grafana dashboard's main figures as one PNG, from the dashboard's own PromQL, for whoever has no Grafana.

Without `--prometheus` it runs the stack of the observability test (embedded broker, one worker, real
Prometheus scraping it every second with the deploy rules loaded) and sends storm waves through the HTTP
ingest for `--seconds` (each wave a fresh storm whose event times end now, plus a dead letter, a refused body
and three tickets, one of which breaches L1's 1 s SLA); then it asks Prometheus's `query_range` for each
panel's expressions, exactly as written in deploy/grafana/dashboards/aiops-correlator.json, and draws them.
With `--prometheus URL` it only queries and draws (the last `--seconds` of a running deployment).

Reading the picture of a short run: the panels use the dashboard's 5-minute windows, so over 90 s the rates
climb as the window fills (Grafana shows the same for a fresh deployment); each wave replays a storm whose
alerts started up to ~10 minutes earlier, which is why the event-time latency is minutes while the arrival
latency is well under a second.

    .venv/bin/python benchmarks/dashboard.py                  # 90 s of waves -> benchmarks/dashboard.png
    .venv/bin/python benchmarks/dashboard.py --quick --out /tmp/dash.png
    .venv/bin/python benchmarks/dashboard.py --prometheus http://prometheus:9090 --seconds 3600
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from tests.obsstack import DASHBOARD, OBSERVED_ENV, flow, query, start_stack, storm_bodies  # noqa: E402

OUT = ROOT / "benchmarks" / "dashboard.png"
# The panels drawn, by dashboard title, in reading order; the stat panels become the figure's headline.
PANELS = [
    "Alerts vs incidents", "Noise reduction", "Open incidents by service (top 10)",
    "Correlation latency: arrival to incident event", "Correlation latency: alert event time to incident event",
    "Dead letters by agent and reason", "Tickets triaged by outcome and tier", "SLA breaches in the last hour",
    "Consumer lag by topic",
]
HEADLINE = ["Noise reduction (5m)", "Noise reduction (1h)", "Open incidents", "Review queue", "Workers up",
            "Dead-letter share (5m)"]


def panels_by_title() -> dict[str, dict[str, Any]]:
    """The dashboard's panels keyed by title."""
    return {p["title"]: p for p in json.loads(DASHBOARD.read_text())["panels"]}


def query_range(base: str, expr: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
    """Prometheus's range query: one matrix entry per series."""
    params = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": step})
    with urllib.request.urlopen(f"{base}/api/v1/query_range?{params}", timeout=30) as resp:
        result: list[dict[str, Any]] = json.loads(resp.read())["data"]["result"]
    return result


def legend(fmt: str, labels: dict[str, str]) -> str:
    """Grafana's `{{label}}` legend format, filled in."""
    out = fmt
    for key, value in labels.items():
        out = out.replace("{{" + key + "}}", value)
    return out or ",".join(f"{k}={v}" for k, v in labels.items()) or "value"


def traffic(stack: Any, seconds: float, waves: float) -> int:
    """Storm waves through the ingest every `waves` seconds for `seconds`; the alerts sent."""
    sent, seed, deadline = 0, 1, time.monotonic() + seconds
    while time.monotonic() < deadline:
        bodies = storm_bodies(500 + 250 * (seed % 4), seed=seed, end=time.time())
        flow(stack.dep, stack.worker, bodies, wave=seed)
        sent += sum(body.count(b"\n") + 1 for body in bodies)
        seed += 1
        time.sleep(max(0.0, min(waves, deadline - time.monotonic())))
    return sent


def draw(base: str, start: float, end: float, out: Path) -> dict[str, Any]:
    """Query every drawn panel over [start, end] and save the PNG; what was drawn."""
    panels = panels_by_title()
    step = max(1.0, (end - start) / 300)
    fig, axes = plt.subplots(3, 3, figsize=(18, 12), constrained_layout=True)
    series = 0
    for ax, title in zip(axes.flat, PANELS, strict=True):
        panel = panels[title]
        unit = panel["fieldConfig"]["defaults"].get("unit", "short")
        ax.set_title(title, fontsize=11)
        if panel["type"] == "bargauge":
            series += _bars(ax, base, panel)
            continue
        hidden = 0
        for target in panel["targets"]:
            found = query_range(base, target["expr"], start, end, step)
            for s in found:
                xs = [float(t) - start for t, _ in s["values"]]
                ys = [float(v) * (100 if unit == "percentunit" else 1) for _, v in s["values"]]
                series += 1
                if len(found) > 8 and not any(ys):  # declared-at-0 label sets (SLA breaches): legend noise
                    hidden += 1
                    continue
                ax.plot(xs, ys, label=legend(target.get("legendFormat", ""), s["metric"]), linewidth=1.4)
        if hidden:
            ax.plot([], [], " ", label=f"({hidden} series at 0 not drawn)")
        ax.set_xlabel("seconds since start")
        ax.set_ylabel({"percentunit": "%", "s": "seconds", "ops": "per second", "reqps": "requests/s"}.get(unit, ""))
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=7, loc="best")
        else:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
    fig.suptitle(_headline(base, panels), fontsize=13)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=80)
    plt.close(fig)
    return {"png": str(out), "bytes": out.stat().st_size, "panels": len(PANELS), "series": series,
            "seconds": round(end - start, 1)}


def _bars(ax: Any, base: str, panel: dict[str, Any]) -> int:
    target = panel["targets"][0]
    rows = sorted(((legend(target["legendFormat"], s["metric"]), float(s["value"][1]))
                   for s in query(base, target["expr"])), key=lambda r: r[1])
    ax.barh([r[0] for r in rows], [r[1] for r in rows], color="tab:orange")
    ax.set_xlabel("open incidents (now)")
    return len(rows)


def _headline(base: str, panels: dict[str, dict[str, Any]]) -> str:
    parts = []
    for title in HEADLINE:
        panel = panels[title]
        result = query(base, panel["targets"][0]["expr"])
        value = float(result[0]["value"][1]) if result else math.nan
        unit = panel["fieldConfig"]["defaults"].get("unit")
        parts.append(f"{title}: " + ("-" if math.isnan(value) else f"{value:.0%}" if unit == "percentunit"
                                     else f"{value:,.0f}"))
    return "AIOps correlator - " + " | ".join(parts)


def main(argv: list[str] | None = None) -> int:
    """Run the stack (or use --prometheus), send waves, draw the PNG."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--prometheus", help="query this Prometheus instead of starting the stack")
    p.add_argument("--seconds", type=float, default=90.0, help="traffic time (or the range drawn with --prometheus)")
    p.add_argument("--waves", type=float, default=5.0, help="seconds between storm waves")
    p.add_argument("--out", type=Path, default=OUT)
    p.add_argument("--quick", action="store_true", help="20 s of traffic: proves it works")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    if args.quick:
        args.seconds, args.waves = 12.0, 3.0
    if args.prometheus:
        end = time.time()
        report = draw(args.prometheus.rstrip("/"), end - args.seconds, end, args.out)
    else:
        report = run_stack(args)
    print(json.dumps(report) if args.json else f"wrote {report['png']}: {report['series']} series in "
          f"{report['panels']} panels over {report['seconds']} s")
    return 0


def run_stack(args: argparse.Namespace) -> dict[str, Any]:
    """Broker, worker, Prometheus; waves; a few more scrapes so the last wave is drawn; the PNG."""
    from stream.broker import start_broker
    from tests.workers import Deployment

    with start_broker() as broker:
        workdir = Path(tempfile.mkdtemp(prefix="aiops-dashboard-"))
        dep = Deployment(broker, workdir, extra_env=dict(OBSERVED_ENV))
        stack = start_stack(dep, workdir)
        try:
            start = time.time() - 2
            sent = traffic(stack, args.seconds, args.waves)
            time.sleep(5)  # the last wave's incidents, breaches and resolutions: a few scrapes and evaluations
            report = draw(stack.prom.url, start, time.time(), args.out)
        finally:
            stack.stop()
    return {**report, "alerts_sent": sent}


if __name__ == "__main__":
    sys.exit(main())
