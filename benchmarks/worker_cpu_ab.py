"""One worker's CPU per alert, this tree against a base revision, in alternating runs on one embedded broker.

On a shared machine a worker's rate follows how much of a core it gets; the CPU it spends per alert moves far
less, so this is the figure to compare two versions of the code by. Each run is the throughput benchmark's
one-worker row (benchmarks/throughput_part.py) of `--path` (`raw` by default): a fresh deployment, 1,000 generic
NDJSON records of 100 alerts produced to alerts.raw once the worker owns its partitions, the clock from the first
parsed alert to the last folded one; or, with `--path hop`, the `alerts` records the HTTP ingest would write for
the same bodies, the clock from the start of their production. Per run:

* `alerts_per_s`, `ratio` (to the raw-consumer ceiling read after the run, as the throughput part does);
* `cpu_us_fold`: the worker's CPU (user + system, /proc) over that clock, per alert;
* `cpu_us_window`: its CPU over a fixed window from the first alert (`--window`, 30 s), per alert: the readers
  of `incidents` still behind when the clock stops are in it, and every version idles alike after it;
* `compiled`: 1 when the worker ran the compiled engine (`correlator/compiled.py`, from its /stats), else 0.

The base is `git archive`d into a temporary directory and its workers run from there (the same interpreter);
the order alternates every round. Medians of `--runs` per version, and each pair's ratio (branch / base).

    .venv/bin/python benchmarks/worker_cpu_ab.py --base main --runs 3
    .venv/bin/python benchmarks/worker_cpu_ab.py --base main --runs 5 --path hop
    .venv/bin/python benchmarks/worker_cpu_ab.py --quick     # one small pair: proves it runs, not a figure
"""

from __future__ import annotations

import argparse
import atexit
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import tests.workers  # noqa: E402  (its ROOT says which tree a worker runs)
from bench_workers import cpu_seconds, fresh_deployment, start_workers, stop_all  # noqa: E402
from pipeline_throughput import storm_records  # noqa: E402
from throughput_part import ceiling_after, hop_records, timed_fold  # noqa: E402

from stream.broker import EmbeddedBroker, start_broker  # noqa: E402


def export(rev: str) -> Path:
    """The tree of `rev` in a new temporary directory."""
    where = Path(tempfile.mkdtemp(prefix="aiops-ab-"))
    atexit.register(shutil.rmtree, where, ignore_errors=True)
    archive = subprocess.run(["git", "archive", rev], cwd=ROOT, check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(where)], input=archive, check=True)
    return where


def one_run(broker: EmbeddedBroker, tree: Path, bodies: list[bytes], alerts: int, window_s: float,
            timeout: float = 600.0, path: str = "raw") -> dict[str, float]:
    """Rate, ratio and CPU per alert of one worker running the code of `tree`."""
    tests.workers.ROOT = tree
    dep = fresh_deployment(broker)
    placed = hop_records(bodies, dep.partitions) if path == "hop" else []
    (worker,) = procs = start_workers(dep, 1)
    pid = worker.proc.pid
    try:
        clock = timed_fold(dep, procs, path, bodies, placed, alerts, timeout)
        time.sleep(max(0.0, clock.start + window_s - time.monotonic()))
        cpu_window = cpu_seconds(pid) - clock.cpu_start
        compiled = worker.get("/stats").get("engine_build") == "compiled"  # absent before session 32: pure
    finally:
        stop_all(procs)
    ceiling = ceiling_after(broker, dep, path, bodies)
    rate = clock.rate(alerts)
    return {"alerts_per_s": rate, "ratio": rate / ceiling,
            "cpu_us_fold": 1e6 * (clock.cpu_end - clock.cpu_start) / alerts, "cpu_us_window": 1e6 * cpu_window / alerts,
            "compiled": float(compiled)}


def main(argv: list[str] | None = None) -> int:
    """Alternate base and this tree for `--runs` rounds; print every run and the medians (JSON)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base", default="main", help="the revision to compare with (git archive)")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--records", type=int, default=1000)
    p.add_argument("--per-record", type=int, default=100)
    p.add_argument("--window", type=float, default=30.0)
    p.add_argument("--path", choices=("raw", "hop"), default="raw", help="the throughput part's path (raw, hop)")
    p.add_argument("--quick", action="store_true", help="one small pair: proves it runs, not a figure")
    args = p.parse_args(argv)
    if args.quick:
        args.records, args.runs, args.window = 50, 1, 3.0
    trees = {"base": export(args.base), "branch": ROOT}
    bodies, alerts = storm_records(args.records, args.per_record, seed=7)
    runs: dict[str, list[dict[str, float]]] = {"base": [], "branch": []}
    with start_broker() as broker:
        for i in range(args.runs):
            for name in (("base", "branch") if i % 2 == 0 else ("branch", "base")):
                runs[name].append(one_run(broker, trees[name], bodies, alerts, args.window,
                                           path=args.path))
                print(json.dumps({"version": name, **runs[name][-1]}), file=sys.stderr, flush=True)
    keys = [k for k in runs["base"][0] if k != "compiled"]  # which engine each run had: in its own line above
    out: dict[str, Any] = {"base": args.base, "path": args.path, "alerts": alerts, "runs": args.runs,
                           **{name: {k: statistics.median(r[k] for r in rs) for k in keys} for name, rs in runs.items()},
                           "pair_ratios": {k: [b[k] / a[k] for a, b in zip(runs["base"], runs["branch"], strict=True)]
                                           for k in keys}}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
