"""HTTP ingest on the worker's web port: webhooks in, alert records onto `alerts` (tickets onto `tickets.raw`), 202 on
the ack.

Endpoints (added to Faust's web server by `install_ingest`, beside /metrics and /incidents):

| endpoint                   | body                                      | records                                  |
|----------------------------|-------------------------------------------|------------------------------------------|
| `POST /ingest/alertmanager`| Alertmanager webhook v4                   | `alerts`, one per partition of its keys  |
| `POST /ingest/zabbix`      | the media type's JSON (deploy/zabbix)     | `alerts`, one per partition of its keys  |
| `POST /ingest/alerts`      | generic alert JSON: object, array, NDJSON | `alerts`, one per partition of its keys  |
| `POST /ingest/tickets`     | a `Ticket` object or an array of them     | `tickets.raw`, key ticket id, one a ticket|
| `GET /healthz`             |                                           | 200 while the process serves HTTP         |
| `GET /readyz`              |                                           | 200 when every check passes, else 503 + reasons |

/readyz runs `Ingest.checks` in order (the broker answers and every pipeline topic exists; the alert ingest is
not shedding; the broker watch of stream/recovery.py) and answers `{"ready", "reasons": [...], ...figures}`; a part added later appends its check.

A request is checked in this order, each refusal counted by reason in `aiops_ingest_refusals_total`:
401/403 (tokens are configured and the bearer token is missing, unknown, or not an ingest token: see
`stream/auth.py`), 503 `backlog` with Retry-After for the alert endpoints while admission control sheds load
(`stream/admission.py`; tickets do not feed correlation and are never shed), 415 (a Content-Encoding other than
identity, gzip or deflate), 413 (the declared Content-Length, then the bytes actually read, decompressed, above
`ingest_max_body_bytes`), 400 `bad_encoding` (a gzip/deflate body that does not decompress), 400 (the body
fails the same source adapter the normalize agent runs; the answer names field, reason and category), 503
while /readyz is not ready for a reason other than shedding (a 202 must mean the body can reach correlation,
and a probe must never call ready a worker whose ingest refuses), then the send: 202 only once the broker acknowledged the record (acks=all), 503 with Retry-After when it did not
within `ingest_send_timeout` or the broker is unreachable (Alertmanager and the Zabbix script retry on 5xx).
A valid body holding no alerts or tickets (`[]`, a webhook with an empty `alerts` list) is answered 202 with
`accepted: 0` and written nowhere. Every answer is counted by status code in `aiops_ingest_requests_total`; a
client that hangs up while its body is read gets no answer and is counted as 499 (`client_disconnected`), a body
cut short as 400 `incomplete_body`. Every refusal is an `application/problem+json` document (stream/problems.py)
whose `error` is the reason above and whose `errors` name the field and reason of a bad body.

The hop (stream/hop.py): an alert body is parsed once, here, by the function the normalize agent runs
(`correlator.sources.normalize`: the typed fast path for regular Alertmanager webhooks, the adapter otherwise),
against its receive time as its arrival (normalize takes a raw record's broker time: one rule, `arrival_of`),
and its alerts go to `alerts` as the compact records normalize writes, each on the partition of its correlation
key. A 202 means every one of those records was acknowledged by the broker (acks=all): the alerts are on the
topic correlation reads, and a redelivery after a crash is applied once (`stream.hop.numbered`). A 503 after
some of them were acknowledged may leave those on the topic: the sender's retry re-sends the same alerts,
which correlation counts as duplicates (same fingerprint and start), not as new alerts.

A body with an alert older than the event-time horizon, or one the adapter accepts but whose alerts cannot be
built or carried (an `Alert` the model refuses, an alert larger than a record), goes to `alerts.raw` as
received instead, timestamped with its receive time, and normalize decides as it always has (correlates the
rest, dead-letters those): nothing the sender said is lost, and no dead-letter logic is written twice.

Producer: the ingest has its own aiokafka producer (a `mode.Service` started and stopped with the app) rather
than Faust's. Its batching knobs differ from the pipeline's (linger for concurrent webhooks to share a batch, a
batch size that holds several 100-alert bodies), and the pipeline's `producer.flush()` after every commit must
not wait for webhooks in flight, nor a webhook for the pipeline's changelog writes. Idempotence stays off
on purpose: an idempotent producer never expires a batch, so a record answered with 503 could still land
later; without it a failed batch is dropped for good once `request_timeout_ms` (= the send timeout) passed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson
from aiohttp import web as aioweb
from aiohttp.http_exceptions import ContentEncodingError, HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, KafkaTimeoutError, MessageSizeTooLargeError, RecordListTooLargeError
from faust.web import Request, Response, View
from mode import Service

from correlator import metrics
from correlator.backlog import Backlog
from correlator.eventtime import DEFAULT_GUARD, TimeGuard
from correlator.keys import DEFAULT_KEY_CONFIG, KeyConfig
from correlator.sources import SourceError, alerts_in, normalize
from correlator.sources.generic import check_body
from correlator.triage.lifecycle import InputError, parse_ticket_body
from correlator.validation import FieldError
from stream.admission import BacklogProbe
from stream.app import App
from stream.auth import PROMETHEUS_ALERTS_PATH, Denied, TokenBook
from stream.hop import Partitioner, count_received, hop_values, partition_parts
from stream.pipeline import key_config
from stream.problems import PROBLEM_JSON, problem
from stream.security import client_options
from stream.settings import Settings

__all__ = [
    "ENDPOINTS",
    "AlertHop",
    "Endpoint",
    "Ingest",
    "KafkaSender",
    "RawSender",
    "Readiness",
    "ReadyCheck",
    "ReadyState",
    "Refusal",
    "Reply",
    "Send",
    "Validated",
    "install_ingest",
    "parse_tickets",
    "producer_options",
    "read_body",
    "unavailable",
]

log = logging.getLogger(__name__)

JSON = "application/json"
RETRY_AFTER_S = 2  # Alertmanager ignores it and retries with its own backoff; other senders may honour it
READY_CACHE_S = 1.0
READY_TIMEOUT_S = 2.0
TICKETS = "tickets"
CLIENT_CLOSED = "499"
DECODED_ENCODINGS = frozenset({"", "identity", "gzip", "deflate"})
"""Content-Encodings the web server decodes before the body reaches the ingest (brotli and zstd only with
their optional libraries, which are not installed: aiohttp refuses those itself, with a 400)."""


@dataclass(frozen=True)
class Reply:
    """An HTTP answer: status, JSON body (a problem document for 4xx/5xx), extra headers."""

    status: int
    body: Mapping[str, Any]
    headers: Mapping[str, str] = field(default_factory=dict)


class Refusal(Exception):
    """A request answered with 4xx/5xx: `reason` is the bounded metric label and the problem's code, `message`
    its detail, `errors` what is wrong with the body, `extensions` the figures (stream/problems.py)."""

    def __init__(self, status: int, reason: str, message: str, *, errors: Sequence[FieldError] = (),
                 extensions: Mapping[str, Any] | None = None, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason
        self.message = message
        self.errors = tuple(errors)
        self.extensions = dict(extensions or {})
        self.headers = dict(headers or {})

    def reply(self, instance: str) -> Reply:
        """The answer to send for a request to `instance` (its path)."""
        return Reply(self.status, problem(self.status, self.reason, self.message, instance=instance,
                                          errors=self.errors, **self.extensions), self.headers)


def unavailable(reason: str, message: str) -> Refusal:
    """503 with Retry-After: the sender should try again (Alertmanager does on any 5xx)."""
    return Refusal(503, reason, message, headers={"Retry-After": str(RETRY_AFTER_S)})


def too_large(limit: int, size: int | None = None) -> Refusal:
    """413 for a body above the limit; `size` when it is known."""
    figures: dict[str, Any] = {"limit_bytes": limit}
    if size is not None:
        figures["size_bytes"] = size
    told = f"of {size} bytes " if size is not None else ""
    return Refusal(413, "too_large", f"the body {told}is above the limit of {limit} bytes", extensions=figures)


def invalid(exc: SourceError) -> Refusal:
    """400 naming the field, the reason and its bounded category (the problem's code)."""
    return Refusal(400, exc.category, f"{exc.field}: {exc.reason}", errors=[FieldError(exc.field, exc.reason)],
                   extensions={"category": exc.category, "source": exc.source})


# ---------------------------------------------------------------- validation at the edge (pure)


@dataclass(frozen=True)
class Send:
    """One record to send: the topic (a TopicNames field), key and value; on `alerts` its partition and time."""

    topic_field: str
    key: bytes | None
    value: bytes
    partition: int | None = None
    timestamp_ms: int | None = None


@dataclass(frozen=True)
class Validated:
    """What a valid body becomes: its records, how many alerts or tickets it holds, and what to count once they
    are acknowledged (alerts by source, clamped times, own incidents left out)."""

    records: list[Send]
    items: int
    by_source: Mapping[str, int] = field(default_factory=dict)
    clamped: int = 0
    own: int = 0


class AlertHop:
    """Alert bodies into `alerts` records (the hop, see the module docstring), with the worker's key config,
    event-time guard and partition count of `alerts`."""

    def __init__(self, keys: KeyConfig, guard: TimeGuard, partitions: int) -> None:
        self.keys = keys
        self.guard = guard
        self.partition_of = Partitioner(partitions)

    @classmethod
    def of(cls, settings: Settings) -> AlertHop:
        """The hop with the worker's settings (the ones normalize uses)."""
        return cls(key_config(settings), settings.correlation_config().time_guard, settings.partitions_for("alerts"))

    def validate(self, source: str, body: bytes, received: float) -> Validated:
        """The records of a body received at `received` (epoch s); `Refusal` 400 for what the adapter refuses."""
        received_ms = int(received * 1000)
        try:
            normalized = normalize(source, body, received, self.guard, self.keys, max_bytes=None)  # limit applied
            parts = partition_parts(normalized.records, self.partition_of, len(body))
        except SourceError as exc:
            raise invalid(exc) from None
        except ValueError:  # an Alert the model refuses, an alert larger than a record: normalize decides
            return self._raw(source, body, received_ms, alerts_in(source, body, max_bytes=None))
        if normalized.guarded.too_old:  # normalize dead-letters exactly those and correlates the others
            return self._raw(source, body, received_ms, len(normalized.records) + len(normalized.guarded.too_old))
        # a body of no alerts (`[]`) is written nowhere
        sends = [Send("alerts", None, value, partition, received_ms)
                 for partition, value in hop_values(parts, received_ms)]
        return Validated(sends, len(normalized.records), normalized.by_source, normalized.guarded.clamped,
                         normalized.own)

    @staticmethod
    def _raw(source: str, body: bytes, received_ms: int, items: int) -> Validated:
        """The body as received onto `alerts.raw`, stamped with its receive time (its arrival for normalize)."""
        return Validated([Send("alerts_raw", source.encode(), body, None, received_ms)], items)


DEFAULT_HOP = AlertHop(DEFAULT_KEY_CONFIG, DEFAULT_GUARD, 4)  # 4: the settings' default partition count
"""The hop with default settings, behind `Endpoint.validate` of the alert endpoints (the worker's own is
`Ingest.hop`)."""


def alerts_validator(source: str) -> Callable[[bytes], Validated]:
    """The body check and records of an alert endpoint, with default settings, received now."""

    def validate(body: bytes) -> Validated:
        return DEFAULT_HOP.validate(source, body, time.time())

    return validate


def parse_tickets(body: bytes) -> list[tuple[bytes, bytes]]:
    """(ticket id, record) per ticket or resolution of a body (one object or an array of them; `[]`: none).

    The parse is `correlator.triage.lifecycle.parse_ticket_body`, the rule the triage agent applies to each
    record, so a body accepted here is never dead-lettered there (a resolution included).
    """
    check_body(body, TICKETS, None)
    try:
        return [(ticket_id.encode(), value) for ticket_id, value, _ in parse_ticket_body(body)]
    except InputError as exc:
        raise SourceError(exc.field, exc.reason, source=TICKETS) from None


def validate_tickets(body: bytes) -> Validated:
    """`parse_tickets` with its SourceError as a 400."""
    try:
        records = parse_tickets(body)
    except SourceError as exc:
        raise invalid(exc) from None
    return Validated([Send("tickets_raw", key, value) for key, value in records], len(records))


@dataclass(frozen=True)
class Endpoint:
    """One `POST /ingest/<name>`: the metric label, the topic (TopicNames field) and the body check; `source` names
    the adapter of an alert endpoint (whose records the ingest builds with its own settings, `Ingest.hop`);
    `aliases` are other paths served by the same handler, token and metric label."""

    name: str
    topic_field: str
    validate: Callable[[bytes], Validated]
    source: str | None = None
    aliases: tuple[str, ...] = ()

    @property
    def path(self) -> str:
        """The URL path."""
        return f"/ingest/{self.name}"


ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("alertmanager", "alerts", alerts_validator("alertmanager"), "alertmanager"),
    Endpoint("zabbix", "alerts", alerts_validator("zabbix"), "zabbix"),
    # Prometheus posts to the Alertmanager address it is given with `/api/v2/alerts` appended: the alias lets it
    # post to a worker directly (the generic adapter reads Alertmanager API v2 alerts).
    Endpoint("alerts", "alerts", alerts_validator("generic"), "generic", aliases=(PROMETHEUS_ALERTS_PATH,)),
    Endpoint("tickets", "tickets_raw", validate_tickets),
)
"""Every ingest endpoint; the name is both the path tail and the `endpoint` metric label."""


