"""Throughput, latency and memory of the whole pipeline on the embedded broker, each beside a baseline.

Three parts, one command (medians of `--runs`; each run a fresh deployment with its own topics and app id on
one embedded Tansu, worker processes started as `aiops worker`, see tests/workers.py):

throughput  alerts/s from alerts.raw to folded (the correlate agent's counter) on 1 and 2 workers (4 partitions),
            beside the ceiling: a group-less aiokafka consumer reading and orjson-parsing the same raw records on
            the same broker in the same run (benchmarks/raw_consumer.py). Workers start and own their partitions
            first; then the records are produced (a thread of this process) and the clock runs from the first
            parsed alert to the last folded alert, summed over the workers' /stats. Both record shapes: 100
            alerts per record (a webhook) and 1 alert per record. Beside them, in the same run, the agents'
            work on the same records with no broker at all (benchmarks/stage_costs.py): the most any wiring of
            this code could reach, as a share of the ceiling.
latency     one worker at a steady offered load of half its maximum on the same kind of stream (100-alert
            records of a generated storm stream, rescaled so that event time advances with the wall clock; the
            maximum is measured first, in the same run, as a catch-up on such a stream), paced for `--duration`
            seconds. Each event read from `incidents` is matched to the raw record that caused it: for
            `opened` the record holding the incident's first alert, for `updated` the record holding its
            latest alert (key and event time identify them); latency = read time - send time. The load starts
            3 s before and goes on 3 s past `--duration`, and only events of records sent within it are timed
            (before: storms in flight at the start open at once, reported apart; after: the last alerts of a
            stream wait for the 1 s idle flush, input stopping, not load). The worker's own
            `aiops_correlation_latency_seconds` (raw record timestamp to event sent, all kinds) is read beside it.
            The old load, half the throughput part's maximum, is run too, as an overload on this stream.
memory      one worker folding 10^6 alert records (firings, re-sends, resolutions of a generated stream spanning
            days of event time, so windows close and state is evicted) with 10^3 and 10^4 possible keys;
            VmHWM and VmRSS from /proc/<pid>/status when the folded count passes 10^4, 10^5 and 10^6.

    .venv/bin/python benchmarks/throughput.py                    # all three, 3 runs; writes RESULTS.md + PNGs
    .venv/bin/python benchmarks/throughput.py --only latency --rate 12000
    .venv/bin/python benchmarks/throughput.py --quick --json --plots /tmp/x   # small, for the test suite

A full run stores its figures in benchmarks/data/throughput.json; a run of some parts (`--only`) merges into
it, and the RESULTS.md section and the plots are drawn from the merged figures.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from pipeline_throughput import storm_records  # noqa: E402
from raw_consumer import consume, parse_lines  # noqa: E402
from results_md import write_section  # noqa: E402
from stage_costs import costs as stage_costs  # noqa: E402
from stage_costs import markdown as stage_costs_markdown  # noqa: E402
from storms import StormSpec, generate  # noqa: E402

from correlator.records import record_of  # noqa: E402
from correlator.sources import parse  # noqa: E402
from stream.broker import EmbeddedBroker, start_broker  # noqa: E402
from stream.incident_records import is_stage2_record  # noqa: E402
from tests.workers import Deployment, WorkerProc  # noqa: E402

__all__ = ["Plan", "FULL", "QUICK", "main"]

BEGIN, END = "<!-- throughput.py: generated from here -->", "<!-- throughput.py: to here -->"
RESULTS_MD = ROOT / "benchmarks" / "RESULTS.md"
STORE = ROOT / "benchmarks" / "data" / "throughput.json"
POLL_S = 0.05
SHORT_SLA_RETENTION_S = 30
STEADY_HEAD_S = 3.0
"""Seconds the paced load runs before the timed part of a latency run: the stream starts with storms in flight
on keys the worker has not seen, and their incidents all open in its first second (17 times the steady rate)."""
STEADY_TAIL_S = 3.0
"""Seconds the paced load goes on after the timed part of a latency run, so that the timed part stays steady."""
TARGET_SHARE = 0.4
"""The share of the ceiling issue 7 asks of one worker on 100-alert records (drawn on the plot)."""
READ_MAX_S = 120.0
"""Longest a latency run reads `incidents` after its last send, waiting for them to go quiet."""
LATENCY_LOADS = {
    "latency": ("half of the one-worker maximum on this stream", "-"),
    "latency_low": ("an eighth of the one-worker maximum on this stream", "--"),
    "latency_stress": ("half of the throughput part's one-worker maximum: an overload on this stream", ":"),
}
"""The latency part's loads, as stored in the figures: how RESULTS.md names each, and its line in the plot."""
WORKER_HISTOGRAMS = ("correlation_latency", "correlation_event_latency")
"""The worker's latency histograms (aiops_*_seconds) read beside the client's figures; absent ones read empty."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    """Sizes of one invocation: the full benchmark or the test suite's `--quick` smoke run."""

    records: dict[int, int]  # alerts per record -> records per throughput run
    workers: tuple[int, ...] = (1, 2)
    runs: int = 3
    duration_s: float = 20.0
    checkpoints: tuple[int, ...] = (10**4, 10**5, 10**6)
    keys: tuple[int, ...] = (10**3, 10**4)
    timeout_s: float = 600.0


