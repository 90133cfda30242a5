"""Auth by role (stream/auth.py): the token settings, the access rule, and every route of a real worker on the
embedded broker called with no token, a wrong one, an ingest, an operator and a reader token."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from stream.auth import TokenBook, access_of
from stream.broker import EmbeddedBroker
from stream.settings import Settings

from .test_ingest import GENERIC_ONE, am_body, request, ticket
from .test_sources_zabbix import problem
from .ticketing import VAGUE, incident
from .ticketing import ticket as raw_ticket
from .workers import Deployment, WorkerProc

TOKENS = {"ingest": "ing-s3cret", "operator": "op-s3cret", "reader": "rd-s3cret", "wrong": "not-a-token"}
NAMES = {"ingest": "alertmanager", "operator": "alice", "reader": "grafana"}


# ---------------------------------------------------------------- settings and the rule, pure


def test_tokens_are_name_token_pairs_and_the_old_single_token_is_an_ingest_token() -> None:
    settings = Settings(operator_tokens="alice=a1, bob=b2", ingest_tokens="am=x1", ingest_token="old")
    tokens = settings.role_tokens()
    assert {n: t.get_secret_value() for n, t in tokens["operator"].items()} == {"alice": "a1", "bob": "b2"}
    assert {n: t.get_secret_value() for n, t in tokens["ingest"].items()} == {"am": "x1", "ingest": "old"}
    assert tokens["reader"] == {}
    assert "a1" not in repr(settings)  # secrets stay out of logs and tracebacks


@pytest.mark.parametrize("value", ["alice", "alice=", "=s3cret", "alice=a,alice=b"])
def test_a_malformed_pair_is_refused_without_echoing_it(value: str) -> None:
    with pytest.raises(ValidationError) as err:
        Settings(operator_tokens=value)
    assert "operator_tokens" in str(err.value) and "s3cret" not in str(err.value)


def test_one_token_for_two_names_is_refused() -> None:
    with pytest.raises(ValidationError, match="the same token is given for ingest am and operator alice"):
        Settings(ingest_tokens="am=same", operator_tokens="alice=same")


@pytest.mark.parametrize(("method", "path", "access"), [
    ("GET", "/healthz", "open"), ("GET", "/readyz/", "open"), ("GET", "/metrics", "open"),
    ("POST", "/ingest/alerts", "ingest"), ("GET", "/ingest/alerts", "ingest"),
    ("POST", "/api/v2/alerts", "ingest"), ("POST", "/api/v2/alerts/", "ingest"), ("GET", "/api/v2/status", "read"),
    ("GET", "/incidents/", "read"), ("HEAD", "/review", "read"),
    ("POST", "/review/T-1/approve", "operate"), ("POST", "/incidents/x/ack", "operate"),
    ("OPTIONS", "/review/T-1/approve", "open"), ("DELETE", "/incidents/x/", "operate"),
    ("PUT", "/silences/new-route-added-later", "operate"),
])
def test_access_follows_from_method_and_path(method: str, path: str, access: str) -> None:
    assert access_of(method, path) == access


def test_only_ingest_tokens_keep_reads_open_but_close_state_changes() -> None:
    book = TokenBook(Settings(ingest_token="x").role_tokens())
    assert book.authorize("GET", "/incidents/", None) is None
    denied = book.authorize("POST", "/incidents/i/ack", "Bearer x")
    assert denied is not None and getattr(denied, "status", None) == 403
    assert getattr(book.authorize("POST", "/incidents/i/ack", None), "status", None) == 401


def test_only_operator_tokens_close_the_ingest_too() -> None:
    """Any token set: no state-changing route answers without a token of its role, ingest included."""
    book = TokenBook(Settings(operator_tokens="alice=a1").role_tokens())
    assert getattr(book.authorize("POST", "/ingest/alerts", None), "status", None) == 401
    assert getattr(book.authorize("POST", "/ingest/alerts", "Bearer a1"), "status", None) == 403
    assert getattr(book.authorize("GET", "/incidents/", None), "status", None) == 401
    assert book.authorize("GET", "/incidents/", "Bearer a1") == book.identify("Bearer a1")


def test_the_route_table_below_covers_every_route_of_a_worker() -> None:
    """A route added later without a row here fails this test (its access then follows from the rule)."""
    from stream.app import slash_twin
    from stream.worker import build_worker_app
    app, _ = build_worker_app(Settings(data_dir=tempfile.mkdtemp(), stage2=True))
    served = {(r.method, r.resource.canonical) for r in app.web.web_app.router.routes()  # type: ignore[attr-defined]
              if r.method != "HEAD" and r.resource is not None}
    table = {(method, canonical) for _, method, canonical, _, _ in ROUTES}
    twins = {(method, twin) for method, canonical in table  # every view answers both forms ("/" has one)
             if (twin := slash_twin(canonical)) is not None}
    assert served == table | twins


# ---------------------------------------------------------------- every route x every token, on a worker

# (access, method, route as registered, path called, body) -- an allowed call's answer is in ALLOWED
ROUTES: list[tuple[str, str, str, str, bytes | None]] = [
    ("open", "GET", "/healthz", "/healthz", None),
    ("open", "GET", "/readyz", "/readyz", None),
    ("open", "GET", "/metrics", "/metrics", None),
    ("ingest", "POST", "/ingest/alertmanager", "/ingest/alertmanager", am_body()),
    ("ingest", "POST", "/ingest/zabbix", "/ingest/zabbix", orjson.dumps(problem())),
    ("ingest", "POST", "/ingest/alerts", "/ingest/alerts", GENERIC_ONE),
    ("ingest", "POST", "/api/v2/alerts", "/api/v2/alerts",  # the alias Prometheus posts to
     b'[{"labels": {"alertname": "AuthV2", "service": "auth"}, "startsAt": "2026-03-01T10:00:05Z"}]'),
    ("ingest", "POST", "/ingest/tickets", "/ingest/tickets", orjson.dumps(ticket("AUTH-T"))),
    ("read", "GET", "/assignment", "/assignment", None),
    ("read", "GET", "/stats", "/stats", None),
    ("read", "GET", "/incidents/", "/incidents/", None),
    ("read", "GET", "/incidents/{incident_id}/", "/incidents/nope/", None),
    ("read", "GET", "/incidents/{incident_id}/sla", "/incidents/nope/sla", None),
    ("read", "GET", "/sla", "/sla", None),
    ("read", "GET", "/review", "/review", None),
    ("read", "GET", "/review/{ticket_id}", "/review/nope", None),
    ("read", "GET", "/stage2/", "/stage2/", None),
    ("read", "GET", "/openapi.json", "/openapi.json", None),
    ("read", "GET", "/schemas/alert.json", "/schemas/alert.json", None),
    ("read", "GET", "/insight/hours", "/insight/hours", None),
    ("read", "GET", "/trends", "/trends", None),
    ("read", "GET", "/summary", "/summary", None),
    ("operate", "POST", "/review/{ticket_id}/approve", "/review/nope/approve", b"{}"),
    ("operate", "POST", "/review/{ticket_id}/override", "/review/nope/override", b'{"severity": "sev1"}'),
    ("operate", "POST", "/tickets/{ticket_id}/resolve", "/tickets/nope/resolve", b"{}"),
    ("operate", "POST", "/incidents/{incident_id}/ack", "/incidents/nope/ack", b"{}"),
    ("operate", "POST", "/mcp", "/mcp", b"{}"),
    ("read", "GET", "/", "/", None),
    ("read", "GET", "/ui/incidents/{incident_id}", "/ui/incidents/nope", None),
    ("read", "GET", "/ui/review", "/ui/review", None),
    ("read", "GET", "/ui/events", "/ui/events?limit=1", None),
    ("open", "GET", "/ui/static/{name}", "/ui/static/console.js", None),
    ("open", "GET", "/login", "/login", None),
    ("open", "POST", "/login", "/login", b"{}"),  # no token in the form: the sign-in page again, with the refusal
    ("open", "POST", "/logout", "/logout", None),  # 303 to the sign-in page, which answers 200
]
ALLOWED = {"/incidents/nope/": 404, "/incidents/nope/sla": 404, "/review/nope": 404, "/ui/incidents/nope": 404,
           "/logout": 303,
           "/mcp": 406}  # the MCP transport: past the token, it wants `Accept: application/json, text/event-stream`
"""What an allowed call answers when it is not 200 (ingest: 202; operate on an unknown id: 404)."""


def allowed_code(access: str, path: str) -> int:
    if access == "ingest":
        return 202
    if access == "operate":
        return ALLOWED.get(path, 404)
    return ALLOWED.get(path, 200)


def expected(access: str, path: str, holder: str | None) -> int:
    """The whole policy in one table: who may do what."""
    grants = {"ingest": {"ingest"}, "operator": {"read", "operate"}, "reader": {"read"}}
    if access == "open":
        return ALLOWED.get(path, 200)
    if holder is None or holder == "wrong":
        return 401
    return allowed_code(access, path) if access in grants[holder] else 403


def call(port: int, method: str, path: str, body: bytes | None = None, token: str | None = None
         ) -> tuple[int, Any, dict[str, str]]:
    """One HTTP request, the bearer token when given; (status, JSON or bytes, headers)."""
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    return request(port, method, path, body, headers)


def wait_for(probe: Any, timeout: float, what: str, worker: WorkerProc) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            got = probe()
        except OSError:
            got = None
        if got:
            return got
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}\n{worker.tail()}")


@pytest.fixture(scope="module")
def guarded(broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Deployment, WorkerProc]]:
    """One worker with ingest, operator and reader tokens (and stage 2, for its view), its ticket side ready."""
    env = {"AIOPS_IDLE_ADVANCE": "300", "AIOPS_STAGE2": "true", "AIOPS_SLA_CHECK_INTERVAL": "0.25",
           "AIOPS_INGEST_TOKENS": f"{NAMES['ingest']}={TOKENS['ingest']}",
           "AIOPS_OPERATOR_TOKENS": f"{NAMES['operator']}={TOKENS['operator']},bob=bob-s3cret",
           "AIOPS_READER_TOKENS": f"{NAMES['reader']}={TOKENS['reader']}"}
    dep = Deployment(broker, tmp_path_factory.mktemp("auth"), extra_env=env)
    dep.create_topics()
    worker = dep.start_worker()
    op = TOKENS["operator"]
    try:
        port = worker.web_port
        wait_for(lambda: call(port, "GET", "/readyz")[0] == 200, 60, "readiness", worker)
        wait_for(lambda: (s := call(port, "GET", "/sla", token=op))[0] == 200 and s[1]["ready"]
                 and s[1]["tickets_partitions"], 60, "the SLA side", worker)
        dep.produce("tickets_raw", [raw_ticket("AUTH-R", VAGUE)])
        dep.produce("incidents", [incident("inc-auth")])
        wait_for(lambda: "AUTH-R" in str(call(port, "GET", "/review", token=op)[1]), 60, "the review queue", worker)
        wait_for(lambda: call(port, "GET", "/incidents/inc-auth/sla", token=op)[0] == 200, 60, "the clock", worker)
        yield dep, worker
    finally:
        worker.stop()


HOLDERS = [None, "wrong", "ingest", "operator", "reader"]


@pytest.mark.parametrize("holder", HOLDERS, ids=lambda h: h or "no-token")
@pytest.mark.parametrize(("access", "method", "route", "path", "body"), ROUTES, ids=[f"{m} {r}" for _, m, r, _, _ in
                                                                                     ROUTES])
def test_every_route_answers_by_the_token_role(guarded: tuple[Deployment, WorkerProc], access: str, method: str,
                                               route: str, path: str, body: bytes | None, holder: str | None) -> None:
    _, worker = guarded
    status, answer, headers = call(worker.web_port, method, path, body, TOKENS[holder] if holder else None)
    assert status == expected(access, path, holder), answer
    if status == 401:
        assert headers["WWW-Authenticate"].startswith("Bearer") and answer["error"] in (
            "no_token", "unknown_token", "unauthorized")
    if status == 403:
        assert "may not" in (answer.get("detail") or "")


def test_refusals_are_counted(guarded: tuple[Deployment, WorkerProc]) -> None:
    _, worker = guarded
    before = worker.metric("aiops_auth_refusals_total", access="operate", reason="wrong_role")
    ingest_before = worker.metric("aiops_ingest_refusals_total", endpoint="alerts", reason="forbidden")
    assert call(worker.web_port, "POST", "/incidents/nope/ack", b"{}", TOKENS["ingest"])[0] == 403
    assert call(worker.web_port, "POST", "/ingest/alerts", GENERIC_ONE, TOKENS["operator"])[0] == 403
    assert worker.metric("aiops_auth_refusals_total", access="operate", reason="wrong_role") == before + 1
    assert worker.metric("aiops_ingest_refusals_total", endpoint="alerts", reason="forbidden") == ingest_before + 1


def test_the_actor_is_the_token_name_never_the_body(guarded: tuple[Deployment, WorkerProc]) -> None:
    """`acked_by` and a review's `who` are the operator token's name; a body naming someone else is refused."""
    _, worker = guarded
    port, op = worker.web_port, TOKENS["operator"]
    status, answer, _ = call(port, "POST", "/incidents/inc-auth/ack", b'{"who": "attacker"}', op)
    assert status == 400 and answer["errors"][0]["field"] == "who", answer
    status, answer, _ = call(port, "POST", "/review/AUTH-R/approve", b'{"who": "mallory"}', op)
    assert status == 400 and answer["errors"][0]["field"] == "who", answer

    status, clock, _ = call(port, "POST", "/incidents/inc-auth/ack", b'{"note": "on it"}', "bob-s3cret")
    assert (status, clock["acked_by"], clock["ack_note"]) == (200, "bob", "on it")
    status, event, _ = call(port, "POST", "/review/AUTH-R/approve", b'{"who": "alice"}', op)  # naming oneself: fine
    assert (status, event["review"]["who"], event["status"]) == (200, "alice", "routed"), event
