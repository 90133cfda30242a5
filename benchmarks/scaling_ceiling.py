"""How much a second process can add on this machine, now: the ceiling of the throughput benchmark's two-worker row.

Two jobs, each timed in one process over all 4 partitions and in two processes over 2 partitions each (started
together behind a barrier; the clock runs from the first start to the last end), in the same run, medians of
`--runs`:

fold      the correlate stage's own work with no broker: `decode_batch` of the `alerts` records the HTTP ingest
          writes for the storm (its own code, `AlertHop`), and `Correlator.ingest` per partition (pure CPU);
consume   the raw ceiling of benchmarks/raw_consumer.py (a group-less aiokafka consumer reading and
          orjson-parsing the raw records) on the embedded broker, which then shares the cores.

On a machine with 2 cores, other engineers' jobs and the broker, the two-process/one-process ratio of these is
what two workers can reach at most; the pipeline's own 2-worker ratio (`throughput.py`) is read against it.

    .venv/bin/python benchmarks/scaling_ceiling.py               # 1,000 x 100-alert bodies, x5 for consume
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from pipeline_throughput import storm_records  # noqa: E402
from raw_consumer import parse_lines  # noqa: E402
from throughput_part import hop_records  # noqa: E402

from correlator.engine import Correlator  # noqa: E402
from correlator.state import DictStore  # noqa: E402
from stream.batches import decode_batch  # noqa: E402
from stream.broker import create_topics, start_broker  # noqa: E402
from stream.runtime import tune_gc  # noqa: E402
from stream.settings import Settings  # noqa: E402

PARTITIONS = 4


def fold(placed: Sequence[tuple[int, bytes]], partitions: Sequence[int]) -> int:
    """Decode and correlate the records of `partitions`; alerts folded."""
    engines = {p: Correlator(Settings().correlation_config(), DictStore()) for p in partitions}
    alerts = 0
    for p, value in placed:
        if p in engines:
            records = [r for s in decode_batch(value)[0] for r in s.records]
            engines[p].ingest(records, arrival=time.time())
            alerts += len(records)
    return alerts


def consume(bootstrap: str, topic: str, partitions: Sequence[int], expected: int) -> int:
    """Read and parse every record of `partitions` (`expected` records); alerts read."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    async def run() -> int:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                    auto_offset_reset="earliest", fetch_max_wait_ms=100,
                                    max_partition_fetch_bytes=1 << 20)
        await consumer.start()
        try:
            consumer.assign([TopicPartition(topic, p) for p in partitions])
            await consumer.seek_to_beginning()
            records = alerts = 0
            while records < expected:
                for batch in (await consumer.getmany(timeout_ms=1000)).values():
                    records += len(batch)
                    alerts += sum(parse_lines(r.value) for r in batch)
            return alerts
        finally:
            await consumer.stop()

    return asyncio.run(run())


def _child(job: Callable[..., int], args: tuple[Any, ...], barrier: Any, out: Any) -> None:
    tune_gc()
    barrier.wait()
    start = time.monotonic()
    alerts = job(*args)
    out.put((start, time.monotonic(), alerts))


def together(jobs: Sequence[tuple[Callable[..., int], tuple[Any, ...]]]) -> float:
    """Run the jobs in one process each, started together; alerts/s from the first start to the last end."""
    ctx = mp.get_context("fork")
    barrier, out = ctx.Barrier(len(jobs)), ctx.Queue()
    procs = [ctx.Process(target=_child, args=(job, args, barrier, out)) for job, args in jobs]
    for p in procs:
        p.start()
    results = [out.get(timeout=600) for _ in procs]
    for p in procs:
        p.join()
    return sum(r[2] for r in results) / (max(r[1] for r in results) - min(r[0] for r in results))


def main(argv: Sequence[str] | None = None) -> int:
    """Print one and two processes' rates and their ratio for both jobs."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--bodies", type=int, default=1000)
    args = p.parse_args(argv)
    bodies, _ = storm_records(args.bodies, 100, seed=7)
    placed = hop_records(bodies, PARTITIONS)
    halves = [[0, 1], [2, 3]]
    counts = [sum(1 for q, _ in placed if q in half) for half in halves]
    load = os.getloadavg()
    rates: dict[str, list[float]] = {"fold 1": [], "fold 2": [], "consume 1": [], "consume 2": []}
    with start_broker() as broker:
        topic = f"bench.scaling-{uuid.uuid4().hex[:8]}"
        asyncio.run(create_topics(broker.bootstrap, {topic: PARTITIONS}))
        raw = [(q, b) for q, b in ((i % PARTITIONS, body) for i, body in enumerate(bodies * 5))]
        asyncio.run(_produce(broker.bootstrap, topic, raw))
        per_half = [sum(1 for q, _ in raw if q in half) for half in halves]
        for _ in range(args.runs):
            rates["fold 1"].append(together([(fold, (placed, range(PARTITIONS)))]))
            rates["fold 2"].append(together([(fold, (placed, half)) for half in halves]))
            rates["consume 1"].append(together([(consume, (broker.bootstrap, topic, range(PARTITIONS), len(raw)))]))
            rates["consume 2"].append(together([(consume, (broker.bootstrap, topic, half, n))
                                                for half, n in zip(halves, per_half, strict=True)]))
    med = {k: statistics.median(v) for k, v in rates.items()}
    print(f"{os.cpu_count()} CPUs; load average before {', '.join(f'{x:.2f}' for x in load)}, "
          f"after {', '.join(f'{x:.2f}' for x in os.getloadavg())}; alert records per half {counts}")
    for job in ("fold", "consume"):
        one, two = med[f"{job} 1"], med[f"{job} 2"]
        print(f"{job:8s} 1 process {one:10,.0f} alerts/s   2 processes {two:10,.0f} alerts/s   ratio {two / one:.2f}x"
              f"   (runs: 1 {', '.join(f'{x:,.0f}' for x in rates[f'{job} 1'])};"
              f" 2 {', '.join(f'{x:,.0f}' for x in rates[f'{job} 2'])})")
    return 0


async def _produce(bootstrap: str, topic: str, records: Sequence[tuple[int, bytes]]) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, max_batch_size=1 << 20)
    await producer.start()
    try:
        for partition, value in records:
            await producer.send(topic, value, partition=partition)
        await producer.flush()
    finally:
        await producer.stop()


if __name__ == "__main__":
    sys.exit(main())
