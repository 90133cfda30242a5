"""The ceiling the pipeline is compared against: a plain aiokafka consumer on the embedded broker.

Produces N records of ~100 generic-JSON alerts each (an NDJSON chunk, as a webhook or a shipper sends them)
to a fresh topic, then reads them back R times with a group-less aiokafka consumer and reports the median
records/s and alerts/s, both for consuming alone and for consuming plus orjson-parsing every alert. The
consumer uses Faust's fetch sizes and the pipeline's 100 ms fetch wait, on the same event loop (uvloop).

    .venv/bin/python benchmarks/raw_consumer.py            # 3,000 records x 100 alerts, median of 3
    .venv/bin/python benchmarks/raw_consumer.py --quick    # 300 records, seconds
    .venv/bin/python benchmarks/raw_consumer.py --join     # also: first message of a new group, 10 s vs 60 s
    .venv/bin/python benchmarks/raw_consumer.py --bootstrap host:9092   # an existing broker instead
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from stream.broker import create_topics, start_broker  # noqa: E402

SERVICES = [f"svc-{i:02d}" for i in range(40)]
SYMPTOMS = ["HighLatency", "ErrorRate", "CPUThrottling", "DiskFull", "PodCrashLooping", "TargetDown"]


@dataclass(frozen=True)
class Run:
    """One timed pass over the topic."""

    records: int
    alerts: int
    seconds: float

    @property
    def records_per_s(self) -> float:
        """Records consumed per second."""
        return self.records / self.seconds

    @property
    def alerts_per_s(self) -> float:
        """Alerts consumed per second."""
        return self.alerts / self.seconds


def alert(rng: random.Random, now: float) -> dict[str, object]:
    """One alert in the generic JSON format of DESIGN.md."""
    service, symptom = rng.choice(SERVICES), rng.choice(SYMPTOMS)
    host = f"node-{rng.randrange(12)}"
    return {
        "starts_at": round(now - rng.uniform(0, 300), 3),
        "status": "firing",
        "service": service,
        "symptom": symptom,
        "severity": rng.choice(["critical", "warning", "info"]),
        "source": "bench",
        "labels": {"alertname": symptom, "service": service, "instance": f"{host}:9100", "cluster": "lab"},
        "summary": f"{symptom} on {service} ({host})",
    }


def make_records(count: int, per_record: int, seed: int = 7) -> list[bytes]:
    """`count` NDJSON chunks of `per_record` alerts each."""
    rng, now = random.Random(seed), time.time()
    return [b"\n".join(orjson.dumps(alert(rng, now)) for _ in range(per_record)) for _ in range(count)]


async def produce(bootstrap: str, topic: str, records: Sequence[bytes]) -> float:
    """Send every record (keyed round-robin over sources) and return the seconds it took."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, max_batch_size=1 << 20)
    await producer.start()
    try:
        started = time.perf_counter()
        for i, value in enumerate(records):
            await producer.send(topic, value, key=f"source-{i % 16}".encode())
        await producer.flush()
        return time.perf_counter() - started
    finally:
        await producer.stop()


def count_lines(value: bytes) -> int:
    """Alerts in an NDJSON chunk, without parsing."""
    return value.count(b"\n") + 1


def parse_lines(value: bytes) -> int:
    """Alerts in an NDJSON chunk, each parsed with orjson."""
    return len([orjson.loads(line) for line in value.split(b"\n")])


