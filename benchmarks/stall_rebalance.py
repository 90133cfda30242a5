"""Stalled partitions under a rebalance: how often a partition stops committing while a front joins in a flood.

Each run starts its own embedded broker (Tansu) and one agents' worker (`--role all`), then a `--role ingest`
front (it joins the consumer group, so the worker goes through a rebalance while it keeps every partition)
and floods the front with 100-alert Alertmanager webhooks for `--duration` seconds. Then it waits until the
group has committed everything on `alerts.raw` and `alerts` (the backlog probe the ingest uses). A run whose
backlog does not reach 0 within `--drain-timeout` is a stall: the partitions whose committed offset stayed
below their end are printed with both offsets and the worker's lines about them. Prints `stalls k/N`.

    .venv/bin/python benchmarks/stall_rebalance.py --runs 10
    .venv/bin/python benchmarks/stall_rebalance.py --runs 3 --duration 6 --keep-logs /tmp/stall-logs
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from ingest_load import closed_loop, make_bodies, start_worker  # noqa: E402

from stream.broker import start_broker  # noqa: E402
from tests.workers import Deployment  # noqa: E402

FED = ("alerts_raw", "alerts")


async def lag_by_partition(bootstrap: str, group: str, topics: list[str], partitions: int) -> dict[str, tuple[int, int]]:
    """`topic:partition` -> (committed, end) for every partition of `topics` whose committed offset trails."""
    tps = [TopicPartition(t, p) for t in topics for p in range(partitions)]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await consumer.start()
    await admin.start()
    try:
        ends = await consumer.end_offsets(tps)
        committed = await admin.list_consumer_group_offsets(group, partitions=tps)
    finally:
        await consumer.stop()
        await admin.close()
    out = {}
    for tp in tps:
        meta = committed.get(tp)
        done = meta.offset if meta is not None and meta.offset >= 0 else 0
        if done < ends[tp]:
            out[f"{tp.topic}:{tp.partition}"] = (done, ends[tp])
    return out


async def flood_then_drain(url: str, bodies: list[bytes], args: argparse.Namespace, dep: Deployment) -> dict[str, Any]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        run = await closed_loop(session, url, bodies, args.concurrency, args.duration, 10**9)
    topics = [dep.topic(f) for f in FED]
    ended = time.monotonic()
    behind: dict[str, tuple[int, int]] = {}
    while time.monotonic() - ended < args.drain_timeout:
        behind = await lag_by_partition(dep.broker.bootstrap, dep.app_id, topics, dep.partitions)
        if not behind:
            return {"codes": dict(run.codes), "drain_s": round(time.monotonic() - ended, 1), "behind": {}}
        await asyncio.sleep(1.0)
    return {"codes": dict(run.codes), "drain_s": None, "behind": behind}


def one_run(i: int, bodies: list[bytes], args: argparse.Namespace) -> dict[str, Any]:
    broker = start_broker()
    tmp = Path(tempfile.mkdtemp(prefix="aiops-stall-"))
    try:
        env = {"AIOPS_IDLE_ADVANCE": "300", "AIOPS_LOG_LEVEL": "warning",
               "AIOPS_ADMISSION_BACKLOG_RECORDS": "0", "AIOPS_ADMISSION_BACKLOG_SECONDS": "0"}
        dep = Deployment(broker, tmp, extra_env=env)
        dep.create_topics()
        worker = start_worker(dep, False)
        front = start_worker(dep, True)  # joins the group: the worker rebalances while the flood begins
        try:
            url = f"http://127.0.0.1:{front.web_port}/ingest/alertmanager"
            result = asyncio.run(flood_then_drain(url, bodies, args, dep))
        finally:
            front.stop()
            worker.stop()
        result["run"] = i
        if result["drain_s"] is None:
            names = tuple(result["behind"])
            lines = [ln for ln in worker.log.read_text(errors="replace").splitlines()
                     if "ERROR" in ln or "stall" in ln.lower() or any(n in ln for n in names)]
            result["log"] = lines[-args.log_lines:]
        if args.keep_logs is not None:
            args.keep_logs.mkdir(parents=True, exist_ok=True)
            for log in tmp.glob("*.log"):
                shutil.copy(log, args.keep_logs / f"run{i}-{log.name}")
        return result
    finally:
        broker.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--duration", type=float, default=8.0, help="seconds of flood per run")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--bodies", type=int, default=500, help="distinct bodies, cycled through")
    parser.add_argument("--drain-timeout", type=float, default=90.0)
    parser.add_argument("--log-lines", type=int, default=30)
    parser.add_argument("--keep-logs", type=Path, default=None, help="copy each run's worker logs here")
    args = parser.parse_args(argv)
    bodies = make_bodies(args.bodies, 100)
    stalls = 0
    for i in range(args.runs):
        result = one_run(i, bodies, args)
        stalls += result["drain_s"] is None
        print(json.dumps(result), flush=True)
    print(f"stalls {stalls}/{args.runs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