FULL = Plan(records={100: 1000, 1: 20_000})
QUICK = Plan(records={100: 30, 1: 300}, runs=1, duration_s=4.0, checkpoints=(10**3, 3 * 10**3, 10**4),
             keys=(100, 1000), timeout_s=180.0)


# ---- worker plumbing ----------------------------------------------------------------------------------------

def progress(worker: WorkerProc) -> tuple[int, int]:
    """(alerts parsed by normalize, alert records folded by correlate) on one worker, from `/stats`.

    Not from /metrics: rendering the whole exposition 20 times a second cost a worker ~10% of its CPU,
    which the benchmark would have charged to the pipeline.
    """
    stats = worker.get("/stats")
    return int(stats["normalized"]), int(stats["counters"].get("records", 0))


def start_workers(dep: Deployment, count: int, timeout: float = 120.0) -> list[WorkerProc]:
    """Start `count` workers and wait until together they own every partition of `alerts`, each some.

    Records are produced only after this, so that no rebalance falls inside a timed run.
    """
    workers = [dep.start_worker(f"w{i}") for i in range(count)]
    try:
        for w in workers:
            w.wait_web()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            owned = [len(w.get("/assignment")["alerts_partitions"]) for w in workers]
            if sum(owned) == dep.partitions and min(owned) > 0:
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
    dep = Deployment(broker, Path(tempfile.mkdtemp(prefix="aiops-bench-")))
    dep.extra_env = dict(env)
    dep.create_topics()
    return dep


# ---- (a) throughput -----------------------------------------------------------------------------------------

def throughput_run(broker: EmbeddedBroker, bodies: list[bytes], alerts: int, workers: int,
                   timeout: float) -> dict[str, float]:
    """Pipeline alerts/s on `workers` workers and the raw-consumer ceiling on the same records."""
    dep = fresh_deployment(broker)
    procs = start_workers(dep, workers)
    try:
        producer = produce_in_background(dep, bodies)
        start = end = None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            counts = [progress(w) for w in procs]
            received, folded = sum(c[0] for c in counts), sum(c[1] for c in counts)
            now = time.monotonic()
            if start is None and received > 0:
                start = now
            if folded >= alerts:
                end = now
                break
            time.sleep(POLL_S)
        producer.join(timeout)
        if start is None or end is None:
            raise TimeoutError(f"{workers} worker(s) did not fold {alerts} alerts in {timeout}s:\n{procs[0].tail()}")
    finally:
        stop_all(procs)
    ceiling = asyncio.run(consume(broker.bootstrap, dep.topic("alerts_raw"), dep.partitions, len(bodies), parse_lines))
    pipeline = alerts / max(end - start, 1e-6)
    return {"pipeline_alerts_per_s": pipeline, "ceiling_alerts_per_s": ceiling.alerts_per_s,
            "ratio": pipeline / ceiling.alerts_per_s}


def throughput(broker: EmbeddedBroker, plan: Plan) -> list[dict[str, Any]]:
    """Every (record shape, worker count) row: medians of `plan.runs`, runs interleaved across rows."""
    rows = []
    for per_record, count in plan.records.items():
        bodies, alerts = storm_records(count, per_record, seed=7)
        runs: dict[int, list[dict[str, float]]] = {n: [] for n in plan.workers}
        for _ in range(plan.runs):
            for n in plan.workers:
                runs[n].append(throughput_run(broker, bodies, alerts, n, plan.timeout_s))
        for n in plan.workers:
            med = {k: statistics.median(r[k] for r in runs[n]) for k in runs[n][0]}
            rows.append({"per_record": per_record, "records": len(bodies), "alerts": alerts, "workers": n, **med,
                         "runs_alerts_per_s": [r["pipeline_alerts_per_s"] for r in runs[n]]})
    return rows


