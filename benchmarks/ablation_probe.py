"""Where a worker's CPU per alert goes when a part is switched off: CPU by thread, the cyclic GC, records and bytes
per topic, in interleaved rounds of one worker per setting on one embedded broker.

Issue 19 (session 36): a py-spy profile gave stage 2 about 11% of a worker's samples, yet switching it off
(`AIOPS_STAGE2=false`) saved about a third of the worker's CPU per alert. This driver measures what else changes
with such a switch. Each run is `worker_cpu_ab.one_run`'s (the throughput part's one-worker row on `--path`, 1,000
records of 100 alerts), with, beside CPU per alert over the fold and over a `--window` from its start:

* `idle_cpu_per_s`: the worker's CPU per second over `--idle` seconds after the window (drained by then), and
  `cpu_us_work`: the window's CPU less that idle rate over the window, per alert: the work the alerts caused;
* `threads`: CPU seconds per thread over the window (/proc/<pid>/task), by thread name: the main loop
  against Faust's consumer thread and the rest;
* `gc`: per generation, collections and the collecting thread's CPU in them over the window (a `sitecustomize`
  put on the worker's PYTHONPATH registers a `gc.callbacks` timer and writes its totals to a file every 0.2 s);
* `topics`: records and bytes (key + value + headers) on every topic of the deployment after the run;
* with `--timers`, `timers_us`: calls and thread CPU (us per alert, inclusive) of each stage's fold and tick,
  each checkpoint, Faust's message drain and agent loops (counted step by step), and named calls inside them
  (the probe wraps them once the worker's modules are imported; the wrappers cost about 1 us per 2 calls);
* with `--pyspy DIR`, a py-spy raw profile of the window (`benchmarks/pyspy_diff.py` compares two settings).
  py-spy 0.4.3 counts samples of waiting threads too here (a sleeping thread got samples even with `--gil`),
  so its totals run at about twice the CPU: compare functions, not shares of the total.

Names: `all`, `stage2_off`, `console_off`, `insight_off` (`SETTINGS`), `rev:<revision>` (that revision's tree,
every part on), or your own with `--setting`.

    .venv/bin/python benchmarks/ablation_probe.py --runs 3 --path hop all stage2_off
    .venv/bin/python benchmarks/ablation_probe.py --setting 'gc_off=AIOPS_X=1' all gc_off   # a setting of your own
    .venv/bin/python benchmarks/ablation_probe.py --timers rev:5b16e97 rev:dcf5772   # two revisions, all on
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
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

from aiokafka import AIOKafkaConsumer  # noqa: E402

import tests.workers  # noqa: E402  (its ROOT says which tree a worker runs)
from bench_workers import cpu_seconds, fresh_deployment, start_workers, stop_all  # noqa: E402
from pipeline_throughput import storm_records  # noqa: E402
from throughput_part import hop_records, timed_fold  # noqa: E402
from worker_cpu_ab import export  # noqa: E402

from stream.broker import EmbeddedBroker, start_broker  # noqa: E402

SETTINGS: dict[str, dict[str, str]] = {
    "all": {},
    "stage2_off": {"AIOPS_STAGE2": "false"},
    "console_off": {"AIOPS_CONSOLE": "false"},
    "insight_off": {"AIOPS_INSIGHT": "false"},
}
"""Named worker environments (added to the deployment's)."""

PYSPY = os.environ.get("PYSPY", "/tmp/pyspy/bin/py-spy")
"""py-spy's binary (installed outside the venv: `pip install --target /tmp/pyspy py-spy`), for `--pyspy`."""

GC_PROBE = """
import gc, json, os, sys, threading, time
_out = os.environ.get("ABLATION_GC_OUT")
if _out:
    _n = [0, 0, 0]; _t = [0.0, 0.0, 0.0]; _c = [0, 0, 0]; _start = [0.0]
    _timers = {}
    def _cb(phase, info):
        if phase == "start":
            _start[0] = time.thread_time()  # the collecting thread's CPU (it holds the GIL while it collects)
        else:
            g = info["generation"]; _n[g] += 1; _t[g] += time.thread_time() - _start[0]; _c[g] += info["collected"]
    gc.callbacks.append(_cb)

    def _add(key, spent):
        t = _timers.get(key)
        if t is None:
            t = _timers[key] = [0, 0.0]
        t[0] += 1; t[1] += spent

    class _Timed:  # CPU of the thread while the coroutine runs a step, summed over its steps (inclusive)
        def __init__(self, coro, key, steps=False):
            self.coro, self.key, self.steps = coro, key, steps
        def __await__(self):  # a long-running loop (Faust's) is counted as it goes: one call per step
            coro, value, exc, clock, key = self.coro, None, None, time.thread_time, self.key
            steps = self.steps
            spent = 0.0
            try:
                while True:
                    t = clock()
                    try:
                        y = coro.throw(exc) if exc is not None else coro.send(value)
                    except StopIteration as stop:
                        spent += clock() - t
                        return stop.value
                    if steps:
                        _add(key, clock() - t)
                    else:
                        spent += clock() - t
                    try:
                        value, exc = (yield y), None
                    except BaseException as e:
                        value, exc = None, e
            finally:
                if not steps:
                    _add(key, spent)

    def _wrap_async(owner, name, keyf, steps=False):
        f = getattr(owner, name)
        async def timed(*a, **k):
            return await _Timed(f(*a, **k), keyf(*a, **k), steps)
        setattr(owner, name, timed)

    def _wrap_sync(owner, name, key):
        f = getattr(owner, name)
        def timed(*a, **k):
            t = time.thread_time()
            try:
                return f(*a, **k)
            finally:
                _add(key, time.thread_time() - t)
        setattr(owner, name, timed)

    def _patch():
        m = sys.modules
        st, s2, ck, pl = m["stream.stages"], m["stream.stage2_agent"], m["stream.checkpoint"], m["stream.pipeline"]
        _wrap_async(st.StageRunner, "fold", lambda self, stage, *a, **k: "fold:" + stage.spec.name)
        _wrap_async(st.StageRunner, "tick", lambda self, stage, *a, **k: "tick:" + stage.spec.name)
        _wrap_async(ck.Checkpointer, "run",
                    lambda self, *a, **k: "checkpoint:" + type(getattr(self.touched, "__self__", None)).__name__)
        _wrap_async(s2.Stage2, "route", lambda *a, **k: "stage2.route")
        _wrap_async(s2.Stage2, "commit", lambda *a, **k: "stage2.commit(publish)")
        _wrap_async(s2.Stage2, "report_progress", lambda *a, **k: "stage2.report_progress")
        _wrap_async(s2.Stage2, "heartbeat", lambda *a, **k: "stage2.heartbeat")
        _wrap_async(pl.Pipeline, "publish", lambda *a, **k: "pipeline.publish")
        _wrap_sync(s2, "decode_routed", "stage2.decode_routed")
        _wrap_sync(m["correlator.stage2.engine"].Grouper, "ingest", "Grouper.ingest")
        _wrap_sync(m["correlator.stage2.engine"].Grouper, "advance", "Grouper.advance")
        _wrap_sync(m["stream.stage2_state"].GroupTableStore, "write_keys", "stage2.write_keys")
        _wrap_sync(m["correlator.engine"].Correlator, "ingest", "Correlator.ingest")
        _wrap_sync(m["stream.state"].TableStore, "write_keys", "stage1.write_keys")
        import faust.agents.agent, faust.transport.consumer
        _wrap_async(faust.agents.agent.Agent, "_execute_actor", lambda self, *a, **k: "faust.agent:" + self.name,
                    steps=True)
        _wrap_async(faust.transport.consumer.Consumer, "_drain_messages", lambda *a, **k: "faust._drain_messages",
                    steps=True)
        import faust.sensors.monitor
        for name in ("on_message_in", "on_stream_event_in", "on_stream_event_out", "on_message_out",
                     "on_send_initiated", "on_send_completed"):
            _wrap_sync(faust.sensors.monitor.Monitor, name, "faust.Monitor." + name)
        tk, ins = m["stream.tickets"], m["stream.insight"]
        _wrap_sync(m["correlator.insight.aggregates"].HourAggregate, "copied", "insight.HourAggregate.copied")
        _wrap_sync(m["stream.docstore"].DocStore, "write_keys", "docstore.write_keys")
        _wrap_async(ins.Insight, "_fold", lambda *a, **k: "insight._fold")
        _wrap_async(tk, "read_incidents", lambda *a, **k: "sla.read_incidents")
        _wrap_async(tk, "clock_incidents", lambda *a, **k: "sla.clock_incidents")
        _wrap_async(tk.Desk, "commit", lambda *a, **k: "sla.Desk.commit")
        _wrap_async(ins.Insight, "fold_incidents", lambda *a, **k: "insight.fold_incidents")
        _wrap_async(ck.Checkpointer, "commit",
                    lambda self, stores, *a, **k: "commit:" + type(next(iter(stores), None)).__name__)
        for name in ("fold_incident", "fold_incidents"):  # the hours' fold: per record before fast24, per batch after
            if hasattr(ins, name):
                _wrap_sync(ins, name, "insight." + name + "(pure)")
        _wrap_sync(tk, "decode_incident_fast", "sla.decode_incident_fast")
        for name in ("on_incident_event", "on_incident_events"):  # per event before fast24, per incident after
            if hasattr(tk, name):
                _wrap_sync(tk, name, "sla." + name)
        _wrap_sync(pl, "decode_batch", "correlate.decode_batch")
        _wrap_sync(pl.Pipeline, "encode", "correlate.encode")
        _wrap_async(pl.Pipeline, "commit_many", lambda *a, **k: "correlate.commit_many")
        _wrap_async(pl.Pipeline, "checkpoint_if_due", lambda *a, **k: "correlate.checkpoint_if_due")
        feed = m.get("stream.console.feed")
        if feed is not None:
            _wrap_sync(feed, "_apply_guarded", "console._apply_guarded")
        # changelogs applied to tables (a restore, and a standby of another worker's partitions: two workers only)
        # (Recovery._slurp_changelogs is a Service.task: wrapping it breaks the worker; its decode is in the drain)
        import faust.tables.base
        _wrap_async(faust.tables.base.Collection, "on_changelog_event", lambda *a, **k: "table.on_changelog_event")
        _wrap_sync(m["stream.app"].CheckpointedTable, "apply_changelog_batch", "table.apply_changelog_batch")

    def _dump():
        path = f"{_out}/{os.getpid()}.json"
        patched = not os.environ.get("ABLATION_TIMERS")
        while True:
            time.sleep(0.2)
            w = sys.modules.get("stream.worker")
            if not patched and w is not None and hasattr(w, "tune_gc") and hasattr(w, "run"):  # imported whole
                _patch(); patched = True
            with open(path + ".tmp", "w") as f:
                json.dump({"n": _n, "s": _t, "collected": _c, "frozen": gc.get_freeze_count(),
                           "threshold": gc.get_threshold(), "timers": _timers}, f)
            os.replace(path + ".tmp", path)
    threading.Thread(target=_dump, daemon=True, name="gc-probe").start()
"""


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds per thread of a process, keyed `name:tid` (`main` for the main thread)."""
    out: dict[str, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = "main" if task.name == str(pid) else (task / "comm").read_text().strip()
            fields = (task / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        out[f"{name}:{task.name}"] = (int(fields[11]) + int(fields[12])) / tick
    return out


def gc_totals(where: Path, pid: int) -> dict[str, Any]:
    """The GC probe's latest totals for `pid`."""
    try:
        return json.loads((where / f"{pid}.json").read_text())
    except (OSError, ValueError):
        return {"n": [0, 0, 0], "s": [0.0, 0.0, 0.0], "collected": [0, 0, 0]}


async def topic_sizes(bootstrap: str, prefix: str) -> dict[str, tuple[int, int]]:
    """(records, bytes) on every topic whose name starts with `prefix`, read from the start to the end offsets."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                fetch_max_wait_ms=100, max_partition_fetch_bytes=8 * 1024 * 1024)
    from aiokafka import TopicPartition
    await consumer.start()
    sizes: dict[str, tuple[int, int]] = {}
    try:
        names = sorted(t for t in await consumer.topics() if t.startswith(prefix))
        tps = [TopicPartition(t, p) for t in names for p in sorted(consumer.partitions_for_topic(t) or ())]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        counts = {t: [0, 0] for t in names}
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if all([await consumer.position(tp) >= ends[tp] for tp in tps]):
                break
            for tp, records in (await consumer.getmany(timeout_ms=300, max_records=10_000)).items():
                for r in records:
                    counts[tp.topic][0] += 1
                    counts[tp.topic][1] += (len(r.key or b"") + len(r.value or b"")
                                            + sum(len(k) + len(v or b"") for k, v in r.headers))
        sizes = {t[len(prefix):]: (c[0], c[1]) for t, c in counts.items()}
    finally:
        await consumer.stop()
    return sizes


def one_run(broker: EmbeddedBroker, env: dict[str, str], bodies: list[bytes], alerts: int, window_s: float,
            path: str, probe_dir: Path, idle_s: float, pyspy: Path | None = None,
            env_name: str = "", timers: bool = False) -> dict[str, Any]:
    """One worker with `env`: CPU per alert (fold, window), CPU by thread, GC and topic sizes over the window."""
    tests.workers.ROOT = Path(env.pop("__tree__", str(ROOT)))
    gc_out = Path(tempfile.mkdtemp(prefix="ablation-gc-"))
    dep = fresh_deployment(broker, PYTHONPATH=str(probe_dir), ABLATION_GC_OUT=str(gc_out),
                           **({"ABLATION_TIMERS": "1"} if timers else {}), **env)
    placed = hop_records(bodies, dep.partitions) if path == "hop" else []
    (worker,) = procs = start_workers(dep, 1)
    pid = worker.proc.pid
    spy = None
    if pyspy:  # sampled from the start of the fold to the end of the window (not the idle tail)
        pyspy.mkdir(parents=True, exist_ok=True)
        out = pyspy / f"{env_name}-{pid}.txt"
        spy = subprocess.Popen([PYSPY, "record", "--format", "raw", "--threads", "--gil", "--rate", "200", "--pid", str(pid),
                                "--duration", str(int(window_s) + 1), "--output", str(out)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)
    try:
        threads0, gc0 = thread_cpu(pid), gc_totals(gc_out, pid)
        clock = timed_fold(dep, procs, path, bodies, placed, alerts, 600.0)
        gc_fold, threads_fold = gc_totals(gc_out, pid), thread_cpu(pid)
        time.sleep(max(0.0, clock.start + window_s - time.monotonic()))
        cpu_window = cpu_seconds(pid) - clock.cpu_start
        threads1, gc1 = thread_cpu(pid), gc_totals(gc_out, pid)
        if spy is not None:
            spy.wait(60)
        stats = worker.get("/stats")
        time.sleep(idle_s)  # drained by now: what the worker spends doing nothing, per second
        idle_cpu = (cpu_seconds(pid) - clock.cpu_start - cpu_window) / idle_s
        threads2 = thread_cpu(pid)
    finally:
        stop_all(procs)
    sizes = asyncio.run(topic_sizes(broker.bootstrap, dep.app_id))
    threads: dict[str, float] = {}
    for key, cpu in threads1.items():
        threads[key] = cpu - threads0.get(key, 0.0)
    per = 1e6 / alerts
    idle_threads = {k: (v - threads1.get(k, 0.0)) / idle_s for k, v in threads2.items()}
    return {"cpu_us_fold": per * (clock.cpu_end - clock.cpu_start), "cpu_us_window": per * cpu_window,
            "idle_cpu_per_s": idle_cpu, "cpu_us_work": per * (cpu_window - idle_cpu * window_s),
            "idle_threads_per_s": {k: round(v, 4) for k, v in idle_threads.items() if v > 0},
            "fold_s": clock.end - clock.start,
            "threads_fold_us": {k: round(per * (v - threads0.get(k, 0.0)), 2) for k, v in threads_fold.items()
                                if v > threads0.get(k, 0.0)},
            "threads_us": {k: round(per * v, 2) for k, v in sorted(threads.items(), key=lambda kv: -kv[1]) if v > 0},
            "gc_fold": {"n": [b - a for a, b in zip(gc0["n"], gc_fold["n"])],
                        "us_per_alert": [round(per * (b - a), 2) for a, b in zip(gc0["s"], gc_fold["s"])]},
            "gc_window": {"n": [b - a for a, b in zip(gc0["n"], gc1["n"])],
                          "us_per_alert": [round(per * (b - a), 2) for a, b in zip(gc0["s"], gc1["s"])],
                          "collected": [b - a for a, b in zip(gc0["collected"], gc1["collected"])]},
            "timers_us": {k: [v[0] - gc0.get("timers", {}).get(k, [0, 0.0])[0],
                              round(per * (v[1] - gc0.get("timers", {}).get(k, [0, 0.0])[1]), 2)]
                          for k, v in sorted(gc1.get("timers", {}).items())},
            "topics": {k: {"records": r, "bytes": b} for k, (r, b) in sizes.items()},
            "stats_counters": stats.get("counters", {})}


def main(argv: list[str] | None = None) -> int:
    """Interleave the named settings for `--runs` rounds; every run on stderr, medians on stdout (JSON)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("names", nargs="*", default=["all", "stage2_off"])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--records", type=int, default=1000)
    p.add_argument("--per-record", type=int, default=100)
    p.add_argument("--window", type=float, default=30.0)
    p.add_argument("--idle", type=float, default=10.0, help="seconds of idle CPU measured after the window")
    p.add_argument("--timers", action="store_true", help="time the stages' folds, ticks, checkpoints and a few "
                   "calls in the worker (thread CPU, inclusive; wrappers put in by the probe)")
    p.add_argument("--pyspy", type=Path, help="record a py-spy profile (raw) of each run's window into this dir")
    p.add_argument("--path", choices=("raw", "hop"), default="hop")
    p.add_argument("--setting", action="append", default=[], help="NAME=VAR=VALUE[,VAR=VALUE]: a setting of your own")
    args = p.parse_args(argv)
    for name in args.names:  # `rev:<revision>`: every part on, the code of that revision (git archive)
        if name.startswith("rev:"):
            SETTINGS[name] = {"__tree__": str(export(name[4:]))}
    for spec in args.setting:
        name, _, pairs = spec.partition("=")
        SETTINGS[name] = dict(pair.split("=", 1) for pair in pairs.split(","))
    probe = Path(tempfile.mkdtemp(prefix="ablation-probe-"))
    (probe / "sitecustomize.py").write_text(GC_PROBE)
    bodies, alerts = storm_records(args.records, args.per_record, seed=7)
    runs: dict[str, list[dict[str, Any]]] = {n: [] for n in args.names}
    with start_broker() as broker:
        for i in range(args.runs):
            order = args.names if i % 2 == 0 else list(reversed(args.names))
            for name in order:
                run = one_run(broker, dict(SETTINGS[name]), bodies, alerts, args.window, args.path, probe, args.idle,
                              args.pyspy, name, args.timers)
                run["load"] = os.getloadavg()[0]
                runs[name].append(run)
                print(json.dumps({"setting": name, **run}), file=sys.stderr, flush=True)
    out = {name: {k: statistics.median(r[k] for r in rs) for k in ("cpu_us_fold", "cpu_us_window", "cpu_us_work", "idle_cpu_per_s", "fold_s")}
           for name, rs in runs.items()}
    print(json.dumps({"path": args.path, "alerts": alerts, "runs": args.runs, "medians": out}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
