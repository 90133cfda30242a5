"""HTTP ingest: the pure checks, the request path against a fake broker, then a real worker on Tansu.

The integration tests post through the worker's real Faust views to a real broker and count what landed
on `alerts` / `tickets.raw`: every 202 is there (alerts as records on the partition of their correlation key),
nothing refused is. The 503 test runs its own Tansu,
stops it under the worker and starts a fresh one on the same port.
"""

from __future__ import annotations

import asyncio
import gzip
import http.client
import json
import subprocess
import sys
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from aiokafka import AIOKafkaConsumer
from prometheus_client import REGISTRY

from correlator import metrics
from correlator.records import AlertRecord, record_of
from correlator.sources import parse
from stream.batches import decode_batch
from stream.broker import EmbeddedBroker, start_broker
from stream.ingest import (
    ENDPOINTS,
    Ingest,
    Readiness,
    Refusal,
    parse_tickets,
    producer_options,
    unavailable,
)
from stream.auth import TokenBook
from stream.sends import key_partition
from stream.settings import Settings

from .paths import LAB_STORM, ROOT
from .test_sources_alertmanager import webhook
from .test_sources_zabbix import problem
from .workers import Deployment, WorkerProc

TOKEN = "t0ken-for-tests"
LIMIT = 64 * 1024
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def am_body(**changes: Any) -> bytes:
    """A valid Alertmanager webhook, optionally with fields replaced (None deletes)."""
    body = webhook()
    for name, value in changes.items():
        if value is None:
            body.pop(name, None)
        else:
            body[name] = value
    return orjson.dumps(body)


def am_without_starts_at() -> bytes:
    body = webhook()
    del body["alerts"][0]["startsAt"]
    return orjson.dumps(body)


def ticket(ticket_id: str = "T-1", **extra: Any) -> dict[str, Any]:
    return {"ticket_id": ticket_id, "text": "VPN down for the whole office", "created_at": 1772359205, **extra}


GENERIC_ONE = b'{"starts_at": 1772359205, "labels": {"alertname": "DiskFull", "service": "db"}}'
SOURCE_OF = {"alertmanager": "alertmanager", "zabbix": "zabbix", "alerts": "generic"}
"""The adapter of each alert endpoint."""
PARTITIONS = 4
"""Partitions of `alerts` in these tests (the settings' default, and the deployments')."""


def expected_records(endpoint: str, body: bytes) -> list[AlertRecord]:
    """What the ingest must write for an alert body (no time guard applies to these bodies: horizon off)."""
    return [record_of(a) for a in parse(SOURCE_OF[endpoint], body)]


def on_alerts(values: Sequence[tuple[int, bytes]]) -> list[AlertRecord]:
    """The alert records of `alerts` records given as (partition, value); each must sit on its key's partition."""
    out: list[AlertRecord] = []
    for partition, value in values:
        segments, received_ms = decode_batch(value)
        assert received_ms and all(s.source is None for s in segments)  # the ingest's: correlate numbers them
        for segment in segments:
            for record in segment.records:
                assert key_partition(record.key.encode(), PARTITIONS) == partition, record.key
                out.append(record)
    return out


def hop_count(endpoint: str, body: bytes) -> int:
    """Records the ingest writes for an alert body: one per partition its alerts' keys hash to."""
    return len({key_partition(r.key.encode(), PARTITIONS) for r in expected_records(endpoint, body)})


def _sorted(records: Sequence[AlertRecord]) -> list[AlertRecord]:
    return sorted(records, key=lambda r: (r.key, r.fingerprint, r.starts_at, r.status))


# (endpoint, body, alerts or tickets accepted, records written)
ACCEPTED = [
    ("alertmanager", am_body(), 3, hop_count("alertmanager", am_body())),
    ("zabbix", orjson.dumps(problem()), 1, 1),
    ("alerts", GENERIC_ONE, 1, 1),
    ("alerts", b"[" + GENERIC_ONE + b"," + GENERIC_ONE + b"]", 2, 1),
    ("alerts", LAB_STORM.read_bytes(), 40, hop_count("alerts", LAB_STORM.read_bytes())),
    ("tickets", orjson.dumps(ticket()), 1, 1),
    ("tickets", orjson.dumps([ticket("T-2"), ticket("T-3", customer="acme")]), 2, 2),
    # the helpdesk closing a ticket: what the triage agent accepts is accepted here too (issue 19)
    ("tickets", orjson.dumps({"ticket_id": "T-2", "status": "resolved", "who": "desk"}), 1, 1),
    # an empty batch is accepted and written nowhere (README, HTTP ingest)
    ("tickets", b"[]", 0, 0),
    ("alerts", b"[]", 0, 0),
    ("alertmanager", am_body(alerts=[]), 0, 0),
]

