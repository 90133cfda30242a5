"""Alerts/s through the whole pipeline (alerts.raw -> normalize -> alerts -> correlate -> incidents) on one
worker, beside a plain aiokafka consumer reading the same records on the same broker in the same run.

Each run: a fresh deployment (own topics, own app id) on one embedded Tansu; N raw records of `--per-record`
generic alerts (a generated storm: re-sends and resolutions included) are produced to alerts.raw first; the
ceiling is a group-less aiokafka consumer reading and orjson-parsing them; then a worker process starts and
the clock runs from its first parsed alert (group join excluded) until its correlate agent has folded every
alert record (its /stats). Medians of `--runs`.

    .venv/bin/python benchmarks/pipeline_throughput.py                       # 1,000 x 100 alerts, 3 runs
    .venv/bin/python benchmarks/pipeline_throughput.py --per-record 1 --records 20000
    .venv/bin/python benchmarks/pipeline_throughput.py --quick
    .venv/bin/python benchmarks/pipeline_throughput.py --stage2    # with and without stage 2, same run
    .venv/bin/python benchmarks/pipeline_throughput.py --stage2 --variant AIOPS_STAGE2_LONE_CAUSES=false

With `--stage2` every run is a pair of fresh deployments on the same broker and the same records, one
worker with stage 1 alone (AIOPS_STAGE2=false) and one with stage 2 (the default; labels only, no
topology), in alternating order; without `--stage2` the worker runs the defaults (stage 2 on).
Each run reads two clocks:

* `folded`: stops when correlate has folded every alert and, with stage 2, when stage 2 has also folded
  every stage-1 event published by then (its /stage2/ view), so its rate pays for the grouping, not just
  for sharing the CPU (events stage 1 publishes later, from its idle timer, are not waited for);
* `settled`: also waits until every agent reading `incidents` (the incident SLA agent) has read those
  events and what stage 2 published. Without it the run without stage 2 stops with that agent's backlog
  unread while the run with stage 2 waits for it: the worker's consumer hands records to agents in
  order, so stage 2's input queues behind `incidents` records (measured: ~2,000 records, ~1 s, at the end
  of a 100,000-alert run). This is the fair comparison; both are printed.

Beside the rates, the CPU seconds the worker and the broker spent between the first alert and the settled
clock, and the worker's alone (Linux /proc): on a machine shared with other jobs the rates swing by a third
from run to run, the CPU spent per alert much less, so its ratio is the steadier figure of what stage 2
costs; so is each pair's own ratio (its two runs back to back), printed with their median.

Every run prints, as it ends, its rate, the worker's CPU microseconds per alert and the records on `incidents`
(stage 1's events, stage 2's records). `--variant AIOPS_X=V` adds a third run to every round, stage 2 with that
setting too, in the same alternating order, so two versions of stage 2 are compared with stage 1 alone and
with each other on the same broker within minutes; `--also AIOPS_X=V[,AIOPS_Y=W]` adds one more such arm per use
(several versions of stage 2 in one run). `--profile DIR` has py-spy sample each run's worker into
DIR (collapsed stacks; py-spy takes CPU of its own, so those runs' rates are not for comparison).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_workers import cpu_seconds  # noqa: E402
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


def one_run(
    broker: Any, bodies: list[bytes], alerts: int, timeout: float, stage2: bool | None = None, settle: bool = False,
    profile: Path | None = None, stage2_env: dict[str, str] | None = None,
) -> dict[str, float]:
    """Ceiling and pipeline rates for one fresh deployment: the default settings, or with stage 2 on or off.

    With `stage2` True the clock also waits for stage 2 to fold what stage 1 published (see `folded`).
    With `settle`, also `settled_alerts_per_s`: the clock stopped when readers of `incidents` caught up.
    `stage2_env`: settings of the worker with stage 2 (AIOPS_* variables). With `profile`, py-spy samples the worker from its first alert to the end of the run into that file
    (collapsed stacks, one `stack count` a line).
    """
    dep = Deployment(broker, Path(tempfile.mkdtemp(prefix="aiops-bench-")))
    if stage2 is not None:  # stage 2 is on by default
        dep.extra_env = {**dep.extra_env, "AIOPS_STAGE2": "true" if stage2 else "false",
                         **(stage2_env or {} if stage2 else {})}
    dep.create_topics()
    dep.produce("alerts_raw", [(b"generic", b) for b in bodies])
    ceiling = asyncio.run(consume(broker.bootstrap, dep.topic("alerts_raw"), dep.partitions, len(bodies),
                                  parse_lines))
    worker = dep.start_worker("bench")
    try:
        worker.wait_web()
        start = end = settled = None
        cpu_start = cpu_s = worker_start = worker_s = 0.0
        spy: subprocess.Popen[bytes] | None = None
        published = 0.0  # records stage 2 published on `incidents`
        owed: float | None = None  # stage-1 events published when the last alert was folded
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and settled is None:
            if end is None:  # /stats, not /metrics: rendering the exposition each poll cost the worker ~10%
                stats = worker.get("/stats")
                received, folded = stats["normalized"], stats["counters"].get("records", 0)
            now = time.monotonic()
            if start is None and received > 0:
                start = now
                worker_start = cpu_seconds(worker.proc.pid)
                cpu_start = worker_start + cpu_seconds(broker.pid)
                if profile is not None:
                    spy = _py_spy(worker.proc.pid, profile)
            if folded >= alerts and (stage2 or settle) and owed is None:
                owed = sum(_samples(worker.get("/metrics"), "aiops_incident_events_total"))
            if end is None and folded >= alerts and (not stage2 or worker.get("/stage2/")["grouped"] >= owed):
                end = now
            if end is not None and (not settle or _incidents_read(worker, owed or 0, bool(stage2))):
                settled = now
                worker_s = cpu_seconds(worker.proc.pid) - worker_start
                cpu_s = worker_s + worker_start + cpu_seconds(broker.pid) - cpu_start
                if stage2:
                    view = worker.get("/stage2/")
                    published = float(view["published"]) + float(view.get("progress", 0))
                break
            time.sleep(0.05)
        if start is None or end is None or settled is None:
            raise TimeoutError(f"pipeline did not fold {alerts} alerts in {timeout}s:\n{worker.tail()}")
    finally:
        if spy is not None:
            spy.send_signal(signal.SIGINT)  # py-spy writes what it sampled on SIGINT
            spy.wait(timeout=60)
        worker.stop()
    seconds = max(end - start, 1e-6)
    out = {"pipeline_alerts_per_s": alerts / seconds, "pipeline_records_per_s": len(bodies) / seconds,
           "ceiling_alerts_per_s": ceiling.alerts / ceiling.seconds,
           "ceiling_records_per_s": ceiling.records / ceiling.seconds}
    if settle:
        out["settled_alerts_per_s"] = alerts / max(settled - start, 1e-6)
        out["cpu_s"] = cpu_s
        out["worker_cpu_s"] = worker_s
        out["worker_cpu_us_per_alert"] = worker_s / alerts * 1e6
        out["stage1_events"] = owed or 0.0
        out["stage2_records"] = published
    return out


def _py_spy(pid: int, out: Path) -> subprocess.Popen[bytes]:
    """py-spy sampling `pid` into `out` (collapsed stacks) until it is sent SIGINT."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    return subprocess.Popen([spy, "record", "--pid", str(pid), "--format", "raw", "--rate", "200",
                             "--output", str(out), "--nonblocking"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _incidents_read(worker: Any, owed: float, stage2: bool) -> bool:
    """Whether the incident SLA agent has read the `owed` stage-1 events and what stage 2 published so far."""
    view = worker.get("/stage2/") if stage2 else {}
    published = view.get("published", 0) + view.get("progress", 0)  # progress records: without causes of one
    return bool(worker.metric("aiops_records_consumed_total", agent="incident_sla") >= owed + published)


