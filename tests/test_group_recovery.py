"""A worker's consumer group recovers by itself: from an error that stopped its coordination (which Faust never
reads), and from a second broker restart after table recovery had read the re-created changelogs
(`stream/recovery.py`, `stream/consumer.py`). Each test runs its own Tansu, stopped and started by pid."""

from __future__ import annotations

import asyncio
import functools
import itertools
import os
import re
import signal
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

import orjson
import pytest
from aiokafka import AIOKafkaConsumer

from correlator.config import DEFAULT_CONFIG
from correlator.keys import split_key
from correlator.replay import replay
from correlator.sources import parse
from stream.broker import EmbeddedBroker, create_topics_sync, start_broker
from stream.consumer import group_state
from stream.sends import key_partition
from stream.settings import Settings

from .test_broker_faults import _alert, _incidents, _wait_for
from .test_ingest import request, wait_ready
from .test_stage2_pipeline import T0, collect
from .workers import PATIENT_ADMISSION, Deployment, WorkerProc

pytestmark = pytest.mark.integration


def test_an_error_that_stopped_the_group_join_is_logged_and_the_join_goes_on(tmp_path: Path) -> None:
    """The leader's first partition assignment raises: the worker logs the error, counts it, joins again and gets
    ready, where it used to wait for an assignment forever without a line in its log."""
    broker = start_broker(log_path=tmp_path / "tansu.log")
    dep = Deployment(broker, tmp_path)
    dep.create_topics()
    worker = dep.start_worker(module=("tests.group_fault_worker",))
    try:
        worker.wait_web()
        wait_ready(worker, timeout=45)
        log = worker.log.read_text(errors="replace")
        assert "group coordination had stopped on KafkaError" in log and "injected" in log, worker.tail()
        assert worker.metric("aiops_broker_recoveries_total", action="group_error") == 1
    finally:
        worker.stop()
        broker.stop()


def test_a_second_broker_restart_after_recovery_read_the_new_changelogs(tmp_path: Path) -> None:
    """Restart the broker under a worker, let a rebalance's table recovery read the state written to the re-created
    changelogs (a second worker joins), then restart it again: both workers resume. Faust's recovery remembered how
    far it had read, past the end of the changelogs the second restart re-created, and crashed a worker with
    ConsistencyError at the next rebalance (seen in a loop of broker restarts under one worker, too)."""
    first = start_broker(log_path=tmp_path / "tansu-1.log")
    brokers = [first]
    dep = Deployment(first, tmp_path, extra_env={"AIOPS_IDLE_ADVANCE": "300", **PATIENT_ADMISSION})
    dep.create_topics()
    workers = [dep.start_worker("w1")]
    try:
        workers[0].wait_web()
        wait_ready(workers[0])
        services = [f"svc{i}" for i in range(12)]  # every partition holds several keys: several changelog records
        _post_each(workers[0], services, 0)
        _wait_for("12 incidents", lambda: len(_incidents(workers[0])) == 12, workers[0])
        for n in (2, 3):
            seen = [_log(w).count("Worker ready") for w in workers]
            brokers[-1].stop()
            for w in workers:  # seen gone before the new one starts, so readiness then waits for the recovery
                _wait_for("readyz to see the broker gone",
                          lambda w=w: request(w.web_port, "GET", "/readyz")[0] == 503, w, timeout=10)
            brokers.append(start_broker(port=first.port, log_path=tmp_path / f"tansu-{n}.log"))
            dep.broker = brokers[-1]
            dep.create_topics()
            for w, before in zip(workers, seen, strict=True):  # a table recovery since, in every worker
                _wait_for("a rebalance after the restart", lambda w=w, before=before: w.proc.poll() is not None
                          or _log(w).count("Worker ready") > before, w)
                wait_ready(w)
            if n == 2:  # more state written to the new changelogs, then a rebalance whose recovery reads it
                _post_each(workers[0], services, 1)
                _wait_for("12 incidents of 2 alerts", lambda: set(_incidents(workers[0]).values()) == {2}, workers[0])
                workers.append(dep.start_worker("w2"))
                workers[1].wait_web()
                for w in workers:
                    wait_ready(w)
                _wait_for("both workers own partitions", lambda: all(
                    w.get("/assignment")["alerts_partitions"] for w in workers), workers[0])
        assert all(w.proc.poll() is None for w in workers), [w.tail() for w in workers]
        assert not [w for w in workers if "ConsistencyError" in _log(w)]
    finally:
        for w in workers:
            w.stop()
        for b in brokers:
            b.stop()


