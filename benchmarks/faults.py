"""Faults, counted: hostile input on every route and topic, SIGKILL, a broker restart and 5x overload on one worker.

Each part starts what it needs (its own embedded broker, one worker process: ingest, normalize, correlate) and
counts what it did to the pipeline; the whole prints one table and writes it into `benchmarks/RESULTS.md`.

- **inputs per route**: every bad body of the ingest fuzz catalogue (`tests/test_ingest_fuzz.py` when present,
  else a compact set of this file) posted to each `POST /ingest/*` route; the answers by class (400/413/415 are
  right, 202 means the body was valid after all, 5xx is a fault).
- **inputs per topic**: every named hostile record of the topic fuzz suite (`tests/test_fuzz_topics.py` when
  present, else this file's set: null key/value, empty, invalid UTF-8, wrong-shape JSON, 2 MB of junk) written
  straight onto each consumed topic; then per record (partition, offset): `dead-lettered` when a letter's
  headers name it, `processed` when the agents' group committed past it without a letter, `lost` otherwise
  (so written = processed + dead-lettered + lost), with the agent's `aiops_records_consumed_total` beside it.
- **worker crashes**: worker processes that died, plus agents Faust restarted (`Crashed reason` in its log).
- **alerts lost**: alerts answered 202 that are in no incident once the backlog drained (the worker's
  `/incidents/`, summing each incident's distinct fingerprints; every alert has its own fingerprint), across
  SIGKILL (the worker killed twice mid-stream and restarted), a broker restart (stopped by pid and started
  empty on the same port while a sender posts and retries on 503, as Alertmanager does) and overload (an open
  loop at `--factor` (5) times the fold rate measured first, for `--duration` seconds).
- **peak RSS** of the worker and the broker during the overload (VmRSS sampled every 0.5 s), with the peak
  of each half, so growth that does not stop shows; the bound is stated beside it.

    .venv/bin/python benchmarks/faults.py              # overload 300 s (and its drain)
    .venv/bin/python benchmarks/faults.py --quick      # overload 5 s, smaller waves: proves it works
    .venv/bin/python benchmarks/faults.py --json       # the report as one JSON object

It measures whatever the code does: where a defence is missing (admission control, dead-lettering of huge
records) the table shows the loss or the growth, and says so.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import importlib
import json
import os
import platform
import random
import sys
import tempfile
import threading
import time
import urllib.error
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from results_md import write_section  # noqa: E402

from stream.broker import start_broker  # noqa: E402
from stream.ingest import ENDPOINTS  # noqa: E402
from tests.workers import Deployment, WorkerProc  # noqa: E402

BEGIN, END = "<!-- faults.py: generated from here -->", "<!-- faults.py: to here -->"
SECTION = "## Faults: hostile input, SIGKILL, broker restart, overload"
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
SERVICES = [f"svc-{i:02d}" for i in range(16)]
SYMPTOMS = ["HighLatency", "ErrorRate", "DiskFull"]
AGENTS = {"alerts_raw": "normalize", "alerts": "correlate", "tickets_raw": "triage", "incidents": "incident_sla"}
HOST = "127.0.0.1"
RSS_CAP_MB = 1500.0


# ---------------------------------------------------------------- the inputs


def route_cases(name: str) -> tuple[list[bytes], str]:
    """Bad bodies for one ingest route, and where they came from."""
    try:  # the ingest fuzz suite, when it is in the tree
        catalogue = importlib.import_module("tests.test_ingest_fuzz").catalogue
    except ImportError:
        return compact_bodies(name), "benchmarks/faults.py"
    return list(catalogue(name)), "tests/test_ingest_fuzz.py"


def compact_bodies(name: str) -> list[bytes]:
    """This file's own bad bodies: not JSON, JSON of no use, wrong shapes of each route's document."""
    rng = random.Random(16)
    junk = [
        b"", b" ", b"\x00" * 64, b"\xff\xfe\xfd", b"null", b"true", b"0", b"1e400", b'"text"', b"[", b"{", b"{]",
        b"[" * 5000 + b"]" * 5000, b'{"a": NaN}', b"{'single': 1}", b"<alert/>", b'{"a": "\xff\xfe"}',
        b'{"a": 1}{"b": 2}', b"[null]", b"[[]]", b"[1, 2, 3]", bytes(rng.randrange(256) for _ in range(512)),
        gzip.compress(b"{}"), b"a" * 60_000,
    ]
    shapes: dict[str, dict[str, Any]] = {
        "alertmanager": {"version": "4", "status": "firing", "alerts": [{"labels": {"alertname": "X"},
                                                                          "startsAt": "2026-03-02T10:00:00Z"}]},
        "zabbix": {"eventid": "1", "name": "x", "clock": 1772359205, "host": "h", "value": "1"},
        "alerts": {"starts_at": 1772359205, "labels": {"alertname": "X", "service": "s"}},
        "tickets": {"ticket_id": "T-1", "text": "link down", "created_at": 1772359205},
    }
    doc = shapes[name]
    wrong: list[bytes] = []
    for field_name in doc:
        wrongs: tuple[Any, ...] = (None, "x", -1, 1e300, [], {}, True)
        for value in wrongs:
            wrong.append(orjson.dumps({**doc, field_name: value}))
        wrong.append(orjson.dumps({k: v for k, v in doc.items() if k != field_name}))
    return list(dict.fromkeys(junk + wrong))


Record = tuple[bytes | None, bytes | None]


def topic_cases(topic_field: str) -> tuple[list[Record], str]:
    """Hostile records for one consumed topic, and where they came from."""
    try:  # the topic fuzz suite, when it is in the tree
        named_cases = importlib.import_module("tests.test_fuzz_topics").named_cases
    except ImportError:
        return compact_records(), "benchmarks/faults.py"
    return list(named_cases(topic_field)), "tests/test_fuzz_topics.py"


def compact_records() -> list[Record]:
    """This file's own hostile records (the issue's: null key or value, junk, 2 MB, invalid UTF-8, wrong shapes)."""
    rng = random.Random(53)
    junk = bytes(rng.getrandbits(8) for _ in range(4096))
    return [
        (None, b"junk with a null key"), (b"generic", None), (b"k", b""), (b"", b""),
        (b"k", junk[:512]), (b"\xff\xfe", b"\xff\xfe\xfd\xfc"), (b"k", b'{"a": "\xff\xfe"}'), (b"k", b"\x00" * 100),
        (b"k", b"[]"), (b"k", b"{}"), (b"k", b"null"), (b"k", b"true"), (b"k", b"1"), (b"k", b'"text"'),
        (b"k", b"1e400"), (b"k", b"[" * 5000 + b"]" * 5000), (b"generic", b'{"starts_at": "yesterday"}'),
        (b"alertmanager", b'{"version": "4", "alerts": "many"}'), (b"zabbix", b'{"eventid": []}'),
        (b"k", junk * 512),  # 2 MB of junk: above the producer's 1 MB default, as in the issue
    ]


# ---------------------------------------------------------------- a worker and what it says


def start(dep: Deployment, name: str) -> WorkerProc:
    """A worker of `dep`, waited for until /readyz says ready."""
    worker = dep.start_worker(name)
    worker.wait_web()
    wait_ready(worker)
    return worker


def wait_ready(worker: WorkerProc, timeout: float = 90.0) -> None:
    """Until /readyz answers 200 (it waits for the agents' first assignment)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if worker.proc.poll() is not None:
            raise RuntimeError(f"worker exited:\n{worker.tail()}")
        try:
            if worker.get("/readyz", timeout=3).get("ready"):
                return
        except urllib.error.HTTPError:
            pass  # 503: not ready yet
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.3)
    raise TimeoutError(f"worker not ready:\n{worker.tail()}")


