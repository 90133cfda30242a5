"""An end-to-end chaos soak judged as an on-call judges it: after kills, a broker restart and hostile records, is
every real fault still paged (once), and did no worker die?

Each run starts its own embedded broker, two workers (`--role all`: ingest, stage 1, stage 2, notify) and a
loopback PagerDuty receiver (`tests/receivers.py`) behind one route `{receiver: oncall}`. rca-micross's alerts
(`../shared/datasets/rca-micross`, by path; 147 faults, `truth.csv`) are posted to the workers' HTTP ingest at a
steady rate, in event-time order, as NDJSON bodies; a body refused (5xx, connection refused) is posted again, to
the other worker, as Alertmanager retries. Event times are compressed: every quiet gap between alerts longer than
`--gap-cap` becomes `--gap-cap`, so each fault keeps its own timing and the 62 days of the set take minutes; the
whole timeline sits hours in the past (no alert is ahead of the clock) and ends with a few flush alerts two hours
later on every partition, so every window closes and stage 2 decides everything (`soak-flush-*`, scored apart).

The same input at the same rate is run twice in one invocation: `baseline` (no chaos) and `chaos`:
* at 25% of the bodies one worker is SIGKILLed and started again at once;
* at 55% the broker is stopped by pid (SIGTERM) and, 3 s later, started empty on the same port (Tansu keeps
  everything in memory: README "Broker faults", "What a restart of the embedded broker loses");
* at 80% a few hostile records go straight onto `alerts.raw` and stage 2's routing topic.

What is reported, per run and compared:
* per true fault: pages (distinct PagerDuty `dedup_key`s triggered whose subject's alerts are mostly that fault's),
  so `paged`, `not paged`, `paged N times`; the faults whose outcome differs between the runs, each marked when
  some of its alerts were accepted but not yet in an incident when the broker stopped (those only the broker held:
  lost by design);
* per fault not paged, where it stopped (`unpaged_trace`): its alerts accepted and in incidents, its incidents
  routed to stage 2 and assigned to a cause, and what each worker's notify holds of its subjects at the end (`GET
  /notify/{id}`), with a verdict: `never reached notify` is the broker's documented loss (README "Broker faults":
  incident events not yet read by a consumer), `notify says paged` a page the worker decided and PagerDuty never
  got (a worker defect). The older mark, events past the group's committed offsets at the stop, is kept but
  over-counts: Faust commits every few seconds, so it also names events notify had already read and holds (session
  36's final run put 15 faults down to it; notify had read them, and the first tick after the restart lost their
  pages with its refused checkpoint, with the 5 it did not name);
* worker deaths: processes that exited without being killed by the soak, and `Crashed reason` lines in the logs;
* the hostile records written and the dead letters naming them (topic, partition, offset);
* alerts answered 202 in no incident: an alert is in an incident when an incident event of its key (read live
  from `incidents` by the soak's own consumer) covers its time; beside it, the ones accepted but not yet in an
  incident when the broker stopped.

    python benchmarks/soak.py            # all 147 faults (8,302 alerts) at 40 alerts/s, each run ~5 min
    python benchmarks/soak.py --quick    # the first 8 faults at 50 alerts/s, shorter holds: proves it works
    python benchmarks/soak.py --json     # the report as JSON
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import logging
import os
import sys
import tempfile
import threading
import time
import urllib.error
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from correlator.models import IncidentEvent  # noqa: E402
from correlator.sources.generic import parse  # noqa: E402
from correlator.stage2 import Assignment, ParentEvent  # noqa: E402
from stream.broker import start_broker  # noqa: E402
from stream.incident_records import decode_incident_record  # noqa: E402
from stream.stage2_agent import decode_routed  # noqa: E402
from tests.paths import MICROSS  # noqa: E402
from tests.receivers import Receiver, start_receiver  # noqa: E402
from tests.test_fuzz_topics import committed_offsets, named_cases  # noqa: E402

sys.path.insert(0, str(ROOT / "benchmarks"))
from faults import letters, post  # noqa: E402  (the dead letters' headers, read as the faults benchmark reads them)
from tests.workers import Deployment, WorkerProc  # noqa: E402

HOST = "127.0.0.1"
FLUSH = "soak-flush"
FLUSH_KEYS = 48  # distinct keys of flush alerts: every alerts partition gets one (4 partitions: miss odds ~1e-6)
HOUR = 3600.0


# ---------------------------------------------------------------- the input


@dataclass(frozen=True)
class Input:
    """The alerts to post, in order (generic JSON dicts with compressed event times), their faults and keys."""

    alerts: list[dict[str, Any]]
    truth: dict[str, str]
    keys: dict[str, str]
    """fingerprint -> correlation key (as the worker computes it)."""
    flush: list[dict[str, Any]]


def build_input(faults: int | None, gap_cap: float, end_at: float) -> Input:
    """rca-micross's alerts (the first `faults` faults by start, or all), gaps capped at `gap_cap`, ending at
    `end_at`; the flush alerts two hours after the last."""
    truth = {r["fingerprint"]: r["incident"] for r in csv.DictReader((MICROSS / "truth.csv").open())}
    raw = [orjson.loads(line) for line in (MICROSS / "alerts.ndjson").read_bytes().splitlines() if line.strip()]
    raw.sort(key=lambda a: (float(a["starts_at"]), a["fingerprint"]))
    if faults is not None:
        first: dict[str, float] = {}
        for a in raw:
            first.setdefault(truth[a["fingerprint"]], float(a["starts_at"]))
        kept = set(sorted(first, key=first.__getitem__)[:faults])
        raw = [a for a in raw if truth[a["fingerprint"]] in kept]
    compressed, t, last = [], 0.0, float(raw[0]["starts_at"])
    for a in raw:
        t += min(float(a["starts_at"]) - last, gap_cap)
        last = float(a["starts_at"])
        compressed.append(t)
    shift = end_at - compressed[-1]
    alerts = [{**a, "starts_at": round(c + shift, 3)} for a, c in zip(raw, compressed)]
    flush = [{"fingerprint": f"{FLUSH}-{i}", "starts_at": end_at + 2 * HOUR + i, "severity": "info",
              "service": f"{FLUSH}-{i}", "symptom": "Flush", "labels": {"alertname": "Flush"}}
             for i in range(FLUSH_KEYS)]
    keys = {a.fingerprint: a.key for a in parse(b"\n".join(orjson.dumps(a) for a in alerts + flush),
                                                 max_bytes=None)}
    return Input(alerts, {a["fingerprint"]: truth[a["fingerprint"]] for a in alerts}, keys, flush)


# ---------------------------------------------------------------- what the soak watches


class Pager:
    """A loopback PagerDuty receiver served from a thread of its own."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True, name="soak-pager")
        self.thread.start()
        self.receiver: Receiver = asyncio.run_coroutine_threadsafe(start_receiver("pagerduty"), self.loop).result(10)

    def events(self) -> list[dict[str, Any]]:
        """Every event PagerDuty accepted so far."""
        return list(self.receiver.accepted)

    def stop(self) -> None:
        """Stop the server and its loop."""
        asyncio.run_coroutine_threadsafe(self.receiver.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@dataclass
class Seen:
    """The last record of every incident, cause and assignment read from `incidents`."""

    incidents: dict[str, IncidentEvent] = field(default_factory=dict)
    causes: dict[str, ParentEvent] = field(default_factory=dict)
    assigned: dict[str, str] = field(default_factory=dict)
    records: int = 0
    undecodable: int = 0

    def add(self, value: bytes | None, headers: Sequence[tuple[str, bytes]]) -> None:
        """Fold one record of `incidents`."""
        self.records += 1
        try:
            record = decode_incident_record(value, list(headers))
        except ValueError:
            self.undecodable += 1
            return
        if isinstance(record, IncidentEvent):
            old = self.incidents.get(record.incident_id)
            if old is None or record.seq >= old.seq:
                self.incidents[record.incident_id] = record
        elif isinstance(record, ParentEvent):
            prev = self.causes.get(record.parent_id)
            if prev is None or record.seq >= prev.seq:
                self.causes[record.parent_id] = record
        elif isinstance(record, Assignment):
            self.assigned[record.child_id] = record.parent_id

    def copy(self) -> Seen:
        """A snapshot."""
        return Seen(dict(self.incidents), dict(self.causes), dict(self.assigned), self.records, self.undecodable)


class Tail:
    """Reads `incidents` (or, `routed`, stage 2's route topic) from its start as it is written, in a thread;
    `restart()` after a broker restart reads the new broker's topic from its start (its offsets count from 0 again).
    Before the first restart it also notes which subjects each (partition, offset) names, to tell what the group
    had not read when the broker stopped."""

    record_hook: Callable[[bool, Any, int], None] | None = None
    """Called with (routed, record, generation) for every record any tail reads (`benchmarks/soak_trace.py` logs them)."""

    def __init__(self, bootstrap: str, topic: str, routed: bool = False) -> None:
        self.bootstrap, self.topic, self.routed = bootstrap, topic, routed
        self.seen = Seen()
        self.placed: dict[tuple[int, int], list[str]] = {}
        self.named: set[str] = set()
        """Every id a record named, on either broker (the route tail: the incidents stage 1 routed to stage 2)."""
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.generation = 0
        self.thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True, name="soak-tail")
        self.thread.start()

    def restart(self) -> None:
        """Read the topic again from its start (a new broker)."""
        self.generation += 1

    def snapshot(self) -> Seen:
        """What was read so far."""
        with self.lock:
            return self.seen.copy()

    def stop(self) -> None:
        """Stop reading."""
        self.stopping.set()
        self.thread.join(20)

    async def _run(self) -> None:
        while not self.stopping.is_set():
            generation = self.generation
            consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False,
                                        auto_offset_reset="earliest", fetch_max_wait_ms=100,
                                        request_timeout_ms=5000, retry_backoff_ms=200)
            try:
                await asyncio.wait_for(consumer.start(), 10)
                parts = await asyncio.wait_for(self._partitions(consumer), 30)
                consumer.assign([TopicPartition(self.topic, p) for p in parts])
                await consumer.seek_to_beginning()
                while not self.stopping.is_set() and generation == self.generation:
                    batches = await consumer.getmany(timeout_ms=200)
                    with self.lock:
                        for records in batches.values():
                            for r in records:
                                ids = self._ids(r.value, r.headers)
                                self.named.update(ids)
                                if generation == 0:
                                    self.placed[(r.partition, r.offset)] = ids
                                hook = Tail.record_hook
                                if hook is not None:
                                    hook(self.routed, r, generation)
            except (Exception, asyncio.CancelledError):  # noqa: BLE001 - the broker is down or restarting: again
                await asyncio.sleep(0.5)
            finally:
                try:
                    await asyncio.wait_for(consumer.stop(), 5)
                except (Exception, asyncio.CancelledError):  # noqa: BLE001 - a fetch cancelled while it waited
                    pass

    def _ids(self, value: bytes | None, headers: Sequence[tuple[str, bytes]]) -> list[str]:
        """Fold one record; the ids of the incidents or causes it names."""
        if self.routed:
            try:
                return [e.incident_id for e in decode_routed(value)]
            except Exception:  # noqa: BLE001 - a hostile record
                return []
        self.seen.add(value, headers)
        try:
            record = decode_incident_record(value, list(headers))
        except ValueError:
            return []
        if isinstance(record, IncidentEvent):
            return [record.incident_id]
        if isinstance(record, ParentEvent):
            return [record.parent_id]
        if isinstance(record, Assignment):
            return [record.child_id]
        return []

    async def _partitions(self, consumer: AIOKafkaConsumer) -> list[int]:
        while True:
            await consumer.topics()
            parts = consumer.partitions_for_topic(self.topic)
            if parts:
                return sorted(parts)
            await asyncio.sleep(0.5)


