"""What admission control costs: one backlog probe (stream/admission.py) beside one /readyz broker check, same run.

Starts its own embedded broker (Tansu), creates the pipeline's topics, writes `--records` records to alerts.raw
and commits half of them for the app's consumer group, so the probe reads a real backlog. Then, per run,
`--probes` backlog probes (ListOffsets + OffsetFetch, and the meter's verdict) and as many readiness checks
(one metadata request: what /readyz already pays once a second) back to back, timed by wall clock and by this
process's CPU. Reports medians over `--runs` and the ratio probe / readiness check, the CPU share of one core
the probe takes at the default interval (1 s), and what the request path pays per request (`Ingest._admit`).

    .venv/bin/python benchmarks/admission_cost.py            # 3 runs of 200 probes
    .venv/bin/python benchmarks/admission_cost.py --quick    # 1 run of 20: proves it works
    .venv/bin/python benchmarks/admission_cost.py --json
    .venv/bin/python benchmarks/admission_cost.py --results benchmarks/RESULTS.md   # also rewrite its section
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import timeit
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from results_md import publish  # noqa: E402
from throughput import machine  # noqa: E402

from stream.admission import BacklogProbe  # noqa: E402
from stream.broker import create_topics_sync, start_broker  # noqa: E402
from stream.ingest import Ingest, KafkaSender, Readiness  # noqa: E402
from stream.settings import Settings  # noqa: E402


async def prepare(settings: Settings, records: int) -> None:
    """`records` records on alerts.raw, half of them committed by the app's group."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers)
    await producer.start()
    try:
        for i in range(records):
            await producer.send(settings.topics.alerts_raw, b"{}", key=b"generic", partition=i % settings.partitions)
        await producer.flush()
        for p in range(settings.partitions):  # Tansu 0.6.0 reports true end offsets only after a one-record batch
            await producer.send_and_wait(settings.topics.alerts_raw, b"{}", key=b"generic", partition=p)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers, group_id=settings.app_id,
                                enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(settings.topics.alerts_raw, p) for p in range(settings.partitions)]
        consumer.assign(tps)
        await consumer.commit({tp: records // settings.partitions // 2 for tp in tps})
    finally:
        await consumer.stop()


async def timed(call: Any, n: int) -> tuple[float, float]:
    """(wall ms, CPU ms) per call of `n` awaited calls."""
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(n):
        await call()
    return (time.perf_counter() - wall) / n * 1000, (time.process_time() - cpu) / n * 1000


async def measure(settings: Settings, probes: int, runs: int) -> dict[str, Any]:
    probe = BacklogProbe(settings)
    sender = KafkaSender(settings)
    await sender.on_start()
    readiness = Readiness(sender, list(settings.topic_plan()), ttl_s=0.0)  # no cache: one request each
    try:
        first = await probe.measure_once()
        assert first.known and first.records > 0, first
        await readiness.state()
        rows = []
        for _ in range(runs):
            p_wall, p_cpu = await timed(probe.measure_once, probes)
            r_wall, r_cpu = await timed(readiness.state, probes)
            rows.append({"probe_ms": p_wall, "probe_cpu_ms": p_cpu, "ready_ms": r_wall, "ready_cpu_ms": r_cpu})
        verdict = probe.verdict()
    finally:
        await probe.on_stop()
        await sender.on_stop()
    ingest = Ingest(settings, sender, admission=probe)
    admit_us = min(timeit.repeat(ingest._admit, number=10_000, repeat=5)) / 10_000 * 1e6
    med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
    return {"runs": rows, "median": med, "ratio_wall": med["probe_ms"] / med["ready_ms"],
            "ratio_cpu": med["probe_cpu_ms"] / med["ready_cpu_ms"] if med["ready_cpu_ms"] else None,
            "core_share_at_1s": med["probe_cpu_ms"] / 1000.0 / settings.admission_interval,
            "admit_us_per_request": admit_us, "backlog_seen": verdict.as_dict()}


SECTION = "## Admission control: what the backlog probe costs"
BEGIN = "<!-- admission_cost:begin -->"
END = "<!-- admission_cost:end -->"


def table(result: dict[str, Any], args: argparse.Namespace) -> str:
    """The printed report, also the generated part of RESULTS.md."""
    med = result["median"]
    ratio_cpu = result["ratio_cpu"]
    return "\n".join([
        f"Backlog probe (ListOffsets + OffsetFetch + verdict) beside a /readyz broker check (one metadata request), "
        f"same broker, same run; {args.runs} runs x {args.probes} calls, medians.",
        "",
        "| call | wall ms | CPU ms |",
        "|---|---|---|",
        f"| backlog probe | {med['probe_ms']:.2f} | {med['probe_cpu_ms']:.2f} |",
        f"| /readyz check (baseline) | {med['ready_ms']:.2f} | {med['ready_cpu_ms']:.2f} |",
        f"| ratio probe / baseline | {result['ratio_wall']:.2f}x | "
        f"{'n/a' if ratio_cpu is None else f'{ratio_cpu:.2f}x'} |",
        "",
        f"At one probe per second that is {result['core_share_at_1s'] * 100:.2f}% of one core; the request path "
        f"reads the kept verdict in {result['admit_us_per_request']:.2f} us per request.",
        f"Machine: {result['machine']['line']}; {result['machine']['date']}. "
        f"Command: `.venv/bin/python benchmarks/admission_cost.py --runs {args.runs} --probes {args.probes}`.",
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--probes", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--records", type=int, default=4000)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--results", type=Path, help="rewrite this benchmark's section of this RESULTS.md")
    args = parser.parse_args(argv)
    if args.quick:
        args.probes, args.runs, args.records = 20, 1, 400
    broker = start_broker()
    try:
        with tempfile.TemporaryDirectory(prefix="aiops-admission-") as tmp:
            settings = Settings(broker=broker.url, app_id="admission-bench", data_dir=Path(tmp))
            create_topics_sync(broker.bootstrap, settings.topic_plan())
            asyncio.run(prepare(settings, args.records))
            result = asyncio.run(measure(settings, args.probes, args.runs))
    finally:
        broker.stop()
    result["machine"] = {"line": machine(), "date": time.strftime("%Y-%m-%d")}
    return publish(result, lambda: table(result, args), as_json=args.json, results=args.results,
                   begin=BEGIN, end=END, heading=SECTION)

if __name__ == "__main__":
    sys.exit(main())
