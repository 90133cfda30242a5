"""Stage-1 engine alone: alerts/s folding parsed alerts on one core, and peak memory vs stream length.

Each size runs in a fresh child process so that its peak RSS is its own. Beside the engine, the same child
times a baseline fold over the same records (a dict per key and a set of fingerprints: the least Python
work any correlator must do per alert), so the ratio survives a noisy, shared machine. The child runs with
the worker's GC settings (`stream.worker.tune_gc`: gen-0 threshold 50,000 and a frozen start-up heap);
`--default-gc` measures CPython's defaults instead.

    python benchmarks/engine_throughput.py                 # 10^5 and 10^6 alerts, 3 runs each, medians
    python benchmarks/engine_throughput.py --quick         # small, for the test suite
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from storms import StormSpec, generate  # noqa: E402

from correlator.config import CorrelationConfig  # noqa: E402
from correlator.engine import Correlator  # noqa: E402
from correlator.records import AlertRecord  # noqa: E402
from stream.runtime import tune_gc  # noqa: E402

BATCH = 2_000


def _record(d: dict[str, Any]) -> AlertRecord:
    labels = d["labels"]
    return AlertRecord(d["fingerprint"], f"{labels['service']}/{labels['alertname']}", d["status"],
                       d["severity"], d["starts_at"], d.get("ends_at"), labels)


def _batches(spec: StormSpec) -> Any:
    batch: list[AlertRecord] = []
    for d, _ in generate(spec):
        batch.append(_record(d))
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def _baseline(batch: list[AlertRecord], seen: dict[str, set[str]]) -> None:
    for a in batch:
        fps = seen.get(a.key)
        if fps is None:
            seen[a.key] = fps = set()
        fps.add(a.fingerprint)


def child(alerts: int, services: int, seed: int) -> dict[str, Any]:
    """One measured run: engine and baseline over the same generated records."""
    spec = StormSpec(alerts=alerts, services=services, seed=seed)
    engine = Correlator(CorrelationConfig())
    engine_s = baseline_s = 0.0
    seen: dict[str, set[str]] = {}
    records = events = cleared_at = 0
    peak_state: dict[str, int] = {"keys": 0, "incidents": 0, "members": 0, "timers": 0}
    for n, batch in enumerate(_batches(spec)):
        t0 = time.perf_counter()
        events += len(engine.ingest(batch))
        t1 = time.perf_counter()
        _baseline(batch, seen)
        t2 = time.perf_counter()
        engine_s += t1 - t0
        baseline_s += t2 - t1
        records += len(batch)
        if n % 50 == 0:
            size = engine.state_size()
            peak_state = {k: max(v, size[k]) for k, v in peak_state.items()}
        if records - cleared_at > 50_000:
            seen.clear()  # the baseline must not grow with the stream either, or it would own the peak RSS
            cleared_at = records
    t0 = time.perf_counter()
    events += len(engine.finish())
    engine_s += time.perf_counter() - t0
    c = engine.counters
    return {
        "alerts": c.alerts, "records": records, "duplicates": c.duplicates, "incidents": c.opened,
        "events": events, "engine_s": engine_s, "baseline_s": baseline_s,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "peak_state": peak_state,
    }


def _run_child(alerts: int, services: int, seed: int, worker_gc: bool) -> dict[str, Any]:
    flags = [] if worker_gc else ["--default-gc"]
    out = subprocess.run(
        [sys.executable, __file__, "--child", str(alerts), "--services", str(services), "--seed", str(seed), *flags],
        check=True, capture_output=True, text=True,
    )
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def main(argv: list[str] | None = None) -> int:
    """Run every size `runs` times and print medians side by side with the baseline."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="100000,1000000")
    p.add_argument("--services", type=int, default=2000)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--quick", action="store_true", help="small sizes, one run: proves it works, not speed")
    p.add_argument("--json", action="store_true")
    p.add_argument("--default-gc", dest="worker_gc", action="store_false",
                   help="run with CPython's default GC thresholds instead of the worker's (stream.worker.tune_gc)")
    p.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child is not None:
        if args.worker_gc:
            tune_gc()
        print(json.dumps(child(args.child, args.services, args.seed)))
        return 0
    sizes = [2_000, 20_000] if args.quick else [int(s) for s in args.sizes.split(",")]
    runs = 1 if args.quick else args.runs
    rows = []
    for size in sizes:
        results = [_run_child(size, args.services, args.seed + r, args.worker_gc) for r in range(runs)]
        rows.append(_summary(size, results))
    if args.json:
        print(json.dumps(rows))
    else:
        _print_table(rows, runs, args.worker_gc)
    return 0


def _summary(size: int, results: list[dict[str, Any]]) -> dict[str, Any]:
    med = statistics.median
    return {
        "size": size,
        "records": results[0]["records"],
        "alerts": results[0]["alerts"],
        "incidents": results[0]["incidents"],
        "engine_records_per_s": med(r["records"] / r["engine_s"] for r in results),
        "engine_alerts_per_s": med(r["alerts"] / r["engine_s"] for r in results),
        "baseline_records_per_s": med(r["records"] / r["baseline_s"] for r in results),
        "peak_rss_mb": med(r["peak_rss_mb"] for r in results),
        "peak_state": results[0]["peak_state"],
    }


def _print_table(rows: list[dict[str, Any]], runs: int, worker_gc: bool) -> None:
    print(f"stage-1 engine, one core, median of {runs} run(s); records include re-sends and resolutions; "
          f"{'worker GC settings' if worker_gc else 'default GC'}")
    print(f"{'alerts':>9} {'records':>9} {'incidents':>9} {'engine rec/s':>13} {'alerts/s':>10} "
          f"{'baseline rec/s':>15} {'ratio':>6} {'peak RSS MB':>11}  peak state")
    for r in rows:
        ratio = r["engine_records_per_s"] / r["baseline_records_per_s"]
        print(f"{r['alerts']:>9} {r['records']:>9} {r['incidents']:>9} {r['engine_records_per_s']:>13,.0f} "
              f"{r['engine_alerts_per_s']:>10,.0f} {r['baseline_records_per_s']:>15,.0f} {ratio:>6.2f} "
              f"{r['peak_rss_mb']:>11.1f}  {r['peak_state']}")


if __name__ == "__main__":
    sys.exit(main())