# (endpoint, body, category, field)
INVALID = [
    ("alerts", b"", "empty_body", "body"),
    ("alerts", b"{\"starts_at\": ", "malformed_json", "body"),
    ("alerts", b'{"labels": {"alertname": "X"}}', "missing_field", "starts_at"),
    ("alerts", b'{"starts_at": 1772359205, "labels": "x"}', "wrong_type", "labels"),
    ("alerts", b'{"starts_at": 1772359205000}', "invalid_value", "starts_at"),
    ("alertmanager", am_without_starts_at(), "missing_field", "alerts[0].startsAt"),
    ("alertmanager", am_body(version="3"), "unknown_version", "version"),
    ("alertmanager", am_body(alerts={"a": 1}), "wrong_type", "alerts"),
    ("zabbix", b'{"event_value": "1"}', "missing_field", "event_id"),
    ("tickets", b'{"text": "no id", "created_at": 1}', "missing_field", "ticket_id"),
    ("tickets", orjson.dumps([ticket(), {"ticket_id": "T-9", "text": "x"}]), "missing_field", "[1].created_at"),
    ("tickets", b"{}", "missing_field", "ticket_id"),
]


# ---------------------------------------------------------------- pure checks


@pytest.mark.parametrize(("header", "ok"), [
    (f"Bearer {TOKEN}", True),
    (f"bearer {TOKEN}", True),
    (f"Bearer  {TOKEN} ", True),
    (None, False),
    ("", False),
    ("Bearer", False),
    ("Bearer wrong", False),
    (f"Bearer {TOKEN}x", False),
    (f"Basic {TOKEN}", False),
    (TOKEN, False),
])
def test_bearer_token(header: str | None, ok: bool) -> None:
    book = TokenBook(Settings(ingest_token=TOKEN).role_tokens())
    assert (book.identify(header) is not None) is ok


def test_one_ticket_travels_as_received_and_an_array_one_record_per_ticket() -> None:
    single = b'{"ticket_id": "T-1", "text": "x", "created_at": 1, "priority": "p1"}'
    assert parse_tickets(single) == [(b"T-1", single)]
    records = parse_tickets(orjson.dumps([ticket("A"), ticket("B", extra_field=[1, 2])]))
    assert [key for key, _ in records] == [b"A", b"B"]
    assert orjson.loads(records[1][1]) == ticket("B", extra_field=[1, 2])


def test_producer_batches_and_never_retries_past_the_answer() -> None:
    settings = Settings(ingest_linger="5ms", ingest_batch_bytes=500_000, ingest_max_body_bytes=2_000_000,
                        ingest_send_timeout="3s")
    opts = producer_options(settings)
    assert opts["linger_ms"] == 5 and opts["max_batch_size"] == 500_000
    assert opts["max_request_size"] > 2_000_000  # one body of the largest size fits in a request
    assert opts["acks"] == "all" and opts["enable_idempotence"] is False
    assert opts["request_timeout_ms"] == 3000


def test_empty_token_means_no_check() -> None:
    assert Settings(ingest_token="").ingest_token is None
    assert Settings(ingest_token=" ").ingest_token is None


class FakeSender:
    """Records what was sent; `fail` makes every send raise it; `topic_names` is what the broker holds."""

    def __init__(self, topic_names: set[str] | None = None) -> None:
        self.sent: list[tuple[str, bytes | None, bytes]] = []
        self.placed: list[tuple[int | None, int | None]] = []
        """(partition, timestamp_ms) of each record sent."""
        self.fail: Refusal | None = None
        self.topic_names = topic_names or set()
        self.unreachable = False
        self.probes = 0

    async def send(self, topic: str, key: bytes | None, value: bytes, *, partition: int | None = None,
                   timestamp_ms: int | None = None) -> None:
        await asyncio.sleep(0)
        if self.fail is not None:
            raise self.fail
        self.sent.append((topic, key, value))
        self.placed.append((partition, timestamp_ms))

    async def topics(self) -> set[str]:
        self.probes += 1
        await asyncio.sleep(0.01)
        if self.unreachable:
            raise ConnectionError("broker down")
        return self.topic_names