class Commits:
    """The app group's committed offsets of some topics, sampled every second in a thread until `stop()` (called
    just before the broker is stopped): the last sample is how far the agents had acknowledged their input then.
    Faust commits every few seconds, so this over-counts what was unread by that much."""

    def __init__(self, bootstrap: str, group: str, topics: Sequence[str], partitions: int) -> None:
        self.last: dict[str, dict[int, int]] = {}
        self.sampled_at = 0.0
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(bootstrap, group, topics, partitions), daemon=True,
                                       name="soak-commits")
        self.thread.start()

    def _run(self, bootstrap: str, group: str, topics: Sequence[str], partitions: int) -> None:
        while not self.stopping.wait(1.0):
            try:
                sample = {t: asyncio.run(committed_offsets(bootstrap, group, t, list(range(partitions))))
                          for t in topics}
            except Exception:  # noqa: BLE001 - a sample missed
                continue
            if not self.stopping.is_set():
                self.last, self.sampled_at = sample, time.monotonic()

    def stop(self) -> None:
        """Stop sampling; the last sample stays."""
        self.stopping.set()
        self.thread.join(15)


def ask_notify(workers: Sequence[WorkerProc], ids: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    """What each worker's notify holds of each subject at the end (`GET /notify/{id}`: a worker answers for the
    partitions of `incidents` it owns, 404 for the others), by id: [] when no worker holds it, i.e. its events
    never reached a notify fold that kept them."""
    def one(subject_id: str) -> tuple[str, list[dict[str, Any]]]:
        found = []
        for w in workers:
            try:
                found.append({"worker": w.log.stem, **w.get(f"/notify/{subject_id}", timeout=10)})
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):  # 404: not this worker's
                pass
        return subject_id, found
    with ThreadPoolExecutor(4) as pool:
        return dict(pool.map(one, ids))


