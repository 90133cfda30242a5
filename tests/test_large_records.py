"""Records too large for what an agent writes, on the embedded broker: each refused alone, the rest flows.

A valid alert with a 1.2 MB label cannot travel in any `alerts` record (the producer's request limit is 1 MB):
normalize dead-letters its raw record (`record_too_large`) and the alerts after it flow. A 1.2 MB ticket that
arrives on another partition than its id's could be neither forwarded nor stored: triage refuses it before the
batch (`record_too_large`) and the ticket after it is triaged. Both partitions commit past them.
(Batches that fail as a whole for other reasons are held unacknowledged: `test_deadletters.py`.)
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


def test_records_too_large_to_write_on_are_refused_alone_and_the_rest_flows(
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
    after = next(f"T-{i}" for i in range(100) if key_partition(f"T-{i}".encode(), dep.partitions) == wrong)
    asyncio.run(_send(dep, "tickets_raw", wrong, [(big_id.encode(), value), ticket(after, DOWN)]))
    wait_events(dep, after, lambda evs: bool(evs), 30, worker)
    letters = dep.read("deadletter", 3, timeout=2)
    assert len(letters) == 2
    origin = origin_of(letters[-1].headers) if origin_of(letters[-1].headers).agent == "triage" else \
        origin_of(letters[0].headers)
    assert (origin.agent, origin.category, origin.truncated, origin.offset) == ("triage", "record_too_large", True, 0)
    wait_until(lambda: committed(dep, "tickets_raw", wrong) == 2 or None, 30, "tickets.raw committed past both")
    assert worker.metric("aiops_batches_unacknowledged_total", agent="triage") == 0
    assert worker.proc.poll() is None


async def _send(dep: Deployment, field: str, partition: int, records: list[tuple[bytes, bytes]]) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=dep.broker.bootstrap, max_request_size=16 * 1024 * 1024)
    await producer.start()
    try:
        for key, value in records:
            await (await producer.send(dep.topic(field), value, key=key, partition=partition))
    finally:
        await producer.stop()
