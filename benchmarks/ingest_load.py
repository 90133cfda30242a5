"""Load on one worker's HTTP ingest: 100-alert Alertmanager webhooks on loopback, bounded in count and time.

Starts its own embedded broker (Tansu) and one worker process (`--role all`: the ingest, which parses each body
once and writes its alerts to `alerts` by correlation key, and the agents that correlate them), posts pre-built
Alertmanager v4 bodies to `POST /ingest/alertmanager` with an aiohttp client, and reports per run the
requests/s and alerts/s answered 202, and the p50/p99/max latency of the 202. Then it waits until correlation
folded every accepted alert and reads the worker's `aiops_correlation_latency_seconds` (the ingest's receive
time to the incident event sent: the incident latency). Afterwards it reads `alerts` from the start and counts
its records, the producer batches they arrived in and the alerts they hold, to show that every alert answered
202 is there.

Load model: open loop by default. Requests are issued on a fixed schedule (`--rate`), whatever the answers,
with at most `--max-in-flight` outstanding; latency is measured from the moment a request was issued, and how
far the generator fell behind its schedule is reported beside it ("lag"). With `--rate 0` it is a closed loop
of `--concurrency` connections, each posting again as soon as it is answered (saturation throughput).

    .venv/bin/python benchmarks/ingest_load.py               # 1,000 req/s offered for 10 s, 3 runs, medians
    .venv/bin/python benchmarks/ingest_load.py --rate 0      # closed loop, 32 connections: the ceiling
    .venv/bin/python benchmarks/ingest_load.py --linger 0    # the worker's producer without linger
    .venv/bin/python benchmarks/ingest_load.py --ingest-only # `--role ingest`: the ingest and no agents
    .venv/bin/python benchmarks/ingest_load.py --quick       # 1 run, 1 s at 100 req/s: proves it works
    .venv/bin/python benchmarks/ingest_load.py --json        # one JSON object instead of the table

The client shares the machine with the worker and the broker: on a 2-core box all three compete for CPU, so
the CPU seconds each process used during the timed runs are reported too (from /proc).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiokafka import TopicPartition
from aiokafka.client import AIOKafkaClient
from aiokafka.protocol.fetch import FetchRequest
from aiokafka.record.memory_records import MemoryRecords

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from stream.broker import start_broker  # noqa: E402
from tests.workers import Deployment, WorkerProc  # noqa: E402

sys.path.insert(0, str(ROOT / "benchmarks"))
from bench_workers import cpu_seconds, histogram_quantiles  # noqa: E402

from stream.batches import decode_batch  # noqa: E402

SERVICES = [f"svc-{i:02d}" for i in range(40)]
SYMPTOMS = ["HighLatency", "ErrorRate", "CPUThrottling", "DiskFull", "PodCrashLooping", "TargetDown"]
GO_ZERO_TIME = "0001-01-01T00:00:00Z"
HARD_LIMIT_S = 30.0  # past the run's duration, outstanding requests are cancelled and counted as errors
FETCH_MAX_BYTES = 32 * 1024 * 1024


# ---------------------------------------------------------------- bodies


def webhook(rng: random.Random, alerts: int, now: float, serial: int) -> bytes:
    """One Alertmanager v4 webhook body with `alerts` firing alerts of one service+symptom group."""
    service, symptom = rng.choice(SERVICES), rng.choice(SYMPTOMS)
    members = []
    for i in range(alerts):
        labels = {"alertname": symptom, "service": service, "job": service, "severity": "critical",
                  "instance": f"node-{i % 50}:9100", "pod": f"{service}-{serial}-{i}"}
        members.append({
            "status": "firing", "labels": labels,
            "annotations": {"summary": f"{symptom} on {service} pod {labels['pod']}"},
            "startsAt": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now - rng.uniform(0, 60))) + "Z",
            "endsAt": GO_ZERO_TIME, "generatorURL": "http://prometheus:9090/graph", "fingerprint": f"{serial:08x}{i:08x}",
        })
    group = {"alertname": symptom, "service": service}
    return orjson.dumps({
        "receiver": "correlator", "status": "firing", "alerts": members, "groupLabels": group,
        "commonLabels": {**group, "severity": "critical"}, "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093", "version": "4",
        "groupKey": f'{{}}:{{alertname="{symptom}", service="{service}"}}', "truncatedAlerts": 0,
    })


def make_bodies(count: int, alerts: int, seed: int = 7) -> list[bytes]:
    """`count` distinct webhook bodies, cycled through by the load."""
    rng, now = random.Random(seed), time.time()
    return [webhook(rng, alerts, now, serial) for serial in range(count)]


# ---------------------------------------------------------------- one run


@dataclass
class Run:
    """What one timed run saw."""

    sent: int = 0
    codes: Counter[str] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    max_lag_ms: float = 0.0
    seconds: float = 0.0

    @property
    def accepted(self) -> int:
        """Requests answered 202."""
        return self.codes.get("202", 0)

    def summary(self, alerts_per_body: int) -> dict[str, Any]:
        """The figures of this run."""
        lat = sorted(self.latencies_ms)
        return {
            "sent": self.sent, "accepted": self.accepted, "codes": dict(self.codes),
            "seconds": round(self.seconds, 3),
            "req_per_s": round(self.accepted / self.seconds, 1) if self.seconds else 0.0,
            "alerts_per_s": round(self.accepted * alerts_per_body / self.seconds, 1) if self.seconds else 0.0,
            "p50_ms": round(_quantile(lat, 0.50), 2), "p99_ms": round(_quantile(lat, 0.99), 2),
            "max_ms": round(lat[-1], 2) if lat else 0.0, "max_lag_ms": round(self.max_lag_ms, 2),
        }


def _quantile(ordered: Sequence[float], q: float) -> float:
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _post(session: aiohttp.ClientSession, url: str, body: bytes, run: Run) -> None:
    started = time.perf_counter()
    try:
        async with session.post(url, data=body, headers={"Content-Type": "application/json"}) as resp:
            await resp.read()
            code = str(resp.status)
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        code = type(exc).__name__
    run.codes[code] += 1
    if code == "202":
        run.latencies_ms.append((time.perf_counter() - started) * 1000)


async def open_loop(session: aiohttp.ClientSession, url: str, bodies: Sequence[bytes], rate: float,
                    duration: float, max_in_flight: int) -> Run:
    """Issue `rate` requests per second for `duration` seconds on a fixed schedule."""
    run, loop = Run(), asyncio.get_running_loop()
    total = int(rate * duration)
    pending: set[asyncio.Task[None]] = set()
    start = loop.time()
    for i in range(total):
        due = start + i / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        run.max_lag_ms = max(run.max_lag_ms, (loop.time() - due) * 1000)
        if len(pending) >= max_in_flight:
            run.codes["skipped_in_flight_cap"] += 1
            continue
        task = asyncio.create_task(_post(session, url, bodies[i % len(bodies)], run))
        pending.add(task)
        task.add_done_callback(pending.discard)
        run.sent += 1
    await _drain(pending, run)
    run.seconds = loop.time() - start
    return run


async def closed_loop(session: aiohttp.ClientSession, url: str, bodies: Sequence[bytes], concurrency: int,
                      duration: float, max_requests: int) -> Run:
    """`concurrency` connections posting back to back until `duration` or `max_requests`."""
    run, loop = Run(), asyncio.get_running_loop()
    start = loop.time()
    deadline = start + duration

    async def client(offset: int) -> None:
        i = offset
        while loop.time() < deadline and run.sent < max_requests:
            run.sent += 1
            await _post(session, url, bodies[i % len(bodies)], run)
            i += concurrency

    tasks = {asyncio.create_task(client(c)) for c in range(concurrency)}
    await _drain(tasks, run)
    run.seconds = loop.time() - start
    return run


async def _drain(tasks: set[asyncio.Task[None]], run: Run) -> None:
    if not tasks:
        return
    _, late = await asyncio.wait(set(tasks), timeout=HARD_LIMIT_S)
    for task in late:
        task.cancel()
        run.codes["cancelled_at_hard_limit"] += 1


# ---------------------------------------------------------------- counting what landed


@dataclass(frozen=True)
class Landed:
    """Records, producer batches and the alerts in the records found on `alerts`."""

    records: int
    batches: int
    alerts: int


async def count_topic(bootstrap: str, topic: str, partitions: int) -> Landed:
    """Read every partition from offset 0 with raw Fetch requests; count records, the batches holding them and the
    alerts they carry.

    Batches are counted as stored: each is one producer batch, so records/batch shows how much the ingest's
    producer batched. (Not the end offsets: Tansu 0.6.0 under-reports them after multi-record batches.)
    """
    client = AIOKafkaClient(bootstrap_servers=bootstrap)
    await client.bootstrap()
    records = batches = alerts = 0
    try:
        await client._wait_on_metadata(topic)
        for partition in range(partitions):
            r, b, a = await _count_partition(client, topic, partition)
            records, batches, alerts = records + r, batches + b, alerts + a
    finally:
        await client.close()
    return Landed(records, batches, alerts)


async def _count_partition(client: AIOKafkaClient, topic: str, partition: int) -> tuple[int, int, int]:
    leader = client.cluster.leader_for_partition(TopicPartition(topic, partition))
    offset = records = batches = alerts = 0
    while True:
        request = FetchRequest(100, 1, FETCH_MAX_BYTES, 0, [(topic, [(partition, offset, FETCH_MAX_BYTES)])])
        response = await client.send(leader, request)
        data = response.topics[0][1][0][-1]  # the message set is the last field in every Fetch version
        found = 0
        memory = MemoryRecords(data) if data else None
        while memory is not None and (batch := memory.next_batch()) is not None:
            new = [rec for rec in batch if rec.offset >= offset]
            if new:
                records += len(new)
                alerts += sum(len(seg.records) for rec in new for seg in decode_batch(rec.value)[0])
                batches += 1
                found += 1
                offset = new[-1].offset + 1
        if not found:
            return records, batches, alerts


# ---------------------------------------------------------------- the whole benchmark


def start_worker(dep: Deployment, ingest_only: bool) -> WorkerProc:
    """One worker of the deployment, waited for until /readyz says the broker and topics are there."""
    worker = _start_ingest_only(dep) if ingest_only else dep.start_worker("bench")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if worker.proc.poll() is not None:
            raise RuntimeError(f"worker exited:\n{worker.tail()}")
        try:
            if worker.get("/readyz").get("ready"):
                if not ingest_only:  # the agents own their partitions: the drain time is the pipeline's own
                    worker.wait_partitions(dep.partitions)
                return worker
        except OSError:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"worker not ready:\n{worker.tail()}")


def _start_ingest_only(dep: Deployment) -> WorkerProc:
    """`aiops worker --role ingest`: the ingest, health and /metrics, no agents."""
    dep.extra_env = {**dep.extra_env, "AIOPS_ROLE": "ingest"}
    try:
        return dep.start_worker("ingest-only")
    finally:
        dep.extra_env = {k: v for k, v in dep.extra_env.items() if k != "AIOPS_ROLE"}


def pipeline_drain_s(worker: WorkerProc, alerts: int, timeout: float) -> float | None:
    """Seconds after the last run until correlation had folded every accepted alert (None: not within
    `timeout`): how far the pipeline behind the ingest fell behind."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if worker.metric("aiops_alert_records_correlated_total") >= alerts:
            return round(time.monotonic() - started, 2)
        time.sleep(0.2)
    return None


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine spent busy so far (all cores, Linux /proc/stat), 0.0 elsewhere."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return 0.0
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