def _post_each(worker: WorkerProc, services: list[str], i: int) -> None:
    """Alert `i` of each service, each posted until answered 202 (a 503 right after readiness is the ingest's own
    send check catching up; the test is not about it)."""
    for body in [_alert(service, i) for service in services]:
        _wait_for("a 202", functools.partial(_accepted, worker, body), worker, timeout=30)


def _accepted(worker: WorkerProc, body: bytes) -> bool:
    return request(worker.web_port, "POST", "/ingest/alerts", body)[0] == 202


def _both_ready_and_assigned(workers: list[WorkerProc], what: str) -> None:
    """Every worker ready, owning partitions of `alerts`, and ready again after the rebalance that gave them."""
    for w in workers:
        wait_ready(w)
    _wait_for(what, lambda: all(w.get("/assignment")["alerts_partitions"] for w in workers), workers[0])
    for w in workers:
        wait_ready(w)


def _log(worker: WorkerProc) -> str:
    return worker.log.read_text(errors="replace")


def test_a_table_recovery_waiting_for_offsets_the_broker_does_not_serve_says_so_and_ends(broker: EmbeddedBroker,
                                                                                        tmp_path: Path) -> None:
    """A worker whose table recovery waits for changelog offsets that the broker counts but never serves (its
    ListOffsets end past the end its fetches give: seen on Tansu after a broker restart, 5 stalls in about 60 runs of
    the broker-restart tests under load; here a highwater raised by `tests.restore_stall_worker`) logs what it waits
    for (`stream.restore_watch`: the recovery's step, the partition, offset read, highwater, the fetch's end), then
    stops waiting for those offsets and gets ready. Before, it logged nothing (ci69: 60 s after "generation id 0", or
    only "No event received for active tp") and stayed not ready for ever."""
    dep = Deployment(broker, tmp_path)
    dep.create_topics()
    worker = dep.start_worker(module=("tests.restore_stall_worker",))
    try:
        worker.wait_web()
        _wait_for("the injected highwater", lambda: "injected: highwater of" in _log(worker), worker, timeout=90)
        injected = re.search(r"injected: highwater of (\S+) raised to (\d+)", _log(worker))
        assert injected, worker.tail()
        tp, highwater = injected.groups()
        wait_ready(worker, timeout=60)
        log = _log(worker)
        reports = [x for x in log.splitlines() if "table recovery step:" in x and f"{tp} read to" in x]
        assert reports, worker.tail()
        assert f"waits for: {tp} read to -1 of highwater {highwater}, consumer position 0, fetched, the last " \
               f"fetch's end offset 0" in reports[0], reports[0]
        assert "Recovery._restart_recovery > Recovery._wait > " in reports[0], reports[0]  # waiting for its end
        topic, partition = tp.rsplit(":", 1)
        assert (f"table recovery waited for offsets 0-{highwater} of {topic}:{partition}, which the broker counts "
                "(ListOffsets) but does not serve: its fetches end at 0") in log, worker.tail()
    finally:
        worker.stop()


def test_group_state_reads_the_installed_aiokafka_coordinator(broker: EmbeddedBroker) -> None:
    # group_state reads aiokafka's private coordinator attributes for /readyz; an aiokafka upgrade that renames
    # them must fail here, not turn the readiness message into an AttributeError during a broker outage
    topic, group = f"gs-{uuid.uuid4().hex[:8]}", f"gs-group-{uuid.uuid4().hex[:8]}"
    create_topics_sync(broker.bootstrap, {topic: 2})

    async def states() -> list[str]:
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=broker.bootstrap, group_id=group,
                                    auto_offset_reset="earliest")
        faust_like = SimpleNamespace(_thread=SimpleNamespace(_consumer=consumer))
        seen = [group_state(faust_like)]
        await consumer.start()
        try:
            deadline = time.monotonic() + 30
            while not consumer.assignment() and time.monotonic() < deadline:
                await consumer.getmany(timeout_ms=200)
            seen.append(group_state(faust_like))
        finally:
            await consumer.stop()
        return seen

    before, assigned = asyncio.run(states())
    assert before == "consumer not started"
    assert assigned.startswith("generation ") and assigned.endswith(": 2 partitions assigned"), assigned