def incidents_lag(bootstrap: str, group: str, topic: str, partitions: int) -> int | None:
    """Records of `incidents` the workers' group has not committed yet (end offsets less committed ones, summed over
    the partitions), None when the broker does not answer: how far notify is behind (soak38's drain)."""
    async def ends() -> dict[int, int]:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
        await consumer.start()
        try:
            tps = [TopicPartition(topic, p) for p in range(partitions)]
            return {tp.partition: offset for tp, offset in (await consumer.end_offsets(tps)).items()}
        finally:
            await consumer.stop()
    try:
        end = asyncio.run(ends())
        committed = asyncio.run(committed_offsets(bootstrap, group, topic, list(range(partitions))))
    except Exception:  # noqa: BLE001 - the broker is busy: not known
        return None
    return sum(max(offset - max(committed.get(p, -1), 0), 0) for p, offset in end.items())


def incidents_read(bootstrap: str, group: str, topic: str, partitions: int) -> bool:
    """Whether the workers' group has committed `incidents` to its end (pages37): under load notify runs
    minutes behind, and a drain that only waited for a quiet pager counted the faults it had not read yet as not
    paged (46 and 102 of 147 in two baseline runs at load 8 and 20)."""
    return incidents_lag(bootstrap, group, topic, partitions) == 0


def drain_over(now: float, begun: float, moved_at: float, stall_s: float, cap_s: float) -> bool:
    """Whether the drain gives up: nothing moved (pages, alerts put into incidents, `incidents` read by the workers)
    for `stall_s`, or `cap_s` since it began. A fixed timeout of `stall_s` (420 s) ended drains under load while
    notify was still reading and sending, and counted the faults it had not reached yet as not paged (soak38's f2:
    1,428 accepted alerts not yet in an incident when it gave up)."""
    return now - moved_at >= stall_s or now - begun >= cap_s


def read_through(read_since: float | None, behind: int | None, now: float) -> float | None:
    """Since when the workers' group has had `incidents` committed to its end without a break (None: it has not now),
    given the last value and a lag sample (`incidents_lag`; None: the broker did not answer, nothing learnt).

    A lag above 0 starts it again: the first 0 alone did not say the group still reads. After a broker restart the
    new topic is empty for a moment (lag 0), and a drain that kept that first 0 counted as drained a run whose group
    then committed nothing of the new topic (stuck40: partitions 0 and 2 at no commit, 535 records, "drained")."""
    if behind is None:
        return read_since
    if behind > 0:
        return None
    return now if read_since is None else read_since


def unread(tail: Tail, committed: dict[int, int]) -> set[str]:
    """The ids named by records of `tail` at or past the committed offset of their partition."""
    with tail.lock:  # the tail's thread adds to it
        placed = list(tail.placed.items())
    return {i for (p, o), ids in placed if o >= committed.get(p, -1) for i in ids}


# ---------------------------------------------------------------- posting


@dataclass
class Sender:
    """Posts the bodies on a steady schedule (`rate` alerts/s), alternating workers; a body refused with 5xx or a
    failed connection is posted again to the other worker every 0.2 s until a 202 (as Alertmanager retries)."""

    bodies: list[tuple[list[str], bytes]]
    rate: float
    ports: Callable[[], list[int]]
    answers: Counter[int] = field(default_factory=Counter)
    accepted: dict[str, float] = field(default_factory=dict)
    """fingerprint -> monotonic time the POST answered 202 began (a POST under way while the broker stops may be
    acknowledged by it as it goes: only the old broker held those)."""
    refused: list[str] = field(default_factory=list)
    sent: int = 0
    started: float = 0.0
    give_up_s: float = 180.0
    halt: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        """Post every body."""
        self.started = time.monotonic()
        due, turn = self.started, 0
        for fingerprints, body in self.bodies:
            if self.halt.is_set():  # the run failed: stop posting
                return
            if (wait := due - time.monotonic()) > 0:
                time.sleep(wait)
            due += len(fingerprints) / self.rate
            deadline = time.monotonic() + self.give_up_s
            while True:
                ports = self.ports()
                began = time.monotonic()
                status = post(ports[turn % len(ports)], "/ingest/alerts", body)
                turn += 1
                self.answers[status] += 1
                if status == 202:
                    self.accepted.update((fp, began) for fp in fingerprints)
                    break
                if 400 <= status < 500 or time.monotonic() > deadline or self.halt.is_set():
                    self.refused += fingerprints
                    break
                time.sleep(0.2)
            self.sent += 1


# ---------------------------------------------------------------- one run


@dataclass
class Options:
    """What both runs share."""

    rate: float
    per_body: int
    quiet_s: float
    drain_timeout_s: float
    """The drain gives up after this long with nothing moving (`drain_over`)."""
    drain_cap_s: float
    """... and after this long whatever moves."""
    env: dict[str, str]
    hold: str
    workdir: Path