def test_readiness_is_cached_and_shared_by_concurrent_probes() -> None:
    now = [100.0]
    sender = FakeSender({"a", "b"})
    ready = Readiness(sender, ["a", "b"], ttl_s=1.0, clock=lambda: now[0])

    async def storm() -> list[bool]:
        return [s.ready for s in await asyncio.gather(*(ready.state() for _ in range(50)))]

    assert asyncio.run(storm()) == [True] * 50
    assert sender.probes == 1
    now[0] += 0.9
    asyncio.run(storm())
    assert sender.probes == 1
    now[0] += 0.2
    sender.unreachable = True
    state = asyncio.run(ready.state())
    assert sender.probes == 2 and not state.ready and state.detail["broker"] == "unreachable"


def test_readiness_names_missing_topics() -> None:
    state = asyncio.run(Readiness(FakeSender({"a"}), ["b", "a", "c"]).state())
    assert not state.ready and state.detail["missing_topics"] == ["b", "c"]


# ---------------------------------------------------------------- the request path, fake broker


Client = TestClient[web.Request, web.Application]


def run_client(ingest: Ingest, calls: Callable[[Client], Any]) -> Any:
    """Serve `ingest`'s handlers on an aiohttp test server and run `calls(client)` against it."""
    app = web.Application()
    for endpoint in ENDPOINTS:
        for path in (endpoint.path, *endpoint.aliases):
            app.router.add_post(path, _handler(ingest, endpoint))

    async def go() -> Any:
        async with TestClient(TestServer(app)) as client:
            return await calls(client)

    return asyncio.run(go())


def _handler(ingest: Ingest, endpoint: Any) -> Callable[[web.Request], Any]:
    async def handle(request: web.Request) -> web.Response:
        reply = await ingest.handle(endpoint, request)
        return web.json_response(dict(reply.body), status=reply.status, headers=dict(reply.headers))

    return handle


def fake_ingest(**settings: Any) -> tuple[Ingest, FakeSender]:
    """An ingest on a fake broker that holds every topic (readiness gates the sends); the test bodies are dated
    2026-03, so the event-time horizon is off unless a test sets it (as for the deployments, tests/workers.py)."""
    config = Settings(**{"ingest_token": TOKEN, "ingest_max_body_bytes": LIMIT, "event_horizon": 0, **settings})
    sender = FakeSender(set(config.topic_plan()))
    return Ingest(config, sender), sender


async def _post(client: Client, path: str, data: Any, headers: dict[str, str] | None = None) -> tuple[int, Any, Any]:
    resp = await client.post(path, data=data, headers=AUTH if headers is None else headers)
    return resp.status, await resp.json(), resp.headers


PROMETHEUS_V2 = orjson.loads((ROOT / "tests/data/prometheus_v2_posts.json").read_bytes())["posts"][0]["body"]
"""What Prometheus posts to an Alertmanager's /api/v2/alerts; dated today, so not posted to the live worker below,
whose partitions hold the older bodies above."""


@pytest.mark.parametrize(("endpoint", "body", "items", "records"),
                         [*ACCEPTED, ("alerts", PROMETHEUS_V2.encode(), 1, 1)])
def test_valid_body_202_and_its_alerts_on_alerts_by_correlation_key(endpoint: str, body: bytes, items: int,
                                                                    records: int) -> None:
    ingest, sender = fake_ingest()
    before = time.time()
    status, answer, _ = run_client(ingest, lambda c: _post(c, f"/ingest/{endpoint}", body))
    assert (status, answer) == (202, {"accepted": items, "records": records})
    topic = "tickets.raw" if endpoint == "tickets" else "alerts"
    assert {t for t, _, _ in sender.sent} == ({topic} if records else set()) and len(sender.sent) == records
    if endpoint != "tickets" and records:
        partitions = [p for p, _ in sender.placed]
        assert len(set(partitions)) == len(partitions)  # one record per partition
        assert _sorted(on_alerts([(p or 0, v) for p, (_, _, v) in zip(partitions, sender.sent)])) == _sorted(
            expected_records(endpoint, body))
        assert all(before * 1000 - 1 <= (t or 0) <= time.time() * 1000 for _, t in sender.placed)