async def load(args: argparse.Namespace, url: str, bodies: Sequence[bytes],
               pids: dict[str, int]) -> tuple[list[Run], int, dict[str, float]]:
    """The timed runs after a warm-up, one client session for all; also every 202 (warm-up included) and
    the CPU cores each process used during the timed runs."""
    connector = aiohttp.TCPConnector(limit=max(args.max_in_flight, args.concurrency))
    timeout = aiohttp.ClientTimeout(total=HARD_LIMIT_S)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        warm = await closed_loop(session, url, bodies, 8, 1.0, args.warmup)
        before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        machine_before = machine_busy_seconds()
        runs = []
        for _ in range(args.runs):
            if args.rate > 0:
                runs.append(await open_loop(session, url, bodies, args.rate, args.duration, args.max_in_flight))
            else:
                max_requests = int(args.max_requests or 1e9)
                runs.append(await closed_loop(session, url, bodies, args.concurrency, args.duration, max_requests))
            await asyncio.sleep(args.pause)
        busy = sum(r.seconds for r in runs)
        cores = {name: round((cpu_seconds(pid) - before[name]) / busy, 2) for name, pid in pids.items()}
        # Everything else on the machine (other jobs): figures are only comparable when this stays near 0.
        machine = (machine_busy_seconds() - machine_before) / busy
        cores["others"] = round(max(0.0, machine - sum(cores.values())), 2)
        return runs, warm.accepted + sum(r.accepted for r in runs), cores