def agent_crashes(worker: WorkerProc) -> int:
    """Agents Faust restarted in this worker's log (mode logs `Crashed reason=` for each)."""
    return worker.log.read_text(errors="replace").count("Crashed reason=")


def correlated(worker: WorkerProc) -> int:
    """Distinct alerts in the incidents this worker holds (each benchmark alert has its own fingerprint)."""
    return sum(i["distinct_fingerprints"] for i in worker.get("/incidents/", timeout=30)["incidents"])


def members(worker: WorkerProc, prefix: str) -> tuple[int, int]:
    """Distinct alerts whose fingerprint starts with `prefix` in the incidents this worker holds, from each
    incident's member list, and how many of them sit in more than one incident (the summed counts of
    `correlated` would count those twice)."""
    seen: Counter[str] = Counter()
    for incident_id in dict.fromkeys(i["id"] for i in worker.get("/incidents/", timeout=30)["incidents"]):
        detail = worker.get(f"/incidents/{incident_id}/", timeout=30)
        seen.update(fp for fp in detail["members"] if fp.startswith(prefix))
    return len(seen), sum(1 for n in seen.values() if n > 1)


def wait_correlated(worker: WorkerProc, want: int, quiet_s: float, timeout: float,
                    abort: threading.Event | None = None) -> int:
    """Until `want` alerts are in incidents, nothing changed for `quiet_s`, or `abort` is set; the last count."""
    deadline, last, changed = time.monotonic() + timeout, -1, time.monotonic()
    while time.monotonic() < deadline and not (abort is not None and abort.is_set()):
        try:
            got = correlated(worker)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            got = last
        if got >= want:
            return got
        if got != last:
            last, changed = got, time.monotonic()
        elif time.monotonic() - changed > quiet_s:
            break
        time.sleep(0.5)
    return max(last, 0)