def test_a_worker_that_never_saw_the_topics_missing_still_forgets_the_lost_offsets(tmp_path: Path) -> None:
    """Two workers share the group; the broker restarts empty while the second is held (SIGSTOP, as a worker whose
    next broker check comes after the first re-created the topics). The second never sees a topic missing; it must
    still forget the offsets the broker lost: every alert answered 202 after the restart is correlated, none is
    skipped as applied because its offset on the re-created topic is below one the worker applied before (main: 41-43
    of 48 in 3 runs), nor by a seek to an old offset the worker committed for the new partitions, nor by an engine
    rebuilt from the table's old progress at the rejoin (each seen while fixing it)."""
    first = start_broker(log_path=tmp_path / "tansu-1.log")
    brokers = [first]
    dep = Deployment(first, tmp_path, extra_env={"AIOPS_IDLE_ADVANCE": "300", **PATIENT_ADMISSION})
    dep.create_topics()
    workers = [dep.start_worker("w1"), dep.start_worker("w2")]
    try:
        for w in workers:
            w.wait_web()
        _both_ready_and_assigned(workers, "both workers own partitions")
        services = [f"svc{i}" for i in range(12)]
        for i in range(3):  # offsets on every partition of `alerts` well above those the restart will start from
            _post_each(workers[0], services, i)
        _wait_for("36 alerts correlated", lambda: _correlated(workers) == 36, workers[0])
        owned = {w.log.stem: w.get("/assignment")["alerts_partitions"] for w in workers}
        _restart_while_w2_is_held(dep, workers, brokers, tmp_path)
        _post_each(workers[0], services, 3)  # one more alert of each service, low offsets on the new topics
        _wait_for("48 alerts correlated", lambda: _correlated(workers) == 48, workers[0], timeout=30)
        _wait_for("12 incidents of 4 alerts", lambda: set(_merged_incidents(workers).values()) == {4}, workers[0])
        assert all(w.proc.poll() is None for w in workers), [w.tail() for w in workers]
        print(f"partitions of alerts before the restart: {owned}")
    except TimeoutError as exc:
        raise AssertionError(f"{exc}\ncorrelated {_correlated(workers)}, incidents {_merged_incidents(workers)}\n"
                             f"w2:\n{workers[1].tail(15)}") from exc
    finally:
        for w in workers:
            w.stop()
        for b in brokers:
            b.stop()