def median_of(summaries: Sequence[dict[str, Any]]) -> dict[str, float]:
    """The median of each figure over the runs."""
    keys = ("req_per_s", "alerts_per_s", "p50_ms", "p99_ms", "max_ms", "max_lag_ms")
    return {k: round(statistics.median(s[k] for s in summaries), 2) for k in keys}


def bench(args: argparse.Namespace) -> dict[str, Any]:
    """Run the whole benchmark and return its report."""
    bodies = make_bodies(args.bodies, args.alerts)
    broker = start_broker()
    try:
        with tempfile.TemporaryDirectory(prefix="aiops-ingest-load-") as tmp:
            # admission control off: this measures what the ingest takes, not when it starts shedding
            env = {"AIOPS_IDLE_ADVANCE": "300", "AIOPS_LOG_LEVEL": "warning",
                   "AIOPS_INGEST_LINGER": str(args.linger), "AIOPS_ADMISSION_BACKLOG_RECORDS": "0",
                   "AIOPS_ADMISSION_BACKLOG_SECONDS": "0"}
            dep = Deployment(broker, Path(tmp), extra_env=env)
            dep.create_topics()
            worker = start_worker(dep, args.ingest_only)
            try:
                url = f"http://127.0.0.1:{worker.web_port}/ingest/alertmanager"
                pids = {"worker": worker.proc.pid, "broker": broker.pid, "client": os.getpid()}
                runs, accepted_total, cores = asyncio.run(load(args, url, bodies, pids))
                drain_s, incident = None, None
                if not args.ingest_only:
                    drain_s = pipeline_drain_s(worker, accepted_total * args.alerts, args.drain_timeout)
                    incident = histogram_quantiles(worker, "aiops_correlation_latency_seconds")
            finally:
                worker.stop()
            landed = asyncio.run(count_topic(broker.bootstrap, dep.topic("alerts"), dep.partitions))
    finally:
        broker.stop()
    return report(args, bodies, runs, accepted_total, landed, cores, drain_s, incident)