# ---- (b) latency --------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class LiveStream:
    """Generated alert records with event times as offsets (seconds) from the moment sending starts."""

    records: list[dict[str, Any]]
    send_at: list[float]  # per body: offset of its last record's arrival, when it is sent
    per_record: int
    scale: float  # wall seconds per generated event-time second

    def body(self, index: int, origin: float) -> bytes:
        """Raw body `index` with event times stamped from `origin` (epoch seconds).

        Built one at a time as it is sent: building all of them first (a few seconds for 400,000 records on
        a busy machine) put the schedule's first seconds behind it, sent at once as a burst.
        """
        lines = []
        for r in self.records[index * self.per_record:(index + 1) * self.per_record]:
            r = {**r, "starts_at": round(origin + r["starts_at"], 3)}
            if r.get("ends_at") is not None:
                r["ends_at"] = round(origin + r["ends_at"], 3)
            lines.append(orjson.dumps(r))
        return b"\n".join(lines)


def live_stream(rate: float, duration: float, seed: int, per_record: int = 100) -> LiveStream:
    """`rate * duration` generated alert records whose event time advances one second per second of sending.

    The generator's storms are shortened (spread over 20 s, re-sends after 10 s, resolutions 10-30 s after
    each alert) so that a bounded run holds whole storms; the first 50 s of its records are skipped so the
    stream starts in a steady state; the rest is rescaled onto `duration` seconds (a factor near 1). A record
    arrives at its event time (a re-send at its send time, a resolution at its end), and each body is sent
    when its last record arrives: event time follows the wall clock, which is what makes the engine's
    event-time settings (allowed lateness, update interval)
    cost what they cost live.
    """
    wanted = int(rate * duration)
    mean_storm = 40.0
    # A storm of n firings makes about 2n records (a resolution each, some re-sends): sizes the storm rate
    # to `rate`. Many keys and a flat Zipf, so that new storms find a quiet key at this storm rate.
    spec = StormSpec(alerts=10 * wanted + 1_000_000, services=20_000, zipf_s=0.5, seed=seed, start=0.0,
                     storm_rate_per_s=rate / (2.0 * mean_storm), mean_storm_size=mean_storm, storm_spread_s=20.0,
                     repeat_interval_s=10.0, resolve_after_s=(10.0, 30.0), min_gap_same_key_s=60.0)
    skip = int(rate * 50.0)  # storms, re-sends and resolutions all in flight by then
    taken: list[dict[str, Any]] = []
    arrivals: list[float] = []
    arrived = float("-inf")
    for n, (record, _) in enumerate(generate(spec)):
        # Arrival order is the generator's order; a re-send keeps its old startsAt, so the running max of
        # the records' own times is when each arrived.
        arrived = max(arrived, record["ends_at"] if record["status"] == "resolved" else record["starts_at"])
        if n >= skip:
            taken.append(record)
            arrivals.append(arrived)
        if len(taken) == wanted:
            break
    lo, scale = arrivals[0], duration / max(arrivals[-1] - arrivals[0], 1e-9)
    for r in taken:
        r["starts_at"] = (r["starts_at"] - lo) * scale
        if r.get("ends_at") is not None:
            r["ends_at"] = (r["ends_at"] - lo) * scale
    send_at = [(arrivals[min(i + per_record, len(taken)) - 1] - lo) * scale for i in range(0, len(taken), per_record)]
    return LiveStream(taken, send_at, per_record, scale)


def first_bodies(bodies: Sequence[bytes]) -> dict[tuple[str, float], int]:
    """(correlation key, event time) of every alert record -> index of the first body holding it, as parsed."""
    first: dict[tuple[str, float], int] = {}
    for j, body in enumerate(bodies):
        for alert in parse("generic", body, max_bytes=None):
            a = record_of(alert)
            # A resolution is placed at its end; one whose firing came before the run can open an incident.
            t = a.ends_at if a.status == "resolved" and a.ends_at is not None else a.starts_at
            first.setdefault((a.key, t), j)
    return first


