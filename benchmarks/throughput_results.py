"""Plots and the RESULTS.md section of benchmarks/throughput.py, drawn from its stored figures."""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from latency_part import LATENCY_LOADS, STEADY_HEAD_S  # noqa: E402
from memory_part import SHORT_SLA_RETENTION_S, flatness  # noqa: E402
from results_md import write_section  # noqa: E402
from stage_costs import markdown as stage_costs_markdown  # noqa: E402
from throughput_part import PATHS  # noqa: E402

BEGIN, END = "<!-- throughput.py: generated from here -->", "<!-- throughput.py: to here -->"
RESULTS_MD = ROOT / "benchmarks" / "RESULTS.md"
STORE = ROOT / "benchmarks" / "data" / "throughput.json"
TARGET_SHARE = 0.4
"""The share of the ceiling issue 7 asks of one worker on 100-alert records (drawn on the plot)."""
# ---- plots and RESULTS.md -----------------------------------------------------------------------------------

def plot(results: dict[str, Any], out: Path) -> list[Path]:
    """The three PNGs (each only if its part has figures)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    paths = []
    if results.get("throughput"):
        rows = results["throughput"]
        shapes = sorted({r["per_record"] for r in rows}, reverse=True)
        floor = {r["per_record"]: r["in_process_alerts_per_s"] for r in results.get("stage_costs") or []}
        fig, ax = plt.subplots(figsize=(7, 4))
        for i, shape in enumerate(shapes):
            mine = [r for r in rows if r["per_record"] == shape]
            bars = [("ceiling (aiokafka + parse)", statistics.median(r["ceiling_alerts_per_s"] for r in mine))]
            if shape in floor:
                bars.append(("agents' code, no broker", floor[shape]))
            bars += [(f"{r['workers']} worker(s), {r.get('path', 'raw')}", r["pipeline_alerts_per_s"]) for r in mine]
            width = 0.8 / len(bars)
            for j, (label, value) in enumerate(bars):
                x = i + (j - (len(bars) - 1) / 2) * width
                ax.bar(x, value, width, color=f"C{j}", label=label if i == 0 else None)
                ax.annotate(f"{value:,.0f}", (x, value), ha="center", va="bottom", fontsize=7)
            ax.hlines(TARGET_SHARE * bars[0][1], i - 0.4, i + 0.4, colors="grey", linestyles=":",
                      label=f"{TARGET_SHARE:.0%} of the ceiling (issue 7's target)" if i == 0 else None)
        ax.set_xticks(range(len(shapes)), [f"{s} alert(s) per record" for s in shapes])
        ax.set_yscale("log")
        ax.set_ylabel("alerts/s (median)")
        ax.set_title("Pipeline vs raw consumer ceiling, embedded broker")
        ax.set_ylim(top=ax.get_ylim()[1] * 6)  # room for the legend above the bars (log scale)
        ax.legend(fontsize=7, ncol=2, loc="upper center")
        paths.append(_save(fig, out / "throughput_vs_ceiling.png"))
    if results.get("latency"):
        fig, ax = plt.subplots(figsize=(7, 4))
        for part, (_, style) in LATENCY_LOADS.items():
            lat = results.get(part)
            if not lat:
                continue
            for kind, color in (("opened", "C0"), ("updated", "C1")):
                sample = sorted(lat["sample"][f"{kind}_s"])
                if sample:
                    ax.plot(sample, [(i + 1) / len(sample) for i in range(len(sample))], style, color=color,
                            label=f"{kind}, {lat['offered_alerts_per_s']:,.0f} alerts/s (n={len(sample)})")
        ax.axvline(1.0, color="grey", ls=":", label="1 s target (p99)")
        ax.set_xscale("log")
        ax.set_xlabel("seconds from raw record sent to incident event read")
        ax.set_ylabel("fraction of events")
        ax.set_title("Latency alerts.raw -> incidents at steady load, one worker (run 1 of each)")
        ax.legend(fontsize=8)
        paths.append(_save(fig, out / "latency.png"))
    if results.get("memory"):
        rows = results["memory"]
        fig, ax = plt.subplots(figsize=(7, 4))
        for i, keys in enumerate(sorted({r["keys"] for r in rows})):
            mine = sorted((r for r in rows if r["keys"] == keys), key=lambda r: r["checkpoint"])
            xs = [r["checkpoint"] for r in mine]
            ax.plot(xs, [r["vm_hwm_mb"] for r in mine], "o-", color=f"C{i}", label=f"{keys:,} keys: VmHWM")
            short = sorted((r for r in results.get("memory_short_sla") or [] if r["keys"] == keys),
                           key=lambda r: r["checkpoint"])
            if short:
                ax.plot([r["checkpoint"] for r in short], [r["vm_hwm_mb"] for r in short], "s--", color=f"C{i}",
                        label=f"{keys:,} keys: VmHWM, SLA clocks kept {SHORT_SLA_RETENTION_S} s")
        ax.set_xscale("log")
        ax.set_ylim(bottom=0)
        ax.set_xlabel("alert records folded")
        ax.set_ylabel("MiB (median)")
        ax.set_title("Worker memory vs stream length")
        ax.legend(fontsize=8)
        paths.append(_save(fig, out / "memory_vs_alerts.png"))
    return paths


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def markdown(results: dict[str, Any]) -> str:
    """The RESULTS.md section body (between the markers)."""
    out: list[str] = []
    if results.get("throughput"):
        rows = results["throughput"]
        out += [f"Throughput, median of {results['runs']['throughput']} runs "
                "(alerts include re-sends and resolutions):", "",
                "| path | alerts per record | records | workers | pipeline alerts/s | ceiling alerts/s | ratio "
                "| worker CPU us per alert | runs |",
                "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
        for r in rows:
            runs = ", ".join(f"{x:,.0f}" for x in r["runs_alerts_per_s"])
            cpu = f"{r['worker_cpu_us_per_alert']:.1f}" if "worker_cpu_us_per_alert" in r else "-"  # before it was
            out.append(f"| {r.get('path', 'raw')} | {r['per_record']} | {r['records']:,} | {r['workers']} "
                       f"| {r['pipeline_alerts_per_s']:,.0f} | {r['ceiling_alerts_per_s']:,.0f} | {r['ratio']:.1%} "
                       f"| {cpu} | {runs} |")
        out += ["", "Paths: " + "; ".join(f"`{name}` {what}" for name, what in PATHS.items()) + "."]
        out += ["", "![throughput vs ceiling](throughput_vs_ceiling.png)", ""]
    if results.get("throughput") and results.get("stage_costs"):
        ceilings = {r["per_record"]: r["ceiling_alerts_per_s"] for r in results["throughput"]
                    if r["workers"] == 1 and r.get("path", "raw") == "raw"}
        rows = results["stage_costs"]
        out += [f"The same records through the agents' code with no broker (`benchmarks/stage_costs.py`, one "
                f"process, median of {rows[0]['runs']} runs; Faust, the changelog and the metrics left out, so "
                "this is the most any wiring of this code could reach), beside the ceiling above:", "",
                stage_costs_markdown(rows, ceilings), ""]
    top = results.get("latency_maximum")
    if top and results.get("latency"):
        runs = ", ".join(f"{x:,.0f}" for x in top["runs_alerts_per_s"])
        out += [f"One worker's maximum on the latency part's live stream ({top['alerts']:,} alert records generated "
                f"for {top['generated_for_alerts_per_s']:,.0f}/s, folded as a catch-up): {top['alerts_per_s']:,.0f} "
                f"alerts/s, median of {len(top['runs_alerts_per_s'])} runs ({runs}). Half of it is the load below.", ""]
    for part, (share, _) in LATENCY_LOADS.items():
        lat = results.get(part)
        if not lat:
            continue
        med = lat["median"]
        if not top:  # figures stored before the live stream's own maximum was measured
            share = share.replace("on this stream", "of the throughput part")
        out += [f"Latency at a steady {lat['offered_alerts_per_s']:,.0f} alerts/s offered ({share}), "
                f"{lat['duration_s']:.0f} s per run, median of {len(lat['runs'])} runs' percentiles, "
                "seconds:", "", "| measured | events | p50 | p90 | p99 |", "|---|---:|---:|---:|---:|"]
        for name, label in (("opened", "`opened` (pages): raw record sent -> event read"),
                            ("updated", "`updated`: raw record of its newest alert sent -> event read"),
                            ("opened_warmup", f"`opened` in the {STEADY_HEAD_S:.0f} s before, not timed: storms "
                             "in flight at the start open at once"),
                            ("correlation_latency", "worker `aiops_correlation_latency_seconds`"),
                            ("correlation_event_latency", "worker `aiops_correlation_event_latency_seconds`")):
            m = med.get(name)
            if not m or not m["n"]:
                continue
            out.append(f"| {label} | {m['n']:,.0f} | {m['p50']:.3f} | {m['p90']:.3f} | {m['p99']:.3f} |")
        out.append("")
    if results.get("latency"):
        out += ["![latency](latency.png)", ""]
    if results.get("memory"):
        rows = results["memory"]
        fed = ("the whole stream produced at once (a catch-up from a backlog)" if results.get("memory_backlog")
               else "produced at most 200 raw records ahead of the worker, as from a live source")
        short = {(r["keys"], r["checkpoint"]): r for r in results.get("memory_short_sla") or []}
        out += [f"Worker memory, median of {results['runs']['memory']} runs, MiB; {fed}. Default settings, and "
                f"with incident-SLA clocks purged {SHORT_SLA_RETENTION_S} s after closing "
                f"(`AIOPS_SLA_RETENTION={SHORT_SLA_RETENTION_S}`):", "",
                "| key space | keys used | event time | alert records | VmHWM | VmRSS "
                "| VmHWM, short SLA | VmRSS, short SLA |",
                "|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in rows:
            o = short.get((r["keys"], r["checkpoint"]))
            tail = f"{o['vm_hwm_mb']:.1f} | {o['vm_rss_mb']:.1f}" if o else "- | -"
            out.append(f"| {r['keys']:,} | {r['keys_seen']:,} | {r['event_hours']:.0f} h | {r['checkpoint']:,} | "
                       f"{r['vm_hwm_mb']:.1f} | {r['vm_rss_mb']:.1f} | {tail} |")
        cps = sorted({r["checkpoint"] for r in rows})
        for name, series in (("default", rows), ("short SLA retention", results.get("memory_short_sla") or [])):
            for keys in sorted({r["keys"] for r in series}):
                g = flatness(series, keys, cps[-2], cps[-1])
                out.append(f"\n{name}, {keys:,} keys, {cps[-2]:,} -> {cps[-1]:,} records: VmHWM "
                           f"{g['vm_hwm_mb']:+.1%}, VmRSS {g['vm_rss_mb']:+.1%}.")
        out += ["", "![memory vs alerts](memory_vs_alerts.png)", ""]
    if results.get("machine"):
        out += _provenance(results)
    return "\n".join(out)


def _provenance(results: dict[str, Any]) -> list[str]:
    """Where and when each part ran: a run of some parts (`--only`) keeps the others' own machine and date."""
    commands = results.get("commands") or {"all": results["command"]}
    ran = results.get("ran", {})
    runs = {part: ran.get(part, {"machine": results["machine"], "at": results["at"]}) for part in commands}
    machines = {run["machine"] for run in runs.values()}
    one = len(machines) == 1
    out = [f"Machine: {next(iter(machines))}.", ""] if one else ["Each part's command, date and machine:", ""]
    for part, cmd in commands.items():
        run = runs[part]
        day = time.strftime("%Y-%m-%d", time.gmtime(run["at"]))
        out.append(f"- {part}: `{cmd}` ({day}{'' if one else '; ' + run['machine']})")
    return out


def write_results(path: Path, body: str) -> None:
    """Replace the section between the markers, or append it under its own heading."""
    write_section(path, f"{BEGIN}\n{body}\n{END}", begin=BEGIN, end=END,
                  heading="## Pipeline throughput, latency and memory")
