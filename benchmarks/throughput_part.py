"""(a) throughput of benchmarks/throughput.py: alerts/s from the input topic to folded on 1 and 2 workers, on both
paths into correlation (`PATHS`), beside the raw-consumer ceiling on the same records in the same run (see the
docstring of benchmarks/throughput.py)."""

from __future__ import annotations

import asyncio
import statistics
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_workers import FoldClock, Plan, cpu_of, fold_clock, fresh_deployment  # noqa: E402
from bench_workers import produce_in_background, start_workers, stop_all  # noqa: E402
from pipeline_throughput import storm_records  # noqa: E402
from raw_consumer import consume, parse_lines  # noqa: E402
from tests.workers import Deployment, WorkerProc  # noqa: E402

from correlator.eventtime import TimeGuard  # noqa: E402
from correlator.keys import DEFAULT_KEY_CONFIG  # noqa: E402
from stream.broker import EmbeddedBroker  # noqa: E402
from stream.ingest import AlertHop  # noqa: E402

PATHS = {"raw": "alerts.raw -> normalize -> alerts -> correlate (raw producers)",
         "hop": "alerts -> correlate, records as the HTTP ingest writes them (parsed at the ingest: not timed here)"}
"""The two ways alerts reach correlation (stream/hop.py), each a row of the table."""


def hop_records(bodies: Sequence[bytes], partitions: int) -> list[tuple[int, bytes]]:
    """The `alerts` records (partition, value) the HTTP ingest writes for `bodies` (its own code, `AlertHop`)."""
    hop = AlertHop(DEFAULT_KEY_CONFIG, TimeGuard(horizon_s=None), partitions)
    now = time.time()
    return [(send.partition or 0, send.value) for body in bodies for send in hop.validate("generic", body, now).records]


def throughput_run(broker: EmbeddedBroker, bodies: list[bytes], alerts: int, workers: int,
                   timeout: float, path: str = "raw") -> dict[str, float]:
    """Pipeline alerts/s on `workers` workers and the raw-consumer ceiling on the same raw records.

    `raw`: the clock runs from the first alert normalize parsed to the last folded. `hop`: the `alerts` records
    are built first (as the ingest would), and the clock runs from the moment their production starts (a
    little against the pipeline: it includes the producer's start); the raw bodies are produced after the
    workers stopped, for the ceiling.

    Beside the rate, `worker_cpu_us_per_alert`: the CPU the worker processes spent over the same clock (Linux
    /proc, user + system), per alert. On a shared machine the rate follows how much of a core the worker got;
    its CPU per alert moves far less. What the readers of `incidents` have not read yet when the clock stops is
    not in it (they share the worker's core, so it is usually little).
    """
    dep = fresh_deployment(broker)
    placed = hop_records(bodies, dep.partitions) if path == "hop" else []
    procs = start_workers(dep, workers)
    try:
        clock = timed_fold(dep, procs, path, bodies, placed, alerts, timeout)
    finally:
        stop_all(procs)
    ceiling = ceiling_after(broker, dep, path, bodies)
    pipeline = clock.rate(alerts)
    return {"pipeline_alerts_per_s": pipeline, "ceiling_alerts_per_s": ceiling,
            "ratio": pipeline / ceiling, "worker_cpu_us_per_alert": 1e6 * (clock.cpu_end - clock.cpu_start) / alerts}


def timed_fold(dep: Deployment, procs: Sequence[WorkerProc], path: str, bodies: list[bytes],
               placed: list[tuple[int, bytes]], alerts: int, timeout: float) -> FoldClock:
    """Feed the workers and time their fold: `hop` produces the `placed` records on `alerts`, clocked from the start
    of their production; `raw` produces the bodies on `alerts.raw`, clocked from the first alert normalize parsed."""
    started: tuple[float, float] | None = None
    if path == "hop":
        started = (time.monotonic(), cpu_of(procs))
        producer = threading.Thread(target=dep.produce_placed, args=("alerts", placed), daemon=True)
        producer.start()
    else:
        producer = produce_in_background(dep, bodies)
    clock = fold_clock(procs, alerts, time.monotonic() + timeout, started)
    producer.join(timeout)
    if clock is None:
        raise TimeoutError(f"{len(procs)} worker(s) did not fold {alerts} alerts in {timeout}s:\n{procs[0].tail()}")
    return clock


def ceiling_after(broker: EmbeddedBroker, dep: Deployment, path: str, bodies: list[bytes]) -> float:
    """The raw consumer's alerts/s on the run's raw bodies (produced now for `hop`, which never wrote them)."""
    if path == "hop":
        dep.produce("alerts_raw", [(b"generic", b) for b in bodies])
    return asyncio.run(consume(broker.bootstrap, dep.topic("alerts_raw"), dep.partitions, len(bodies),
                               parse_lines)).alerts_per_s


def throughput(broker: EmbeddedBroker, plan: Plan) -> list[dict[str, Any]]:
    """Every (path, record shape, worker count) row: medians of `plan.runs`, runs interleaved across rows."""
    rows = []
    for per_record, count in plan.records.items():
        bodies, alerts = storm_records(count, per_record, seed=7)
        cases = [(path, n) for path in plan.paths for n in plan.workers]
        runs: dict[tuple[str, int], list[dict[str, float]]] = {c: [] for c in cases}
        for _ in range(plan.runs):
            for path, n in cases:
                runs[path, n].append(throughput_run(broker, bodies, alerts, n, plan.timeout_s, path))
        for path, n in cases:
            med = {k: statistics.median(r[k] for r in runs[path, n]) for k in runs[path, n][0]}
            rows.append({"path": path, "per_record": per_record, "records": len(bodies), "alerts": alerts,
                         "workers": n, **med, "runs_alerts_per_s": [r["pipeline_alerts_per_s"] for r in runs[path, n]],
                         "runs_worker_cpu_us_per_alert": [r["worker_cpu_us_per_alert"] for r in runs[path, n]]})
    return rows
