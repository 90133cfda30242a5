"""Overload with and without admission control: the same flood on a fresh broker and worker, paired in one run.

Each arm starts its own embedded broker (Tansu, memory storage, so its peak RSS is the backlog it holds) and
one worker (the whole pipeline), then floods `POST /ingest/alertmanager` with 100-alert webhooks from
`--concurrency` connections for `--duration` seconds (ingest_load.py's bodies and closed loop), far above what
correlation folds on one worker. Arm `on` runs with the admission defaults (or `--records` / `--seconds`), arm
`off` with both limits 0. Measured per arm: requests answered 202 and 503, the peak backlog on alerts.raw +
alerts (this process samples it with the same probe the ingest uses), the peak RSS (VmHWM) of broker and
worker, and how long after the flood the backlog took to reach 0 (every accepted body folded and committed). Ratios on / off from
the same run; with `--runs` above 1, medians of the runs (arms in alternating order).

    .venv/bin/python benchmarks/overload.py                  # 30 s flood, 16 connections, one pair
    .venv/bin/python benchmarks/overload.py --duration 20 --runs 3
    .venv/bin/python benchmarks/overload.py --front          # flood a `--role ingest` front instead
    .venv/bin/python benchmarks/overload.py --quick          # 4 s: proves it works
    .venv/bin/python benchmarks/overload.py --results benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from ingest_load import HARD_LIMIT_S, closed_loop, make_bodies, start_worker  # noqa: E402
from results_md import publish  # noqa: E402
from throughput import machine  # noqa: E402

from stream.admission import BacklogProbe  # noqa: E402
from stream.broker import start_broker  # noqa: E402
from stream.settings import Settings  # noqa: E402
from tests.workers import Deployment  # noqa: E402

ALERTS_PER_BODY = 100
SECTION = "## Overload: admission control on and off"
BEGIN = "<!-- overload:begin -->"
END = "<!-- overload:end -->"


def peak_rss_mb(pid: int) -> float:
    """VmHWM of a process in MB (Linux), 0.0 when it cannot be read."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


async def flood(url: str, bodies: list[bytes], args: argparse.Namespace, probe: BacklogProbe) -> dict[str, Any]:
    """The closed-loop flood with the backlog sampled every 0.5 s beside it, then the time until the backlog is
    gone (the group committed everything on alerts.raw and alerts: correlation folded all it accepted)."""
    peak = 0
    done = asyncio.Event()

    async def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, (await probe.measure_once()).records)
            await asyncio.sleep(0.5)

    sampler = asyncio.create_task(sample())
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
            run = await closed_loop(session, url, bodies, args.concurrency, args.duration, 10**9)
    finally:
        done.set()
        await sampler
    ended = time.monotonic()
    drain_s: float | None = None
    while time.monotonic() - ended < args.drain_timeout:
        backlog = await probe.measure_once()
        peak = max(peak, backlog.records)
        if backlog.known and backlog.records == 0:
            drain_s = round(time.monotonic() - ended, 1)
            break
        await asyncio.sleep(0.5)
    return {"codes": dict(run.codes), "seconds": run.seconds, "peak_backlog": peak, "drain_s": drain_s}


def one_arm(admission: bool, bodies: list[bytes], args: argparse.Namespace) -> dict[str, Any]:
    """A fresh broker and worker, flooded; the figures of this arm."""
    broker = start_broker()
    try:
        with tempfile.TemporaryDirectory(prefix="aiops-overload-") as tmp:
            env = {"AIOPS_IDLE_ADVANCE": "300", "AIOPS_LOG_LEVEL": "warning"}
            if admission:
                env.update({k: str(v) for k, v in (("AIOPS_ADMISSION_BACKLOG_RECORDS", args.records),
                                                   ("AIOPS_ADMISSION_BACKLOG_SECONDS", args.seconds)) if v is not None})
            else:
                env.update({"AIOPS_ADMISSION_BACKLOG_RECORDS": "0", "AIOPS_ADMISSION_BACKLOG_SECONDS": "0"})
            dep = Deployment(broker, Path(tmp), extra_env=env)
            dep.create_topics()
            worker = start_worker(dep, False)
            front = start_worker(dep, True) if args.front else None  # `--role ingest` in front of the agents
            try:
                settings = Settings(broker=broker.url, app_id=dep.app_id, partitions=dep.partitions,
                                    topics={f: dep.topic(f) for f in ("alerts_raw", "alerts", "incidents",
                                                                     "tickets_raw", "tickets_triaged",
                                                                     "tickets_labels", "deadletter")})
                probe = BacklogProbe(settings)
                target = front or worker
                url = f"http://127.0.0.1:{target.web_port}/ingest/alertmanager"
                try:
                    result = asyncio.run(flood(url, bodies, args, probe))
                finally:
                    asyncio.run(probe.on_stop())
                result["worker_peak_rss_mb"] = round(peak_rss_mb(worker.proc.pid), 1)
                result["broker_peak_rss_mb"] = round(peak_rss_mb(broker.pid), 1)
                result["shed_503"] = target.metric("aiops_ingest_refusals_total", endpoint="alertmanager",
                                                   reason="backlog")
            finally:
                if front is not None:
                    front.stop()
                worker.stop()
    finally:
        broker.stop()
    result["arm"] = "on" if admission else "off"
    result["accepted_alerts"] = result["codes"].get("202", 0) * ALERTS_PER_BODY
    return result