ROUTES = """
defaults: {{hold: {{for: {hold}}}}}
receivers:
  - {{name: oncall, type: pagerduty, routing_key: "R0UTINGKEY", url: "{url}"}}
routes:
  - {{receiver: oncall}}
"""


def wait_ready(worker: WorkerProc, timeout: float = 120.0) -> float:
    """Seconds until /readyz answers ready (raises when the process exits or time runs out)."""
    begun = time.monotonic()
    while time.monotonic() - begun < timeout:
        if worker.proc.poll() is not None:
            raise RuntimeError(f"worker exited with {worker.proc.returncode}:\n{worker.tail()}")
        try:
            if worker.get("/readyz", timeout=3).get("ready"):
                return time.monotonic() - begun
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass
        time.sleep(0.3)
    raise TimeoutError(f"worker not ready after {timeout} s:\n{worker.tail()}")


async def produce(bootstrap: str, topic: str, records: Sequence[tuple[bytes | None, bytes | None]]
                  ) -> tuple[list[tuple[int, int]], list[str]]:
    """Write records one at a time, each tried for up to 30 s (the broker may be fresh from a restart); the
    (partition, offset) of those written and the errors of those not."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", max_request_size=32 * 1024 * 1024)
    await producer.start()
    placed: list[tuple[int, int]] = []
    errors: list[str] = []
    try:
        for key, value in records:
            deadline = time.monotonic() + 30
            while True:
                try:
                    meta = await (await producer.send(topic, value, key=key))
                    placed.append((meta.partition, meta.offset))
                    break
                except Exception as exc:  # noqa: BLE001 - counted, and tried again while time is left
                    if time.monotonic() > deadline:
                        errors.append(repr(exc))
                        break
                    await asyncio.sleep(1.0)
        return placed, errors
    finally:
        await producer.stop()


def hostile_records() -> dict[str, list[tuple[bytes | None, bytes | None]]]:
    """A few hostile records per topic field (`alerts_raw`, `route`): the topic fuzz suite's named ones, without
    its 20 MB record."""
    out = {}
    for name in ("alerts_raw", "route"):
        cases = [c for c in named_cases(name) if len(c[1] or b"") < 4 << 20 and len(c[0] or b"") < 4 << 20
                 and c != (None, None)]  # aiokafka refuses a record with neither
        out[name] = cases[:12] + cases[-4:]
    return out


@dataclass
class Run:
    """One run's raw outcome."""

    name: str
    pages: list[dict[str, Any]]
    seen: Seen
    at_broker_stop: Seen | None
    accepted: dict[str, float]
    refused: list[str]
    answers: Counter[int]
    hostile: dict[str, Any]
    deaths: list[str]
    crashed_lines: list[str]
    events: list[tuple[float, str]]
    broker_stopped_at: float | None
    unread_at_stop: dict[str, list[str]]
    """topic kind (incidents, route) -> ids named by records the group had not committed past at the stop"""
    notify_view: dict[str, list[dict[str, Any]]]
    """incident or cause id of a fault not paged -> what the workers' notify held of it at the end (`ask_notify`)"""
    routed: set[str]
    """ids of the incidents stage 1 routed to stage 2 (read from the route topic, either broker)"""
    """monotonic time of the broker's stop, as `accepted`'s times"""
    logs: list[str]
    took_s: float


