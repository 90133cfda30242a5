"""A rebalance while two agents read the same topic at different paces, on the real broker: the revocation must end.

`incidents` is read by notify and by the incident SLA agent; each record is handed to both (Faust counts one
reference per agent). Under load one runs behind (the chaos soak at load 15+): its queue still holds records the
other has folded. Faust's revocation empties the queues, dropping those copies without acknowledging them, and then
waits for every record an agent read (`Consumer.wait_empty`, a weak set): a record whose other copy the faster agent
still holds (its last batch) is waited for until that agent takes another batch, which the stopped flow never
gives it. Seen: the survivor of a SIGKILL waiting 380 s, or for good, on `incidents` records."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

from aiokafka import AIOKafkaProducer, TopicPartition

from stream.broker import EmbeddedBroker
from stream.incident_records import encode_incident_event

from .test_deadletters import _committed
from .test_rebalance_release import _end
from .test_stage2_pipeline import T0, _event
from .ticketing import wait_until
from .workers import Deployment, WorkerProc

READY = "[^---Recovery]: Worker ready"
STALLED = "wait_empty: Waiting for tasks"


async def _incidents(bootstrap: str, topic: str, partitions: int, stop: threading.Event) -> None:
    """Stage-1 events of new incidents on every partition, about 40 a second, until `stop`."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        i = 0
        while not stop.is_set():
            service = f"s{i:05d}"
            await producer.send(topic, encode_incident_event(_event(service, "Down", T0 + i)),
                                key=f"inc-{service}".encode(), partition=i % partitions)
            i += 1
            await asyncio.sleep(0.025)
        await producer.flush()
    finally:
        await producer.stop()


def test_a_revocation_ends_while_the_incident_sla_agent_runs_behind_notify(
        broker: EmbeddedBroker, tmp_path: Path, workers: list[WorkerProc]) -> None:
    """The incident SLA agent folds 1 s a batch (`tests.lagging_sla_worker`) while incidents keep coming, and a
    front joins the group: the worker's revocation must end (Faust's `Worker ready` again) within 60 s; what it
    dropped unread is read again, so every partition of `incidents` then commits to its end."""
    notify = tmp_path / "notify.yaml"  # notify on: it reads `incidents` beside the incident SLA agent
    notify.write_text('receivers:\n  - {name: oncall, type: pagerduty, routing_key: "K", url: "http://127.0.0.1:9/v2/enqueue"}\n'
                      'routes:\n  - {receiver: oncall}\n')
    dep = Deployment(broker, tmp_path, extra_env={"AIOPS_IDLE_ADVANCE": "300", "AIOPS_NOTIFY_FILE": str(notify)})
    dep.create_topics()
    worker = dep.start_worker("w", module=("tests.lagging_sla_worker",))
    workers.append(worker)
    worker.wait_web()
    worker.wait_partitions(dep.partitions)
    wait_until(lambda: READY in worker.log.read_text(), 60, "the worker's first assignment", worker)
    stop = threading.Event()
    feeder = threading.Thread(target=lambda: asyncio.run(
        _incidents(dep.broker.bootstrap, dep.topic("incidents"), dep.partitions, stop)))
    feeder.start()
    try:
        time.sleep(8)  # the SLA agent's queue runs behind notify's
        ready = worker.log.read_text().count(READY)
        front = Deployment(broker, tmp_path, app_id=dep.app_id, extra_env={**dep.extra_env, "AIOPS_ROLE": "ingest"})
        workers.append(front.start_worker("front"))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and worker.log.read_text().count(READY) <= ready:
            time.sleep(0.5)
        text = worker.log.read_text()
        stalled = [line for line in text.splitlines() if STALLED in line]
        assert text.count(READY) > ready, f"revocation not ended in 60 s: {stalled[-1:]}\n{worker.tail(5)}"
    finally:
        stop.set()
        feeder.join(30)
    for partition in range(dep.partitions):
        _committed_to_end(dep, worker, TopicPartition(dep.topic("incidents"), partition))
    assert worker.proc.poll() is None


def _committed_to_end(dep: Deployment, worker: WorkerProc, tp: TopicPartition) -> None:
    end, committed = asyncio.run(_end(dep.broker.bootstrap, tp)), list[int]()
    wait_until(lambda: committed.append(asyncio.run(_committed(dep.broker.bootstrap, dep.app_id, tp))) or
               committed[-1] == end, 90, f"{tp.topic}:{tp.partition} committed to its end {end}: {committed[-3:]}",
               worker)
