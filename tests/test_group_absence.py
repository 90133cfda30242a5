"""A worker that never comes back into its consumer group after a broker restart holds its pages, says so, and exits
for its supervisor to restart it; the member that took its partitions pages every fault, once (session 41).

rejoin41's chaos soak: a worker's coordinator lookup stalled after the broker restarted empty; it stayed outside its
group, kept folding its old partitions beside the worker that owned them, and its notify paged 27 incidents alone.
`tests.outside_worker` stalls the lookup the same way (a future that never completes). Kept free of the new names,
so that it runs on the code before the change too (it fails there: the faults posted while the worker is outside
page twice, once from each worker, and nothing restarts it)."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest

from stream.broker import start_broker

from .test_ingest import request, wait_ready
from .test_notify_pipeline import T0, failure, ndjson
from .test_notify_refused_checkpoint import ROUTES, pager, triggers, wait_for  # noqa: F401 - pager: a fixture
from .receivers import Receiver
from .workers import PATIENT_ADMISSION, Deployment, WorkerProc

EXIT_AFTER_S = 45
"""The test's `group_absence_exit`: the worker restarts itself this long after the broker is back (default 90 s)."""


def fault(n: int) -> bytes:
    """One critical fault of its own cluster (a scope no incident crosses): one incident, one page."""
    alerts = failure(f"svc{n}", "Down", T0 + n)
    return ndjson([{**a, "labels": {**a["labels"], "cluster": f"c{n}"}} for a in alerts])


def pages_once(pager: Receiver, count: int, worker: WorkerProc) -> Counter[str]:  # noqa: F811 - pager: the fixture
    """Wait until `count` incidents paged, then a little longer for any second page; the pages per incident."""
    wait_for(lambda: len(set(triggers(pager))) >= count, 90, f"{count} incidents paged", worker)
    time.sleep(6)  # a notify tick and a delivery, many times over
    return Counter(triggers(pager))


@pytest.mark.integration
def test_a_worker_outside_its_group_holds_its_pages_and_restarts(tmp_path: Path,
                                                                 pager: Receiver) -> None:  # noqa: F811
    routes = tmp_path / "notify.yaml"
    routes.write_text(ROUTES.format(hold=0, url=pager.url))
    brokers = [start_broker(log_path=tmp_path / "tansu-1.log")]
    dep = Deployment(brokers[0], tmp_path, extra_env={
        "AIOPS_IDLE_ADVANCE": "300", "AIOPS_NOTIFY_FILE": str(routes), "AIOPS_STAGE2": "false",
        "AIOPS_GROUP_ABSENCE_EXIT": str(EXIT_AFTER_S), **PATIENT_ADMISSION})
    dep.create_topics()
    stall = tmp_path / "stall-coordinator"
    a = dep.start_worker("a")
    b = dep.start_worker("b", module=("tests.outside_worker", str(stall)))
    workers = [a, b]
    try:
        for w in (a, b):
            w.wait_web()
            wait_ready(w)
        a.wait_partitions(1)
        b.wait_partitions(1)
        # b loses its coordinator with the broker and never finds it again; a rejoins the new broker, takes it all
        stall.touch()
        brokers[-1].stop()
        time.sleep(2)
        brokers.append(start_broker(port=brokers[0].port, log_path=tmp_path / "tansu-2.log"))
        dep.broker = brokers[-1]
        back = time.monotonic()
        a.wait_partitions(4, timeout=90)
        wait_ready(a, 90)
        time.sleep(max(0.0, 12 - (time.monotonic() - back)))  # b outside past its hold (group_absence_hold 10 s)
        assert b.proc.poll() is None, b.tail()

        dep.produce("alerts_raw", [(b"generic", fault(n)) for n in range(8)])
        paged = pages_once(pager, 8, a)
        assert set(paged.values()) == {1}, f"pages per incident: {paged}\n{b.tail()}"

        if b.proc.poll() is None:  # not restarted yet: not ready, and it says why
            status, body, _ = request(b.web_port, "GET", "/readyz")
            assert status == 503 and "outside its consumer group" in str(body), body
        log = b.log.read_text(errors="replace")
        assert "this worker's pages are held" in log and "notify: holding" in log, b.tail()
        assert b.proc.wait(EXIT_AFTER_S + 60) == 75, b.tail()
        assert "exiting with status 75 for its supervisor to restart it" in b.log.read_text(errors="replace")

        # its supervisor starts it again: a new process joins, the group rebalances, nothing pages twice
        stall.unlink()
        b2 = dep.start_worker("b2")
        workers.append(b2)
        b2.wait_web()
        b2.wait_partitions(1, timeout=90)
        wait_ready(b2, 90)
        wait_ready(a, 90)
        dep.produce("alerts_raw", [(b"generic", fault(8))])
        paged = pages_once(pager, 9, b2)
        assert set(paged.values()) == {1}, f"pages per incident: {paged}"
        assert a.proc.poll() is None and b2.proc.poll() is None
    finally:
        for w in workers:
            w.stop()
        for broker in brokers:
            broker.stop()


@pytest.mark.integration
def test_a_broker_outage_longer_than_the_exit_bound_restarts_no_worker(tmp_path: Path) -> None:
    """Every worker is outside its group while the broker is down, and no restart would bring it back sooner: the
    absence is reported (the gauge), but only seconds with the broker answering count towards the exit, so a worker
    waits out an outage three times its `group_absence_exit` and comes back by itself."""
    brokers = [start_broker(log_path=tmp_path / "tansu-1.log")]
    dep = Deployment(brokers[0], tmp_path, extra_env={"AIOPS_IDLE_ADVANCE": "300", "AIOPS_GROUP_ABSENCE_EXIT": "15",
                                                      **PATIENT_ADMISSION})
    dep.create_topics()
    worker = dep.start_worker("w")
    try:
        worker.wait_web()
        wait_ready(worker)
        brokers[-1].stop()
        time.sleep(45)
        assert worker.proc.poll() is None, worker.tail()
        assert worker.metric("aiops_group_outside_seconds") > 30, worker.tail()
        brokers.append(start_broker(port=brokers[0].port, log_path=tmp_path / "tansu-2.log"))
        dep.broker = brokers[-1]
        wait_ready(worker, 90)
        wait_for(lambda: worker.metric("aiops_group_outside_seconds") == 0, 30, "the worker back in its group", worker)
        assert worker.proc.poll() is None and "exiting with status" not in worker.log.read_text(errors="replace")
    finally:
        worker.stop()
        for broker in brokers:
            broker.stop()
