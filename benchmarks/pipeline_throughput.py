"""Alerts/s through the whole pipeline (alerts.raw -> normalize -> alerts -> correlate -> incidents) on one
worker, beside a plain aiokafka consumer reading the same records on the same broker in the same run.

Each run: a fresh deployment (own topics, own app id) on one embedded Tansu; N raw records of `--per-record`
generic alerts (a generated storm: re-sends and resolutions included) are produced to alerts.raw first; the
ceiling is a group-less aiokafka consumer reading and orjson-parsing them; then a worker process starts and
the clock runs from its first parsed alert (group join excluded) until its correlate agent has folded every
alert record (its /metrics). Medians of `--runs`.

    .venv/bin/python benchmarks/pipeline_throughput.py                       # 1,000 x 100 alerts, 3 runs
    .venv/bin/python benchmarks/pipeline_throughput.py --per-record 1 --records 20000
    .venv/bin/python benchmarks/pipeline_throughput.py --quick
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

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from raw_consumer import consume, parse_lines  # noqa: E402
from storms import StormSpec, generate  # noqa: E402

from stream.broker import start_broker  # noqa: E402
from tests.workers import Deployment  # noqa: E402


def storm_records(records: int, per_record: int, seed: int) -> tuple[list[bytes], int]:
    """`records` NDJSON bodies of `per_record` alert records each, cut from one generated storm."""
    lines = []
    for record, _ in generate(StormSpec(alerts=records * per_record, services=500, seed=seed)):
        lines.append(orjson.dumps(record))
        if len(lines) == records * per_record:
            break
    bodies = [b"\n".join(lines[i:i + per_record]) for i in range(0, len(lines), per_record)]
    return bodies, len(lines)


def one_run(broker: Any, bodies: list[bytes], alerts: int, timeout: float) -> dict[str, float]:
    """Ceiling and pipeline rates for one fresh deployment."""
    dep = Deployment(broker, Path(tempfile.mkdtemp(prefix="aiops-bench-")))
    dep.create_topics()
    dep.produce("alerts_raw", [(b"generic", b) for b in bodies])
    ceiling = asyncio.run(consume(broker.bootstrap, dep.topic("alerts_raw"), dep.partitions, len(bodies),
                                  parse_lines))
    worker = dep.start_worker("bench")
    try:
        worker.wait_web()
        start = end = None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            received = sum(_samples(worker, "aiops_alerts_received_total"))
            folded = sum(_samples(worker, "aiops_alert_records_correlated_total"))
            now = time.monotonic()
            if start is None and received > 0:
                start = now
            if folded >= alerts:
                end = now
                break
            time.sleep(0.05)
        if start is None or end is None:
            raise TimeoutError(f"pipeline did not fold {alerts} alerts in {timeout}s:\n{worker.tail()}")
    finally:
        worker.stop()
    seconds = max(end - start, 1e-6)
    return {"pipeline_alerts_per_s": alerts / seconds, "pipeline_records_per_s": len(bodies) / seconds,
            "ceiling_alerts_per_s": ceiling.alerts / ceiling.seconds,
            "ceiling_records_per_s": ceiling.records / ceiling.seconds}


def _samples(worker: Any, name: str) -> list[float]:
    out = []
    for line in worker.get("/metrics").splitlines():
        if line.startswith(name) and not line.startswith(name + "_created"):
            out.append(float(line.rpartition(" ")[2]))
    return out


def main(argv: list[str] | None = None) -> int:
    """Run, print the medians side by side, optionally as JSON."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--records", type=int, default=1000)
    p.add_argument("--per-record", type=int, default=100)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--timeout", type=float, default=300.0)
    p.add_argument("--quick", action="store_true", help="one small run: proves it works, not speed")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    if args.quick:
        args.records, args.runs = 50, 1
    bodies, alerts = storm_records(args.records, args.per_record, seed=7)
    with start_broker() as broker:
        runs = [one_run(broker, bodies, alerts, args.timeout) for _ in range(args.runs)]
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    med["ratio"] = med["pipeline_alerts_per_s"] / med["ceiling_alerts_per_s"]
    if args.json:
        print(json.dumps({"records": len(bodies), "alerts": alerts, "per_record": args.per_record, **med}))
        return 0
    print(f"{len(bodies)} records x {args.per_record} alert records = {alerts} alerts, median of {args.runs}")
    print(f"{'':28}{'alerts/s':>12}{'records/s':>12}")
    print(f"{'pipeline, one worker':28}{med['pipeline_alerts_per_s']:>12,.0f}{med['pipeline_records_per_s']:>12,.0f}")
    print(f"{'aiokafka consumer + parse':28}{med['ceiling_alerts_per_s']:>12,.0f}{med['ceiling_records_per_s']:>12,.0f}")
    print(f"ratio pipeline / ceiling: {med['ratio']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