def _samples(exposition: str, name: str) -> list[float]:
    out = []
    for line in exposition.splitlines():
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
    p.add_argument("--stage2", action="store_true", help="pairs of runs without and with stage 2; their ratio")
    p.add_argument("--stage2-env", action="append", default=[], metavar="AIOPS_X=V",
                   help="with --stage2: a setting of the worker with stage 2 (repeatable), e.g. "
                        "AIOPS_STAGE2_LONE_CAUSES=false")
    p.add_argument("--variant", action="append", default=[], metavar="AIOPS_X=V",
                   help="with --stage2: a third run in every round, stage 2 with this setting too (repeatable)")
    p.add_argument("--also", action="append", default=[], metavar="AIOPS_X=V[,AIOPS_Y=W]",
                   help="with --stage2: one more arm in every round per use, stage 2 with these settings (comma "
                        "between settings), e.g. --also AIOPS_STAGE2_LONE_CAUSES=false --also AIOPS_STAGE2_GAP=60")
    p.add_argument("--profile", type=Path, default=None,
                   help="with --stage2: py-spy each run's worker into this directory (its rates are not comparable)")
    args = p.parse_args(argv)
    if args.quick:
        args.records, args.runs = 50, 1
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    bodies, alerts = storm_records(args.records, args.per_record, seed=7)
    if args.stage2:
        return compare_stage2(bodies, alerts, args)
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


