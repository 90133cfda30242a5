"""Worker processes for integration tests: started as `python -m stream.cli worker`, stopped by pid."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from correlator.compiled import PURE_ENV
from stream.broker import EmbeddedBroker, create_topics_sync, die_with_parent, free_port

ROOT = Path(__file__).resolve().parents[1]
TOPIC_FIELDS = ("alerts_raw", "alerts", "incidents", "tickets_raw", "tickets_triaged", "tickets_labels", "deadletter")
# Admission (stream/admission.py) sheds when the backlog would take over a minute to drain at the rate the group
# drains it. On a busy machine (several test processes, workers in each) a slow first drain projected past that, and
# tests not about admission got 503s for bodies they must get in (seen in serial and parallel full runs). Those tests
# add this to a worker's environment: the limit stays on, far above any slow drain. Admission: test_admission.py.
PATIENT_ADMISSION = {"AIOPS_ADMISSION_BACKLOG_SECONDS": "3600"}


@dataclass
class Deployment:
    """One isolated pipeline on the shared broker: its own app id and topic names."""

    broker: EmbeddedBroker
    workdir: Path
    app_id: str = field(default_factory=lambda: f"t-{uuid.uuid4().hex[:8]}")
    partitions: int = 4
    # Event time follows the wall clock only after this much silence: tests pause (a kill, a rebalance)
    # for longer than the 10 s default, and must get the same incidents as the offline replay.
    extra_env: dict[str, str] = field(default_factory=lambda: {"AIOPS_IDLE_ADVANCE": "300"})

    def topic(self, name: str) -> str:
        """This deployment's Kafka name for a pipeline topic field (alerts_raw, incidents, ...)."""
        return f"{self.app_id}.{name}"

    def env(self) -> dict[str, str]:
        """Environment for a worker of this deployment: the caller's minus its settings (`AIOPS_` variables), except
        `AIOPS_PURE`, which picks the engine build and is no setting (an A/B with a base that has no build must run the
        pure engine on both sides)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIOPS_") or k == PURE_ENV}
        env.update({f"AIOPS_TOPICS__{f.upper()}": self.topic(f) for f in TOPIC_FIELDS})
        env.update({"AIOPS_BROKER": self.broker.url, "AIOPS_APP_ID": self.app_id,
                    "AIOPS_PARTITIONS": str(self.partitions), "AIOPS_DATA_DIR": str(self.workdir)})
        # The storms fed here are recordings dated 2026-03-02: fed live, they are a replay, which has no
        # event-time horizon (README, "Time you can trust"); a test of the horizon sets it in extra_env.
        env["AIOPS_EVENT_HORIZON"] = "0"
        env.update(self.extra_env)
        return env

    def create_topics(self) -> None:
        """Create this deployment's topics up front, as `aiops up` does."""
        create_topics_sync(self.broker.bootstrap, {self.topic(f): self.partitions for f in TOPIC_FIELDS})

    def start_worker(self, name: str = "w1", module: tuple[str, ...] = ("stream.cli",)) -> WorkerProc:
        """Start one worker process of this deployment (`module`: what `python -m` runs, with its own arguments
        before the CLI's)."""
        port = free_port()
        log = self.workdir / f"{name}.log"
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", *module, "worker", "--web-port", str(port)],
                cwd=ROOT, env=self.env(), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent(),  # a killed test session leaves no worker behind
            )
        return WorkerProc(proc, port, log)

    def start_deaf_worker(self, stage: str) -> tuple[WorkerProc, Path]:
        """Create the topics and start one worker whose `stage` (`tests.deaf_worker`: notify or stage2) reads nothing
        while the returned flag file exists (touch it to make the stage deaf; the broker's loss removes it)."""
        self.create_topics()
        flag = self.workdir / f"deaf-{stage}"
        return self.start_worker(module=("tests.deaf_worker", stage, str(flag))), flag

    def produce(self, topic_field: str, records: list[tuple[bytes | None, bytes]]) -> None:
        """Produce (key, value) records and wait for the broker's acks."""
        asyncio.run(_produce(self.broker.bootstrap, self.topic(topic_field), records))

    def produce_placed(self, topic_field: str, records: list[tuple[int, bytes]]) -> None:
        """Produce unkeyed (partition, value) records, as the ingest and normalize write `alerts`; wait for the acks."""
        asyncio.run(_produce(self.broker.bootstrap, self.topic(topic_field), [(None, v) for _, v in records],
                             [p for p, _ in records]))

    def read(self, topic_field: str, count: int, timeout: float = 30.0) -> list[Any]:
        """Up to `count` records of a topic from its start (aiokafka ConsumerRecords)."""
        return asyncio.run(_read(self.broker.bootstrap, self.topic(topic_field), count, timeout))

    def read_so_far(self, topic_field: str, timeout: float = 30.0, named: bool = False) -> list[Any]:
        """Every record of a topic from its start to its end offsets as the call begins (aiokafka ConsumerRecords);
        `named`: `topic_field` is the topic's Kafka name (a changelog).

        Done when every partition is read to its end, instead of waiting out a timeout for more. Tansu 0.6.0
        reports an end offset inside a last multi-record batch, but fetches return whole batches, so that batch
        is still read whole.
        """
        topic = topic_field if named else self.topic(topic_field)
        return asyncio.run(_read_so_far(self.broker.bootstrap, topic, timeout))