async def _paced(bootstrap: str, raw_topic: str, incidents_topic: str, partitions: int, stream: LiveStream,
                 tail_s: float) -> tuple[list[bytes], list[float], list[tuple[float, dict[str, Any]]], dict[str, float]]:
    """Send the stream's bodies on its schedule while reading `incidents` (until quiet for `tail_s`).

    Returns the bodies, their send times, [(read time, event)], and how late the sends were against the
    schedule (percentiles, seconds): a sender that falls behind offers bursts, not a steady load.
    """
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest",
                              fetch_max_wait_ms=20)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0, max_request_size=4 << 20)
    await reader.start()
    await producer.start()
    reader.assign([TopicPartition(incidents_topic, p) for p in range(partitions)])
    await reader.seek_to_beginning()
    events: list[tuple[float, dict[str, Any]]] = []
    stop_reading = float("inf")

    async def read() -> None:
        while time.time() < stop_reading:
            for batch in (await reader.getmany(timeout_ms=20)).values():
                now = time.time()
                # stage 2's parents and assignments are not what a latency is measured on here
                events.extend((now, orjson.loads(r.value)) for r in batch if not is_stage2_record(r.headers))

    reading = asyncio.create_task(read())
    sent: list[float] = []
    # The stream's records (hundreds of thousands of dicts) are built: out of the collector's way, or each of
    # its full passes stalls this loop, its sends and its reads for 0.2-0.4 s, and a late read looks like latency.
    gc.collect()
    gc.freeze()
    try:
        origin = time.time() + 0.5
        bodies: list[bytes] = []
        behind: list[float] = []  # how late each send was against the schedule (this process on a busy machine)
        acks = []
        for index, offset in enumerate(stream.send_at):
            body = stream.body(index, origin)
            delay = origin + offset - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            sent.append(time.time())
            behind.append(sent[-1] - (origin + offset))
            bodies.append(body)
            acks.append(await producer.send(raw_topic, body, key=b"generic"))
        await asyncio.gather(*acks)
        # Read until `incidents` has been quiet for `tail_s`: a worker behind its input publishes the events of
        # the timed part late, and an event never read would leave the distribution's tail unmeasured.
        done = time.time()
        while time.time() - max(events[-1][0] if events else done, done) < tail_s and time.time() - done < READ_MAX_S:
            await asyncio.sleep(0.2)
        stop_reading = 0.0
        await reading
    finally:
        gc.unfreeze()
        reading.cancel()
        await producer.stop()
        await reader.stop()
    return bodies, sent, events, percentiles(behind)


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


def latency_run(broker: EmbeddedBroker, rate: float, duration: float, seed: int) -> dict[str, Any]:
    """One paced run on one worker: per-event latencies by kind, and the worker's own histograms.

    The load starts `STEADY_HEAD_S` before and ends `STEADY_TAIL_S` after the timed `duration` seconds, and
    only events caused by records sent within them are timed. Before: the stream begins mid-storm on keys the
    worker has never seen, so the incidents of every storm in flight open at once, a burst rather than a
    steady load (their latencies are kept apart as `opened_warmup_s`). After: the alerts of a stream's last
    half second wait for the idle flush (1 s of silence), which is what happens when input stops.
    """
    stream = live_stream(rate, STEADY_HEAD_S + duration + STEADY_TAIL_S, seed)
    dep = fresh_deployment(broker)
    (worker,) = start_workers(dep, 1)
    try:
        bodies, sent, events, behind = asyncio.run(_paced(broker.bootstrap, dep.topic("alerts_raw"), dep.topic("incidents"),
                                                  dep.partitions, stream, tail_s=3.0))
        hists = {name: histogram_quantiles(worker, f"aiops_{name}_seconds") for name in WORKER_HISTOGRAMS}
    finally:
        worker.stop()
    first = first_bodies(bodies)
    by_kind: dict[str, list[float]] = {"opened": [], "updated": []}
    warmup: list[float] = []
    unmatched = after_steady = 0
    for read_at, ev in events:
        kind = ev["kind"]
        if kind not in by_kind:
            continue
        body = first.get((ev["key"], ev["first_seen" if kind == "opened" else "last_seen"]))
        if body is None:
            unmatched += 1
            continue
        at = sent[body] - sent[0]
        if at < STEADY_HEAD_S:
            if kind == "opened":
                warmup.append(read_at - sent[body])
        elif at > STEADY_HEAD_S + duration:
            after_steady += 1
        else:
            by_kind[kind].append(read_at - sent[body])
    offered = len(stream.records) / max(sent[-1] - sent[0], 1e-9)
    return {"offered_alerts_per_s": offered, "events": len(events), "unmatched": unmatched,
            "not_timed_tail": after_steady, "sender_behind_s": behind, "scale": stream.scale,
            "opened_s": by_kind["opened"], "updated_s": by_kind["updated"], "opened_warmup_s": warmup, **hists}