def one_run(name: str, data: Input, opts: Options, chaos: bool) -> Run:
    """Start a broker, two workers and the pager; post everything (with the chaos when `chaos`); drain; collect."""
    workdir = opts.workdir / name
    workdir.mkdir(parents=True)
    brokers = [start_broker(log_path=workdir / "tansu-1.log")]
    pager = Pager()
    events: list[tuple[float, str]] = []
    begun = time.monotonic()

    def note(what: str) -> None:
        events.append((round(time.monotonic() - begun, 1), what))
        print(f"[{name} {events[-1][0]:7.1f}s] {what}", flush=True)

    notify = workdir / "notify.yaml"
    notify.write_text(ROUTES.format(hold=opts.hold, url=pager.receiver.url))
    dep = Deployment(brokers[0], workdir, extra_env={"AIOPS_IDLE_ADVANCE": "300", "AIOPS_NOTIFY_FILE": str(notify),
                                                     **opts.env})
    dep.create_topics()
    procs: list[WorkerProc] = []
    killed: set[int] = set()
    slots: list[WorkerProc] = []
    tail: Tail | None = None
    route_tail: Tail | None = None
    sender: Sender | None = None
    try:
        for slot in ("a", "b"):
            w = dep.start_worker(f"{slot}-1")
            procs.append(w)
            slots.append(w)
        for w in slots:
            w.wait_web(90)
        for w in slots:
            wait_ready(w)
        note("two workers ready")
        tail = Tail(brokers[0].bootstrap, dep.topic("incidents"))
        route_topic = f"{dep.app_id}-stage2-route"
        route_tail = Tail(brokers[0].bootstrap, route_topic, routed=True)
        commits = Commits(brokers[0].bootstrap, dep.app_id, [dep.topic("incidents"), route_topic], dep.partitions)
        unread_ids: dict[str, list[str]] = {}
        fps = [a["fingerprint"] for a in data.alerts]
        bodies = [(fps[i:i + opts.per_body], b"\n".join(orjson.dumps(a) for a in data.alerts[i:i + opts.per_body]))
                  for i in range(0, len(fps), opts.per_body)]
        sender = Sender(bodies, opts.rate, lambda: [w.web_port for w in slots if w.proc.poll() is None] or [1])
        thread = threading.Thread(target=sender.run, name="soak-sender")
        thread.start()
        note(f"posting {len(fps)} alerts in {len(bodies)} bodies at {opts.rate:g}/s")
        hostile: dict[str, Any] = {}
        at_stop: Seen | None = None
        stopped_at: float | None = None
        steps = [(0.25, "kill"), (0.55, "broker"), (0.80, "hostile")] if chaos else []
        for share, what in steps:
            while sender.sent < share * len(bodies) and thread.is_alive():
                time.sleep(0.05)
            if what == "kill":
                victim = slots[1]
                victim.kill()
                killed.add(victim.proc.pid)
                note(f"SIGKILL worker {victim.log.stem} (pid {victim.proc.pid}) after {sender.sent} bodies")
                slots[1] = dep.start_worker("b-2")
                procs.append(slots[1])
                try:
                    slots[1].wait_web(90)
                    note(f"worker b-2 ready after {wait_ready(slots[1]):.1f} s more")
                except (RuntimeError, TimeoutError) as exc:
                    note(f"worker b-2 not ready: {str(exc).splitlines()[0]}")
            elif what == "broker":
                old = brokers[-1]
                commits.stop()
                unread_ids = {"incidents": sorted(unread(tail, commits.last.get(dep.topic("incidents"), {}))),
                              "route": sorted(unread(route_tail, commits.last.get(route_topic, {})))}
                note(f"committed offsets sampled {time.monotonic() - commits.sampled_at:.1f} s ago: "
                     f"{ {k: len(v) for k, v in unread_ids.items()} } subjects named past them")
                old.stop()
                stopped_at = time.monotonic()  # a POST begun before this may have been acked by the old broker
                at_stop = tail.snapshot() if tail is not None else None
                note(f"broker stopped by pid after {sender.sent} bodies; 3 s down")
                time.sleep(3.0)
                brokers.append(start_broker(port=old.port, log_path=workdir / "tansu-2.log"))
                dep.broker = brokers[-1]
                tail.restart()
                route_tail.restart()
                note("broker started empty on the same port")
                for w in slots:
                    try:
                        note(f"worker {w.log.stem} ready {wait_ready(w, 180):.1f} s after the restart")
                    except (RuntimeError, TimeoutError) as exc:  # a death is a finding: report it, go on
                        note(f"worker {w.log.stem} not ready after the restart: {str(exc).splitlines()[0]}")
            else:
                topics = {"alerts_raw": dep.topic("alerts_raw"), "route": f"{dep.app_id}-stage2-route"}
                for field_name, records in hostile_records().items():
                    placed, errors = asyncio.run(produce(dep.broker.bootstrap, topics[field_name], records))
                    hostile[field_name] = {"topic": topics[field_name], "written": placed, "not_written": errors}
                note(f"hostile records written: { {k: len(v['written']) for k, v in hostile.items()} }")
        thread.join()
        note(f"posted: answers {dict(sender.answers)}")
        flush = Sender([([a["fingerprint"] for a in data.flush], b"\n".join(orjson.dumps(a) for a in data.flush))],
                       1e9, sender.ports)
        flush.run()
        drain(pager, tail, data, sender, opts, note,
              lambda: incidents_lag(dep.broker.bootstrap, dep.app_id, dep.topic("incidents"), dep.partitions))
        asked = unpaged_subjects(data, tail.snapshot(), pager.events())
        notify_view = ask_notify([w for w in slots if w.proc.poll() is None], asked)
        note(f"asked notify about the {len(asked)} subjects of faults not paged: "
             f"{sum(1 for v in notify_view.values() if v)} held")
        tail.stop()
        route_tail.stop()
        commits.stop()
        seen = tail.snapshot()
        headers = asyncio.run(letters(dep.broker.bootstrap, dep.topic("deadletter"), quiet_s=3.0)) if hostile else []
        for row in hostile.values():
            mine = {(h.get("partition"), h.get("offset")) for h in headers if h.get("topic") == row["topic"]}
            row["dead_lettered"] = sum(1 for p, o in row["written"] if (str(p), str(o)) in mine)
            row["written"] = len(row["written"])
            row["letters_on_topic"] = sum(1 for h in headers if h.get("topic") == row["topic"])
        deaths = [f"{w.log.stem} exited {w.proc.returncode}" for w in procs
                  if w.proc.poll() is not None and w.proc.pid not in killed]
        crashed = [line for w in procs for line in w.log.read_text(errors="replace").splitlines()
                   if "Crashed reason" in line]
        return Run(name, pager.events(), seen, at_stop, dict(sender.accepted), sender.refused, sender.answers,
                   hostile, deaths, crashed, events, stopped_at, unread_ids, notify_view, set(route_tail.named),
                   [str(w.log) for w in procs], time.monotonic() - begun)
    finally:
        if sender is not None:
            sender.halt.set()
        for t in (tail, route_tail):
            if t is not None:
                t.stopping.set()
        for w in procs:
            w.stop()
        for b in brokers:
            b.stop()
        pager.stop()


def triggers(pages: list[dict[str, Any]]) -> list[str]:
    """The dedup keys of the page-opening triggers (an `update` of a page that carries its cause is no new page)."""
    return [e["dedup_key"] for e in pages if e["event_action"] == "trigger"
            and e.get("payload", {}).get("custom_details", {}).get("action") != "update"]


def drain(pager: Pager, tail: Tail, data: Input, sender: Sender, opts: Options, note: Callable[[str], None],
          lag: Callable[[], int | None] = lambda: 0) -> None:
    """Until every accepted alert is in an incident, the workers have read `incidents` to its end (`lag` 0) for
    `quiet_s` and no new page came for `quiet_s`; or until nothing of that moved for `drain_timeout_s`
    (`drain_over`), or `drain_cap_s`."""
    begun = time.monotonic()
    last_pages, changed = -1, time.monotonic()
    moved_at, last_missing, last_lag = begun, -1, -1
    read_since: float | None = None
    while not drain_over(time.monotonic(), begun, moved_at, opts.drain_timeout_s, opts.drain_cap_s):
        behind = lag()
        read_since = read_through(read_since, behind, time.monotonic())
        pages = len(set(triggers(pager.events())))
        covered = Membership(data, tail.snapshot())
        missing = sum(1 for fp in sender.accepted if fp not in covered.incident_of)
        if pages != last_pages or missing != last_missing or (behind is not None and behind != last_lag):
            moved_at = time.monotonic()  # the workers still read, correlate or page: not stalled
        if pages != last_pages:
            last_pages, changed = pages, time.monotonic()
        last_missing, last_lag = missing, behind if behind is not None else last_lag
        if time.monotonic() - changed > opts.quiet_s and (missing == 0 or time.monotonic() - begun > 2 * opts.quiet_s) \
                and read_since is not None and time.monotonic() - read_since > opts.quiet_s:
            break
        time.sleep(1.0)
    note(f"drained after {time.monotonic() - begun:.0f} s: {last_pages} pages"
         + ("" if read_since is not None else f"; the workers still {last_lag} records of incidents behind"))


