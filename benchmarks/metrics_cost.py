"""What the Prometheus metrics cost: pipeline alerts/s on one worker with metrics on and off, same broker, same run.

Each round is a pair of fresh deployments on one embedded Tansu fed the same records (pipeline_throughput.py's
storm: `--records` NDJSON bodies of `--per-record` alerts produced to alerts.raw up front), one worker with
the default settings and one with `AIOPS_METRICS=false` (every metric replaced by a no-op, the observe timer
not installed), in an order rotated every round; `--aa` adds a second metrics-on arm, whose distance from the
first shows how much of a difference is noise. Every clock reads the engines' own counters (`GET /stats`),
not the metrics, so the measurement is the same in every arm: from the last poll that saw nothing folded to
the first that saw every alert record folded (group join and table recovery are before it). Medians of
`--runs` rounds and their ratio.

    .venv/bin/python benchmarks/metrics_cost.py              # 1,000 x 100 alerts, 3 pairs
    .venv/bin/python benchmarks/metrics_cost.py --per-record 1 --records 20000
    .venv/bin/python benchmarks/metrics_cost.py --quick
    .venv/bin/python benchmarks/metrics_cost.py --aa         # plus a second metrics-on arm (A/A spread)
    .venv/bin/python benchmarks/metrics_cost.py --micro      # microseconds per update, scrape, observe sample
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

from pipeline_throughput import storm_records  # noqa: E402

from stream.broker import start_broker  # noqa: E402
from tests.workers import Deployment  # noqa: E402


def one_run(broker: Any, bodies: list[bytes], alerts: int, metrics_on: bool, timeout: float) -> float:
    """Alerts/s of one fresh deployment, over the time its engines took to fold every alert record."""
    dep = Deployment(broker, Path(tempfile.mkdtemp(prefix="aiops-metrics-cost-")))
    if not metrics_on:
        dep.extra_env = {**dep.extra_env, "AIOPS_METRICS": "false"}
    dep.create_topics()
    dep.produce("alerts_raw", [(b"generic", b) for b in bodies])
    worker = dep.start_worker("bench")
    try:
        worker.wait_web()
        # The clock brackets the folding from outside: from the last poll that saw nothing folded yet to the
        # first that saw everything (polls every 50 ms; the same error in both arms).
        start = end = None
        idle_at = time.monotonic()
        deadline = idle_at + timeout
        while time.monotonic() < deadline:
            now = time.monotonic()
            folded = worker.get("/stats")["counters"].get("records", 0)
            if folded == 0:
                idle_at = now
            elif start is None:
                start = idle_at
            if folded >= alerts:
                end = time.monotonic()
                break
            time.sleep(0.05)
        if start is None or end is None:
            raise TimeoutError(f"pipeline did not fold {alerts} alerts in {timeout}s:\n{worker.tail()}")
        if not metrics_on:  # the switch worked: nothing counted
            assert worker.metric("aiops_alert_records_correlated_total") == 0
    finally:
        worker.stop()
    return alerts / max(end - start, 1e-6)


def micro(repeat: int = 200_000) -> dict[str, float]:
    """In-process cost of the updates the agents make, and of a scrape and an observe round, in microseconds.

    The agents update metrics per batch and per incident event, not per alert (about 0.6 updates per alert
    at most, when every fifth alert opens or updates an incident), so per-alert cost = that x one update.
    """
    import timeit

    from prometheus_client import REGISTRY, generate_latest

    from correlator import metrics

    def per_call(stmt: Any, n: int = repeat) -> float:
        return min(timeit.repeat(stmt, number=n, repeat=5)) / n * 1e6

    return {
        "counter_inc_us": per_call(lambda: metrics.ALERT_DUPLICATES.inc(3)),
        "labelled_counter_inc_us": per_call(lambda: metrics.INCIDENT_EVENTS.labels("updated").inc()),
        "histogram_observe_us": per_call(lambda: metrics.CORRELATION_LATENCY.observe(0.2)),
        "scrape_generate_latest_us": per_call(generate_latest, 200),
        "observe_noise_sample_us": per_call(lambda: REGISTRY.get_sample_value(
            "aiops_incident_events_total", {"kind": "opened"}), 200),
    }


def main(argv: list[str] | None = None) -> int:
    """Run the pairs, print medians and the ratio (optionally as JSON)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--records", type=int, default=1000)
    p.add_argument("--per-record", type=int, default=100)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--timeout", type=float, default=300.0)
    p.add_argument("--quick", action="store_true", help="one small pair: proves it works, not speed")
    p.add_argument("--json", action="store_true")
    p.add_argument("--aa", action="store_true", help="a second metrics-on arm: the spread between identical arms")
    p.add_argument("--micro", action="store_true", help="only the in-process cost of one update, scrape, sample")
    args = p.parse_args(argv)
    if args.micro:
        print(json.dumps({k: round(v, 3) for k, v in micro().items()}))
        return 0
    if args.quick:
        args.records, args.runs = 200, 1
    bodies, alerts = storm_records(args.records, args.per_record, seed=7)
    arms: dict[str, list[float]] = {"on": [], "off": [], **({"on_again": []} if args.aa else {})}
    names = list(arms)
    with start_broker() as broker:
        for i in range(args.runs):
            for arm in names[i % len(names):] + names[:i % len(names)]:  # rotate the order every round
                arms[arm].append(one_run(broker, bodies, alerts, arm != "off", args.timeout))
    on, off = arms["on"], arms["off"]
    with_, without = statistics.median(on), statistics.median(off)
    doc = {"records": len(bodies), "alerts": alerts, "runs": args.runs, "with_metrics_alerts_per_s": with_,
           "without_metrics_alerts_per_s": without, "ratio": with_ / without, "with_runs": on, "without_runs": off}
    if args.aa:
        doc.update(again_alerts_per_s=statistics.median(arms["on_again"]), again_runs=arms["on_again"],
                   aa_ratio=statistics.median(arms["on_again"]) / with_)
    if args.json:
        print(json.dumps(doc))
        return 0
    print(f"{len(bodies)} records x {args.per_record} alert records = {alerts} alerts, median of {args.runs} pairs")
    print(f"{'pipeline, one worker':28}{'alerts/s':>12}   runs")
    print(f"{'metrics on (default)':28}{with_:>12,.0f}   {', '.join(f'{r:,.0f}' for r in on)}")
    print(f"{'metrics off':28}{without:>12,.0f}   {', '.join(f'{r:,.0f}' for r in off)}")
    if args.aa:
        again = doc["again_alerts_per_s"]
        print(f"{'metrics on, second arm':28}{again:>12,.0f}   {', '.join(f'{r:,.0f}' for r in arms['on_again'])}")
        print(f"ratio on / on (A/A): {again / with_:.2f}")
    print(f"ratio on / off: {with_ / without:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
