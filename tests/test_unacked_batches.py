"""A batch that fails as a whole is never acknowledged, and the agent goes on, on the embedded broker.

One valid alert with a 1.2 MB label makes normalize's `alerts` record larger than the producer's 1 MB request
limit: the send fails for the whole batch, not for one refused record. The batch must stay unacknowledged (its
partition's committed offset never passes it), be counted, and the worker must stay up and keep processing
other partitions. (Known limit: normalize packs alerts by count, not bytes, so such an alert is not yet
dead-lettered on its own; see README "Nothing consumed is lost".)
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from stream.broker import EmbeddedBroker
from stream.sends import key_partition

from .workers import Deployment, WorkerProc


async def _committed(bootstrap: str, group: str, topic: str, partition: int) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        return await consumer.committed(TopicPartition(topic, partition)) or -1
    finally:
        await consumer.stop()


def alert(service: str, **labels: str) -> bytes:
    return orjson.dumps({"starts_at": time.time(), "labels": {"alertname": "Probe", "service": service, **labels}})


def test_a_batch_that_fails_whole_is_not_acknowledged_and_the_agent_goes_on(
        broker: EmbeddedBroker, tmp_path: Path, workers: list[WorkerProc]) -> None:
    dep = Deployment(broker, tmp_path)
    dep.create_topics()
    worker = dep.start_worker()
    workers.append(worker)
    worker.wait_partitions(4)
    stuck = key_partition(b"generic", dep.partitions)
    other_key = b"alertmanager-probe"
    assert key_partition(other_key, dep.partitions) != stuck
    dep.produce("alerts_raw", [(b"generic", alert("before"))])
    deadline = time.monotonic() + 30
    while _committed_now(dep, stuck) < 1 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _committed_now(dep, stuck) == 1, worker.tail()

    dep.produce("alerts_raw", [(b"generic", alert("huge", blob="x" * 1_200_000)), (b"generic", alert("after"))])
    deadline = time.monotonic() + 30
    while worker.metric("aiops_batches_unacknowledged_total", agent="normalize") < 1 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert worker.metric("aiops_batches_unacknowledged_total", agent="normalize") == 1, worker.tail()
    dep.produce("alerts_raw", [(other_key, alert("elsewhere"))])  # another partition: processed
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if any(b'"service":"elsewhere"' in (r.value or b"") for r in dep.read("incidents", 100, timeout=1)):
            break
    else:
        raise AssertionError(f"the agent stopped processing:\n{worker.tail()}")
    time.sleep(3.5)  # more than Faust's commit interval (2.8 s)
    assert _committed_now(dep, stuck) == 1, "never committed past the failed batch"
    assert worker.proc.poll() is None
    assert not dep.read("deadletter", 1, timeout=1), "a batch failure is not a refused record"


def _committed_now(dep: Deployment, partition: int) -> int:
    return asyncio.run(_committed(dep.broker.bootstrap, dep.app_id, dep.topic("alerts_raw"), partition))
