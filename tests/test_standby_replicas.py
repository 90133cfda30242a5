"""Faust's `table_standby_replicas` (its own environment variable TABLE_STANDBY_REPLICAS; 1 unless set): the standby
copies a worker keeps of other workers' table partitions. With two workers each reads and applies the other's
changelogs (benchmarks/two_workers.py); set to 0, every process of the group must still assign with Faust's assignor."""

from __future__ import annotations

from pathlib import Path

from stream.broker import EmbeddedBroker

from .ticketing import wait_until
from .workers import Deployment, WorkerProc


def test_without_standby_replicas_an_ingest_front_joins_the_workers_group(broker: EmbeddedBroker, tmp_path: Path,
                                                                         workers: list[WorkerProc]) -> None:
    """With table_standby_replicas 0, Faust gave a process without tables (`--role ingest`) aiokafka's round-robin
    assignor and the workers Faust's: the group refused the front's join (InconsistentGroupProtocolError)."""
    dep = Deployment(broker, tmp_path, extra_env={"TABLE_STANDBY_REPLICAS": "0"})
    dep.create_topics()
    worker = dep.start_worker("w")
    workers.append(worker)
    worker.wait_web()
    worker.wait_partitions(dep.partitions)
    front = Deployment(broker, tmp_path, app_id=dep.app_id, extra_env={**dep.extra_env, "AIOPS_ROLE": "ingest"})
    workers.append(front.start_worker("front"))

    def joined() -> str | None:
        text = workers[-1].log.read_text(errors="replace")
        return next((mark for mark in ("Joined group", "InconsistentGroupProtocol") if mark in text), None)

    assert wait_until(joined, 90, "the front's join", workers[-1]) == "Joined group", workers[-1].tail()
    assert worker.proc.poll() is None
