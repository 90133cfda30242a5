"""The MCP tools (`stream.mcp_server`) over streamable HTTP on the worker's own web port: `POST /mcp`.

The SDK's HTTP transport is an ASGI (Starlette) app; the worker's web server is aiohttp (Faust's). The bridge
here hands each request to the ASGI app and returns its answer whole: the transport runs stateless with JSON
answers (`stateless_http`, `json_response`), which the streamable HTTP spec allows and which needs no stream
held open (a GET, for a server-sent event stream, is answered 405, as the spec allows;
there is no session to DELETE). The ASGI lifespan (the SDK's
session manager) starts with the first request and ends
when the worker stops.

Behind the operator token: the worker's auth middleware (stream/auth.py) guards `/mcp` like every route, so with
tokens configured a POST needs an operator token. Each tool then calls the worker's API on the loopback with the
caller's own token, so what the caller does is recorded under its name. Installed only when the `mcp` extra is.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, MutableMapping
from typing import Any

from aiohttp import web
from faust.web import View

from stream.api_client import client_of
from stream.app import App
from stream.settings import Settings

__all__ = ["MCP_PATH", "AsgiBridge", "install_mcp_http"]

log = logging.getLogger(__name__)

MCP_PATH = "/mcp"
Message = MutableMapping[str, Any]
Asgi = Callable[[Message, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]],
                Coroutine[Any, Any, None]]


class AsgiBridge:
    """An ASGI app behind aiohttp, for apps that answer each request whole (no streaming), with its lifespan."""

    def __init__(self, asgi: Asgi, path: str) -> None:
        self.asgi = asgi
        self.path = path
        """The path the ASGI app serves, whichever slash form the request used (its redirect would leave aiohttp)."""
        self._lifespan: asyncio.Task[None] | None = None
        self._events: asyncio.Queue[Message] = asyncio.Queue()
        self._started = asyncio.Event()
        self._stopped = asyncio.Event()
        self._starting = asyncio.Lock()

    async def start(self) -> None:
        """Run the app's lifespan startup, once; return when it is complete (its shutdown waits in a task)."""
        async with self._starting:
            if self._lifespan is None:
                await self._start()

    async def _start(self) -> None:
        async def receive() -> Message:
            return await self._events.get()

        async def send(message: Message) -> None:
            if message["type"].startswith("lifespan.startup."):
                self._started.set()
            elif message["type"].startswith("lifespan.shutdown."):
                self._stopped.set()

        self._lifespan = asyncio.create_task(self.asgi({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send))
        await self._events.put({"type": "lifespan.startup"})
        await self._started.wait()

    async def stop(self) -> None:
        """Run the lifespan shutdown."""
        if self._lifespan is None or self._lifespan.done():
            return
        await self._events.put({"type": "lifespan.shutdown"})
        await asyncio.wait_for(self._stopped.wait(), timeout=5.0)

    async def handle(self, request: web.Request) -> web.Response:
        """One request through the ASGI app, its answer collected whole (the lifespan started at the first)."""
        await self.start()
        body = await request.read()
        sent = False
        answer: dict[str, Any] = {"status": 500, "headers": [], "body": b""}
        done = asyncio.Event()

        async def receive() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await done.wait()  # the app listens for a disconnect only after it answered
            return {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            if message["type"] == "http.response.start":
                answer["status"], answer["headers"] = message["status"], message.get("headers", [])
            elif message["type"] == "http.response.body":
                answer["body"] += message.get("body", b"")
                if not message.get("more_body", False):
                    done.set()

        await self.asgi(_scope(request, self.path), receive, send)
        done.set()
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in answer["headers"]
                   if k.lower() not in (b"content-length", b"transfer-encoding")]
        return web.Response(status=answer["status"], body=answer["body"], headers=headers)


def _scope(request: web.Request, path: str) -> Message:
    host, port = (request.transport.get_extra_info("sockname") or ("127.0.0.1", 0))[:2] if request.transport \
        else ("127.0.0.1", 0)
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": request.method,
        "scheme": request.scheme, "path": path, "raw_path": path.encode(),
        "query_string": request.query_string.encode(), "root_path": "",
        "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in request.headers.items()],
        "client": (request.remote or "", 0), "server": (host, port),
    }


def install_mcp_http(app: App, settings: Settings) -> AsgiBridge | None:
    """`POST /mcp` on the worker, when the `mcp` extra is installed (else nothing, said once in the log)."""
    try:
        from mcp.server.transport_security import TransportSecuritySettings

        from stream.mcp_server import build_server
    except ImportError as exc:
        log.info("MCP over HTTP off: the mcp extra is not installed (%s)", exc)
        return None
    server = build_server(client_of(settings))
    # The bearer tokens guard the route; Host/Origin checks would refuse every name the worker is reached by.
    open_hosts = TransportSecuritySettings(enable_dns_rebinding_protection=False)
    bridge = AsgiBridge(server.streamable_http_app(streamable_http_path=MCP_PATH, json_response=True,
                                                   stateless_http=True, transport_security=open_hosts), MCP_PATH)

    @app.page(MCP_PATH)
    class Mcp(View):
        # POST only: a GET asks for a server-sent event stream, which this bridge cannot hold open (it would
        # wait for the stream's end); 405 is the spec's answer for a server that offers none.
        async def post(self, request: Any) -> Any:
            return await bridge.handle(request)

    app.stop_hooks.append(bridge.stop)
    return bridge
