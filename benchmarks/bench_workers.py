"""Shared plumbing of the pipeline benchmarks (benchmarks/throughput.py): sizes, worker processes on the
embedded broker, percentiles and histogram quantiles, the machine line."""

from __future__ import annotations

import atexit
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
import urllib.error
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from stream.broker import EmbeddedBroker  # noqa: E402
from tests.workers import Deployment, WorkerProc  # noqa: E402

POLL_S = 0.05
"""Seconds between two polls of the workers' /stats."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    """Sizes of one invocation: the full benchmark or the test suite's `--quick` smoke run."""

    records: dict[int, int]  # alerts per record -> records per throughput run
    workers: tuple[int, ...] = (1, 2)
    paths: tuple[str, ...] = ("raw", "hop")  # throughput_part.PATHS
    runs: int = 3
    duration_s: float = 20.0
    checkpoints: tuple[int, ...] = (10**4, 10**5, 10**6)
    keys: tuple[int, ...] = (10**3, 10**4)
    timeout_s: float = 600.0


FULL = Plan(records={100: 1000, 1: 20_000})
QUICK = Plan(records={100: 30, 1: 300}, runs=1, duration_s=4.0, checkpoints=(10**3, 3 * 10**3, 10**4),
             keys=(100, 1000), timeout_s=180.0)

# ---- worker plumbing ----------------------------------------------------------------------------------------

def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (Linux /proc), 0.0 elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_of(workers: Sequence[WorkerProc]) -> float:
    """CPU seconds the worker processes have used so far."""
    return sum(cpu_seconds(w.proc.pid) for w in workers)


@dataclass(frozen=True)
class FoldClock:
    """When (monotonic s) and at what CPU (`cpu_of`) the workers started and finished folding a run's alerts."""

    start: float
    end: float
    cpu_start: float
    cpu_end: float

    def rate(self, alerts: int) -> float:
        """Alerts/s; no span is measured finer than the polls that bound it."""
        return alerts / max(self.end - self.start, POLL_S)


def fold_clock(workers: Sequence[WorkerProc], alerts: int, deadline: float,
               started: tuple[float, float] | None = None) -> FoldClock | None:
    """Poll the workers until they folded `alerts` (None past `deadline`). The clock starts at `started` (time,
    CPU) when the caller started it, else at the last poll that saw nothing read: the first record was read after
    it. Started at the first poll that saw a record, a small run folded whole between two polls measured a span
    of 0 (once 3e9 alerts/s)."""
    before = started or (time.monotonic(), cpu_of(workers))
    while time.monotonic() < deadline:
        asked = time.monotonic()
        counts = [progress(w, deadline) for w in workers]
        received, folded = sum(c[0] for c in counts), sum(c[1] for c in counts)
        if folded >= alerts:
            return FoldClock(before[0], time.monotonic(), before[1], cpu_of(workers))
        if started is None and received == 0:
            before = (asked, cpu_of(workers))
        time.sleep(POLL_S)
    return None


def progress(worker: WorkerProc, deadline: float) -> tuple[int, int]:
    """(alerts parsed by normalize, alert records folded by correlate) on one worker, from `/stats`.

    Not from /metrics: rendering the whole exposition 20 times a second cost a worker ~10% of its CPU,
    which the benchmark would have charged to the pipeline. A saturated worker on a busy machine can leave a
    poll unanswered for longer than any fixed read timeout (30 s, in a test run at load 16), so an unanswered
    poll is asked again until the run's own `deadline` (time.monotonic()), not counted as a failed run.
    """
    while True:
        try:
            stats = worker.get("/stats", timeout=max(1.0, min(30.0, deadline - time.monotonic())))
            return int(stats["normalized"]), int(stats["counters"].get("records", 0))
        except (TimeoutError, urllib.error.URLError) as exc:
            if time.monotonic() >= deadline:
                raise TimeoutError(f"/stats unanswered until the run's deadline:\n{worker.tail()}") from exc
            say(f"/stats of {worker.log.parent.name}/{worker.log.stem} unanswered ({exc!r}); asking again")