def _settings(pairs: list[str]) -> dict[str, str]:
    """AIOPS_X=V arguments as an environment."""
    return dict(kv.split("=", 1) for kv in pairs)


def compare_stage2(bodies: list[bytes], alerts: int, args: argparse.Namespace) -> int:
    """Pipeline alerts/s without and with the stage-2 agents (and with stage 2 at `--variant`'s settings), the
    runs of a round back to back in alternating order; medians, and each round's own ratios."""
    stage2_env = _settings(args.stage2_env)
    arms: list[tuple[str, bool, dict[str, str]]] = [("stage 1 alone", False, {}), ("stage 2", True, stage2_env)]
    if args.variant:
        arms.append((f"stage 2, {' '.join(args.variant)}", True, {**stage2_env, **_settings(args.variant)}))
    for also in args.also:
        pairs = also.split(",")
        arms.append((f"stage 2, {' '.join(pairs)}", True, {**stage2_env, **_settings(pairs)}))
    runs: list[list[dict[str, float]]] = [[] for _ in arms]
    with start_broker() as broker:
        for i in range(args.runs):
            order = list(range(len(arms))) if i % 2 == 0 else list(reversed(range(len(arms))))
            for a in order:
                name, stage2, env = arms[a]
                profile = args.profile / f"round{i + 1}-arm{a}.txt" if args.profile else None
                runs[a].append(one_run(broker, bodies, alerts, args.timeout, stage2, settle=True, profile=profile,
                                       stage2_env=env))
                if not args.json:
                    last = runs[a][-1]
                    print(f"round {i + 1}, {name}: {last['settled_alerts_per_s']:>9,.0f} alerts/s, worker "
                          f"{last['worker_cpu_us_per_alert']:.1f} CPU us/alert; records on incidents: "
                          f"{last['stage1_events']:,.0f} of stage 1, {last['stage2_records']:,.0f} of stage 2",
                          flush=True)
    doc: dict[str, Any] = {"records": len(bodies), "alerts": alerts, "runs": args.runs, "stage2_env": stage2_env}
    lines: list[str] = []
    for a in range(1, len(arms)):
        part, text = _against_stage1(runs[0], runs[a], alerts, arms[a][0])
        if a == 1:
            doc.update(part)  # the keys of stage 2 at its settings, as before
        elif a == 2 and args.variant:
            doc["variant"] = {"settings": _settings(args.variant), **part}
        else:
            doc.setdefault("also", []).append({"settings": arms[a][2], **part})
        lines += text
    if args.json:
        print(json.dumps(doc))
        return 0
    print(f"{len(bodies)} records x {args.per_record} alert records = {alerts} alerts, median of {args.runs} rounds")
    print(f"{'pipeline, one worker':28}{'alerts/s':>12}   runs")
    print("\n".join(lines))
    return 0


