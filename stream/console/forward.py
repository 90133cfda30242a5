"""Actions sent to any worker reach the owner: a 421 from a view is forwarded over HTTP to the worker that owns
the partition, and its answer is the answer.

The views that act on one ticket or incident (`/review/*`, `/tickets/*/resolve`, `/incidents/*/ack`, ...) answer
421 `misdirected` with `partition` and, when the cluster's assignment names it, `owner` (that worker's canonical
URL, from Faust's assignor: the worker holding the partition of the SLA table's changelog, which is the
partition of the input topic). This middleware, innermost on the web port (after the token check, so a refused
caller is refused here, never forwarded), replays such a request to `owner` once: same method, path, query and
body, the caller's token as a bearer header (also when the browser sent it as the console's cookie), and a
`X-Aiops-Forwarded-By` header. A forwarded request is never forwarded again (the 421 goes back to the first
worker, which answers 503 with Retry-After: the partition is moving, as in a rebalance); so a person never sees
a 421, and two workers with stale assignments cannot bounce a request between them.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from stream.auth import authorization_of
from stream.problems import problem_response

__all__ = ["FORWARDED_BY", "Forwarder", "owner_url"]

log = logging.getLogger(__name__)

FORWARDED_BY = "X-Aiops-Forwarded-By"
RETRY_AFTER_S = 2
TIMEOUT_S = 10.0
_PASSED = ("Content-Type", "Accept")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def owner_url(tables_metadata: Mapping[Any, Mapping[str, Sequence[int]]], changelog_topic: str, partition: int
              ) -> str | None:
    """The canonical URL of the worker that actively holds `partition` of a table's changelog, if any does."""
    for url, topics in tables_metadata.items():
        if partition in (topics.get(changelog_topic) or ()):
            return str(url)
    return None


class Forwarder:
    """The middleware and its one HTTP client session (opened at first use, closed when the worker stops)."""

    def __init__(self, self_url: str) -> None:
        self.self_url = self_url.rstrip("/")
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        """Close the client session (a stop hook)."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    def middleware(self) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
        """The aiohttp middleware (see the module docstring)."""

        @web.middleware
        async def forward(request: web.Request, handler: Handler) -> web.StreamResponse:
            response = await handler(request)
            if response.status != 421 or not isinstance(response, web.Response) or response.body is None:
                return response
            if request.headers.get(FORWARDED_BY):
                return response  # the owner we asked does not own it either: the first worker says 503
            owner = _owner_of(response)
            if owner is None or owner.rstrip("/") == self.self_url:
                return problem_response(request, 503, "moving", "the owner of this item is changing (a "
                                        "rebalance); try again shortly", headers={"Retry-After": str(RETRY_AFTER_S)})
            return await self._replay(request, owner)

        return forward

    async def _replay(self, request: web.Request, owner: str) -> web.StreamResponse:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT_S))
        headers = {name: request.headers[name] for name in _PASSED if name in request.headers}
        token = authorization_of(request)  # the credentials the owner's auth check will read, as ours did
        if token:
            headers["Authorization"] = token
        headers[FORWARDED_BY] = self.self_url
        body = await request.read()
        try:
            async with self._session.request(request.method, owner.rstrip("/") + request.rel_url.path_qs,
                                             data=body or None, headers=headers) as answer:
                payload = await answer.read()
                return web.Response(body=payload, status=answer.status,
                                    content_type=answer.content_type or "application/octet-stream",
                                    headers={FORWARDED_BY: owner})
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("forwarding %s %s to %s failed: %r", request.method, request.path, owner, exc)
            return problem_response(request, 503, "owner_unreachable", f"the owner ({owner}) did not answer; try "
                                    "again shortly", headers={"Retry-After": str(RETRY_AFTER_S)})


def _owner_of(response: web.Response) -> str | None:
    try:
        doc = orjson.loads(bytes(response.body))  # type: ignore[arg-type]  # a problem body is bytes
    except (orjson.JSONDecodeError, TypeError):
        return None
    owner = doc.get("owner") if isinstance(doc, dict) else None
    return owner if isinstance(owner, str) and owner else None