def report(args: argparse.Namespace, bodies: Sequence[bytes], runs: Sequence[Run], accepted_total: int,
           landed: Landed, cores: dict[str, float], drain_s: float | None,
           incident: dict[str, float] | None = None) -> dict[str, Any]:
    """The JSON-ready report: settings, each run, medians, the incident latency, and what landed on alerts."""
    summaries = [r.summary(args.alerts) for r in runs]
    return {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "load": {"mode": "open" if args.rate > 0 else "closed", "rate": args.rate, "duration_s": args.duration,
                 "concurrency": args.concurrency, "max_in_flight": args.max_in_flight, "runs": args.runs,
                 "alerts_per_body": args.alerts, "body_bytes": round(statistics.mean(map(len, bodies))),
                 "worker_linger_s": args.linger, "worker": "ingest only" if args.ingest_only else "full pipeline"},
        "runs": summaries,
        "cpu_cores_used": cores,
        "pipeline_drain_s": drain_s,
        "incident_latency_s": incident,
        "median": median_of(summaries),
        "landed": {"topic": "alerts", "accepted_202": accepted_total, "alerts_accepted": accepted_total * args.alerts,
                   "records": landed.records, "alerts": landed.alerts, "batches": landed.batches,
                   "records_per_batch": round(landed.records / landed.batches, 2) if landed.batches else 0.0,
                   "missing": max(0, accepted_total * args.alerts - landed.alerts)},
    }


