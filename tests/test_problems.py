"""Every error answer of a built worker is `application/problem+json` (RFC 9457) with one shape: the routes of
`aiops worker` are walked on its own aiohttp application (no broker: the readiness, review and ingest answers
are their 503s), plus aiohttp's own 404, 405 and 413, the token check's 401/403, and a view that raises."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from stream.app import App
from stream.problems import PROBLEM_JSON, TYPE_BASE, Problem, problem
from stream.settings import Settings
from stream.worker import build_worker_app

MEMBERS = {"type", "title", "status", "detail", "instance", "error", "errors"}


def check_problem(status: int, content_type: str, body: bytes, path: str) -> dict[str, Any]:
    """The shape every error answer has; returns the document."""
    assert content_type == PROBLEM_JSON, (status, content_type, body[:200])
    doc = orjson.loads(body)
    assert MEMBERS <= doc.keys(), doc
    assert doc["status"] == status and doc["instance"] == path and doc["type"] == TYPE_BASE + doc["error"], doc
    assert isinstance(doc["detail"], str) and doc["detail"] and isinstance(doc["title"], str), doc
    assert all(set(e) == {"field", "reason"} for e in doc["errors"]), doc
    Problem.model_validate(doc)  # the document's Problem schema (GET /openapi.json)
    return doc


def serve(app: App, calls: Callable[[TestClient[Any, Any]], Awaitable[Any]]) -> Any:
    """Run `calls` against the app's own aiohttp application (its middlewares and routes as a worker serves them)."""

    async def go() -> Any:
        async with TestClient(TestServer(app.web.web_app)) as client:
            return await calls(client)

    return asyncio.run(go())


def _filled(path: str) -> str:
    if path.rstrip("/") == "/ui/events":  # an event stream ends only when asked to
        return path + "?limit=1"
    return re.sub(r"\{[^}]+\}", "nope", path)


def test_problem_keeps_its_members_over_extensions() -> None:
    doc = problem(503, "not_ready", "broker unreachable", instance="/readyz", error="x", reasons=["a"])
    assert (doc["error"], doc["reasons"], doc["errors"], doc["title"]) == ("not_ready", ["a"], [],
                                                                           "Service Unavailable")


def test_every_error_answer_of_every_route_is_a_problem(tmp_path: Path) -> None:
    app = build_worker_app(Settings(data_dir=tmp_path, stage2=True))[0]
    routes = sorted({(r.method, r.resource.canonical) for r in app.web.web_app.router.routes()
                     if r.resource is not None and r.method != "HEAD"})

    async def calls(client: TestClient[Any, Any]) -> list[tuple[str, str, int]]:
        seen = []
        for method, pattern in routes:
            path = _filled(pattern)
            resp = await client.request(method, path, data=b"{}" if method == "POST" else None)
            body = await resp.read()
            if resp.status >= 400:
                check_problem(resp.status, resp.content_type, body, path)
            seen.append((method, pattern, resp.status))
        return seen

    seen = serve(app, calls)
    errors = {(m, p): s for m, p, s in seen if s >= 400}
    # without a broker: not ready, the ingest cannot send, the review side recovers, no such incident
    assert errors[("GET", "/readyz")] == 503 and errors[("POST", "/ingest/alerts")] in (400, 503)
    assert errors[("GET", "/incidents/{incident_id}/")] == 404 and errors[("GET", "/review")] == 503
    assert len(errors) >= 10, seen


@pytest.mark.parametrize(("method", "path", "data", "status", "code"), [
    ("GET", "/no/such/page", None, 404, "not_found"),
    ("DELETE", "/incidents/", None, 405, "method_not_allowed"),
    ("GET", "/ingest/alerts", None, 405, "method_not_allowed"),
    ("POST", "/review/T-1/approve", b"{" + b" " * (1024**2 + 10) + b"}", 413, "too_large"),
    ("POST", "/ingest/alerts", b"[{}]", 400, "missing_field"),
    ("POST", "/ingest/tickets", b"[", 400, "malformed_json"),
    ("POST", "/ingest/alerts", b"[]", 503, "broker_unavailable"),  # a valid body, and no broker to take it
])
def test_aiohttp_and_ingest_refusals(method: str, path: str, data: bytes | None, status: int, code: str,
                                     tmp_path: Path) -> None:
    app = build_worker_app(Settings(data_dir=tmp_path))[0]

    async def calls(client: TestClient[Any, Any]) -> tuple[int, str, bytes, dict[str, str]]:
        resp = await client.request(method, path, data=data)
        return resp.status, resp.content_type, await resp.read(), dict(resp.headers)

    got, content_type, body, headers = serve(app, calls)
    assert got == status, body[:300]
    doc = check_problem(got, content_type, body, path)
    assert doc["error"] == code, doc
    if status == 405:
        assert headers["Allow"], headers
    if status == 503:
        assert int(headers["Retry-After"]) > 0, headers
    if status == 400:
        assert doc["errors"] and doc["errors"][0]["field"], doc


def test_token_refusals_are_problems(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, operator_tokens={"alice": "op-secret"}, ingest_tokens={"am": "in-secret"})
    app = build_worker_app(settings)[0]

    async def calls(client: TestClient[Any, Any]) -> list[tuple[str, int, str, bytes, dict[str, str]]]:
        out = []
        for path, token in [("/review", None), ("/review", "in-secret"), ("/ingest/alerts", None),
                            ("/ingest/alerts", "op-secret")]:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            method = "POST" if path.startswith("/ingest") else "GET"
            resp = await client.request(method, path, data=b"[]" if method == "POST" else None, headers=headers)
            out.append((path, resp.status, resp.content_type, await resp.read(), dict(resp.headers)))
        return out

    answers = serve(app, calls)
    assert [a[1] for a in answers] == [401, 403, 401, 403]
    for path, status, content_type, body, headers in answers:
        doc = check_problem(status, content_type, body, path)
        assert doc["error"] in {"no_token", "wrong_role", "unauthorized", "forbidden"}, doc
        assert (status == 401) == ("WWW-Authenticate" in headers), headers


def test_a_view_that_raises_answers_500_as_a_problem(tmp_path: Path) -> None:
    app = build_worker_app(Settings(data_dir=tmp_path))[0]

    async def broken(request: web.Request) -> web.Response:
        raise RuntimeError("boom")

    app.web.web_app.router.add_get("/broken", broken)

    async def calls(client: TestClient[Any, Any]) -> tuple[int, str, bytes]:
        resp = await client.get("/broken")
        return resp.status, resp.content_type, await resp.read()

    status, content_type, body = serve(app, calls)
    doc = check_problem(status, content_type, body, "/broken")
    assert (status, doc["error"]) == (500, "internal_error") and "boom" not in doc["detail"]