def live_maximum(broker: EmbeddedBroker, plan: Plan, rate: float) -> dict[str, Any]:
    """One worker's maximum on the latency part's own kind of stream: the median catch-up rate over `plan.runs`.

    The throughput part's stream (a few hundred services, big storms, half of it resolutions) costs the
    engine a few us per alert; the live stream (thousands of keys with storms in flight, entity labels on
    every alert) costs several times that. Half of the throughput part's maximum overloads a worker on the
    live stream, so "half the measured maximum" is taken from this: the same generator and shape, stamped
    with event times ending now, all produced at once and folded as fast as one worker can. It is generated
    for `rate` alerts/s, denser in storms in flight than the stream then paced at half the result.
    """
    stream = live_stream(rate, plan.duration_s + STEADY_TAIL_S, seed=5)
    origin = time.time() - stream.send_at[-1]
    bodies = [stream.body(i, origin) for i in range(len(stream.send_at))]
    runs = [throughput_run(broker, bodies, len(stream.records), 1, plan.timeout_s) for _ in range(plan.runs)]
    return {"generated_for_alerts_per_s": rate, "alerts": len(stream.records),
            "alerts_per_s": statistics.median(r["pipeline_alerts_per_s"] for r in runs),
            "runs_alerts_per_s": [r["pipeline_alerts_per_s"] for r in runs]}


def latency(broker: EmbeddedBroker, plan: Plan, rate: float) -> dict[str, Any]:
    """`plan.runs` paced runs at `rate`; the percentiles of each run, their medians, and run 1's sample."""
    runs = [latency_run(broker, rate, plan.duration_s, seed=11 + i) for i in range(plan.runs)]
    per_run = [{"opened": percentiles(r["opened_s"]), "updated": percentiles(r["updated_s"]),
                "opened_warmup": percentiles(r["opened_warmup_s"]),
                **{name: r[name] for name in WORKER_HISTOGRAMS},
                "offered_alerts_per_s": r["offered_alerts_per_s"], "unmatched": r["unmatched"],
                "not_timed_tail": r["not_timed_tail"], "sender_behind_s": r["sender_behind_s"], "scale": r["scale"]}
               for r in runs]
    med: dict[str, Any] = {}
    for part in ("opened", "updated", "opened_warmup", *WORKER_HISTOGRAMS):
        med[part] = {k: statistics.median(p[part][k] for p in per_run) for k in per_run[0][part]}
    return {"rate": rate, "duration_s": plan.duration_s, "runs": per_run, "median": med,
            "offered_alerts_per_s": statistics.median(p["offered_alerts_per_s"] for p in per_run),
            "sample": {"opened_s": runs[0]["opened_s"], "updated_s": runs[0]["updated_s"]}}


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
            folded = progress(worker)[1]
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


# ---- plots and RESULTS.md -----------------------------------------------------------------------------------