def post(port: int, path: str, body: bytes, timeout: float = 30.0) -> int:
    """One POST with http.client; the status, or 0 when the connection failed."""
    import http.client

    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        resp.read()
        return resp.status
    except OSError:
        return 0
    finally:
        conn.close()


def alert_body(tag: str, serial: int, alerts: int, starts_at: float) -> bytes:
    """NDJSON of `alerts` generic alerts over every service and symptom, each with its own fingerprint."""
    lines = []
    for i in range(alerts):
        service, symptom = SERVICES[i % len(SERVICES)], SYMPTOMS[(i // len(SERVICES)) % len(SYMPTOMS)]
        lines.append(orjson.dumps({"starts_at": starts_at, "fingerprint": f"{tag}-{serial}-{i}",
                                   "labels": {"alertname": symptom, "service": service}}))
    return b"\n".join(lines)


@dataclass
class Sender:
    """Posts bodies one after another to whichever worker `port()` names, retrying each until it gets a 202
    (as Alertmanager retries on 5xx and on a refused connection); counts every answer."""

    port: Callable[[], int]
    answers: Counter[int] = field(default_factory=Counter)
    accepted_alerts: int = 0

    def send(self, body: bytes, alerts: int, give_up_s: float = 120.0) -> bool:
        """Post until 202 (True) or `give_up_s` passed (False)."""
        deadline = time.monotonic() + give_up_s
        while time.monotonic() < deadline:
            status = post(self.port(), "/ingest/alerts", body)
            self.answers[status] += 1
            if status == 202:
                self.accepted_alerts += alerts
                return True
            if 400 <= status < 500:
                return False
            time.sleep(0.2)
        return False


# ---------------------------------------------------------------- part 1: hostile input


def inputs_on_routes(worker: WorkerProc) -> dict[str, Any]:
    """Every bad body on every route: the answers by status class."""
    rows: dict[str, Any] = {}
    for endpoint in ENDPOINTS:
        cases, origin = route_cases(endpoint.name)
        codes: Counter[str] = Counter()
        for body in cases:
            status = post(worker.web_port, endpoint.path, body)
            codes[str(status)] += 1
        rows[endpoint.name] = {"tried": len(cases), "codes": dict(sorted(codes.items())), "from": origin,
                               "faults": sum(n for c, n in codes.items() if c == "0" or (c.startswith("5") and c != "503"))}
    return rows


async def produce(bootstrap: str, topic: str, records: Sequence[Record]) -> list[tuple[int, int]]:
    """Write records and return their (partition, offset); a producer with room for 32 MB records."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", max_request_size=32 * 1024 * 1024)
    await producer.start()
    try:
        futures = [await producer.send(topic, value, key=key) for key, value in records]
        return [(m.partition, m.offset) for m in await asyncio.gather(*futures)]
    finally:
        await producer.stop()


async def letters(bootstrap: str, topic: str, quiet_s: float = 2.0) -> list[dict[str, str]]:
    """The headers of every dead letter so far (read until `quiet_s` passed with nothing new)."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest",
                                enable_auto_commit=False, fetch_max_wait_ms=100, max_partition_fetch_bytes=64 << 20)
    await consumer.start()
    out: list[dict[str, str]] = []
    try:
        last = time.monotonic()
        while time.monotonic() - last < quiet_s:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                last = time.monotonic()
                out += [{k: v.decode("utf-8", "replace") for k, v in r.headers} for r in records]
    finally:
        await consumer.stop()
    return out


def inputs_on_topics(dep: Deployment, worker: WorkerProc, settle_s: float) -> dict[str, Any]:
    """Every hostile record on every consumed topic: written, processed, dead-lettered, lost; by offset.

    A record is dead-lettered when a letter names its topic, partition and offset; processed when the agents'
    group committed past it and no letter names it (an agent acknowledges a batch only once every record of
    it was handled or its letter delivered, so a commit past a record is its processing); lost otherwise.
    `counted` is the agent's own `aiops_records_consumed_total` over the same time, a cross-check: it counts
    processed and dead-lettered records alike, on `incidents` also the events the earlier rows caused, and on the
    routing topic also stage 2's idle heartbeats (records `[]`, written by the worker itself), so it may exceed
    `tried`; the verdicts come from the offsets alone.
    """
    rows: dict[str, Any] = {}
    for topic_field, agent in AGENTS.items():
        cases, origin = topic_cases(topic_field)
        cases = [c for c in cases if c != (None, None)]  # aiokafka cannot write a record without key and value
        before = worker.metric("aiops_records_consumed_total", agent=agent) if worker.proc.poll() is None else 0.0
        written = asyncio.run(produce(dep.broker.bootstrap, dep.topic(topic_field), cases))
        behind = wait_committed(dep, dep.topic(topic_field), written, settle_s)
        counted = worker.metric("aiops_records_consumed_total", agent=agent) - before
        rows[topic_field] = {"tried": len(written), "counted": int(counted), "from": origin, "offsets": written,
                             "behind": behind}
    headers = asyncio.run(letters(dep.broker.bootstrap, dep.topic("deadletter")))
    for topic_field, row in rows.items():
        mine = {(h.get("partition"), h.get("offset")) for h in headers if h.get("topic") == dep.topic(topic_field)}
        lettered = {(p, o) for p, o in row.pop("offsets") if (str(p), str(o)) in mine}
        behind = row.pop("behind")
        row["dead_lettered"] = len(lettered)
        row["processed"] = row["tried"] - len(lettered) - len(behind - lettered)
        row["lost"] = len(behind - lettered)
    return rows


def wait_committed(dep: Deployment, topic: str, written: Sequence[tuple[int, int]],
                   timeout: float) -> set[tuple[int, int]]:
    """Until the agents' group has committed past every written record; those it has not, at the end."""
    from tests.test_fuzz_topics import committed_offsets

    partitions = sorted({p for p, _ in written})
    deadline = time.monotonic() + timeout
    while True:
        committed = asyncio.run(committed_offsets(dep.broker.bootstrap, dep.app_id, topic, partitions))
        behind = {(p, o) for p, o in written if committed[p] <= o}
        if not behind or time.monotonic() > deadline:
            return behind
        time.sleep(0.5)


# ---------------------------------------------------------------- part 2: SIGKILL, broker restart


def across_sigkill(dep: Deployment, bodies: int, alerts: int, kills: int = 2) -> dict[str, Any]:
    """Waves of alerts with the worker SIGKILLed right after each of the first `kills` waves, then restarted."""
    holder = [start(dep, "kill-0")]
    sender = Sender(lambda: holder[0].web_port)
    starts_at = time.time()
    waves = kills + 1
    for wave in range(waves):
        for serial in range(bodies // waves):
            sender.send(alert_body(f"kill{wave}", serial, alerts, starts_at), alerts)
        if wave < kills:
            holder[0].kill()  # SIGKILL by pid: no commit, no flush, whatever was in flight
            holder[0] = start(dep, f"kill-{wave + 1}")
    wait_correlated(holder[0], sender.accepted_alerts, quiet_s=30, timeout=300)
    worker = holder[0]
    got, twice = members(worker, "kill")
    worker.stop()
    return {"accepted": sender.accepted_alerts, "correlated": got, "lost": sender.accepted_alerts - got,
            "in_two_incidents": twice, "kills": kills, "answers": dict(sender.answers)}


def across_broker_restart(workdir: Path, bodies: int, alerts: int) -> dict[str, Any]:
    """Three waves over the same keys: one just before the broker is stopped by pid, one posted (and retried on
    503, as Alertmanager does) while it is down and coming back empty on the same port, one once ready again;
    the last one also rebuilds every partition's engine, so /incidents/ shows what survived."""
    broker = start_broker(log_path=workdir / "restart-tansu-1.log")
    dep = Deployment(broker, workdir / "restart", extra_env=worker_env())
    dep.workdir.mkdir(parents=True, exist_ok=True)
    dep.create_topics()
    worker = start(dep, "restart")
    sender = Sender(lambda: worker.web_port)
    starts_at, third = time.time(), max(1, bodies // 3)
    brokers = [broker]
    readiness: list[tuple[float, bool]] = []
    try:
        for serial in range(third):
            sender.send(alert_body("restart", serial, alerts, starts_at), alerts)
        before = sender.accepted_alerts
        in_incidents = correlated(worker)  # the rest of `before` is still on its way: only the broker holds it
        broker.stop()
        stopped = time.monotonic()

        def post_while_down() -> None:
            for serial in range(third, 2 * third):
                sender.send(alert_body("restart", serial, alerts, starts_at), alerts)

        thread = threading.Thread(target=post_while_down, name="faults-sender")
        thread.start()
        time.sleep(3.0)
        second = start_broker(port=broker.port, log_path=workdir / "restart-tansu-2.log")
        brokers.append(second)
        while time.monotonic() - stopped < 120:
            try:
                ready = bool(worker.get("/readyz", timeout=3).get("ready"))
            except urllib.error.HTTPError:
                ready = False
            readiness.append((round(time.monotonic() - stopped, 1), ready))
            if ready:
                break
            time.sleep(0.3)
        thread.join()
        for serial in range(2 * third, 3 * third):
            sender.send(alert_body("restart", serial, alerts, starts_at), alerts)
        wait_correlated(worker, sender.accepted_alerts, quiet_s=20, timeout=180)
        got, twice = members(worker, "restart")
        return {"accepted": sender.accepted_alerts, "correlated": got, "lost": sender.accepted_alerts - got,
                "in_two_incidents": twice,
                "in_flight_at_stop": before - in_incidents, "answers": dict(sender.answers),
                "ready_again_s": next((t for t, r in readiness if r), None),
                "crashes": agent_crashes(worker) + (worker.proc.poll() is not None)}
    finally:
        worker.stop()
        for b in brokers:
            b.stop()


# ---------------------------------------------------------------- part 3: overload


def rss_mb(pid: int) -> float:
    """Resident memory of a process in MB (Linux /proc), 0.0 when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


async def open_loop(url: str, make: Callable[[int], bytes], rate_per_s: float, duration_s: float,
                    answers: Counter[int], max_in_flight: int = 256, count: int | None = None,
                    halt: threading.Event | None = None) -> int:
    """Bodies on a fixed schedule for `duration_s` (or until `count` were sent; not retried: a 503 counts as
    refused); the bodies sent."""
    sem = asyncio.Semaphore(max_in_flight)
    tasks: set[asyncio.Task[None]] = set()
    timeout = aiohttp.ClientTimeout(total=30)

    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=max_in_flight)) as s:
        async def one(body: bytes) -> None:
            try:
                async with s.post(url, data=body, headers={"Content-Type": "application/json"}) as resp:
                    await resp.read()
                    answers[resp.status] += 1
            except (aiohttp.ClientError, TimeoutError):
                answers[0] += 1
            finally:
                sem.release()

        started, sent = time.monotonic(), 0
        while ((now := time.monotonic()) - started < duration_s or (count is not None and sent < count)) and not (
                halt is not None and halt.is_set()):
            due = int((now - started) * rate_per_s) + 1
            if count is not None:
                due = min(due, count)
            while sent < due and not sem.locked():  # behind schedule and room in flight
                await sem.acquire()
                task = asyncio.create_task(one(make(sent)))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                sent += 1
            await asyncio.sleep(0.002)
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
    return sent


def folded(worker: WorkerProc) -> float:
    """Alert records correlate has folded so far."""
    return worker.metric("aiops_alert_records_correlated_total")


def fold_rate_of(worker: WorkerProc, starts_at: float, per_body: int, bodies: int) -> tuple[float, int, str]:
    """Alerts/s correlate folds: a burst posted as fast as the ingest takes it, then the slope of the folded count
    from the end of the posting until 90% is folded (the posting competes for the same cores); the alerts
    accepted, and how the rate was taken."""
    answers: Counter[int] = Counter()
    burst = [alert_body("calib", n, per_body, starts_at) for n in range(bodies)]
    url = f"http://{HOST}:{worker.web_port}/ingest/alerts"
    posting = time.monotonic()
    asyncio.run(open_loop(url, lambda n: burst[n % bodies], 10_000.0, 0.0, answers, max_in_flight=16, count=bodies))
    posted_s = time.monotonic() - posting
    accepted = answers[202] * per_body
    t0, c0 = time.monotonic(), folded(worker)
    while (c := folded(worker)) < 0.9 * accepted and time.monotonic() - t0 < 300:
        time.sleep(0.25)
    t1 = time.monotonic()
    wait_correlated(worker, accepted, quiet_s=20, timeout=300)
    if c - c0 < 0.2 * accepted or t1 - t0 < 1.0:  # correlate kept up with the ingest: no backlog to time
        return accepted / posted_s, accepted, "no backlog formed: the ingest's rate, a lower bound"
    return (c - c0) / (t1 - t0), accepted, "slope of the folded count while a burst's backlog drained"


def overload(workdir: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Fold rate first (a burst, its drain), then `factor` times it for `duration` s, then the drain."""
    broker = start_broker(log_path=workdir / "overload-tansu.log")
    dep = Deployment(broker, workdir / "overload", extra_env=worker_env())
    dep.workdir.mkdir(parents=True, exist_ok=True)
    dep.create_topics()
    worker = start(dep, "overload")
    per_body = args.overload_alerts
    starts_at = time.time()
    try:
        fold_rate, calibrated, fold_note = fold_rate_of(worker, starts_at, per_body, args.calibration_bodies)

        template = alert_body("load", 0, per_body, starts_at).replace(b"load-0-", b"load-@@-")
        answers: Counter[int] = Counter()
        samples: list[tuple[float, float, float]] = []
        stop = threading.Event()

        halt, abort = threading.Event(), threading.Event()
        halted: list[float] = []
        aborted: list[float] = []

        def sample() -> None:
            begun = time.monotonic()
            while not stop.is_set():
                at, w, b = time.monotonic() - begun, rss_mb(worker.proc.pid), rss_mb(broker.pid)
                samples.append((at, w, b))
                if max(w, b) > args.rss_cap_mb and not halt.is_set():  # protect the machine, and say so
                    halted.append(round(at, 1))
                    halt.set()
                if max(w, b) > 2 * args.rss_cap_mb and not abort.is_set():  # the drain grows it further: stop
                    aborted.append(round(at, 1))
                    abort.set()
                stop.wait(0.5)

        sampler = threading.Thread(target=sample, name="faults-rss")
        sampler.start()
        offered = args.factor * fold_rate / per_body
        url = f"http://{HOST}:{worker.web_port}/ingest/alerts"
        t1 = time.monotonic()
        sent = asyncio.run(open_loop(url, lambda n: template.replace(b"@@", str(n).encode()), offered,
                                     args.duration, answers, halt=halt))
        load_s = time.monotonic() - t1
        accepted = calibrated + answers[202] * per_body
        drained = wait_correlated(worker, accepted, quiet_s=args.drain_quiet, timeout=args.drain_timeout,
                                  abort=abort)
        drain_s = time.monotonic() - t1 - load_s
        stop.set()
        sampler.join()
        half = load_s / 2
        first = [s for s in samples if s[0] <= half] or samples
        second = [s for s in samples if half < s[0] <= load_s] or samples
        drain = [s for s in samples if s[0] > load_s] or samples
        return {
            "fold_rate": round(fold_rate), "fold_rate_note": fold_note, "factor": args.factor, "duration_s": args.duration,
            "offered_alerts_per_s": round(offered * per_body), "achieved_alerts_per_s": round(sent * per_body / load_s),
            "bodies_sent": sent, "answers": dict(answers), "accepted": accepted, "correlated": drained,
            "lost": accepted - drained, "drain_s": round(drain_s, 1),
            "worker_rss_peak_mb": round(max(s[1] for s in samples), 1),
            "broker_rss_peak_mb": round(max(s[2] for s in samples), 1),
            "worker_rss_phases_mb": [round(max(s[1] for s in part), 1) for part in (first, second, drain)],
            "broker_rss_phases_mb": [round(max(s[2] for s in part), 1) for part in (first, second, drain)],
            "broker_mb_per_100k_alerts": round(100_000 * (max(s[2] for s in samples) - samples[0][2])
                                               / max(1, answers[202] * per_body), 1),
            "crashes": agent_crashes(worker) + (worker.proc.poll() is not None),
            "halted_at_s": halted[0] if halted else None, "rss_cap_mb": args.rss_cap_mb, "load_s": round(load_s, 1),
            "aborted_at_s": aborted[0] if aborted else None,
        }
    finally:
        worker.stop()
        broker.stop()


# ---------------------------------------------------------------- the whole run


def worker_env() -> dict[str, str]:
    """The workers' settings: event time never follows the clock during a pause (as in the tests), less log."""
    return {"AIOPS_IDLE_ADVANCE": "300", "AIOPS_LOG_LEVEL": "warning"}


def bench(args: argparse.Namespace) -> dict[str, Any]:
    """Every part; one report."""
    report: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                          "date": time.strftime("%Y-%m-%d")}, "quick": args.quick}
    with tempfile.TemporaryDirectory(prefix="aiops-faults-") as tmp:
        workdir = Path(tmp)
        broker = start_broker(log_path=workdir / "tansu.log")
        try:
            dep = Deployment(broker, workdir, extra_env=worker_env())
            dep.create_topics()
            worker = start(dep, "inputs")
            try:
                report["routes"] = inputs_on_routes(worker)
                report["topics"] = inputs_on_topics(dep, worker, settle_s=args.settle)
                report["inputs_crashes"] = agent_crashes(worker) + (worker.proc.poll() is not None)
            finally:
                worker.stop()
            report["sigkill"] = across_sigkill(dep, args.wave_bodies, args.wave_alerts)
        finally:
            broker.stop()
        report["broker_restart"] = across_broker_restart(workdir, args.wave_bodies, args.wave_alerts)
        report["overload"] = overload(workdir, args)
    return report


def table(rep: dict[str, Any]) -> str:
    """The report as one markdown table, and the lines that go with it."""
    rows: list[tuple[str, str, str]] = []
    for name, r in rep["routes"].items():
        rows.append((f"bad bodies on `POST /ingest/{name}`", f"{r['tried']} tried", f"answers {r['codes']}; "
                     f"5xx other than 503 (shed: a sender retries it) or dropped connections: {r['faults']}"))
    for name, r in rep["topics"].items():
        rows.append((f"hostile records on `{name}`", f"{r['tried']} tried",
                     f"processed {r['processed']}, dead-lettered {r['dead_lettered']}, **lost {r['lost']}** "
                     f"(the agent counted {r['counted']})"))
    crashes = rep["inputs_crashes"] + rep["broker_restart"]["crashes"] + rep["overload"]["crashes"]
    rows.append(("worker crashes (processes dead + agents restarted)", "all parts", f"**{crashes}**"))
    k, b, o = rep["sigkill"], rep["broker_restart"], rep["overload"]
    rows.append((f"alerts across SIGKILL x{k['kills']}", f"{k['accepted']} accepted",
                 f"in incidents {k['correlated']} (distinct members; in two incidents: {k['in_two_incidents']}), "
                 f"**lost {k['lost']}**"))
    rows.append(("alerts across a broker restart (embedded, back empty)", f"{b['accepted']} accepted",
                 f"in incidents {b['correlated']} (distinct members; in two incidents: {b['in_two_incidents']}), "
                 f"**lost {b['lost']}** (accepted but not yet in an incident when "
                 f"the broker stopped: {b['in_flight_at_stop']}); ready again {b['ready_again_s']} s after the "
                 f"stop (3 s down); answers {b['answers']}"))
    halted = ""
    if o["halted_at_s"] is not None:
        when = "load stopped at" if o["halted_at_s"] < o["load_s"] else "after the load, at"
        halted = f"; {when} {o['halted_at_s']} s RSS passed the {o['rss_cap_mb']:.0f} MB cap"
    if o["aborted_at_s"] is not None:
        halted += (f"; **drain aborted** at {o['aborted_at_s']} s (RSS passed {2 * o['rss_cap_mb']:.0f} MB): the "
                   "loss is not measured, the alerts not yet in incidents were still in the backlog")
    sent_factor = o["achieved_alerts_per_s"] / o["fold_rate"] if o["fold_rate"] else 0.0
    overload_lost = "lost not measured" if o["aborted_at_s"] is not None else f"**lost {o['lost']}**"
    rows.append((f"alerts across {o['factor']}x overload, {o['duration_s']:.0f} s",
                 f"{o['accepted']} accepted",
                 f"in incidents {o['correlated']} after a {o['drain_s']} s drain, "
                 f"{overload_lost}; "
                 f"offered {o['offered_alerts_per_s']}/s, sent {o['achieved_alerts_per_s']}/s "
                 f"(**{sent_factor:.1f}x** the fold rate {o['fold_rate']}/s: {o['fold_rate_note']}){halted}"))
    rows.append(("503s under overload", f"{o['bodies_sent']} bodies", f"**{o['answers'].get(503, 0)}** "
                 f"(answers {o['answers']})"))
    rows.append(("peak RSS under overload: worker", "VmRSS / 0.5 s",
                 f"**{o['worker_rss_peak_mb']} MB** (peaks of the load's 1st half, 2nd half, the drain: "
                 f"{o['worker_rss_phases_mb']})"))
    rows.append(("peak RSS under overload: broker", "VmRSS / 0.5 s",
                 f"**{o['broker_rss_peak_mb']} MB** (peaks of the load's 1st half, 2nd half, the drain: "
                 f"{o['broker_rss_phases_mb']}; grows {o['broker_mb_per_100k_alerts']} MB per 100,000 alerts "
                 "accepted: the embedded broker frees nothing)"))
    lines = ["| what | inputs | outcome |", "|---|---|---|"] + [f"| {a} | {b_} | {c} |" for a, b_, c in rows]
    return "\n".join(lines)


def bounded(phases: Sequence[float]) -> str:
    """Whether memory stopped growing: the peaks of the load's second half and of the drain within 10% of the
    first half's (a backlog that grows under the load shows in either)."""
    first, second, drain = phases
    if second > first * 1.10:
        return f"no: {first:.0f} -> {second:.0f} MB from the load's first half to its second"
    if drain > first * 1.10:
        return f"no: {first:.0f} MB under the load, {drain:.0f} MB while its backlog drained"
    return f"yes, within 10% of {first:.0f} MB"


def markdown(rep: dict[str, Any], command: str) -> str:
    """The RESULTS.md section: the table, the bound, the command, the machine."""
    o = rep["overload"]
    origins = sorted({r["from"] for r in rep["routes"].values()} | {r["from"] for r in rep["topics"].values()})
    return "\n".join([
        BEGIN, "",
        f"`{command}` on {rep['machine']['cpus']} CPUs, Python {rep['machine']['python']}, "
        f"{rep['machine']['date']}; cases from {', '.join(origins)}.", "",
        table(rep), "",
        f"Memory bounded under overload (the peaks of the load's second half and of the drain within 10% of the "
        f"first half's)? Worker {bounded(o['worker_rss_phases_mb'])}; broker {bounded(o['broker_rss_phases_mb'])}. "
        "Admission control (503 past a backlog) bounds the backlog, so the worker's memory; the embedded broker "
        "(Tansu 0.6.0, memory storage) keeps every record accepted, consumed or not (it implements neither "
        "retention nor DeleteRecords: README, \"Admission control\"), so its memory is bounded only by what is "
        f"accepted: {o['broker_mb_per_100k_alerts']} MB per 100,000 alerts accepted in this run, which shedding "
        "holds to the fold rate. "
        "Lost = accepted (202) minus the distinct alerts in the worker's incidents once the backlog drained; "
        "a broker restart loses by design what only the embedded broker held (alerts accepted but not yet "
        "normalized when it stopped).", "",
        END,
    ])


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Flags; `--quick` scales every part down."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="overload 5 s and small waves (a few minutes in all)")
    p.add_argument("--duration", type=float, default=None, help="overload seconds (default 300, quick 5)")
    p.add_argument("--factor", type=float, default=5.0, help="overload as a multiple of the fold rate")
    p.add_argument("--rss-cap-mb", type=float, default=RSS_CAP_MB, help="stop the overload when the worker or the "
                   "broker passes this resident size, and the drain at twice it, rather than let the machine run "
                   "out of memory (the embedded broker grew to 13 GB draining a 5-minute overload)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--no-write", action="store_true", help="do not update benchmarks/RESULTS.md")
    args = p.parse_args(argv)
    quick = args.quick
    args.duration = args.duration if args.duration is not None else (5.0 if quick else 300.0)
    args.wave_bodies = 30 if quick else 150
    args.wave_alerts = 20 if quick else 50
    args.overload_alerts = 200
    args.calibration_bodies = 400 if quick else 1500
    args.settle = 15.0 if quick else 60.0
    args.drain_quiet = 30.0 if quick else 60.0
    args.drain_timeout = 300.0 if quick else 3600.0
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run, print the table (or JSON), write RESULTS.md."""
    args = parse_args(argv)
    rep = bench(args)
    if args.json:
        print(json.dumps(rep, indent=2, default=str))
    else:
        print(table(rep))
    if not args.no_write:
        command = "python benchmarks/faults.py" + (" --quick" if args.quick else "") + (
            f" --rss-cap-mb {args.rss_cap_mb:.0f}" if args.rss_cap_mb != RSS_CAP_MB else "")
        write_section(RESULTS, markdown(rep, command), begin=BEGIN, end=END, heading=SECTION)
    return 0


if __name__ == "__main__":
    sys.exit(main())
