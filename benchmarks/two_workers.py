"""Where a second worker's CPU goes: one worker against two on the same input, CPU per alert of every process.

Issue 19 asks for two workers at >= 1.7x one; on this machine (2 shared cores, the broker and the producer on them
too) `throughput.py --only throughput` gave two workers 0.71-0.89x of one: slower than one. This driver runs the
throughput part's run (`throughput_part.timed_fold`: a fresh deployment, workers started and owning their
`alerts` partitions first, then the records, 1,000 records of 100 alerts by default, `--path hop` or `raw`) with
one worker and with two, in interleaved rounds on one embedded broker, and reads beside the rate:

* per worker: CPU per alert over the fold clock and over a `--window` from its start, its idle CPU per second
  before the records (`--before` s after the workers own their partitions) and after the window (`--idle` s),
  `work` = window CPU less the idle rate over the window, CPU by thread over the window, the alerts it folded;
* the broker's CPU the same ways, and this process's (the producer thread and the polls) over the fold;
* `total`: workers + broker (+ this process) per alert, over the fold and over the window;
* rebalances: lines of each worker's log naming a rebalance or an assignment after the records started;
* records and bytes on every topic of the deployment after the run (`ablation_probe.topic_sizes`);
* with `--pin`, worker i runs on core i only (`taskset -a -cp`), the broker and the producer where the scheduler
  puts them;
* with `--timers`, each worker's stage timers (`ablation_probe`'s probe: thread CPU of each stage's fold, tick,
  checkpoint, Faust's drain and the standby changelog apply), summed over the workers.

Arms: `1w`, `2w`, and any `NAME=N:VAR=VALUE[,VAR=VALUE]` of your own (`--arm`). Since recov38 the workers keep no
standby replicas (`table_standby_replicas` 0, the setting `AIOPS_TABLE_STANDBY_REPLICAS`; Faust's own
`TABLE_STANDBY_REPLICAS` is no longer read): `2w_standby=2:AIOPS_TABLE_STANDBY_REPLICAS=1` gives the runs before.

    .venv/bin/python benchmarks/two_workers.py --runs 3                     # 1w, 2w on the hop path
    .venv/bin/python benchmarks/two_workers.py --runs 3 --arm 2w_standby=2:AIOPS_TABLE_STANDBY_REPLICAS=1 1w 2w 2w_standby
    .venv/bin/python benchmarks/two_workers.py --quick                      # one small round: proves it runs
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
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

from ablation_probe import GC_PROBE, gc_totals, thread_cpu, topic_sizes  # noqa: E402
from bench_workers import cpu_seconds, fresh_deployment, start_workers, stop_all  # noqa: E402
from pipeline_throughput import storm_records  # noqa: E402
from throughput_part import hop_records, timed_fold  # noqa: E402

from stream.broker import EmbeddedBroker, start_broker  # noqa: E402

ARMS: dict[str, tuple[int, dict[str, str]]] = {"1w": (1, {}), "2w": (2, {})}
"""Named arms: worker count and worker environment (added to the deployment's)."""

REBALANCE = re.compile(r"rebalanc|partitions (?:revoked|assigned)|_on_partitions_(?:revoked|assigned)|"
                       r"elected|joined group|generation", re.IGNORECASE)
"""Log lines that mark a rebalance step (Faust's, aiokafka's and ours)."""


def _grouped(threads: dict[str, float]) -> dict[str, float]:
    """Thread CPU keyed `name:tid` summed by thread name (the tids differ between workers and runs)."""
    out: dict[str, float] = {}
    for key, value in threads.items():
        name = key.rpartition(":")[0]
        out[name] = out.get(name, 0.0) + value
    return out


def one_run(broker: EmbeddedBroker, count: int, env: dict[str, str], bodies: list[bytes], alerts: int,
            path: str, window_s: float, before_s: float, idle_s: float, probe: Path, timers: bool,
            pin: bool = False) -> dict[str, Any]:
    """`count` workers with `env` on the run's records: CPU of every process, rebalances, topics."""
    gc_out = Path(tempfile.mkdtemp(prefix="two-workers-gc-"))
    dep = fresh_deployment(broker, PYTHONPATH=str(probe), ABLATION_GC_OUT=str(gc_out),
                           **({"ABLATION_TIMERS": "1"} if timers else {}), **env)
    placed = hop_records(bodies, dep.partitions) if path == "hop" else []
    procs = start_workers(dep, count)
    pids = [w.proc.pid for w in procs]
    if pin:  # worker i on core i % cores (every thread), the broker and this process left to the scheduler
        for i, pid in enumerate(pids):
            subprocess.run(["taskset", "-a", "-cp", str(i % (os.cpu_count() or 1)), str(pid)], check=True,
                           capture_output=True)
    per = 1e6 / alerts
    try:
        owned_at = time.monotonic()
        cpu_a = [cpu_seconds(p) for p in pids]
        broker_a = cpu_seconds(broker.pid)
        time.sleep(before_s)  # the workers own their partitions: what they spend before any record
        cpu_b = [cpu_seconds(p) for p in pids]
        broker_b = cpu_seconds(broker.pid)
        offsets = [w.log.stat().st_size for w in procs]
        threads0 = [thread_cpu(p) for p in pids]
        timers0 = [gc_totals(gc_out, p).get("timers", {}) for p in pids]
        broker0, self0 = cpu_seconds(broker.pid), time.process_time()
        cpu_start = [cpu_seconds(p) for p in pids]  # hop: the clock starts with the call below
        clock = timed_fold(dep, procs, path, bodies, placed, alerts, 600.0)
        fold_cpu = [cpu_seconds(p) for p in pids]  # read right after the clock: close to clock.cpu_end's split
        broker_fold, self_fold = cpu_seconds(broker.pid) - broker0, time.process_time() - self0
        time.sleep(max(0.0, clock.start + window_s - time.monotonic()))
        cpu_w = [cpu_seconds(p) for p in pids]
        broker_w = cpu_seconds(broker.pid)
        threads1 = [thread_cpu(p) for p in pids]
        timers1 = [gc_totals(gc_out, p).get("timers", {}) for p in pids]
        stats = [w.get("/stats") for w in procs]
        assignment = [w.get("/assignment") for w in procs]
        time.sleep(idle_s)
        cpu_i = [cpu_seconds(p) for p in pids]
        broker_i = cpu_seconds(broker.pid)
        logs = [w.log.read_bytes()[off:].decode(errors="replace") for w, off in zip(procs, offsets, strict=True)]
    finally:
        stop_all(procs)
    sizes = asyncio.run(topic_sizes(broker.bootstrap, dep.app_id))
    workers = []
    for i, pid in enumerate(pids):
        before_rate = (cpu_b[i] - cpu_a[i]) / before_s
        idle_rate = (cpu_i[i] - cpu_w[i]) / idle_s
        window = cpu_w[i] - cpu_start[i]
        threads = {k: v - threads0[i].get(k, 0.0) for k, v in threads1[i].items()}
        workers.append({
            "pid": pid, "folded": int(stats[i].get("counters", {}).get("records", 0)),
            "alerts_partitions": assignment[i].get("alerts_partitions"),
            "cpu_us_fold": per * (fold_cpu[i] - cpu_start[i]), "cpu_us_window": per * window,
            "before_cpu_per_s": before_rate, "idle_cpu_per_s": idle_rate,
            "cpu_us_work": per * (window - idle_rate * window_s),
            "threads_us": {k: round(per * v, 2) for k, v in sorted(_grouped(threads).items(), key=lambda kv: -kv[1])
                           if v > 0},
            "rebalance_lines": [line[:200] for line in logs[i].splitlines() if REBALANCE.search(line)][:40],
            "timers_us": {k: [v[0] - timers0[i].get(k, [0, 0.0])[0],
                              round(per * (v[1] - timers0[i].get(k, [0, 0.0])[1]), 2)]
                          for k, v in sorted(timers1[i].items())},
        })
    broker_window = broker_w - broker0
    broker_idle = (broker_i - broker_w) / idle_s
    workers_fold = per * (clock.cpu_end - clock.cpu_start)
    workers_window = sum(w["cpu_us_window"] for w in workers)
    return {
        "workers": count, "fold_s": clock.end - clock.start, "alerts_per_s": clock.rate(alerts),
        "owned_to_records_s": clock.start - owned_at,
        "workers_cpu_us_fold": workers_fold, "workers_cpu_us_window": workers_window,
        "workers_cpu_us_work": sum(w["cpu_us_work"] for w in workers),
        "workers_before_cpu_per_s": sum(w["before_cpu_per_s"] for w in workers),
        "workers_idle_cpu_per_s": sum(w["idle_cpu_per_s"] for w in workers),
        "broker_cpu_us_fold": per * broker_fold, "broker_cpu_us_window": per * broker_window,
        "broker_before_cpu_per_s": (broker_b - broker_a) / before_s, "broker_idle_cpu_per_s": broker_idle,
        "broker_cpu_us_work": per * (broker_window - broker_idle * window_s),
        "self_cpu_us_fold": per * self_fold,
        "total_cpu_us_fold": workers_fold + per * broker_fold + per * self_fold,
        "total_cpu_us_window": workers_window + per * broker_window,
        "threads_us": {k: round(sum(w["threads_us"].get(k, 0.0) for w in workers), 2)
                       for k in sorted({k for w in workers for k in w["threads_us"]})},
        "timers_us": {k: round(sum(w["timers_us"].get(k, [0, 0.0])[1] for w in workers), 2)
                      for k in sorted({k for w in workers for k in w["timers_us"]})},
        "per_worker": workers,
        "topics": {k: {"records": r, "bytes": b} for k, (r, b) in sizes.items()},
    }


SUMMARY = ("alerts_per_s", "fold_s", "workers_cpu_us_fold", "workers_cpu_us_window", "workers_cpu_us_work",
           "workers_before_cpu_per_s", "workers_idle_cpu_per_s", "broker_cpu_us_fold", "broker_cpu_us_window",
           "broker_cpu_us_work", "broker_idle_cpu_per_s", "self_cpu_us_fold", "total_cpu_us_fold",
           "total_cpu_us_window", "load")

TIMERS = {"drain": ("faust._drain_messages",), "console": ("console._apply_guarded",),
          "changelog_apply": ("table.apply_changelog_batch", "table.on_changelog_event"),
          "correlate": ("faust.agent:correlate",), "stage2": ("faust.agent:stage2_group",),
          "incident_sla": ("faust.agent:incident_sla",)}
"""Stage timers (`--timers`) summed into the medians: Faust's drain (where a standby's changelog records are decoded),
the console feed (every worker folds every record), the changelog apply, the three agents."""
EXTRA = ("thread_main_us", "thread_python_us", *(f"timer_{k}_us" for k in TIMERS))


def main(argv: list[str] | None = None) -> int:
    """Interleave the arms for `--runs` rounds; every run on stderr (JSON lines), medians on stdout (JSON)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("names", nargs="*", default=["1w", "2w"])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--records", type=int, default=1000)
    p.add_argument("--per-record", type=int, default=100)
    p.add_argument("--path", choices=("raw", "hop"), default="hop")
    p.add_argument("--window", type=float, default=30.0)
    p.add_argument("--before", type=float, default=5.0, help="seconds of CPU read after the workers own their "
                   "partitions, before any record")
    p.add_argument("--idle", type=float, default=10.0, help="seconds of idle CPU read after the window")
    p.add_argument("--timers", action="store_true", help="ablation_probe's stage timers in every worker")
    p.add_argument("--arm", action="append", default=[], help="NAME=N:VAR=VALUE[,VAR=VALUE]: an arm of your own")
    p.add_argument("--pin", action="store_true", help="pin worker i to core i (taskset, all its threads)")
    p.add_argument("--quick", action="store_true", help="one small round: proves it runs, not a figure")
    args = p.parse_args(argv)
    if args.quick:
        args.records, args.runs, args.window, args.before, args.idle = 50, 1, 4.0, 1.0, 1.0
    for spec in args.arm:
        name, _, rest = spec.partition("=")
        n, _, pairs = rest.partition(":")
        ARMS[name] = (int(n), dict(pair.split("=", 1) for pair in pairs.split(",") if pair))
    probe = Path(tempfile.mkdtemp(prefix="two-workers-probe-"))
    (probe / "sitecustomize.py").write_text(GC_PROBE)
    bodies, alerts = storm_records(args.records, args.per_record, seed=7)
    runs: dict[str, list[dict[str, Any]]] = {n: [] for n in args.names}
    with start_broker() as broker:
        for i in range(args.runs):
            for name in (args.names if i % 2 == 0 else list(reversed(args.names))):
                count, env = ARMS[name]
                run = one_run(broker, count, dict(env), bodies, alerts, args.path, args.window, args.before,
                              args.idle, probe, args.timers, args.pin)
                run["load"] = os.getloadavg()[0]
                runs[name].append(run)
                print(json.dumps({"arm": name, "round": i + 1, **run}), file=sys.stderr, flush=True)
    for rs in runs.values():  # the threads and the timers that tell one worker from two, beside the summary
        for r in rs:
            r.update({f"thread_{k}_us": r["threads_us"].get(k, 0.0) for k in ("main", "python")})
            r.update({f"timer_{k}_us": sum(r["timers_us"].get(t, 0.0) for t in ts) for k, ts in TIMERS.items()})
    medians = {name: {k: statistics.median(r[k] for r in rs) for k in SUMMARY + EXTRA} for name, rs in runs.items()}
    print(json.dumps({"path": args.path, "alerts": alerts, "runs": args.runs, "medians": medians,
                      "per_run": {name: {k: [round(r[k], 2) for r in rs] for k in SUMMARY + EXTRA}
                                  for name, rs in runs.items()}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