def print_table(rep: dict[str, Any]) -> None:
    """The report for a terminal."""
    ld, raw = rep["load"], rep["landed"]
    offered = f"{ld['rate']:g} req/s offered" if ld["mode"] == "open" else f"closed loop x{ld['concurrency']}"
    print(f"ingest load: 1 worker, {ld['alerts_per_body']} alerts/body ({ld['body_bytes'] / 1024:.1f} KiB), "
          f"{offered}, {ld['duration_s']:g} s per run, linger {ld['worker_linger_s'] * 1000:g} ms, "
          f"{ld['worker']}, {rep['machine']['cpus']} CPUs")
    print(f"{'run':>6} {'sent':>7} {'202':>7} {'other':>6} {'req/s':>8} {'alerts/s':>10} "
          f"{'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} {'lag ms':>7}")
    for i, s in enumerate(rep["runs"], 1):
        other = sum(v for k, v in s["codes"].items() if k != "202")
        print(f"{i:>6} {s['sent']:>7} {s['accepted']:>7} {other:>6} {s['req_per_s']:>8.1f} {s['alerts_per_s']:>10.0f} "
              f"{s['p50_ms']:>7.1f} {s['p99_ms']:>7.1f} {s['max_ms']:>7.1f} {s['max_lag_ms']:>7.1f}")
    m = rep["median"]
    print(f"{'median':>6} {'':>7} {'':>7} {'':>6} {m['req_per_s']:>8.1f} {m['alerts_per_s']:>10.0f} "
          f"{m['p50_ms']:>7.1f} {m['p99_ms']:>7.1f} {m['max_ms']:>7.1f} {m['max_lag_ms']:>7.1f}")
    print(f"alerts: {raw['records']} records in {raw['batches']} producer batches "
          f"({raw['records_per_batch']} records/batch) holding {raw['alerts']} alerts; answered 202 (warm-up "
          f"included): {raw['accepted_202']} bodies, {raw['alerts_accepted']} alerts; missing: {raw['missing']}")
    print("CPU cores used during the runs: " + ", ".join(f"{k} {v:.2f}" for k, v in rep["cpu_cores_used"].items()))
    if ld["worker"] == "full pipeline":
        drain, inc = rep["pipeline_drain_s"], rep["incident_latency_s"] or {}
        print("correlation folded every accepted alert " + (f"{drain} s after the last run" if drain is not None
                                                           else "not within the drain timeout"))
        print(f"incident latency (ingest receive -> event sent, worker histogram): p50 {inc.get('p50', 0):.3f} s, "
              f"p99 {inc.get('p99', 0):.3f} s over {inc.get('n', 0):.0f} events")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rate", type=float, default=1000.0, help="offered requests/s (open loop); 0: closed loop")
    p.add_argument("--concurrency", type=int, default=32, help="connections of the closed loop")
    p.add_argument("--duration", type=float, default=10.0, help="seconds per run")
    p.add_argument("--max-requests", dest="max_requests", type=int, default=0, help="cap per closed-loop run")
    p.add_argument("--max-in-flight", dest="max_in_flight", type=int, default=256)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--alerts", type=int, default=100, help="alerts per webhook body")
    p.add_argument("--bodies", type=int, default=64, help="distinct bodies cycled through")
    p.add_argument("--warmup", type=int, default=200, help="requests before the timed runs")
    p.add_argument("--pause", type=float, default=1.0, help="seconds between runs")
    p.add_argument("--linger", type=float, default=0.005, help="the worker's AIOPS_INGEST_LINGER in seconds")
    p.add_argument("--drain-timeout", dest="drain_timeout", type=float, default=120.0,
                   help="how long to wait for the pipeline to consume everything accepted")
    p.add_argument("--ingest-only", dest="ingest_only", action="store_true",
                   help="serve the ingest from `aiops worker --role ingest` (no agents)")
    p.add_argument("--quick", action="store_true", help="1 run of 1 s at 100 req/s: proves it works")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args(argv)
    if args.quick:
        args.rate, args.duration, args.runs, args.warmup, args.pause = min(args.rate, 100.0), 1.0, 1, 20, 0.0
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run and print; exit status 1 when an alert answered 202 is missing from alerts."""
    args = parse_args(argv)
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    rep = bench(args)
    if args.json:
        print(orjson.dumps(rep).decode())
    else:
        print_table(rep)
    return 1 if rep["landed"]["missing"] else 0


if __name__ == "__main__":
    sys.exit(main())