def test_prometheus_s_path_is_the_generic_endpoint_with_its_token() -> None:
    """`POST /api/v2/alerts` (where Prometheus posts, its Alertmanager address set to a worker) is /ingest/alerts:
    the same records, the same token, counted under the same endpoint label."""
    answers = []
    refusals = {"endpoint": "alerts", "reason": "unauthorized"}
    for path in ("/ingest/alerts", "/api/v2/alerts"):
        ingest, sender = fake_ingest()
        before = REGISTRY.get_sample_value("aiops_ingest_refusals_total", refusals) or 0.0

        async def calls(client: Client, path: str = path) -> list[tuple[int, Any, Any]]:
            return [await _post(client, path, PROMETHEUS_V2.encode()),
                    await _post(client, path, PROMETHEUS_V2.encode(), {})]

        (ok, answer, _), (denied, _, _) = run_client(ingest, calls)
        assert (ok, denied) == (202, 401), path
        assert REGISTRY.get_sample_value("aiops_ingest_refusals_total", refusals) == before + 1
        answers.append((answer, _sorted(on_alerts([(p or 0, v) for p, (_, _, v) in zip(
            [p for p, _ in sender.placed], sender.sent)]))))
    assert answers[0] == answers[1] and answers[0][0] == {"accepted": 1, "records": 1}


def test_a_body_with_alerts_past_the_horizon_goes_raw_stamped_with_its_receive_time() -> None:
    """Normalize dead-letters exactly the too-old alerts and correlates the others: the body takes the raw way,
    stamped with the time it was received, which normalize takes as its arrival (one rule for both paths)."""
    # A resolution that old (a still-firing alert that old is correlated at its arrival: see test_eventtime).
    old = b'{"starts_at": 1772359205, "ends_at": 1772359805, "status": "resolved", "labels": {"alertname": "DiskFull", "service": "db"}}'
    ingest, sender = fake_ingest(event_horizon=7 * 86400)
    before = int(time.time() * 1000)
    status, answer, _ = run_client(ingest, lambda c: _post(c, "/ingest/alerts", old))
    assert (status, answer) == (202, {"accepted": 1, "records": 1})
    assert sender.sent == [("alerts.raw", b"generic", old)]
    assert sender.placed[0][0] is None and before <= (sender.placed[0][1] or 0) <= time.time() * 1000


@pytest.mark.parametrize(("endpoint", "body", "category", "field"), INVALID)
def test_invalid_body_400_names_field_reason_and_category(endpoint: str, body: bytes, category: str,
                                                          field: str) -> None:
    ingest, sender = fake_ingest()
    status, answer, _ = run_client(ingest, lambda c: _post(c, f"/ingest/{endpoint}", body))
    assert status == 400
    assert (answer["error"], answer["category"], answer["errors"][0]["field"]) == (category, category, field)
    assert answer["errors"][0]["reason"] and answer["type"].endswith(f"/{category}")
    assert sender.sent == []


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer nope"}, {"Authorization": f"Basic {TOKEN}"}])
def test_missing_or_wrong_token_401(headers: dict[str, str]) -> None:
    ingest, sender = fake_ingest()
    status, answer, resp_headers = run_client(ingest, lambda c: _post(c, "/ingest/alerts", GENERIC_ONE, headers))
    assert (status, answer["error"]) == (401, "unauthorized")
    assert resp_headers["WWW-Authenticate"].startswith("Bearer")
    assert sender.sent == []


def test_no_token_configured_needs_no_header() -> None:
    sender = FakeSender(set(Settings().topic_plan()))
    ingest = Ingest(Settings(), sender)
    status, _, _ = run_client(ingest, lambda c: _post(c, "/ingest/alerts", GENERIC_ONE, {}))
    assert status == 202


