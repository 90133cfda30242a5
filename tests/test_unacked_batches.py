"""Records too large for what an agent sends on, on the embedded broker: refused alone, or held whole.

A valid alert with a 1.2 MB label cannot travel in any `alerts` record (the producer's request limit is 1 MB):
normalize dead-letters its raw record (`record_too_large`) and the alerts after it flow. A ticket of 1.2 MB that
arrives on another partition than its id's must be forwarded, and the forward fails for the whole triage batch:
that batch stays unacknowledged (its partition's committed offset never passes it), is counted, and the worker
stays up and keeps processing other partitions.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from stream.broker import EmbeddedBroker
from stream.deadletters import origin_of
from stream.sends import key_partition

from .ticketing import DOWN, ticket, wait_events, wait_ready, wait_until
from .workers import Deployment, WorkerProc


async def _committed(bootstrap: str, group: str, topic: str, partition: int) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        return await consumer.committed(TopicPartition(topic, partition)) or -1
    finally:
        await consumer.stop()


def committed(dep: Deployment, field: str, partition: int) -> int:
    return asyncio.run(_committed(dep.broker.bootstrap, dep.app_id, dep.topic(field), partition))


def alert(service: str, **labels: str) -> bytes:
    return orjson.dumps({"starts_at": time.time(), "labels": {"alertname": "Probe", "service": service, **labels}})


def opened(dep: Deployment, service: str) -> bool:
    return any(f'"service":"{service}"'.encode() in (r.value or b"") for r in dep.read("incidents", 100, timeout=1))


def test_too_large_alerts_are_refused_alone_and_a_failed_batch_is_held(
        broker: EmbeddedBroker, tmp_path: Path, workers: list[WorkerProc]) -> None:
    dep = Deployment(broker, tmp_path)
    dep.create_topics()
    worker = dep.start_worker()
    workers.append(worker)
    wait_ready(worker)

    dep.produce("alerts_raw", [(b"generic", alert("huge", blob="x" * 1_200_000)), (b"generic", alert("after"))])
    wait_until(lambda: opened(dep, "after"), 30, "the alert after the huge one", worker)
    [letter] = dep.read("deadletter", 2, timeout=2)
    origin = origin_of(letter.headers)
    assert (origin.agent, origin.category, origin.truncated) == ("normalize", "record_too_large", True)
    assert "larger than an alerts record may be" in origin.reason
    raw = key_partition(b"generic", dep.partitions)
    wait_until(lambda: committed(dep, "alerts_raw", raw) == 2 or None, 30, "alerts.raw committed past both")

    big_id = "T-big"
    wrong = (key_partition(big_id.encode(), dep.partitions) + 1) % dep.partitions
    value = orjson.dumps({"ticket_id": big_id, "text": "down " * 240_000, "created_at": time.time()})
    asyncio.run(_send(dep, "tickets_raw", wrong, [(big_id.encode(), value)]))
    wait_until(lambda: worker.metric("aiops_batches_unacknowledged_total", agent="triage") == 1 or None, 30,
               "the triage batch held unacknowledged", worker)
    other = next(f"T-{i}" for i in range(100) if key_partition(f"T-{i}".encode(), dep.partitions) != wrong)
    dep.produce("tickets_raw", [ticket(other, DOWN)])
    wait_events(dep, other, lambda evs: bool(evs), 30, worker)  # the agent goes on with other partitions
    time.sleep(3.5)  # more than Faust's commit interval (2.8 s)
    assert committed(dep, "tickets_raw", wrong) == -1, "never committed past the failed batch"
    assert worker.proc.poll() is None
    assert len(dep.read("deadletter", 5, timeout=1)) == 1, "a batch failure is not a refused record"


async def _send(dep: Deployment, field: str, partition: int, records: list[tuple[bytes, bytes]]) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=dep.broker.bootstrap, max_request_size=16 * 1024 * 1024)
    await producer.start()
    try:
        for key, value in records:
            await (await producer.send(dep.topic(field), value, key=key, partition=partition))
    finally:
        await producer.stop()
