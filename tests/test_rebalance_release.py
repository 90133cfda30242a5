"""Input a stage gives up during a rebalance, on the real broker: the worker that keeps the partition reads it again
and applies it (`stream.stages.StageRunner._undo`, `stream.consumer.Consumer.release`)."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from stream.broker import EmbeddedBroker

from .test_deadletters import _committed
from .test_stage2_pipeline import LONE, T0, _event, collect
from .ticketing import wait_until
from .workers import Deployment, WorkerProc

GAVE_UP = "stage2_group: a fold or tick failed while the worker stops or rebalances"


async def _route(bootstrap: str, topic: str, stop: threading.Event, sent: list[str]) -> None:
    """One stage-1 event of a new incident every 0.2 s on routing partition 0, until `stop`; then one an hour
    later, whose event time decides every incident before it."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        i = 0
        while not stop.is_set() or i == 0:
            service = f"s{i:03d}"
            await (await producer.send(topic, b"[" + _event(service, "Down", T0 + 60 * i).model_dump_json().encode()
                                       + b"]", partition=0))
            sent.append(f"inc-{service}")
            i += 1
            await asyncio.sleep(0.2)
        await (await producer.send(topic, b"[" + _event("last", "Down", T0 + 60 * i + 3600).model_dump_json().encode()
                                   + b"]", partition=0))
    finally:
        await producer.stop()


def _gave_up(worker: WorkerProc, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if GAVE_UP in worker.log.read_text():
            return True
        time.sleep(0.5)
    return False


async def _end(bootstrap: str, tp: TopicPartition) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        return int((await consumer.end_offsets([tp]))[tp])
    finally:
        await consumer.stop()


def test_routing_records_given_up_in_a_rebalance_are_read_again_by_the_worker_that_keeps_them(
        broker: EmbeddedBroker, tmp_path: Path, workers: list[WorkerProc]) -> None:
    """Stage 2's changelog refuses its checkpoints while routing records keep coming and a front joins the group:
    the worker gives held routing records up unacknowledged in the rebalance and keeps the partition. Once the
    changelog is back, every incident routed is grouped (named by a parent) and the partition commits to its end:
    none was committed past and skipped."""
    dep = Deployment(broker, tmp_path, extra_env=LONE)
    dep.create_topics()
    flag = tmp_path / "stage2-state-down"
    worker = dep.start_worker("w", module=("tests.faulty_worker", str(flag), f"{dep.app_id}-stage2-state-changelog"))
    workers.append(worker)
    worker.wait_web()
    worker.wait_partitions(dep.partitions)
    flag.touch()
    route = f"{dep.app_id}-stage2-route"
    stop, sent = threading.Event(), list[str]()
    feeder = threading.Thread(target=lambda: asyncio.run(_route(dep.broker.bootstrap, route, stop, sent)))
    feeder.start()
    try:
        wait_until(lambda: worker.metric_or_zero("aiops_batch_retries_total", agent="stage2_group") >= 1, 60,
                   "stage 2's checkpoint refused and retried", worker)
        front = Deployment(broker, tmp_path, app_id=dep.app_id, extra_env={**dep.extra_env, "AIOPS_ROLE": "ingest"})
        for n in range(8):  # each join or leave of a front is a rebalance; one of the stage's checkpoints fails
            # in every other (the one after a refused one acknowledges its input: the state's failure shows the
            # checkpoint after), so a few rebalances give one where the stage gives its held input up
            workers.append(front.start_worker(f"front{n}"))
            if _gave_up(worker, 20):
                break
            workers[-1].stop()
            if _gave_up(worker, 10):
                break
        assert GAVE_UP in worker.log.read_text(), worker.tail()
        flag.unlink()
    finally:
        stop.set()
        feeder.join(30)
    _all_grouped_and_route_committed(dep, worker, route, sent, timeout=90)


AFTER_SEEK = "seek_fault_worker: "
FAILED = ("stage2_group: batch failed as a whole", GAVE_UP)


def test_routing_records_refused_after_the_rebalance_s_seek_are_grouped_by_the_worker_that_keeps_them(
        broker: EmbeddedBroker, tmp_path: Path, workers: list[WorkerProc]) -> None:
    """Stage 2's checkpoints are refused from each rebalance's seek until the rebalance ends (held open 2 s;
    the chaos soak's broker restart refused a fold 3 ms after the seek) while routing records keep coming and a
    front joins the group. Records given up there would never be read again (the seek is behind them) and their
    partition would commit no further: every incident routed must be grouped and route:0 commit to its end."""
    dep = Deployment(broker, tmp_path, extra_env=LONE)
    dep.create_topics()
    worker = dep.start_worker("w", module=("tests.seek_fault_worker", f"{dep.app_id}-stage2-state-changelog"))
    workers.append(worker)
    worker.wait_web()
    worker.wait_partitions(dep.partitions)
    # the first assignment's window is over before the routing records come: only a front's join or leave meets the
    # precondition (before, the first window often did, and no front ever joined: the rebalance went untested)
    wait_until(lambda: "Worker ready" in worker.log.read_text(), 60, "the first assignment's end", worker)
    start = len(worker.log.read_text())
    route = f"{dep.app_id}-stage2-route"
    stop, sent = threading.Event(), list[str]()
    feeder = threading.Thread(target=lambda: asyncio.run(_route(dep.broker.bootstrap, route, stop, sent)))
    feeder.start()

    def refused_after_seek() -> bool:
        text = worker.log.read_text()
        after = text.rfind(AFTER_SEEK)
        return after >= start and any(line in text[after:] for line in FAILED)

    try:
        time.sleep(2)
        front = Deployment(broker, tmp_path, app_id=dep.app_id, extra_env={**dep.extra_env, "AIOPS_ROLE": "ingest"})
        for n in range(4):  # each join or leave is a rebalance; a fold in its window after the seek is refused
            workers.append(front.start_worker(f"front{n}"))
            wait_until(lambda: AFTER_SEEK in worker.log.read_text()[start:], 60, "a front's rebalance's seek",
                       worker)
            time.sleep(3)
            if refused_after_seek():
                break
            workers[-1].stop()
            time.sleep(3)
            if refused_after_seek():
                break
        assert refused_after_seek(), worker.tail()
        time.sleep(2)
    finally:
        stop.set()
        feeder.join(30)
    _all_grouped_and_route_committed(dep, worker, route, sent, timeout=60)


def _all_grouped_and_route_committed(dep: Deployment, worker: WorkerProc, route: str, sent: list[str],
                                     timeout: float) -> None:
    """Every incident routed is grouped (within `timeout`), route:0 commits to its end, and the worker lives."""
    tp = TopicPartition(route, 0)
    end = asyncio.run(_end(dep.broker.bootstrap, tp))
    seen = collect(dep, lambda s: set(sent) <= set(s.named), timeout=timeout)
    assert set(sent) <= set(seen.named), sorted(set(sent) - set(seen.named))
    committed: list[int] = []
    wait_until(lambda: committed.append(asyncio.run(_committed(dep.broker.bootstrap, dep.app_id, tp))) or
               committed[-1] == end, 60, f"route:0 committed to its end {end}: {committed[-3:]}", worker)
    assert worker.proc.poll() is None