async def _chunked(body: bytes) -> Any:
    for i in range(0, len(body), 4096):
        yield body[i:i + 4096]


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_body_above_the_limit_413(chunked: bool) -> None:
    ingest, sender = fake_ingest()
    big = b"[" + b",".join([GENERIC_ONE] * (LIMIT // len(GENERIC_ONE) + 1)) + b"]"
    assert len(big) > LIMIT
    data = _chunked(big) if chunked else big
    status, answer, _ = run_client(ingest, lambda c: _post(c, "/ingest/alerts", data))
    assert (status, answer["error"], answer["limit_bytes"]) == (413, "too_large", LIMIT)
    assert ("size_bytes" in answer) is not chunked  # declared size known only with a Content-Length
    assert sender.sent == []


def test_at_the_limit_is_accepted() -> None:
    ingest, _ = fake_ingest()
    padded = GENERIC_ONE + b" " * (LIMIT - len(GENERIC_ONE))
    status, _, _ = run_client(ingest, lambda c: _post(c, "/ingest/alerts", padded))
    assert status == 202


def test_client_hanging_up_mid_body_is_counted_and_nothing_sent() -> None:
    ingest, sender = fake_ingest()
    counter = metrics.INGEST_REFUSALS.labels("alerts", "client_disconnected")
    before = counter._value.get()

    async def cut_short(client: Client) -> None:
        assert client.server.port is not None
        reader, writer = await asyncio.open_connection("127.0.0.1", client.server.port)
        writer.write(f"POST /ingest/alerts HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
                     "Content-Length: 1000\r\n\r\n{\"starts_at\"".encode())
        await writer.drain()
        writer.close()
        for _ in range(100):
            if counter._value.get() > before:
                return
            await asyncio.sleep(0.02)

    run_client(ingest, cut_short)
    assert counter._value.get() == before + 1
    assert sender.sent == []


# mtime=0: a gzip header otherwise holds the second it was made, which is in the test's id, and pytest-xdist
# refuses to run when its processes collect different ids.
@pytest.mark.parametrize(("encoding", "body", "status", "error"), [
    ("gzip", gzip.compress(GENERIC_ONE, mtime=0), 202, None),
    ("GZIP", gzip.compress(GENERIC_ONE, mtime=0), 202, None),
    ("deflate", zlib.compress(GENERIC_ONE), 202, None),
    ("identity", GENERIC_ONE, 202, None),
    ("gzip", GENERIC_ONE, 400, "bad_encoding"),
    ("deflate", b"\x00\x01 not deflate", 400, "bad_encoding"),
    ("compress", GENERIC_ONE, 415, "unsupported_encoding"),
    ("gzip, deflate", GENERIC_ONE, 415, "unsupported_encoding"),
])
def test_content_encoding_decoded_or_refused_with_the_reason(encoding: str, body: bytes, status: int,
                                                             error: str | None) -> None:
    """A body that does not decode is a 400 and an encoding the server does not decode a 415, counted; never a 500."""
    ingest, sender = fake_ingest()
    before = metrics.INGEST_REQUESTS.labels("alerts", str(status))._value.get()
    got, answer, _ = run_client(ingest, lambda c: _post(c, "/ingest/alerts", body,
                                                        {**AUTH, "Content-Encoding": encoding}))
    assert got == status and answer.get("error") == error, answer
    assert metrics.INGEST_REQUESTS.labels("alerts", str(status))._value.get() == before + 1
    sent = [(partition, value) for (partition, _), (_, _, value) in zip(sender.placed, sender.sent)]
    expected = expected_records("alerts", GENERIC_ONE) if status == 202 else []
    assert on_alerts([(p or 0, v) for p, v in sent]) == expected


@pytest.mark.parametrize("reason", ["broker_unavailable", "send_timeout"])
def test_unacknowledged_send_503_with_retry_after(reason: str) -> None:
    ingest, sender = fake_ingest()
    sender.fail = unavailable(reason, "test")
    status, answer, headers = run_client(ingest, lambda c: _post(c, "/ingest/alertmanager", am_body()))
    assert (status, answer["error"]) == (503, reason)
    assert int(headers["Retry-After"]) > 0


# ---------------------------------------------------------------- a real worker on the session broker


def request(port: int, method: str, path: str, body: bytes | Iterator[bytes] | None = None,
            headers: dict[str, str] | None = None) -> tuple[int, Any, dict[str, str]]:
    """One HTTP request with http.client; an iterator body is sent chunked."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {}, encode_chunked=not isinstance(body, bytes | None))
        resp = conn.getresponse()
        data = resp.read()
        answer = orjson.loads(data) if data and "json" in (resp.getheader("Content-Type") or "") else data
        return resp.status, answer, dict(resp.getheaders())
    finally:
        conn.close()


def wait_ready(worker: WorkerProc, timeout: float = 60.0) -> None:
    """Until /readyz answers 200; a timeout names the last answer's reasons beside the worker's log."""
    deadline = time.monotonic() + timeout
    last: object = "no answer"
    while time.monotonic() < deadline:
        if worker.proc.poll() is not None:
            raise RuntimeError(f"worker exited:\n{worker.tail()}")
        try:
            status, last, _ = request(worker.web_port, "GET", "/readyz")
            if status == 200:
                return
        except OSError as exc:
            last = repr(exc)
        time.sleep(0.3)
    raise TimeoutError(f"worker not ready after {timeout} s, last /readyz: {last}\n{worker.tail()}")


@contextmanager
def ready_worker(broker: EmbeddedBroker, workdir: Path, env: dict[str, str]) -> Iterator[tuple[Deployment, WorkerProc]]:
    """One worker with `env` on its own topics, started and ready; stopped on the way out."""
    dep = Deployment(broker, workdir, extra_env=env)
    dep.create_topics()
    worker = dep.start_worker()
    try:
        worker.wait_web()
        wait_ready(worker)
        yield dep, worker
    finally:
        worker.stop()


def read_all(bootstrap: str, topic: str, quiet_s: float = 1.5, timeout: float = 30.0) -> list[Any]:
    """Every record of a topic from the start, read until nothing new came for `quiet_s`.

    Not by end offsets: Tansu 0.6.0 under-reports them after a multi-record batch, which the ingest writes.
    """

    async def go() -> list[Any]:
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                    auto_offset_reset="earliest", fetch_max_wait_ms=100)
        await consumer.start()
        got: list[Any] = []
        try:
            last, deadline = time.monotonic(), time.monotonic() + timeout
            while time.monotonic() - last < quiet_s and time.monotonic() < deadline:
                batches = await consumer.getmany(timeout_ms=200)
                for records in batches.values():
                    got += records
                    last = time.monotonic()
        finally:
            await consumer.stop()
        return got

    return asyncio.run(go())


@pytest.fixture(scope="module")
def live(broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Deployment, WorkerProc]]:
    """One worker with a token and a 64 KiB body limit, shared by the tests below."""
    env = {"AIOPS_IDLE_ADVANCE": "300", "AIOPS_INGEST_TOKEN": TOKEN, "AIOPS_INGEST_MAX_BODY_BYTES": str(LIMIT)}
    with ready_worker(broker, tmp_path_factory.mktemp("ingest"), env) as running:
        yield running


def test_health_and_readiness(live: tuple[Deployment, WorkerProc]) -> None:
    _, worker = live
    assert request(worker.web_port, "GET", "/healthz")[:2] == (200, {"status": "ok"})
    status, answer, _ = request(worker.web_port, "GET", "/readyz")
    assert (status, answer["ready"], answer["missing_topics"]) == (200, True, [])
    assert request(worker.web_port, "GET", "/ingest/alerts")[0] == 405


def test_every_202_lands_on_its_topic_and_no_refusal_does(live: tuple[Deployment, WorkerProc]) -> None:
    """Accepted and refused bodies through the real views; then count records and refusals."""
    dep, worker = live
    port = worker.web_port
    raw_before = len(read_all(dep.broker.bootstrap, dep.topic("alerts_raw")))
    alerts_before = len(read_all(dep.broker.bootstrap, dep.topic("alerts")))
    tickets_before = len(read_all(dep.broker.bootstrap, dep.topic("tickets_raw")))
    refusals_before = {(e, r): worker.metric("aiops_ingest_refusals_total", endpoint=e, reason=r)
                       for e, _, r, _ in INVALID}
    for endpoint, body, items, records in ACCEPTED:
        status, answer, _ = request(port, "POST", f"/ingest/{endpoint}", body, AUTH)
        assert (status, answer) == (202, {"accepted": items, "records": records}), endpoint
    for endpoint, body, category, field in INVALID:
        status, answer, _ = request(port, "POST", f"/ingest/{endpoint}", body, AUTH)
        assert (status, answer["category"], answer["errors"][0]["field"]) == (400, category, field), (endpoint, answer)
    assert request(port, "POST", "/ingest/alerts", GENERIC_ONE)[0] == 401
    assert request(port, "POST", "/ingest/alerts", GENERIC_ONE, {"Authorization": "Bearer x"})[0] == 401
    big = GENERIC_ONE + b" " * LIMIT
    assert request(port, "POST", "/ingest/alerts", big, AUTH)[0] == 413
    assert request(port, "POST", "/ingest/alerts", iter([big[:LIMIT], big[LIMIT:]]), AUTH)[0] == 413

    assert len(read_all(dep.broker.bootstrap, dep.topic("alerts_raw"))) == raw_before  # the hop: none went raw
    landed = read_all(dep.broker.bootstrap, dep.topic("alerts"))[alerts_before:]
    assert len(landed) == sum(n for e, _, _, n in ACCEPTED if e != "tickets")
    expected = [r for e, b, _, _ in ACCEPTED if e != "tickets" for r in expected_records(e, b)]
    assert _sorted(on_alerts([(r.partition, r.value) for r in landed])) == _sorted(expected)
    tickets = read_all(dep.broker.bootstrap, dep.topic("tickets_raw"))[tickets_before:]
    assert sorted(r.key for r in tickets) == [b"T-1", b"T-2", b"T-2", b"T-3"]  # T-2 sent, then resolved

    sent = Counter((endpoint, reason) for endpoint, _, reason, _ in INVALID)
    for (endpoint, reason), n in sent.items():
        got = worker.metric("aiops_ingest_refusals_total", endpoint=endpoint, reason=reason)
        assert got - refusals_before[(endpoint, reason)] == n, (endpoint, reason)
    assert worker.metric("aiops_ingest_refusals_total", endpoint="alerts", reason="unauthorized") >= 2
    assert worker.metric("aiops_ingest_refusals_total", endpoint="alerts", reason="too_large") >= 2
    assert worker.metric("aiops_ingest_requests_total", endpoint="alerts", code="413") >= 2


def own_incident_webhook() -> bytes:
    """An Alertmanager webhook holding one of the correlator's own incident alerts (come back through a team's
    Alertmanager) beside regular alerts."""
    body = webhook()
    body["alerts"][0]["labels"] = {"alertname": "CorrelatedIncident", "incident_id": "inc-own", "service": "x"}
    return orjson.dumps(body)


def test_own_incident_alerts_are_counted_as_dropped_on_both_paths(live: tuple[Deployment, WorkerProc]) -> None:
    """The loop guard's drop reaches `aiops_alerts_dropped_total`: at the ingest (the hop) and in the normalize
    agent (a raw producer's body on `alerts.raw`), one each."""
    dep, worker = live
    labels = {"source": "alertmanager", "reason": "own_incident"}
    before = worker.metric("aiops_alerts_dropped_total", **labels)
    status, answer, _ = request(worker.web_port, "POST", "/ingest/alertmanager", own_incident_webhook(), AUTH)
    assert (status, answer["accepted"]) == (202, len(webhook()["alerts"]) - 1)  # the others are correlated
    assert worker.metric("aiops_alerts_dropped_total", **labels) == before + 1
    dep.produce("alerts_raw", [(b"alertmanager", own_incident_webhook())])
    deadline = time.monotonic() + 30
    while worker.metric("aiops_alerts_dropped_total", **labels) < before + 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert worker.metric("aiops_alerts_dropped_total", **labels) == before + 2


def test_accepted_alerts_reach_the_incidents(live: tuple[Deployment, WorkerProc]) -> None:
    """The lab storm posted over HTTP (parsed at the ingest, no normalize) becomes the replay's incidents."""
    dep, worker = live
    from correlator.config import DEFAULT_CONFIG
    from correlator.replay import replay
    from correlator.sources import parse

    expected = {i.key for i in replay(parse("generic", LAB_STORM.read_bytes()), DEFAULT_CONFIG).incidents}
    deadline = time.monotonic() + 60
    seen: set[str] = set()
    while time.monotonic() < deadline and not expected <= seen:
        seen = {i["key"] for i in worker.get("/incidents/")["incidents"]}
        time.sleep(0.5)
    assert expected <= seen


def test_ingest_role_accepts_without_agents(broker: EmbeddedBroker, tmp_path: Path) -> None:
    """`--role ingest` (AIOPS_ROLE=ingest): the same 202s land on alerts, nothing is consumed or correlated
    there, and the process still serves its own /metrics."""
    dep = Deployment(broker, tmp_path, extra_env={"AIOPS_IDLE_ADVANCE": "300", "AIOPS_ROLE": "ingest"})
    dep.create_topics()
    worker = dep.start_worker("front")
    try:
        wait_ready(worker)
        bodies = [_marked("front", i) for i in range(5)] + [am_body()]
        answers = [request(worker.web_port, "POST", path, body)
                   for path, body in [("/ingest/alerts", b) for b in bodies[:-1]] + [("/ingest/alertmanager",
                                                                                       bodies[-1])]]
        assert [a[0] for a in answers] == [202] * len(bodies)
        assert request(worker.web_port, "POST", "/ingest/alertmanager", am_without_starts_at())[0] == 400
        landed = read_all(broker.bootstrap, dep.topic("alerts"))
        expected = [r for b in bodies[:-1] for r in expected_records("alerts", b)] + expected_records(
            "alertmanager", bodies[-1])
        assert _sorted(on_alerts([(r.partition, r.value) for r in landed])) == _sorted(expected)
        assert request(worker.web_port, "GET", "/incidents/")[0] == 404  # no engines in this role
        text = worker.get("/metrics")
        assert 'aiops_ingest_requests_total{code="202",endpoint="alerts"} 5.0' in text
        assert 'aiops_records_consumed_total{agent="normalize"}' not in text
    finally:
        worker.stop()


# ---------------------------------------------------------------- broker down: 503, and nothing of it lands


def _marked(marker: str, i: int) -> bytes:
    return orjson.dumps({"starts_at": 1772359205, "labels": {"alertname": "Probe", "service": "s", "run": marker,
                                                              "n": str(i)}})


def _post_all(port: int, bodies: Sequence[bytes]) -> list[tuple[int, Any, dict[str, str]]]:
    with ThreadPoolExecutor(len(bodies)) as pool:
        return list(pool.map(lambda b: request(port, "POST", "/ingest/alerts", b), bodies))


def test_broker_down_503_and_none_of_it_lands(tmp_path: Path) -> None:
    """Stop this test's own Tansu under a worker: every request 503s with Retry-After, readiness fails; after a
    fresh broker comes up on the same port, only what was answered 202 since is on alerts."""
    first = start_broker(log_path=tmp_path / "tansu-1.log")
    brokers = [first]
    dep = Deployment(first, tmp_path, extra_env={"AIOPS_IDLE_ADVANCE": "300", "AIOPS_INGEST_SEND_TIMEOUT": "1"})
    dep.create_topics()
    worker = dep.start_worker()
    try:
        worker.wait_web()
        wait_ready(worker)
        assert _post_all(worker.web_port, [_marked("before", i) for i in range(3)])[0][0] == 202
        first.stop()

        down = [_marked("down", i) for i in range(6)]
        started = time.monotonic()
        answers = _post_all(worker.web_port, down)
        assert [a[0] for a in answers] == [503] * len(down), [a[1] for a in answers]
        assert all(int(a[2]["Retry-After"]) > 0 for a in answers)
        assert {a[1]["error"] for a in answers} <= {"broker_unavailable", "send_timeout"}
        assert time.monotonic() - started < 10  # bounded by the send timeout, not hanging
        assert request(worker.web_port, "GET", "/readyz")[0] == 503

        second = start_broker(port=first.port, log_path=tmp_path / "tansu-2.log")
        brokers.append(second)
        dep.broker = second
        dep.create_topics()
        # readiness waits for a rebalance begun after the topics came back (stream/recovery.py; a rejoin that starts
        # none is asked again after 15 s, and a join is held 5 s): a CI run was still waiting at 30 s
        wait_ready(worker)
        after = [_marked("after", i) for i in range(4)]
        assert [a[0] for a in _post_all(worker.web_port, after)] == [202] * len(after)

        landed = on_alerts([(r.partition, r.value) for r in read_all(second.bootstrap, dep.topic("alerts"))])
        # none of the 503s, even though the producer had them queued
        assert _sorted(landed) == _sorted([r for b in after for r in expected_records("alerts", b)])
        refused = sum(worker.metric("aiops_ingest_refusals_total", endpoint="alerts", reason=r)
                      for r in ("broker_unavailable", "send_timeout"))
        assert refused == len(down)
        assert worker.metric("aiops_ingest_requests_total", endpoint="alerts", code="202") == 3 + len(after)
    finally:
        worker.stop()
        for b in brokers:
            b.stop()


# ---------------------------------------------------------------- the load benchmark's quick mode


def test_ingest_load_benchmark_quick() -> None:
    """`benchmarks/ingest_load.py --quick --json` runs end to end and reports well-formed figures (no speed asserted)."""
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "ingest_load.py"), "--quick", "--json"],
                         check=True, capture_output=True, text=True, timeout=300, cwd=ROOT)
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert set(report) >= {"machine", "load", "runs", "median", "landed", "cpu_cores_used", "incident_latency_s"}
    assert len(report["runs"]) == 1
    run = report["runs"][0]
    assert run["accepted"] > 0 and run["req_per_s"] > 0 and run["alerts_per_s"] == pytest.approx(
        run["req_per_s"] * report["load"]["alerts_per_body"], rel=0.01)
    assert 0 < run["p50_ms"] <= run["p99_ms"] <= run["max_ms"]
    landed = report["landed"]
    assert landed["alerts"] >= landed["alerts_accepted"] == landed["accepted_202"] * 100 > 0
    assert landed["missing"] == 0 and landed["records"] >= landed["batches"] > 0
    assert report["incident_latency_s"]["n"] > 0

