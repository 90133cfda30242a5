"""(b) latency of benchmarks/throughput.py: one worker at a steady offered load on a live stream, each incident
event matched to the raw record that caused it (see the docstring of benchmarks/throughput.py)."""

from __future__ import annotations

import asyncio
import gc
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_workers import Plan, fresh_deployment, histogram_quantiles, percentiles, start_workers  # noqa: E402
from storms import StormSpec, generate  # noqa: E402
from throughput_part import throughput_run  # noqa: E402

from correlator.records import record_of  # noqa: E402
from correlator.sources import parse  # noqa: E402
from stream.broker import EmbeddedBroker  # noqa: E402
from stream.incident_records import is_incident_event  # noqa: E402

STEADY_HEAD_S = 3.0
"""Seconds the paced load runs before the timed part of a latency run: the stream starts with storms in flight
on keys the worker has not seen, and their incidents all open in its first second (17 times the steady rate)."""
STEADY_TAIL_S = 3.0
"""Seconds the paced load goes on after the timed part of a latency run, so that the timed part stays steady."""
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
                events.extend((now, orjson.loads(r.value)) for r in batch if is_incident_event(r.headers))

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
