"""What the analytics store costs a worker: CPU seconds for the same storm with the insight stages on and off.

Each round is a pair of fresh deployments on one embedded Tansu fed the same records (pipeline_throughput.py's
storm: `--records` NDJSON bodies of `--per-record` alerts produced to alerts.raw up front), one worker with the
defaults (insight on) and one with `AIOPS_INSIGHT=false`, in an order that alternates every round. A run's clock
starts when the worker has parsed its first alert and stops when correlate has folded every alert and every
reader of `incidents` has read what was published by then (the incident agent, which with insight on also folds
the hours): so the on arm pays for folding the incident events into hours and writing them. The figure is
the worker's CPU seconds (Linux /proc) over a fixed window from the first alert (`--window`, 20 s; both arms
are done well before it and then idle alike, so an arm that finishes later is not charged for the idle loops
of its extra wall time), steadier than a rate on a shared machine; each pair's ratio (on / off) and the median
of the ratios are printed, and the wall-clock rates until done beside them.

    .venv/bin/python benchmarks/insight_cost.py              # 300 x 100 alerts, 3 pairs
    .venv/bin/python benchmarks/insight_cost.py --quick      # one small pair: proves it runs, not a figure
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from bench_workers import cpu_seconds  # noqa: E402
from pipeline_throughput import _samples, storm_records  # noqa: E402

from stream.broker import start_broker  # noqa: E402
from tests.workers import Deployment, WorkerProc  # noqa: E402


def _read_all(worker: WorkerProc, owed: float) -> bool:
    """Whether the incident agent (the SLA clocks and, with insight, the hours: one agent, stream/tickets.py) has
    read the `owed` stage-1 events and stage 2's records so far."""
    want = owed + worker.get("/stage2/")["published"]
    return worker.metric("aiops_records_consumed_total", agent="incident_sla") >= want


def one_run(broker: Any, bodies: list[bytes], alerts: int, insight: bool, timeout: float,
            window: float) -> dict[str, float]:
    """Worker CPU seconds over `window` seconds from the first alert (both arms idle alike once done, so the
    difference is the work), and alerts/s until done, of one fresh deployment, insight on or off."""
    dep = Deployment(broker, Path(tempfile.mkdtemp(prefix="aiops-insight-cost-")))
    dep.extra_env = {**dep.extra_env, "AIOPS_INSIGHT": "true" if insight else "false"}
    dep.create_topics()
    dep.produce("alerts_raw", [(b"generic", b) for b in bodies])
    worker = dep.start_worker("bench")
    try:
        worker.wait_web()
        start = cpu0 = owed = None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            stats = worker.get("/stats")
            if start is None and stats["normalized"] > 0:
                start, cpu0 = time.monotonic(), cpu_seconds(worker.proc.pid)
            if owed is None and stats["counters"].get("records", 0) >= alerts:
                owed = sum(_samples(worker.get("/metrics"), "aiops_incident_events_total"))
            if owed is not None and start is not None and cpu0 is not None and _read_all(worker, owed):
                seconds = time.monotonic() - start
                if seconds > window:
                    raise TimeoutError(f"done after {seconds:.1f} s, past the {window} s window: raise --window")
                time.sleep(window - seconds)
                cpu = cpu_seconds(worker.proc.pid) - cpu0
                if insight:  # the store did fold: it holds the storm's alerts
                    hours = worker.get("/insight/hours?since=0")["hours"]
                    assert sum(h["counts"].get("alerts", 0) for h in hours) > 0, "insight folded nothing"
                return {"worker_cpu_s": cpu, "alerts_per_s": alerts / max(seconds, 1e-6)}
            time.sleep(0.05)
        raise TimeoutError(f"not done in {timeout}s:\n{worker.tail()}")
    finally:
        worker.stop()


def main(argv: list[str] | None = None) -> int:
    """Run the pairs and print the medians and the ratio."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--records", type=int, default=300)
    p.add_argument("--per-record", type=int, default=100)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--timeout", type=float, default=300.0)
    p.add_argument("--window", type=float, default=20.0, help="seconds from the first alert over which CPU is read")
    p.add_argument("--quick", action="store_true", help="one small pair: proves it runs, not speed")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    if args.quick:
        args.records, args.per_record, args.runs, args.window = 20, 50, 1, 5.0
    bodies, alerts = storm_records(args.records, args.per_record, seed=21)
    broker = start_broker(log_path=Path(tempfile.mkdtemp(prefix="aiops-insight-cost-")) / "tansu.log")
    pairs: list[dict[str, dict[str, float]]] = []
    try:
        for n in range(args.runs):
            order = (True, False) if n % 2 == 0 else (False, True)
            pair = {("on" if on else "off"): one_run(broker, bodies, alerts, on, args.timeout, args.window) for on in order}
            pairs.append(pair)
            print(f"pair {n + 1}: cpu on {pair['on']['worker_cpu_s']:.2f}s off {pair['off']['worker_cpu_s']:.2f}s "
                  f"ratio {pair['on']['worker_cpu_s'] / pair['off']['worker_cpu_s']:.3f}", file=sys.stderr)
    finally:
        broker.stop()
    result = {
        "alerts": alerts, "pairs": len(pairs),
        **{f"{arm}_{k}": statistics.median(p[arm][k] for p in pairs) for arm in ("on", "off")
           for k in ("worker_cpu_s", "alerts_per_s")},
        "cpu_ratio_on_off": statistics.median(p["on"]["worker_cpu_s"] / p["off"]["worker_cpu_s"] for p in pairs),
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{alerts:,} alerts, {len(pairs)} pairs (medians): worker CPU with insight {result['on_worker_cpu_s']:.2f} s, "
              f"without {result['off_worker_cpu_s']:.2f} s, ratio {result['cpu_ratio_on_off']:.3f}; "
              f"alerts/s {result['on_alerts_per_s']:,.0f} vs {result['off_alerts_per_s']:,.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