def plot(results: dict[str, Any], out: Path) -> list[Path]:
    """The three PNGs (each only if its part has figures)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    paths = []
    if results.get("throughput"):
        rows = results["throughput"]
        shapes = sorted({r["per_record"] for r in rows}, reverse=True)
        floor = {r["per_record"]: r["in_process_alerts_per_s"] for r in results.get("stage_costs") or []}
        fig, ax = plt.subplots(figsize=(7, 4))
        for i, shape in enumerate(shapes):
            mine = [r for r in rows if r["per_record"] == shape]
            bars = [("ceiling (aiokafka + parse)", statistics.median(r["ceiling_alerts_per_s"] for r in mine))]
            if shape in floor:
                bars.append(("agents' code, no broker", floor[shape]))
            bars += [(f"{r['workers']} worker(s)", r["pipeline_alerts_per_s"]) for r in mine]
            width = 0.8 / len(bars)
            for j, (label, value) in enumerate(bars):
                x = i + (j - (len(bars) - 1) / 2) * width
                ax.bar(x, value, width, color=f"C{j}", label=label if i == 0 else None)
                ax.annotate(f"{value:,.0f}", (x, value), ha="center", va="bottom", fontsize=7)
            ax.hlines(TARGET_SHARE * bars[0][1], i - 0.4, i + 0.4, colors="grey", linestyles=":",
                      label=f"{TARGET_SHARE:.0%} of the ceiling (issue 7's target)" if i == 0 else None)
        ax.set_xticks(range(len(shapes)), [f"{s} alert(s) per record" for s in shapes])
        ax.set_yscale("log")
        ax.set_ylabel("alerts/s (median)")
        ax.set_title("Pipeline vs raw consumer ceiling, embedded broker")
        ax.set_ylim(top=ax.get_ylim()[1] * 6)  # room for the legend above the bars (log scale)
        ax.legend(fontsize=7, ncol=2, loc="upper center")
        paths.append(_save(fig, out / "throughput_vs_ceiling.png"))
    if results.get("latency"):
        fig, ax = plt.subplots(figsize=(7, 4))
        for part, (_, style) in LATENCY_LOADS.items():
            lat = results.get(part)
            if not lat:
                continue
            for kind, color in (("opened", "C0"), ("updated", "C1")):
                sample = sorted(lat["sample"][f"{kind}_s"])
                if sample:
                    ax.plot(sample, [(i + 1) / len(sample) for i in range(len(sample))], style, color=color,
                            label=f"{kind}, {lat['offered_alerts_per_s']:,.0f} alerts/s (n={len(sample)})")
        ax.axvline(1.0, color="grey", ls=":", label="1 s target (p99)")
        ax.set_xscale("log")
        ax.set_xlabel("seconds from raw record sent to incident event read")
        ax.set_ylabel("fraction of events")
        ax.set_title("Latency alerts.raw -> incidents at steady load, one worker (run 1 of each)")
        ax.legend(fontsize=8)
        paths.append(_save(fig, out / "latency.png"))
    if results.get("memory"):
        rows = results["memory"]
        fig, ax = plt.subplots(figsize=(7, 4))
        for i, keys in enumerate(sorted({r["keys"] for r in rows})):
            mine = sorted((r for r in rows if r["keys"] == keys), key=lambda r: r["checkpoint"])
            xs = [r["checkpoint"] for r in mine]
            ax.plot(xs, [r["vm_hwm_mb"] for r in mine], "o-", color=f"C{i}", label=f"{keys:,} keys: VmHWM")
            short = sorted((r for r in results.get("memory_short_sla") or [] if r["keys"] == keys),
                           key=lambda r: r["checkpoint"])
            if short:
                ax.plot([r["checkpoint"] for r in short], [r["vm_hwm_mb"] for r in short], "s--", color=f"C{i}",
                        label=f"{keys:,} keys: VmHWM, SLA clocks kept {SHORT_SLA_RETENTION_S} s")
        ax.set_xscale("log")
        ax.set_ylim(bottom=0)
        ax.set_xlabel("alert records folded")
        ax.set_ylabel("MiB (median)")
        ax.set_title("Worker memory vs stream length")
        ax.legend(fontsize=8)
        paths.append(_save(fig, out / "memory_vs_alerts.png"))
    return paths


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def machine() -> str:
    """One line naming the machine the figures came from."""
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor() or "?")
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"{os.cpu_count()} CPUs ({model}), Python {platform.python_version()}, {platform.system()} "
            f"{platform.machine()}; load average at the start {load} (the machine is shared: figures are noisy)")


def markdown(results: dict[str, Any]) -> str:
    """The RESULTS.md section body (between the markers)."""
    out: list[str] = []
    if results.get("throughput"):
        rows = results["throughput"]
        out += [f"Throughput, median of {results['runs']['throughput']} runs "
                "(alerts include re-sends and resolutions):", "",
                "| alerts per record | records | workers | pipeline alerts/s | ceiling alerts/s | ratio | runs |",
                "|---:|---:|---:|---:|---:|---:|---|"]
        for r in rows:
            runs = ", ".join(f"{x:,.0f}" for x in r["runs_alerts_per_s"])
            out.append(f"| {r['per_record']} | {r['records']:,} | {r['workers']} | {r['pipeline_alerts_per_s']:,.0f} "
                       f"| {r['ceiling_alerts_per_s']:,.0f} | {r['ratio']:.1%} | {runs} |")
        out += ["", "![throughput vs ceiling](throughput_vs_ceiling.png)", ""]
    if results.get("throughput") and results.get("stage_costs"):
        ceilings = {r["per_record"]: r["ceiling_alerts_per_s"] for r in results["throughput"] if r["workers"] == 1}
        rows = results["stage_costs"]
        out += [f"The same records through the agents' code with no broker (`benchmarks/stage_costs.py`, one "
                f"process, median of {rows[0]['runs']} runs; Faust, the changelog and the metrics left out, so "
                "this is the most any wiring of this code could reach), beside the ceiling above:", "",
                stage_costs_markdown(rows, ceilings), ""]
    top = results.get("latency_maximum")
    if top and results.get("latency"):
        runs = ", ".join(f"{x:,.0f}" for x in top["runs_alerts_per_s"])
        out += [f"One worker's maximum on the latency part's live stream ({top['alerts']:,} alert records generated "
                f"for {top['generated_for_alerts_per_s']:,.0f}/s, folded as a catch-up): {top['alerts_per_s']:,.0f} "
                f"alerts/s, median of {len(top['runs_alerts_per_s'])} runs ({runs}). Half of it is the load below.", ""]
    for part, (share, _) in LATENCY_LOADS.items():
        lat = results.get(part)
        if not lat:
            continue
        med = lat["median"]
        if not top:  # figures stored before the live stream's own maximum was measured
            share = share.replace("on this stream", "of the throughput part")
        out += [f"Latency at a steady {lat['offered_alerts_per_s']:,.0f} alerts/s offered ({share}), "
                f"{lat['duration_s']:.0f} s per run, median of {len(lat['runs'])} runs' percentiles, "
                "seconds:", "", "| measured | events | p50 | p90 | p99 |", "|---|---:|---:|---:|---:|"]
        for name, label in (("opened", "`opened` (pages): raw record sent -> event read"),
                            ("updated", "`updated`: raw record of its newest alert sent -> event read"),
                            ("opened_warmup", f"`opened` in the {STEADY_HEAD_S:.0f} s before, not timed: storms "
                             "in flight at the start open at once"),
                            ("correlation_latency", "worker `aiops_correlation_latency_seconds`"),
                            ("correlation_event_latency", "worker `aiops_correlation_event_latency_seconds`")):
            m = med.get(name)
            if not m or not m["n"]:
                continue
            out.append(f"| {label} | {m['n']:,.0f} | {m['p50']:.3f} | {m['p90']:.3f} | {m['p99']:.3f} |")
        out.append("")
    if results.get("latency"):
        out += ["![latency](latency.png)", ""]
    if results.get("memory"):
        rows = results["memory"]
        fed = ("the whole stream produced at once (a catch-up from a backlog)" if results.get("memory_backlog")
               else "produced at most 200 raw records ahead of the worker, as from a live source")
        short = {(r["keys"], r["checkpoint"]): r for r in results.get("memory_short_sla") or []}
        out += [f"Worker memory, median of {results['runs']['memory']} runs, MiB; {fed}. Default settings, and "
                f"with incident-SLA clocks purged {SHORT_SLA_RETENTION_S} s after closing "
                f"(`AIOPS_SLA_RETENTION={SHORT_SLA_RETENTION_S}`):", "",
                "| key space | keys used | event time | alert records | VmHWM | VmRSS "
                "| VmHWM, short SLA | VmRSS, short SLA |",
                "|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in rows:
            o = short.get((r["keys"], r["checkpoint"]))
            tail = f"{o['vm_hwm_mb']:.1f} | {o['vm_rss_mb']:.1f}" if o else "- | -"
            out.append(f"| {r['keys']:,} | {r['keys_seen']:,} | {r['event_hours']:.0f} h | {r['checkpoint']:,} | "
                       f"{r['vm_hwm_mb']:.1f} | {r['vm_rss_mb']:.1f} | {tail} |")
        cps = sorted({r["checkpoint"] for r in rows})
        for name, series in (("default", rows), ("short SLA retention", results.get("memory_short_sla") or [])):
            for keys in sorted({r["keys"] for r in series}):
                g = flatness(series, keys, cps[-2], cps[-1])
                out.append(f"\n{name}, {keys:,} keys, {cps[-2]:,} -> {cps[-1]:,} records: VmHWM "
                           f"{g['vm_hwm_mb']:+.1%}, VmRSS {g['vm_rss_mb']:+.1%}.")
        out += ["", "![memory vs alerts](memory_vs_alerts.png)", ""]
    if results.get("machine"):
        out += _provenance(results)
    return "\n".join(out)


def _provenance(results: dict[str, Any]) -> list[str]:
    """Where and when each part ran: a run of some parts (`--only`) keeps the others' own machine and date."""
    commands = results.get("commands") or {"all": results["command"]}
    ran = results.get("ran", {})
    runs = {part: ran.get(part, {"machine": results["machine"], "at": results["at"]}) for part in commands}
    machines = {run["machine"] for run in runs.values()}
    one = len(machines) == 1
    out = [f"Machine: {next(iter(machines))}.", ""] if one else ["Each part's command, date and machine:", ""]
    for part, cmd in commands.items():
        run = runs[part]
        day = time.strftime("%Y-%m-%d", time.gmtime(run["at"]))
        out.append(f"- {part}: `{cmd}` ({day}{'' if one else '; ' + run['machine']})")
    return out