def start_workers(dep: Deployment, count: int, timeout: float = 120.0) -> list[WorkerProc]:
    """Start `count` workers and wait until together they own every partition of `alerts`, each some.

    Records are produced only after this, so that no rebalance falls inside a timed run.
    """
    started = time.monotonic()
    workers = [dep.start_worker(f"w{i}") for i in range(count)]
    try:
        for w in workers:
            w.wait_web()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            owned = [len(w.get("/assignment")["alerts_partitions"]) for w in workers]
            if sum(owned) == dep.partitions and min(owned) > 0:
                say(f"{count} worker(s) own the partitions of {dep.workdir.name} after "
                    f"{time.monotonic() - started:.1f} s")
                return workers
            time.sleep(0.3)
        raise TimeoutError(f"workers own {owned} partitions after {timeout}s:\n{workers[0].tail()}")
    except BaseException:
        stop_all(workers)
        raise


def stop_all(workers: Sequence[WorkerProc]) -> None:
    """Stop every worker by pid."""
    for w in workers:
        w.stop()


def produce_in_background(dep: Deployment, bodies: Sequence[bytes]) -> threading.Thread:
    """Produce raw records (keyed `generic`) from a thread, so the caller can poll the workers meanwhile."""
    thread = threading.Thread(target=dep.produce, args=("alerts_raw", [(b"generic", b) for b in bodies]), daemon=True)
    thread.start()
    return thread


def fresh_deployment(broker: EmbeddedBroker, **env: str) -> Deployment:
    """A deployment with its own topics; the worker's default idle timers (not the tests' long idle advance)."""
    workdir = Path(tempfile.mkdtemp(prefix="aiops-bench-"))
    atexit.register(shutil.rmtree, workdir, ignore_errors=True)  # logs are read while the run lasts, not after
    dep = Deployment(broker, workdir)
    dep.extra_env = dict(env)
    dep.create_topics()
    return dep


def percentiles(values: Sequence[float]) -> dict[str, float]:
    """p50, p90, p99 and max of a sample (nearest rank), NaN-free: empty gives zeros."""
    if not values:
        return {"n": 0, "p50": 0.0, "p90": 0.0, "p99": 0.0, "max": 0.0}
    s = sorted(values)

    def rank(q: float) -> float:
        return s[min(len(s) - 1, max(0, int(q * len(s) + 0.5) - 1))]

    return {"n": len(s), "p50": rank(0.50), "p90": rank(0.90), "p99": rank(0.99), "max": s[-1]}


def histogram_quantiles(worker: WorkerProc, name: str) -> dict[str, float]:
    """p50/p90/p99 of a Prometheus histogram on a worker, interpolated linearly inside buckets."""
    buckets: list[tuple[float, float]] = []
    for line in worker.get("/metrics").splitlines():
        if line.startswith(name + "_bucket{"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            buckets.append((float("inf") if le == "+Inf" else float(le), float(line.rpartition(" ")[2])))
    buckets.sort()
    total = buckets[-1][1] if buckets else 0.0
    out: dict[str, float] = {"n": total}
    for q in (0.50, 0.90, 0.99):
        out[f"p{round(q * 100)}"] = _bucket_quantile(buckets, q * total)
    return out


def _bucket_quantile(buckets: Sequence[tuple[float, float]], target: float) -> float:
    lower, below = 0.0, 0.0
    for upper, count in buckets:
        if count >= target and target > 0:
            if upper == float("inf"):
                return lower
            return lower + (upper - lower) * (target - below) / max(count - below, 1e-9)
        lower, below = upper, count
    return 0.0


def say(line: str) -> None:
    """A progress line on stderr, stamped with the wall clock: what a run that is cut short was doing."""
    print(f"[{time.strftime('%H:%M:%S')}] {line}", file=sys.stderr, flush=True)


def machine() -> str:
    """One line naming the machine the figures came from."""
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor() or "?")
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"{os.cpu_count()} CPUs ({model}), Python {platform.python_version()}, {platform.system()} "
            f"{platform.machine()}; load average at the start {load} (the machine is shared: figures are noisy)")