def median_arm(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Medians of one arm's figures over the runs (a drain that did not finish counts as the timeout)."""
    keys = ("peak_backlog", "broker_peak_rss_mb", "worker_peak_rss_mb", "shed_503", "accepted_alerts")
    med = {k: float(statistics.median(r[k] for r in rows)) for k in keys}
    med["drain_s"] = float(statistics.median(r["drain_s"] if r["drain_s"] is not None else float("inf")
                                             for r in rows))
    return med


def report(args: argparse.Namespace, rows: list[dict[str, Any]]) -> dict[str, Any]:
    on = median_arm([r for r in rows if r["arm"] == "on"])
    off = median_arm([r for r in rows if r["arm"] == "off"])
    ratio = {k: (on[k] / off[k] if off[k] else None) for k in ("peak_backlog", "broker_peak_rss_mb",
                                                               "worker_peak_rss_mb", "drain_s")}
    return {"load": {"duration_s": args.duration, "concurrency": args.concurrency, "alerts_per_body": ALERTS_PER_BODY,
                     "records_limit": args.records, "seconds_limit": args.seconds},
            "runs": rows, "median": {"on": on, "off": off}, "ratio_on_off": ratio, "machine": machine(),
            "date": time.strftime("%Y-%m-%d")}


def markdown(result: dict[str, Any], args: argparse.Namespace) -> str:
    on, off, ratio = result["median"]["on"], result["median"]["off"], result["ratio_on_off"]

    def fmt(v: float | None, unit: str = "") -> str:
        return "n/a" if v is None or v == float("inf") else f"{v:,.1f}{unit}" if unit else f"{v:,.0f}"

    def rt(v: float | None) -> str:
        return "n/a" if v is None or v == float("inf") else f"{v:.2f}x"

    def undrained(arm: str) -> str:
        return str(sum(1 for r in result["runs"] if r["arm"] == arm and r["drain_s"] is None))

    limits = (f"records {args.records or 'default'}, seconds {args.seconds or 'default'}")
    target = "a `--role ingest` front before one agents' worker" if args.front else "one worker"
    return "\n".join([
        f"{target[0].upper()}{target[1:]}, {args.concurrency} connections posting 100-alert Alertmanager webhooks for {args.duration:.0f} s "
        f"(closed loop), a fresh Tansu per arm; admission `on` ({limits}) vs `off` (both limits 0); "
        f"{args.runs} pair(s), medians.",
        "",
        "| figure | on | off | on / off |",
        "|---|---|---|---|",
        f"| alerts accepted (202) | {fmt(on['accepted_alerts'])} | {fmt(off['accepted_alerts'])} | |",
        f"| 503 backlog given | {fmt(on['shed_503'])} | {fmt(off['shed_503'])} | |",
        f"| peak backlog, records | {fmt(on['peak_backlog'])} | {fmt(off['peak_backlog'])} | {rt(ratio['peak_backlog'])} |",
        f"| broker peak RSS | {fmt(on['broker_peak_rss_mb'], ' MB')} | {fmt(off['broker_peak_rss_mb'], ' MB')} | "
        f"{rt(ratio['broker_peak_rss_mb'])} |",
        f"| worker peak RSS | {fmt(on['worker_peak_rss_mb'], ' MB')} | {fmt(off['worker_peak_rss_mb'], ' MB')} | "
        f"{rt(ratio['worker_peak_rss_mb'])} |",
        f"| drain after the flood | {fmt(on['drain_s'], ' s')} | {fmt(off['drain_s'], ' s')} | {rt(ratio['drain_s'])} |",
        f"| runs not drained within {args.drain_timeout:.0f} s (inf in the median) | {undrained('on')} | "
        f"{undrained('off')} | |",
        "",
        f"Machine: {result['machine']}; {result['date']}. Command: `.venv/bin/python benchmarks/overload.py "
        f"--duration {args.duration:.0f} --concurrency {args.concurrency} --runs {args.runs}"
        f"{' --front' if args.front else ''}`.",
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--bodies", type=int, default=2000, help="distinct bodies, cycled through")
    parser.add_argument("--records", type=int, default=None, help="arm on: AIOPS_ADMISSION_BACKLOG_RECORDS")
    parser.add_argument("--seconds", type=float, default=None, help="arm on: AIOPS_ADMISSION_BACKLOG_SECONDS")
    parser.add_argument("--drain-timeout", type=float, default=180.0)
    parser.add_argument("--front", action="store_true", help="flood a `--role ingest` front, not the agents' worker")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--results", type=Path, help="rewrite this benchmark's section of this RESULTS.md")
    args = parser.parse_args(argv)
    if args.duration > HARD_LIMIT_S:  # ingest_load's closed loop cancels its clients at that point
        parser.error(f"--duration is at most {HARD_LIMIT_S:.0f} s")
    if args.quick:
        args.duration, args.concurrency, args.bodies, args.drain_timeout = 4.0, 4, 100, 120.0
    bodies = make_bodies(args.bodies, ALERTS_PER_BODY)
    rows = []
    for i in range(args.runs):
        for admission in ((True, False) if i % 2 == 0 else (False, True)):
            rows.append(one_arm(admission, bodies, args))
            print(json.dumps({k: v for k, v in rows[-1].items()}), file=sys.stderr, flush=True)
    result = report(args, rows)
    return publish(result, lambda: markdown(result, args), as_json=args.json, results=args.results,
                   begin=BEGIN, end=END, heading=SECTION)


if __name__ == "__main__":
    sys.exit(main())