async def consume(bootstrap: str, topic: str, partitions: int, expected: int, per_record: Callable[[bytes], int]) -> Run:
    """Read the topic from the beginning until `expected` records arrived; time from first fetch to last."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest",
        fetch_max_wait_ms=100, max_partition_fetch_bytes=1 << 20,
    )  # fmt: skip
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, p) for p in range(partitions)])
        await consumer.seek_to_beginning()
        records = alerts = 0
        started = time.perf_counter()
        while records < expected:
            for batch in (await consumer.getmany(timeout_ms=1000)).values():
                records += len(batch)
                alerts += sum(per_record(r.value) for r in batch)
        return Run(records, alerts, time.perf_counter() - started)
    finally:
        await consumer.stop()


async def first_message_latency(bootstrap: str, topic: str, session_timeout_ms: int) -> float:
    """Seconds from a new group's consumer start() to its first record."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=f"bench-{uuid.uuid4().hex[:8]}",
        session_timeout_ms=session_timeout_ms, heartbeat_interval_ms=min(3000, session_timeout_ms // 3),
        request_timeout_ms=session_timeout_ms + 30_000, auto_offset_reset="earliest",
    )  # fmt: skip
    started = time.perf_counter()
    await consumer.start()
    try:
        while not await consumer.getmany(timeout_ms=1000, max_records=1):
            pass
        return time.perf_counter() - started
    finally:
        await consumer.stop()


def median_run(runs: Sequence[Run]) -> Run:
    """The run with the median duration."""
    return sorted(runs, key=lambda r: r.seconds)[len(runs) // 2]


def print_table(rows: Sequence[tuple[str, Run, Sequence[Run]]]) -> None:
    """A small fixed-width table of the medians, with the spread of alerts/s."""
    print(f"{'mode':<22}{'records':>9}{'alerts':>11}{'seconds':>9}{'records/s':>11}{'alerts/s':>12}  alerts/s of runs")
    for name, run, runs in rows:
        spread = ", ".join(f"{r.alerts_per_s:,.0f}" for r in runs)
        print(
            f"{name:<22}{run.records:>9,}{run.alerts:>11,}{run.seconds:>9.3f}"
            f"{run.records_per_s:>11,.0f}{run.alerts_per_s:>12,.0f}  {spread}"
        )


async def bench(args: argparse.Namespace, bootstrap: str) -> None:
    """Produce once, consume `args.runs` times per mode, print the medians."""
    topic = f"bench.raw-{uuid.uuid4().hex[:8]}"
    await create_topics(bootstrap, {topic: args.partitions})
    records = make_records(args.records, args.alerts)
    size = sum(map(len, records)) / len(records)
    seconds = await produce(bootstrap, topic, records)
    print(f"produced {len(records):,} records x {args.alerts} alerts ({size / 1024:.1f} KiB each) "
          f"to {topic} ({args.partitions} partitions) in {seconds:.2f}s: {len(records) / seconds:,.0f} records/s")  # fmt: skip
    rows = []
    for name, per_record in (("consume", count_lines), ("consume + orjson", parse_lines)):
        runs = [await consume(bootstrap, topic, args.partitions, len(records), per_record) for _ in range(args.runs)]
        rows.append((name, median_run(runs), runs))
    print_table(rows)
    if args.join:
        for session_ms in (10_000, 60_000):
            latency = await first_message_latency(bootstrap, topic, session_ms)
            print(f"new group, session timeout {session_ms / 1000:.0f}s: first message after {latency:.2f}s")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options; `--quick` shrinks the record count."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=3000, help="records to produce (default 3000)")
    parser.add_argument("--alerts", type=int, default=100, help="alerts per record (default 100)")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--runs", type=int, default=3, help="timed passes; the median is reported")
    parser.add_argument("--quick", action="store_true", help="300 records, for a smoke run")
    parser.add_argument("--join", action="store_true", help="also time a new group's first message (~40 s)")
    parser.add_argument("--bootstrap", help="host:port of a running broker (default: start the embedded Tansu)")
    parser.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop")
    args = parser.parse_args(argv)
    if args.quick:
        args.records = min(args.records, 300)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark against `--bootstrap` or a freshly started embedded broker."""
    args = parse_args(argv)
    if args.loop == "uvloop":
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    if args.bootstrap:
        asyncio.run(bench(args, args.bootstrap))
        return 0
    with start_broker() as broker:
        print(f"tansu pid {broker.pid} on {broker.bootstrap}, answering {broker.started_in * 1000:.0f} ms after exec")
        asyncio.run(bench(args, broker.bootstrap))
    return 0


if __name__ == "__main__":
    sys.exit(main())