def _against_stage1(plain_runs: list[dict[str, float]], staged_runs: list[dict[str, float]], alerts: int,
                    name: str) -> tuple[dict[str, Any], list[str]]:
    """One arm's figures against stage 1 alone's: rates on both clocks, CPU; medians and per-round ratios."""
    doc: dict[str, Any] = {}
    lines = [f"== {name} against stage 1 alone"]
    for clock, field in (("settled", "settled_alerts_per_s"), ("folded", "pipeline_alerts_per_s")):
        plain, staged = [r[field] for r in plain_runs], [r[field] for r in staged_runs]
        without, with_ = statistics.median(plain), statistics.median(staged)
        # Each round ran back to back: on a shared machine its own ratio swings less than either rate.
        pairs = [b / a for a, b in zip(plain, staged, strict=True)]
        doc[clock] = {"without_stage2_alerts_per_s": without, "with_stage2_alerts_per_s": with_,
                      "ratio": with_ / without, "cost": 1 - with_ / without, "without_runs": plain,
                      "with_runs": staged, "pair_ratios": pairs, "pair_ratio_median": statistics.median(pairs)}
        lines += [f"clock: {clock}, alerts/s",
                  f"{'  stage 1 alone':28}{without:>12,.0f}   {', '.join(f'{r:,.0f}' for r in plain)}",
                  f"{'  ' + name:28}{with_:>12,.0f}   {', '.join(f'{r:,.0f}' for r in staged)}",
                  f"  ratio: {with_ / without:.2f} (stage 2 costs {1 - with_ / without:.1%}); "
                  f"per round {', '.join(f'{r:.2f}' for r in pairs)}, median {statistics.median(pairs):.2f}"]
    for key, field, title in (("cpu", "cpu_s", "worker + broker"), ("worker_cpu", "worker_cpu_s", "worker")):
        plain_cpu, staged_cpu = [r[field] for r in plain_runs], [r[field] for r in staged_runs]
        without_cpu, with_cpu = statistics.median(plain_cpu), statistics.median(staged_cpu)
        pairs = [b / max(a, 1e-9) for a, b in zip(plain_cpu, staged_cpu, strict=True)]
        doc[key] = {"without_stage2_s": without_cpu, "with_stage2_s": with_cpu,
                    "ratio": with_cpu / max(without_cpu, 1e-9), "without_runs": plain_cpu, "with_runs": staged_cpu,
                    "pair_ratios": pairs, "pair_ratio_median": statistics.median(pairs),
                    "without_us_per_alert": without_cpu / alerts * 1e6, "with_us_per_alert": with_cpu / alerts * 1e6}
        lines += [f"CPU seconds, {title}, first alert to settled (CPU us per alert in brackets)",
                  f"{'  stage 1 alone':28}{without_cpu:>12.2f}   {', '.join(f'{r:.2f}' for r in plain_cpu)}"
                  f"   ({without_cpu / alerts * 1e6:.1f} us/alert)",
                  f"{'  ' + name:28}{with_cpu:>12.2f}   {', '.join(f'{r:.2f}' for r in staged_cpu)}"
                  f"   ({with_cpu / alerts * 1e6:.1f} us/alert)",
                  f"  ratio: {with_cpu / max(without_cpu, 1e-9):.2f}; per round "
                  f"{', '.join(f'{r:.2f}' for r in pairs)}, median {statistics.median(pairs):.2f} "
                  f"(throughput if CPU-bound: {1 / max(statistics.median(pairs), 1e-9):.2f} of stage 1's)"]
    return doc, lines


if __name__ == "__main__":
    sys.exit(main())
