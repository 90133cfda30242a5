"""One error shape on every route of the web port: `application/problem+json` (RFC 9457).

Every 4xx/5xx answer, whoever decides it (the ingest, the incident and review views, the token check, aiohttp's
own router and body limit, an unexpected exception), is built by `problem`:

    {"type": "https://aiops-correlator.example/problems/backlog", "title": "Service Unavailable",
     "status": 503, "detail": "backlog of 25000 records above 20000", "instance": "/ingest/alertmanager",
     "error": "backlog", "errors": [], ...}

`error` is the machine-readable reason code the answers carried before this shape (`backlog`, `too_large`,
`missing_field`, `not_found`, ...): the last segment of `type`, kept as an extension member so that clients
reading it keep working. `errors` lists what is wrong with a body, each `{"field", "reason"}` with the field
path and reason of the one formatter (`correlator.validation`); it is empty when the whole request is refused.
Other extension members carry the refusal's figures (`limit_bytes`, `backlog`, `partition`, `reasons`).
Headers that go with a refusal (Retry-After, WWW-Authenticate, Allow) are kept.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from http import HTTPStatus
from typing import Any

import orjson
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from correlator.validation import FieldError

__all__ = ["PROBLEM_JSON", "TYPE_BASE", "FieldProblem", "Problem", "problem", "problem_middleware", "problem_response",
           "status_code"]

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://aiops-correlator.example/problems/"
"""Problem type URIs are this plus the reason code; README.md's "Errors" section lists the codes."""

_STATUS_CODES: Mapping[int, str] = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
    409: "conflict", 413: "too_large", 415: "unsupported_media_type", 421: "misdirected",
    500: "internal_error", 503: "unavailable",
}


class FieldProblem(BaseModel):
    """One thing wrong with a request body: where (a field path such as `alerts[3].startsAt`, `body` for the
    whole) and why."""

    field: str
    reason: str


class Problem(BaseModel):
    """Every error answer of the web port (RFC 9457 problem details, plus `error` and `errors`)."""

    model_config = ConfigDict(extra="allow", title="Problem")

    type: str = Field(description=f"{TYPE_BASE}<error>")
    title: str = Field(description="the HTTP status phrase")
    status: int = Field(ge=400, le=599)
    detail: str = Field(description="what went wrong, for a person")
    instance: str = Field(description="the request path")
    error: str = Field(description="the machine-readable reason code (backlog, too_large, missing_field, "
                                   "not_found, ...); the metric label of the refusal")
    errors: list[FieldProblem] = Field(description="what is wrong with the body, empty when the whole request is "
                                                   "refused")


def status_code(status: int) -> str:
    """The reason code of an answer that has no more specific one (aiohttp's 404, 405, 413; a 500)."""
    return _STATUS_CODES.get(status) or HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")


def problem(status: int, code: str, detail: str, *, instance: str = "", errors: Sequence[FieldError] = (),
            **extensions: Any) -> dict[str, Any]:
    """The problem document for one refusal: RFC 9457's members, `error` (the code) and `errors`, then the rest."""
    body: dict[str, Any] = {
        "type": TYPE_BASE + code, "title": HTTPStatus(status).phrase, "status": status, "detail": detail,
        "error": code, "errors": [e.as_dict() for e in errors],
    }
    if instance:
        body["instance"] = instance
    body.update((k, v) for k, v in extensions.items() if k not in body)  # an extension never hides a member
    return body


def problem_response(request: web.BaseRequest, status: int, code: str, detail: str, *,
                     errors: Sequence[FieldError] = (), headers: Mapping[str, str] | None = None,
                     **extensions: Any) -> web.Response:
    """`problem` as an aiohttp answer, `instance` being the request's path."""
    body = problem(status, code, detail, instance=request.path, errors=errors, **extensions)
    return web.Response(body=orjson.dumps(body), status=status, content_type=PROBLEM_JSON, headers=headers)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def problem_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The outermost middleware: whatever answers 4xx/5xx in another shape leaves in the problem shape.

    Catches aiohttp's HTTP exceptions (the router's 404 and 405, the body limit's 413) and any exception a
    view did not handle (500, logged with its traceback); rewrites an error answer of another content type
    (Faust's own `View.error` JSON, a plain-text body), its text becoming `detail`.
    """
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return problem_response(request, exc.status, status_code(exc.status), _exception_detail(request, exc),
                                headers=_kept_headers(exc.headers))
    except (asyncio.CancelledError, ConnectionError):
        raise  # the client is gone: nobody to answer
    except Exception:
        log.exception("%s %s failed", request.method, request.path)
        return problem_response(request, 500, "internal_error", "the server failed to answer; see its log")
    if response.status < 400 or response.content_type == PROBLEM_JSON or not isinstance(response, web.Response):
        return response
    return problem_response(request, response.status, status_code(response.status), _detail_of(response),
                            headers=_kept_headers(response.headers))


def _exception_detail(request: web.Request, exc: web.HTTPException) -> str:
    if exc.status == 404:
        return f"nothing is served at {request.path}"
    if exc.status == 405:
        return f"{request.method} is not allowed on {request.path} (Allow: {exc.headers.get('Allow', '')})"
    text = exc.text or ""
    return exc.reason if not text or text.startswith(f"{exc.status}:") else text


def _kept_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {name: value for name, value in headers.items()
            if name.lower() in ("allow", "retry-after", "www-authenticate", "connection")}


def _detail_of(response: web.Response) -> str:
    raw = response.body if isinstance(response.body, bytes) else b""
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw.decode(errors="replace").strip() or response.reason
    if isinstance(doc, dict) and isinstance(doc.get("error"), str):
        return str(doc["error"])  # Faust's `View.error` shape: {"error": "Method GET not allowed."}
    return response.reason