def write_results(path: Path, body: str) -> None:
    """Replace the section between the markers, or append it under its own heading."""
    write_section(path, f"{BEGIN}\n{body}\n{END}", begin=BEGIN, end=END,
                  heading="## Pipeline throughput, latency and memory")


# ---- entry point --------------------------------------------------------------------------------------------

def main(argv: Sequence[str] | None = None) -> int:
    """Run the chosen parts, then plot and (full runs) write RESULTS.md; `--json` prints the figures."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small sizes, one run: proves it works, not speed")
    p.add_argument("--runs", type=int, default=None)
    p.add_argument("--only", action="append", choices=["throughput", "latency", "memory"])
    p.add_argument("--rate", type=float, default=None, help="latency load in alerts/s (default: half the "
                   "one-worker 100-alert throughput measured in this run, or stored)")
    p.add_argument("--duration", type=float, default=None, help="seconds of paced load per latency run")
    p.add_argument("--plots", type=Path, default=ROOT / "benchmarks", help="directory for the PNGs")
    p.add_argument("--results", type=Path, default=None, help="markdown file for the section "
                   "(default benchmarks/RESULTS.md, none with --quick)")
    p.add_argument("--backlog", action="store_true", help="memory: produce the whole stream at once (a catch-up) "
                   "instead of at most 200 records ahead of the worker")
    p.add_argument("--redraw", action="store_true", help="run nothing: plots and RESULTS.md from the stored figures")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    plan = QUICK if args.quick else FULL
    plan = replace(plan, runs=args.runs or plan.runs, duration_s=args.duration or plan.duration_s)
    parts = [] if args.redraw else args.only or ["throughput", "latency", "memory"]
    results: dict[str, Any] = {} if args.quick or not STORE.exists() else json.loads(STORE.read_text())
    results.setdefault("runs", {})
    start_machine = machine()  # the load average before this run adds its own
    with start_broker() as broker:
        if "throughput" in parts:
            results["throughput"] = throughput(broker, plan)
            results["stage_costs"] = stage_costs(plan.records, plan.runs)
            results["runs"]["throughput"] = plan.runs
            _say(args, markdown({key: results[key] for key in ("throughput", "stage_costs", "runs")}))
        if "latency" in parts:
            stress = _half_max(results) or 2000.0
            if args.rate:
                rate = args.rate
                results.pop("latency_maximum", None)  # a stored maximum would not be what this load is half of
            else:
                results["latency_maximum"] = live_maximum(broker, plan, stress)
                rate = results["latency_maximum"]["alerts_per_s"] / 2
            results["latency"] = latency(broker, plan, rate)
            # --quick proves each part runs once; the second load and the second memory series run the same code.
            results["latency_low"] = latency(broker, plan, rate / 4) if not args.quick else None
            # The old definition of the load, kept beside it: half the throughput part's maximum.
            results["latency_stress"] = (latency(broker, plan, stress)
                                         if stress > rate * 1.2 and not args.quick else None)
            results["runs"]["latency"] = plan.runs
        if "memory" in parts:
            results["memory"] = memory(broker, plan, None if args.backlog else 200)
            results["memory_backlog"] = args.backlog
            # Closed incident-SLA clocks (stream/tickets.py) leave after sla_retention (24 h) of wall clock or of
            # event time, whichever passes first (until 779c276 wall clock only, so a replay of days of event
            # time in a minute kept every one). The second series retains them 30 s, for comparison.
            results["memory_short_sla"] = (memory(broker, plan, None if args.backlog else 200,
                                                  {"AIOPS_SLA_RETENTION": str(SHORT_SLA_RETENTION_S)})
                                           if not args.quick else [])
            results["runs"]["memory"] = plan.runs
    given = list(argv) if argv is not None else sys.argv[1:]
    command = " ".join(["python benchmarks/throughput.py", *given])
    if not args.redraw:
        results.update(machine=start_machine, at=time.time(), command=command)
        results.setdefault("commands", {}).update({part: command for part in parts})
        results.setdefault("ran", {}).update({part: {"machine": start_machine, "at": results["at"]} for part in parts})
    plot(results, args.plots)
    if not args.quick and not args.redraw:
        STORE.parent.mkdir(parents=True, exist_ok=True)
        STORE.write_text(json.dumps(results))
    results_md = args.results or (None if args.quick else RESULTS_MD)
    if results_md is not None:
        write_results(results_md, markdown(results))
    if args.json:
        slim = {**results, **{part: {k: v for k, v in results[part].items() if k != "sample"}
                              for part in LATENCY_LOADS if results.get(part)}}
        print(json.dumps(slim))
    else:
        print(markdown(results))
    return 0


def _half_max(results: dict[str, Any]) -> float | None:
    rows = [r for r in results.get("throughput") or [] if r["per_record"] == 100 and r["workers"] == 1]
    return rows[0]["pipeline_alerts_per_s"] / 2 if rows else None


def _say(args: argparse.Namespace, text: str) -> None:
    if not args.json:
        print(text, flush=True)


if __name__ == "__main__":
    sys.exit(main())