@dataclass
class WorkerProc:
    """A running worker; stop() sends SIGTERM then SIGKILL by pid, kill() SIGKILL at once."""

    proc: subprocess.Popen[bytes]
    web_port: int
    log: Path

    def get(self, path: str, timeout: float = 5.0) -> Any:
        """GET a JSON view of this worker."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.web_port}{path}", timeout=timeout) as resp:
            body = resp.read()
        return json.loads(body) if path != "/metrics" else body.decode()

    def wait_web(self, timeout: float = 40.0) -> None:
        """Wait until the worker's web server answers."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                self.get("/assignment", timeout=1.0)
                return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.3)
        raise TimeoutError(f"worker web port {self.web_port} not up:\n{self.tail()}")

    def wait_partitions(self, at_least: int = 1, timeout: float = 60.0) -> list[int]:
        """Wait until the worker owns at least `at_least` partitions of `alerts`."""
        deadline = time.monotonic() + timeout
        owned: list[int] = []
        while time.monotonic() < deadline:
            try:
                owned = self.get("/assignment")["alerts_partitions"]
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                owned = []
            if len(owned) >= at_least:
                return owned
            time.sleep(0.5)
        raise TimeoutError(f"worker owns {owned} after {timeout}s:\n{self.tail()}")

    def metric(self, name: str, **labels: str) -> float:
        """Value of one sample on this worker's /metrics (0 when absent)."""
        want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        for line in self.get("/metrics").splitlines():
            if line.startswith("#"):
                continue
            series, _, value = line.rpartition(" ")
            metric, _, label_text = series.partition("{")
            got = ",".join(sorted(label_text.rstrip("}").split(","))) if label_text else ""
            if metric == name and got == want:
                return float(value)
        return 0.0

    def metric_or_zero(self, name: str, **labels: str) -> float:
        """`metric`, or 0 while the worker's web server is not up yet."""
        try:
            return self.metric(name, **labels)
        except Exception:  # noqa: BLE001 - not listening yet
            return 0.0

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM, then SIGKILL by pid if it does not exit in time."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL by pid: no shutdown, no commit, no flush."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def tail(self, lines: int = 40) -> str:
        """The end of the worker's log, for assertion messages."""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


async def _produce(bootstrap: str, topic: str, records: list[tuple[bytes | None, bytes]],
                   partitions: list[int] | None = None) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", max_request_size=16 * 1024 * 1024)
    await producer.start()
    placed: list[int | None] = list(partitions) if partitions is not None else [None] * len(records)
    try:
        futures = [await producer.send(topic, value, key=key, partition=p) for (key, value), p in zip(records, placed)]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def _read(bootstrap: str, topic: str, count: int, timeout: float) -> list[Any]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest",
                                enable_auto_commit=False, fetch_max_wait_ms=100)
    await consumer.start()
    got: list[Any] = []
    try:
        deadline = time.monotonic() + timeout
        while len(got) < count and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=200)
            got += [r for records in batches.values() for r in records]
    finally:
        await consumer.stop()
    return got


async def _read_so_far(bootstrap: str, topic: str, timeout: float) -> list[Any]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                fetch_max_wait_ms=100)
    await consumer.start()
    got: list[Any] = []
    try:
        await consumer.topics()  # loads the metadata that names the topic's partitions
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if not tps:
            return got
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all([await consumer.position(tp) >= ends[tp] for tp in tps]):
                break
            batches = await consumer.getmany(timeout_ms=200)
            got += [r for records in batches.values() for r in records]
    finally:
        await consumer.stop()
    return got
