"""A table recovery whose restore ends before the recovery waits for its end (`stream.restore_watch`), on the real
broker: the worker keeps its partitions through a front's join and must be ready again."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

from stream.broker import EmbeddedBroker

from .test_rebalance_release import _route
from .test_stage2_pipeline import LONE
from .ticketing import wait_until
from .workers import Deployment, WorkerProc

HELD = "late_recovery_wait_worker: "


def test_a_restore_that_ends_before_the_recovery_waits_for_it_ends_the_rebalance(
        broker: EmbeddedBroker, tmp_path: Path, workers: list[WorkerProc]) -> None:
    """One worker writes stage 2's changelog (routing records), then a front joins: the worker keeps every partition
    and restores its own writes. Its recovery reaches the wait for the restore's end 2 s late, after the restore has
    ended (seen under load: scale25's worker, "rebalance under way for 45 s ... Recovery._wait", never ready). Faust
    alone waits until the next rebalance; the worker must be ready again within 30 s."""
    dep = Deployment(broker, tmp_path, extra_env=LONE)
    dep.create_topics()
    worker = dep.start_worker("w", module=("tests.late_recovery_wait_worker",))
    workers.append(worker)
    worker.wait_web()
    worker.wait_partitions(dep.partitions)
    wait_until(lambda: "Worker ready" in worker.log.read_text(), 60, "the first assignment's end", worker)
    route = f"{dep.app_id}-stage2-route"
    stop, sent = threading.Event(), list[str]()
    feeder = threading.Thread(target=lambda: asyncio.run(_route(dep.broker.bootstrap, route, stop, sent)))
    feeder.start()
    time.sleep(4)
    stop.set()
    feeder.join(30)
    front = Deployment(broker, tmp_path, app_id=dep.app_id, extra_env={**dep.extra_env, "AIOPS_ROLE": "ingest"})
    workers.append(front.start_worker("front"))
    joined = "generation id 1 "
    wait_until(lambda: joined in worker.log.read_text(), 90, "the front's rebalance", worker)

    def after() -> str:
        text = worker.log.read_text()
        return text[text.index(joined):]

    wait_until(lambda: HELD in after(), 30, "a restore step held", worker)  # the precondition: a restore ran
    wait_until(lambda: "Worker ready" in after(), 30, "ready after the front's rebalance", worker)
    assert worker.proc.poll() is None