def check_encoding(header: str | None) -> None:
    """415 for a Content-Encoding the web server does not decode: the bytes would reach the adapter still encoded."""
    encoding = (header or "").strip().lower()
    if encoding not in DECODED_ENCODINGS:
        raise Refusal(415, "unsupported_encoding",
                      f"Content-Encoding {header!r} is not supported; send identity, gzip or deflate",
                      extensions={"supported": sorted(e for e in DECODED_ENCODINGS if e)})


async def read_body(request: aioweb.Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as the declared or the actual size passes `limit`.

    Reads the stream directly: aiohttp's `client_max_size` guards only `request.read()`, and a chunked
    body declares no length at all.
    """
    declared = request.content_length
    if declared is not None and declared > limit:
        raise too_large(limit, declared)
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.content.iter_any():
            size += len(chunk)
            if size > limit:
                raise too_large(limit)
            chunks.append(chunk)
    except (HttpProcessingError, RequestPayloadError, ConnectionError) as exc:  # cut short, or broken encoding
        if isinstance(exc, ContentEncodingError) or isinstance(exc.__cause__, ContentEncodingError):
            # aiohttp's parser cannot go on after this: it drops the connection once answered (logging the error),
            # so tell the client not to send its next request on it
            encoding = request.headers.get("Content-Encoding", "").strip()
            raise Refusal(400, "bad_encoding", f"the body is not valid {encoding}: it does not decode",
                          headers={"Connection": "close"}) from None
        raise Refusal(400, "incomplete_body", f"the body was cut short: {exc!r}") from None
    return b"".join(chunks)


# ---------------------------------------------------------------- the broker side


class RawSender(Protocol):
    """Where accepted records go; a seam so tests can swap the broker."""

    async def send(self, topic: str, key: bytes | None, value: bytes, *, partition: int | None = None,
                   timestamp_ms: int | None = None) -> None:
        """Return once the broker acknowledged the record; raise `Refusal` (503, 413) otherwise."""

    async def topics(self) -> set[str]:
        """Names of the topics the broker holds; raises when it cannot be reached."""


def producer_options(settings: Settings) -> dict[str, Any]:
    """aiokafka producer options of the ingest (see the module docstring for why each)."""
    timeout_ms = max(100, int(settings.ingest_send_timeout * 1000))
    return {
        "bootstrap_servers": settings.bootstrap_servers,
        "client_id": f"{settings.app_id}-ingest",
        "acks": "all",
        "enable_idempotence": False,
        "linger_ms": int(settings.ingest_linger * 1000),
        "max_batch_size": settings.ingest_batch_bytes,
        "max_request_size": max(settings.ingest_batch_bytes, settings.max_record_bytes),
        # The ack wait, the metadata wait in send() and the age at which a batch that cannot be delivered
        # is failed (and never sent again): all three bound the 503.
        "request_timeout_ms": timeout_ms,
        "retry_backoff_ms": 50,
        **client_options(settings),  # TLS/SASL, as for the worker's own Kafka clients
    }


class KafkaSender(Service):
    """The ingest's own aiokafka producer, started and stopped with the app (see the module docstring)."""

    def __init__(self, settings: Settings, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._options = producer_options(settings)
        # aiokafka fails an undeliverable batch after request_timeout_ms, and a request in flight times out
        # after as long again; this outer bound only guards against that machinery hanging.
        self._deadline_s = 2 * self._options["request_timeout_ms"] / 1000 + 1.0
        self._producer: AIOKafkaProducer | None = None

    async def on_start(self) -> None:
        """Connect the producer (aiokafka wants a running loop, hence here and not in __init__)."""
        producer = AIOKafkaProducer(**self._options)
        await producer.start()
        self._producer = producer

    async def on_stop(self) -> None:
        """Deliver what is buffered and close; the web server stopped before this (reverse start order)."""
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()

    async def send(self, topic: str, key: bytes | None, value: bytes, *, partition: int | None = None,
                   timestamp_ms: int | None = None) -> None:
        """Send one record and wait for the broker's ack (the RecordMetadata), not just the enqueue."""
        producer = self._producer
        if producer is None:
            raise unavailable("not_started", "the ingest producer is not running")
        try:
            await asyncio.wait_for(_send_acked(producer, topic, key, value, partition, timestamp_ms), self._deadline_s)
        except (TimeoutError, KafkaTimeoutError) as exc:
            raise unavailable("send_timeout", f"no broker ack: {exc!r}") from None
        except (MessageSizeTooLargeError, RecordListTooLargeError) as exc:
            raise Refusal(413, "too_large_for_broker", f"the broker refused the record as too large: {exc!r}"
                          ) from None
        except KafkaError as exc:
            raise unavailable("broker_unavailable", f"broker refused or unreachable: {exc!r}") from None

    async def topics(self) -> set[str]:
        """Topic names from a fresh metadata request for all topics (it auto-creates nothing)."""
        producer = self._producer
        if producer is None:
            raise KafkaError("the ingest producer is not running")
        cluster = await producer.client.fetch_all_metadata()
        return set(cluster.topics())


async def _send_acked(producer: AIOKafkaProducer, topic: str, key: bytes | None, value: bytes, partition: int | None,
                      timestamp_ms: int | None) -> None:
    # enqueued into a batch (may wait for metadata)
    ack = await producer.send(topic, value, key=key, partition=partition, timestamp_ms=timestamp_ms)
    await ack  # RecordMetadata: the broker wrote the batch with acks=all


# ---------------------------------------------------------------- readiness


@dataclass(frozen=True)
class ReadyState:
    """The outcome of one readiness check: ready or not, why not (one line per reason), and the figures."""

    ready: bool
    detail: Mapping[str, Any]
    reasons: tuple[str, ...] = ()


ReadyCheck = Callable[[], Awaitable[ReadyState]]
"""One part of /readyz; `Ingest.checks` holds them all and /readyz is ready when every one is."""


class Readiness:
    """The broker check behind /readyz, cached for `ttl_s` and shared by concurrent probes.

    A probe storm (every kubelet, every load balancer) costs one metadata request per `ttl_s`.
    """

    def __init__(self, sender: RawSender, topics: Sequence[str], *, ttl_s: float = READY_CACHE_S,
                 timeout_s: float = READY_TIMEOUT_S, clock: Callable[[], float] = time.monotonic) -> None:
        self._sender = sender
        self._topics = sorted(topics)
        self._ttl_s = ttl_s
        self._timeout_s = timeout_s
        self._clock = clock
        self._lock = asyncio.Lock()
        self._state: ReadyState | None = None
        self._at = 0.0
        self.checks = 0

    def _cached(self) -> ReadyState | None:
        if self._state is not None and self._clock() - self._at < self._ttl_s:
            return self._state
        return None

    async def state(self) -> ReadyState:
        """The cached state, or a fresh check when it is older than `ttl_s` (one check at a time)."""
        cached = self._cached()
        if cached is not None:
            return cached
        async with self._lock:
            cached = self._cached()
            if cached is None:
                cached = self._state = await self._check()
                self._at = self._clock()
        return cached

    def send_failed(self, reason: str) -> None:
        """An ingest send just failed: not ready until the next broker check, `ttl_s` from now.

        So that /readyz never says ready while the ingest answers 503 (the probe and the gate read one state).
        """
        self._state = ReadyState(False, {"broker": "send_failed"}, (f"ingest send failed: {reason}",))
        self._at = self._clock()

    async def _check(self) -> ReadyState:
        self.checks += 1
        try:
            known = await asyncio.wait_for(self._sender.topics(), self._timeout_s)
        except Exception as exc:  # a probe answers 503, it never fails with 500
            return ReadyState(False, {"broker": "unreachable", "broker_error": repr(exc)}, ("broker unreachable",))
        missing = [t for t in self._topics if t not in known]
        reasons = (f"missing topics: {', '.join(missing)}",) if missing else ()
        return ReadyState(not missing, {"broker": "reachable", "missing_topics": missing}, reasons)


# ---------------------------------------------------------------- the request path


class Admission(Protocol):
    """What the ingest asks admission control (`stream.admission.BacklogProbe`; a seam for tests)."""

    def verdict(self) -> Backlog:
        """The current backlog verdict."""


class Ingest:
    """Checks a request, sends its records, and answers; counts every answer and every refusal."""

    def __init__(self, settings: Settings, sender: RawSender, readiness: Readiness | None = None,
                 admission: Admission | None = None) -> None:
        self.tokens = TokenBook(settings.role_tokens())
        self._max_body = settings.ingest_max_body_bytes
        self._topics = {"alerts_raw": settings.topics.alerts_raw, "alerts": settings.topics.alerts,
                        "tickets_raw": settings.topics.tickets_raw}
        self.hop = AlertHop.of(settings)
        """How alert bodies become `alerts` records, with this worker's settings."""
        self.sender = sender
        self.readiness = readiness or Readiness(sender, list(settings.topic_plan()))
        self.admission = admission
        self.checks: list[ReadyCheck] = [self.readiness.state, self._backlog_state]
        """The parts of /readyz, in order; others append theirs (the broker watch, stream/recovery.py)."""

    async def handle(self, endpoint: Endpoint, request: aioweb.Request) -> Reply:
        """The answer to one POST, counted by status code, and by reason when refused."""
        started = time.perf_counter()
        try:
            reply = await self._accept(endpoint, request)
        except Refusal as refusal:
            metrics.INGEST_REFUSALS.labels(endpoint.name, refusal.reason).inc()
            _log_refusal(endpoint, refusal)
            reply = refusal.reply(request.path)
        except asyncio.CancelledError:
            # aiohttp cancels a handler whose client hung up while its body was being read: no answer goes
            # out, so count it under nginx's 499 "client closed request"
            metrics.INGEST_REFUSALS.labels(endpoint.name, "client_disconnected").inc()
            metrics.INGEST_REQUESTS.labels(endpoint.name, CLIENT_CLOSED).inc()
            raise
        metrics.INGEST_REQUESTS.labels(endpoint.name, str(reply.status)).inc()
        metrics.INGEST_SECONDS.labels(endpoint.name).observe(time.perf_counter() - started)
        return reply

    async def _accept(self, endpoint: Endpoint, request: aioweb.Request) -> Reply:
        decided = self.tokens.authorize("POST", endpoint.path, request.headers.get("Authorization"))
        if isinstance(decided, Denied):
            raise Refusal(decided.status, "unauthorized" if decided.status == 401 else "forbidden",
                          decided.message, headers=decided.headers())
        if endpoint.source is not None:
            self._admit()
        check_encoding(request.headers.get("Content-Encoding"))
        body = await read_body(request, self._max_body)
        if endpoint.source is not None:
            batch = self.hop.validate(endpoint.source, body, time.time())  # received now: the alerts' arrival
        else:
            batch = endpoint.validate(body)
        await self._gate()
        try:
            if len(batch.records) == 1:
                await self._send(batch.records[0])
            else:  # every record acked, or 503 and the sender retries them all (alerts: duplicates; tickets: by id)
                await asyncio.gather(*(self._send(record) for record in batch.records))
        except Refusal as refusal:
            if refusal.status == 503:
                self.readiness.send_failed(refusal.reason)
            raise
        count_received(dict(batch.by_source), endpoint.source or "", batch.own)
        if batch.clamped and endpoint.source is not None:
            metrics.ALERT_TIME_ADJUSTED.labels(endpoint.source, "future").inc(batch.clamped)
        metrics.INGEST_ITEMS.labels(endpoint.name).inc(batch.items)
        return Reply(202, {"accepted": batch.items, "records": len(batch.records)})

    async def _send(self, record: Send) -> None:
        await self.sender.send(self._topics[record.topic_field], record.key, record.value, partition=record.partition,
                               timestamp_ms=record.timestamp_ms)

    def _admit(self) -> None:
        """503 + Retry-After while admission control sheds: the sender retries, nothing is lost."""
        backlog = self.admission.verdict() if self.admission is not None else None
        if backlog is not None and backlog.shed:
            raise Refusal(503, "backlog", "; ".join(backlog.reasons), extensions={"backlog": backlog.as_dict()},
                          headers={"Retry-After": str(backlog.retry_after)})

    async def _backlog_state(self) -> ReadyState:
        backlog = self.admission.verdict() if self.admission is not None else None
        if backlog is None:
            return ReadyState(True, {})
        detail = {"backlog": backlog.as_dict()}
        return ReadyState(not backlog.shed, detail, tuple(f"shedding alert ingest: {r}" for r in backlog.reasons))

    async def _states(self, *, gate: bool = False) -> list[ReadyState]:
        # The ingest gate leaves shedding to `_admit`: only alert endpoints shed, tickets never do.
        return [await check() for check in self.checks if not (gate and check == self._backlog_state)]

    async def _gate(self) -> None:
        """503 while /readyz is not ready: after validation, so a bad body still gets its 400 at once.

        A broker back without its topics acknowledges records for them all the same (Tansu does), and an
        agent group that has not resumed reads nothing: a 202 then would be a promise nobody keeps.
        """
        states = await self._states(gate=True)
        if not all(s.ready for s in states):
            unreachable = any(s.detail.get("broker") in ("unreachable", "send_failed") for s in states)
            reasons = _reasons(states)
            raise unavailable("broker_unavailable" if unreachable else "not_ready", "; ".join(reasons) or "not ready")

    def health(self) -> Reply:
        """/healthz: the process serves HTTP."""
        return _counted("healthz", Reply(200, {"status": "ok"}))

    async def ready(self, path: str = "/readyz") -> Reply:
        """/readyz: 200 when every check passes (broker reachable, topics there, not shedding, the broker watch),
        else 503 with the reasons (a problem document for `path`)."""
        states = await self._states()
        ready = all(s.ready for s in states)
        reasons = _reasons(states)
        figures: dict[str, Any] = {"ready": ready, "reasons": reasons}
        for state in states:
            figures.update(state.detail)
        if ready:
            return _counted("readyz", Reply(200, figures))
        # not ready is an answer of the problem shape too, its figures kept as extension members
        body = problem(503, "not_ready", "; ".join(reasons) or "not ready", instance=path, **figures)
        return _counted("readyz", Reply(503, body, {"Retry-After": str(RETRY_AFTER_S)}))


def _reasons(states: Sequence[ReadyState]) -> list[str]:
    # in order, once: the broker check and the broker watch may both see one outage
    return list(dict.fromkeys(r for s in states for r in s.reasons))


def _counted(endpoint: str, reply: Reply) -> Reply:
    metrics.INGEST_REQUESTS.labels(endpoint, str(reply.status)).inc()
    return reply


def _log_refusal(endpoint: Endpoint, refusal: Refusal) -> None:
    # 4xx are the sender's problem and can come in floods: debug; 5xx are ours: warning
    level = logging.WARNING if refusal.status >= 500 else logging.DEBUG
    log.log(level, "%s refused %d %s: %s", endpoint.path, refusal.status, refusal.reason, refusal.message)


# ---------------------------------------------------------------- Faust views


def _respond(web: Any, reply: Reply) -> Response:
    content_type = PROBLEM_JSON if reply.status >= 400 else JSON
    response: Response = web.bytes(orjson.dumps(reply.body), content_type=content_type, status=reply.status,
                                   headers=dict(reply.headers))
    return response


def _post_view(ingest: Ingest, endpoint: Endpoint) -> type[View]:
    class IngestView(View):
        """POST only: aiohttp answers 405 to any other method."""

        async def post(self, request: Request) -> Response:
            return _respond(self.web, await ingest.handle(endpoint, request))  # type: ignore[arg-type]

    return IngestView


def _probe_views(ingest: Ingest) -> tuple[type[View], type[View]]:
    class Healthz(View):
        async def get(self, request: Request) -> Response:
            return _respond(self.web, ingest.health())

    class Readyz(View):
        async def get(self, request: Request) -> Response:
            return _respond(self.web, await ingest.ready(request.url.path))

    return Healthz, Readyz


def install_ingest(app: App, settings: Settings, sender: RawSender | None = None) -> Ingest:
    """Add the ingest endpoints, /healthz and /readyz to the app's web server, and the ingest producer to the app.

    Faust views rather than routes on the underlying aiohttp application: they register the way /metrics and
    /incidents do, on the one port, without reaching into the web driver's private app; the handlers still
    read the body as aiohttp's stream, which is what Faust hands a view.
    """
    if sender is None:
        kafka = KafkaSender(settings)
        app.add_dependency(kafka)  # started before the web server, stopped after it
        sender = kafka
    probe: BacklogProbe | None = None
    if BacklogProbe.wanted(settings):
        probe = BacklogProbe(settings)
        app.add_dependency(probe)
    ingest = Ingest(settings, sender, admission=probe)
    for endpoint in ENDPOINTS:
        view = _post_view(ingest, endpoint)
        for n, path in enumerate((endpoint.path, *endpoint.aliases)):
            app.page(path, name=f"ingest_{endpoint.name}" + (f"_alias{n}" if n else ""))(view)
    healthz, readyz = _probe_views(ingest)
    app.page("/healthz", name="healthz")(healthz)
    app.page("/readyz", name="readyz")(readyz)
    return ingest