# ---------------------------------------------------------------- judging


class Membership:
    """Which incident each alert is in, from the incident events read: the incident of its key whose first and
    last event times cover its own (an incident's members are not on the topic, only a sample)."""

    def __init__(self, data: Input, seen: Seen) -> None:
        self.incident_of = incident_of(data, ((inc.key, inc.first_seen, inc.last_seen, inc.incident_id)
                                              for inc in seen.incidents.values()))
        self.alerts_of: dict[str, list[str]] = defaultdict(list)
        for fp, incident_id in self.incident_of.items():
            self.alerts_of[incident_id].append(fp)
        self.children = {c.parent_id: list(c.children) for c in seen.causes.values()}


def incident_of(data: Input, spans: Iterable[tuple[str, float, float, str]]) -> dict[str, str]:
    """fingerprint -> the incident of its key whose first and last event times cover its own, from (key, first, last,
    incident id) of each incident read (the soak's tail, or a `soak_trace.py` trace)."""
    by_key: dict[str, list[tuple[float, float, str]]] = defaultdict(list)
    for key, first, last, incident_id in spans:
        by_key[key].append((first, last, incident_id))
    out: dict[str, str] = {}
    times = {a["fingerprint"]: float(a["starts_at"]) for a in data.alerts + data.flush}
    for fp, t in times.items():
        for first, last, incident_id in by_key.get(data.keys[fp], ()):
            if first - 1e-3 <= t <= last + 1e-3:
                out[fp] = incident_id
                break
    return out


def fault_of(subject: str, members: Membership, truth: dict[str, str], sample: Sequence[str]) -> str:
    """The fault most of the subject's alerts belong to (a cause: its children's); `flush` for the soak's own
    flush alerts; from the page's member sample when the subject's events were not read."""
    fps = members.alerts_of.get(subject) or [fp for c in members.children.get(subject, ())
                                             for fp in members.alerts_of.get(c, ())] or list(sample)
    if fps and all(fp.startswith(FLUSH) for fp in fps):
        return "flush"
    votes = Counter(truth[fp] for fp in fps if fp in truth)
    return votes.most_common(1)[0][0] if votes else f"?{subject}"


def page_facts(event: dict[str, Any]) -> dict[str, Any]:
    """What a trigger says of its subject, for reading a difference."""
    details = event.get("payload", {}).get("custom_details", {})
    return {"dedup_key": event["dedup_key"], "summary": event.get("payload", {}).get("summary"),
            **{k: details.get(k) for k in ("action", "kind", "alert_count", "first_seen", "last_seen", "sent_at",
                                            "members_sample", "children_total", "services", "symptom")}}


def unpaged_trace(run: Run, data: Input, members: Membership, fault: str, paged: dict[str, str]
                  ) -> dict[str, Any]:
    """Where an unpaged fault's alerts went, hop by hop, and a verdict: its alerts accepted and in an incident
    (`incidents` read live), its incidents routed to stage 2 (the route topic) and assigned to a cause, and what
    notify held of each subject at the end (`ask_notify`). `paged`: dedup key -> the fault its page was put down
    to. Verdicts, in this order: `no incident` (its accepted alerts are in no incident event read), `notify says
    paged` (notify says a subject of it paged and PagerDuty never got a trigger with its id: a worker defect),
    `grouped into fault X's page` (a subject of it, its cause as a rule, paged and was put down to another fault), `never reached notify` (no worker's notify holds any of its
    subjects: their events were not read by notify before the broker lost them, README "Broker faults"), else
    `held by notify: <statuses>` (notify knows it and has not paged it: read them)."""
    fps = [a["fingerprint"] for a in data.alerts if data.truth[a["fingerprint"]] == fault]
    incidents = sorted({members.incident_of[fp] for fp in fps if fp in members.incident_of})
    causes = sorted({run.seen.assigned[i] for i in incidents if i in run.seen.assigned})
    subjects = {i: [v.get("status") for v in run.notify_view.get(i, [])] for i in incidents + causes}
    statuses = Counter(st or "?" for views in subjects.values() for st in views or ["not in notify"])
    elsewhere = sorted({paged[i] for i in subjects if i in paged} - {fault})
    lost = [i for i, views in subjects.items() if "paged" in views and i not in paged]
    if not incidents:
        verdict = "no incident"
    elif lost:
        verdict = "notify says paged"
    elif elsewhere:
        verdict = f"grouped into fault {','.join(elsewhere)}'s page"
    elif set(statuses) == {"not in notify"}:
        verdict = "never reached notify"
    else:
        verdict = "held by notify: " + ", ".join(f"{k} {n}" for k, n in sorted(statuses.items()))
    return {"verdict": verdict, "alerts": len(fps), "accepted": sum(1 for fp in fps if fp in run.accepted),
            "in_incident": sum(1 for fp in fps if fp in members.incident_of), "incidents": incidents,
            "routed": sum(1 for i in incidents if i in run.routed), "assigned": len(causes), "causes": causes,
            "notify": {i: run.notify_view.get(i, []) for i in incidents + causes}}


def paged_faults(pages: list[dict[str, Any]], members: Membership, truth: dict[str, str]) -> dict[str, str]:
    """Each page's dedup key -> the fault it is put down to (`fault_of`), in the order of the first triggers."""
    samples = {e["dedup_key"]: e.get("payload", {}).get("custom_details", {}).get("members_sample", [])
               for e in pages if e["event_action"] == "trigger"}
    return {key: fault_of(key, members, truth, samples.get(key, ())) for key in dict.fromkeys(triggers(pages))}


