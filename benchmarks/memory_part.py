"""(c) memory of benchmarks/throughput.py: one worker folding 10^6 alert records, VmHWM and VmRSS at checkpoints
(see the docstring of benchmarks/throughput.py)."""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_workers import POLL_S, Plan, fresh_deployment, produce_in_background, progress, start_workers  # noqa: E402
from storms import StormSpec, generate  # noqa: E402

from stream.broker import EmbeddedBroker  # noqa: E402

SHORT_SLA_RETENTION_S = 30
# ---- (c) memory ---------------------------------------------------------------------------------------------

def memory_bodies(keys: int, total: int, seed: int, per_record: int = 100) -> tuple[list[bytes], int, float]:
    """`total` alert records of a generated stream over `keys` possible service/symptom keys.

    Returns the bodies, the keys the stream actually uses, and the event time it spans in hours. Zipf 0.8 and
    storms of 10 on average, rather than the generator's defaults, so that most of the key space is used.
    """
    spec = StormSpec(alerts=total, services=max(1, keys // 3), symptoms_per_service=3, zipf_s=0.8,
                     mean_storm_size=10.0, seed=seed)
    lines, seen, first, last = [], set(), None, 0.0
    for record, _ in generate(spec):
        lines.append(orjson.dumps(record))
        seen.add((record["labels"]["service"], record["labels"]["alertname"]))
        first = record["starts_at"] if first is None else first
        last = max(last, record["starts_at"])
        if len(lines) == total:
            break
    bodies = [b"\n".join(lines[i:i + per_record]) for i in range(0, len(lines), per_record)]
    return bodies, len(seen), (last - (first or 0.0)) / 3600.0


def proc_memory_mb(pid: int) -> dict[str, float]:
    """VmHWM (peak resident) and VmRSS of a process, in MiB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmHWM", "VmRSS"):
            out[name] = int(value.split()[0]) / 1024.0
    return out


def memory_run(broker: EmbeddedBroker, bodies: list[bytes], checkpoints: Sequence[int], timeout: float,
               lag_records: int | None = 200, env: dict[str, str] | None = None) -> list[dict[str, float]]:
    """One worker folds the stream; its memory each time the folded count passes a checkpoint.

    The stream is produced at most `lag_records` raw records ahead of what the worker has folded, as a live
    source would be; `None` produces it all at once, a catch-up from a backlog, where the consumer's fetch
    buffers (not the correlation state) take memory. `env`: worker settings (AIOPS_*) for this run.
    """
    dep = fresh_deployment(broker, **(env or {}))
    (worker,) = start_workers(dep, 1)
    per_record = bodies[0].count(b"\n") + 1
    points: list[dict[str, float]] = []
    try:
        if lag_records is None:
            produce_in_background(dep, bodies).join(timeout)
        sent = len(bodies) if lag_records is None else 0
        deadline = time.monotonic() + timeout
        todo = list(checkpoints)
        folded = peak = 0.0
        while todo and time.monotonic() < deadline:
            folded = progress(worker, deadline)[1]
            if folded >= todo[0]:
                mem = proc_memory_mb(worker.proc.pid)
                # Linux reports VmHWM as the larger of current RSS and a mark it updates only lazily, so a
                # later read can come out lower than an earlier one (seen once in the suite): keep the peak.
                peak = max(peak, mem["VmHWM"], mem["VmRSS"])
                points.append({"checkpoint": todo.pop(0), "folded": folded, "VmHWM": peak, "VmRSS": mem["VmRSS"]})
                continue
            if lag_records is not None and sent < len(bodies) and sent - folded / per_record < lag_records:
                chunk = bodies[sent:sent + lag_records // 2]
                dep.produce("alerts_raw", [(b"generic", b) for b in chunk])
                sent += len(chunk)
                continue
            time.sleep(POLL_S)
        if todo:
            raise TimeoutError(f"worker folded {folded} of {checkpoints[-1]} in {timeout}s:\n{worker.tail()}")
    finally:
        worker.stop()
    return points


def memory(broker: EmbeddedBroker, plan: Plan, lag: int | None = 200,
           env: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Per key-space size: the median memory at each checkpoint over `plan.runs` runs of the same stream."""
    rows = []
    for keys in plan.keys:
        bodies, seen, hours = memory_bodies(keys, plan.checkpoints[-1], seed=7)
        runs = [memory_run(broker, bodies, plan.checkpoints, plan.timeout_s, lag, env) for _ in range(plan.runs)]
        for i, checkpoint in enumerate(plan.checkpoints):
            rows.append({"keys": keys, "keys_seen": seen, "event_hours": hours, "checkpoint": checkpoint,
                         "vm_hwm_mb": statistics.median(r[i]["VmHWM"] for r in runs),
                         "vm_rss_mb": statistics.median(r[i]["VmRSS"] for r in runs),
                         "runs_hwm_mb": [r[i]["VmHWM"] for r in runs]})
    return rows


def flatness(rows: Sequence[dict[str, Any]], keys: int, lo: int, hi: int) -> dict[str, float]:
    """Growth of VmHWM and VmRSS from checkpoint `lo` to `hi` for one key space (0.05 = 5% more)."""
    at = {r["checkpoint"]: r for r in rows if r["keys"] == keys}
    return {m: at[hi][m] / at[lo][m] - 1.0 for m in ("vm_hwm_mb", "vm_rss_mb")}