def test_stage2_after_a_broker_loss_a_worker_never_saw_names_the_replay_s_parents(tmp_path: Path) -> None:
    """Stage 2's side of the scene above: every Grouper forgets the routing offsets the broker lost, held at the
    loss or rebuilt after it from the table's local data (which keeps the old offset until a checkpoint writes the
    store; `stream.checkpoint.Checkpointer.lose`). Each incident opened after the restart gets the parent `aiops
    replay` names on all the alerts; none is left unnamed because its routing record's offset on the re-created
    topic is at or below one a Grouper applied before the loss. One cluster per routing partition, each with a
    cause of three services sharing a host before the restart and a fourth service on that host after it."""
    first = start_broker(log_path=tmp_path / "tansu-1.log")
    brokers = [first]
    dep = Deployment(first, tmp_path, extra_env={"AIOPS_IDLE_ADVANCE": "300", "AIOPS_STAGE2_LONE_CAUSES": "true",
                                                 **PATIENT_ADMISSION})
    dep.create_topics()
    clusters = ["c3", "c1", "c4", "c0"]  # routing partitions 0-3 of four (murmur2 of the scope `cluster=cN`)
    assert [key_partition(f"cluster={c}".encode(), dep.partitions) for c in clusters] == [0, 1, 2, 3]
    # svc<s> alerts from T0 + 10 s on, three alerts 5 s apart, posted in event-time order; late 15 s after svc2
    before = [_placed_alert(c, f"svc{s}", T0 + 10 * s + 5 * i) for s, i, c in sorted(
        itertools.product(range(3), range(3), clusters), key=lambda sic: 10 * sic[0] + 5 * sic[1])]
    after = [_placed_alert(c, "late", T0 + 35) for c in clusters]
    offline = replay([a for body in before + after for a in parse("generic", body)], DEFAULT_CONFIG,
                     grouping=Settings().grouping_config())
    assert offline.parents is not None
    expected = {c.id: p.id for p in offline.parents for c in p.children}
    late = {c.id for p in offline.parents for c in p.children if split_key(c.key)[1] == "late"}
    assert len(late) == 4 and len(offline.parents) == 4  # the scene is what it says: each late one joins its cause
    workers = [dep.start_worker("w1"), dep.start_worker("w2")]
    try:
        for w in workers:
            w.wait_web()
        _both_ready_and_assigned(workers, "both workers own partitions")
        for body in before:  # one stage-1 commit each: offsets on every routing partition well above the new ones
            _wait_for("a 202", functools.partial(_accepted, workers[0], body), workers[0], timeout=30)
        collect(dep, lambda s: set(expected) - late <= set(s.parent_of()), timeout=90)
        owned = {w.log.stem: w.get("/stage2/")["partitions"] for w in workers}
        time.sleep(2)  # a checkpoint of every Grouper (1 s) has written the offsets the restart will make stale
        _restart_while_w2_is_held(dep, workers, brokers, tmp_path)

        for body in after:
            _wait_for("a 202", functools.partial(_accepted, workers[0], body), workers[0], timeout=30)
        seen = collect(dep, lambda s: late <= set(s.parent_of()), timeout=60)
        assert {c: p for c, p in seen.parent_of().items() if c in late} == {c: expected[c] for c in late}, (
            f"routing partitions before the restart: {owned}")
        assert all(w.proc.poll() is None for w in workers), [w.tail() for w in workers]
        print(f"routing partitions before the restart: {owned}")
    finally:
        for w in workers:
            w.stop()
        for b in brokers:
            b.stop()


def _placed_alert(cluster: str, service: str, at: float) -> bytes:
    """One alert of `service` in `cluster` at event time `at`, on the cluster's host: related to its cluster's
    other services (no topology), apart from every other cluster's."""
    return orjson.dumps({"starts_at": at, "fingerprint": f"{cluster}-{service}-{at}", "labels": {
        "alertname": "DiskFull", "service": service, "cluster": cluster, "host": f"h-{cluster}"}})


def _restart_while_w2_is_held(dep: Deployment, workers: list[WorkerProc], brokers: list[EmbeddedBroker],
                              tmp_path: Path) -> None:
    """Restart the broker empty while w2 is held (SIGSTOP), w1 re-creates the topics, then w2 resumes: both are
    ready and own partitions again, and w2 never saw a topic missing (only the broker's epoch tells it)."""
    os.kill(workers[1].proc.pid, signal.SIGSTOP)
    try:
        brokers[-1].stop()
        _wait_for("w1 to see the broker gone", lambda: request(workers[0].web_port, "GET", "/readyz")[0] == 503,
                  workers[0], timeout=10)
        brokers.append(start_broker(port=brokers[0].port, log_path=tmp_path / f"tansu-{len(brokers) + 1}.log"))
        dep.broker = brokers[-1]
        _wait_for("w1 to re-create the topics", lambda: workers[0].metric(
            "aiops_broker_recoveries_total", action="topics_created") > 0, workers[0], timeout=30)
    finally:
        os.kill(workers[1].proc.pid, signal.SIGCONT)
    _both_ready_and_assigned(workers, "both workers own partitions again")
    assert "re-creating them" not in _log(workers[1]), "w2 saw the topics missing: not the scenario of this test"


def _correlated(workers: list[WorkerProc]) -> float:
    return sum(w.metric("aiops_alert_records_correlated_total") for w in workers)


def _merged_incidents(workers: list[WorkerProc]) -> dict[str, int]:
    """Alert count per key over the workers (each one's own engines are the freshest: the largest count)."""
    merged: dict[str, int] = {}
    for w in workers:
        for key, count in _incidents(w).items():
            merged[key] = max(count, merged.get(key, 0))
    return merged