def unpaged_subjects(data: Input, seen: Seen, pages: list[dict[str, Any]]) -> list[str]:
    """The incidents and causes of the faults no page is put down to (what `ask_notify` asks about)."""
    members = Membership(data, seen)
    paged = set(paged_faults(pages, members, data.truth).values())
    incidents = {members.incident_of[a["fingerprint"]] for a in data.alerts
                 if data.truth[a["fingerprint"]] not in paged and a["fingerprint"] in members.incident_of}
    return sorted(incidents | {seen.assigned[i] for i in incidents if i in seen.assigned})


def judge(run: Run, data: Input) -> dict[str, Any]:
    """Pages per fault, alerts in no incident, deaths, dead letters."""
    members = Membership(data, run.seen)
    keys = triggers(run.pages)
    subject_fault = paged_faults(run.pages, members, data.truth)
    per_fault: dict[str, set[str]] = defaultdict(set)
    for key, fault in subject_fault.items():
        per_fault[fault].add(key)
    faults = sorted(set(data.truth.values()), key=int)
    in_flight: set[str] = set()
    if run.at_broker_stop is not None and run.broker_stopped_at is not None:
        before = Membership(data, run.at_broker_stop)
        in_flight = {fp for fp, at in run.accepted.items() if fp not in before.incident_of
                     and not fp.startswith(FLUSH) and at - run.broker_stopped_at <= 0}
    lost = sorted(fp for fp in run.accepted if fp not in members.incident_of)

    unpaged = {f: unpaged_trace(run, data, members, f, subject_fault) for f in faults if not per_fault.get(f)}

    def faults_named(ids: Sequence[str]) -> list[str]:
        return sorted({fault_of(i, members, data.truth, ()) for i in ids} - {"flush"}, key=lambda f: (len(f), f))
    return {
        "pages": {f: len(per_fault.get(f, ())) for f in faults},
        "page_keys": {f: sorted(per_fault.get(f, ())) for f in faults},
        "flush_pages": len(per_fault.get("flush", ())),
        "unattributed_pages": sorted(k for f, ks in per_fault.items() if f.startswith("?") for k in ks),
        "trigger_pages": [page_facts(e) for e in run.pages if e["event_action"] == "trigger"],
        "trigger_deliveries": len(keys), "distinct_triggers": len(set(keys)),
        "resolves": sum(1 for e in run.pages if e["event_action"] == "resolve"),
        "accepted": len(run.accepted), "refused": len(run.refused), "answers": dict(run.answers),
        "in_no_incident": len(lost), "in_no_incident_sample": lost[:10], "in_no_incident_all": lost,
        "in_flight_at_broker_stop": len(in_flight),
        "lost_not_in_flight": sorted(set(lost) - in_flight)[:20],
        "lost_not_in_flight_count": len(set(lost) - in_flight),
        "in_flight_faults": sorted({data.truth[fp] for fp in in_flight if fp in data.truth}, key=int),
        "unread_at_stop": {k: len(v) for k, v in run.unread_at_stop.items()},
        "unpaged": unpaged,
        "unpaged_verdicts": dict(Counter(u["verdict"].split(":")[0] for u in unpaged.values())),
        "unread_faults": {k: faults_named(v) for k, v in run.unread_at_stop.items()},
        "incidents": len(run.seen.incidents), "causes": len(run.seen.causes),
        "undecodable_incident_records": run.seen.undecodable,
        "deaths": run.deaths, "crashed_lines": run.crashed_lines[:10], "crashed": len(run.crashed_lines),
        "hostile": run.hostile, "events": run.events, "took_s": round(run.took_s, 1), "logs": run.logs,
    }


def compare(base: dict[str, Any], chaos: dict[str, Any]) -> dict[str, Any]:
    """The faults whose pages differ between the runs, sorted into kinds."""
    out: dict[str, list[dict[str, Any]]] = {"unpaged_with_chaos": [], "paged_more_with_chaos": [],
                                            "paged_only_with_chaos": [], "other": []}
    exposed = set(chaos["in_flight_faults"])
    unread_by = chaos.get("unread_faults", {})
    for fault, b in base["pages"].items():
        c = chaos["pages"][fault]
        if b == c:
            continue
        row = {"fault": fault, "baseline": b, "chaos": c, "in_flight_at_broker_stop": fault in exposed,
               "unread_at_broker_stop": [k for k, faults in unread_by.items() if fault in faults],
               "baseline_keys": base["page_keys"][fault], "chaos_keys": chaos["page_keys"][fault]}
        if c == 0 and fault in chaos.get("unpaged", {}):
            row["verdict"] = chaos["unpaged"][fault]["verdict"]
        kind = ("unpaged_with_chaos" if c == 0 else "paged_only_with_chaos" if b == 0 else
                "paged_more_with_chaos" if c > b else "other")
        out[kind].append(row)
    return out


def summary(runs: dict[str, dict[str, Any]], diff: dict[str, Any]) -> str:
    """The table an on-call reads."""
    lines = ["| | baseline | chaos |", "|---|---:|---:|"]

    def row(label: str, get: Callable[[dict[str, Any]], Any]) -> None:
        lines.append(f"| {label} | {get(runs['baseline'])} | {get(runs['chaos'])} |")

    row("true faults", lambda r: len(r["pages"]))
    row("faults paged once", lambda r: sum(1 for n in r["pages"].values() if n == 1))
    row("faults not paged", lambda r: sum(1 for n in r["pages"].values() if n == 0))
    row("faults paged 2+ times", lambda r: sum(1 for n in r["pages"].values() if n > 1))
    row("pages (distinct dedup keys; deliveries)", lambda r: f"{r['distinct_triggers']}; {r['trigger_deliveries']}")
    row("pages of the flush alerts / unattributed", lambda r: f"{r['flush_pages']} / {len(r['unattributed_pages'])}")
    row("alerts accepted (202) / given up", lambda r: f"{r['accepted']} / {r['refused']}")
    row("answers", lambda r: r["answers"])
    row("alerts 202 in no incident", lambda r: r["in_no_incident"])
    row("... of them not in flight when the broker stopped", lambda r: r["lost_not_in_flight_count"])
    row("alerts accepted, not in an incident at the broker stop", lambda r: r["in_flight_at_broker_stop"])
    row("subjects named past the committed offsets at the stop (incidents; route)", lambda r: "; ".join(
        str(n) for n in r.get("unread_at_stop", {}).values()) or "-")
    row("faults not paged, by where they stopped (`unpaged_trace`)", lambda r: "; ".join(
        f"{k} {n}" for k, n in sorted(r.get("unpaged_verdicts", {}).items())) or "-")
    row("worker processes dead (not killed by the soak)", lambda r: len(r["deaths"]))
    row("`Crashed reason` lines", lambda r: r["crashed"])
    row("hostile records written / dead-lettered", lambda r: ", ".join(
        f"{k} {v['written']}/{v['dead_lettered']}" for k, v in r["hostile"].items()) or "-")
    row("run time s", lambda r: r["took_s"])
    out = "\n".join(lines)
    for kind, rows in diff.items():
        if rows:
            out += f"\n\n{kind} ({len(rows)}): " + "; ".join(
                f"fault {r['fault']} {r['baseline']}->{r['chaos']}" + (" (in flight at the broker stop)"
                                                                       if r["in_flight_at_broker_stop"] else "")
                + "".join(f" ({k} past the committed offset at the stop)" for k in r["unread_at_broker_stop"])
                + (f" [{r['verdict']}]" if "verdict" in r else "")
                for r in rows)
    if not any(diff.values()):
        out += "\n\nevery fault has the same number of pages in both runs"
    return out


def topology_env(choice: str) -> dict[str, str]:
    """The workers' stage-2 topology (pages37): without the file the set ships, stage 2 groups by labels alone and
    splits 68 of the 147 faults into 258 parents (replay of the soak's own input; 26 faults, 177 parents with it), so
    the soak's pages per fault measured that fallback's grouping rather than paging."""
    if choice == "none":
        return {}
    path = MICROSS / "topology.json" if choice == "set" else Path(choice)
    return {"AIOPS_STAGE2_TOPOLOGY": str(path.resolve())}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Flags; `--quick` scales the run down."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="8 faults at 50 alerts/s, 10 s holds (about 3 minutes)")
    p.add_argument("--faults", type=int, default=None, help="the first N faults of the set (default all; quick 12)")
    p.add_argument("--rate", type=float, default=None, help="alerts per second posted (default 40; quick 60)")
    p.add_argument("--gap-cap", type=float, default=1800.0, help="longest quiet gap kept in event time, s")
    p.add_argument("--per-body", type=int, default=10, help="alerts per POST")
    p.add_argument("--only", choices=("baseline", "chaos"), default=None, help="one run only")
    p.add_argument("--keep", type=Path, default=None, help="keep the runs' logs under this directory")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--topology", default="set", help="stage 2's topology file: `set` (the one rca-micross ships, "
                   "as a deployment of it runs; default), `none` (labels only, the runs before session 37), or a path")
    args = p.parse_args(argv)
    args.faults = args.faults if args.faults is not None else (8 if args.quick else None)
    args.rate = args.rate if args.rate is not None else (50.0 if args.quick else 40.0)
    return args


FORWARDED_PREFIXES = ("AIOPS_NOTIFY_POLICY__", "AIOPS_GROUPING__", "AIOPS_RECONCILE_AFTER_LOSS", "AIOPS_STAGE2_RESTATE_AFTER_LOSS")
"""Rule switches of the caller's environment the soak passes on to its workers."""


def main(argv: Sequence[str] | None = None) -> int:
    """Both runs, judged and compared."""
    args = parse_args(argv)
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # the tail's reconnects while the broker is down
    data = build_input(args.faults, args.gap_cap, end_at=time.time() - 4 * HOUR)
    env = {"AIOPS_NOTIFY_CAUSE_WAIT": "10"} if args.quick else {}
    env.update(topology_env(args.topology))
    # The workers' environment drops every AIOPS_ variable of the caller (tests.workers.Deployment.env): the rule
    # switches given on the command line are forwarded here, or `AIOPS_NOTIFY_POLICY__X=... soak.py` measures the
    # default instead of X (session 37's "=0" row ran with 300, its default then).
    env.update({k: v for k, v in os.environ.items() if k.startswith(FORWARDED_PREFIXES)})
    if any(k.startswith(FORWARDED_PREFIXES) for k in os.environ):
        print("forwarded to the workers: " + ", ".join(f"{k}={v}" for k, v in sorted(env.items())
                                                        if k.startswith(FORWARDED_PREFIXES)), flush=True)
    load = os.getloadavg()
    print(f"input: {len(data.alerts)} alerts, {len(set(data.truth.values()))} faults, event span "
          f"{(float(data.alerts[-1]['starts_at']) - float(data.alerts[0]['starts_at'])) / HOUR:.1f} h; "
          f"load {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}", flush=True)
    keep = args.keep
    with tempfile.TemporaryDirectory(prefix="aiops-soak-") as tmp:
        workdir = keep if keep is not None else Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        opts = Options(rate=args.rate, per_body=args.per_body, quiet_s=20.0 if args.quick else 45.0,
                       drain_timeout_s=180.0 if args.quick else 420.0,
                       drain_cap_s=900.0 if args.quick else 2400.0, env=env,
                       hold="10s" if args.quick else "30s", workdir=workdir)
        runs: dict[str, dict[str, Any]] = {}
        for name in ("baseline", "chaos"):
            if args.only in (None, name):
                runs[name] = judge(one_run(name, data, opts, chaos=name == "chaos"), data)
    load_after = os.getloadavg()
    if len(runs) == 2:
        diff = compare(runs["baseline"], runs["chaos"])
        report = {"runs": runs, "differences": diff, "load": [load, load_after],
                  "input": {"alerts": len(data.alerts), "faults": len(set(data.truth.values())), "rate": args.rate}}
        text = summary(runs, diff)
    else:
        report = {"runs": runs, "load": [load, load_after]}
        text = json.dumps(runs, indent=1, default=str)
    if args.json:
        print(json.dumps(report, indent=1, default=str))
    else:
        print(text)
        print(f"load average before {load[0]:.1f}, after {load_after[0]:.1f}")
    if keep is not None:
        (keep / "report.json").write_text(json.dumps(report, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
