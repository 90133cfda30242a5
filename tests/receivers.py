"""Loopback receivers that implement each API's documented request and response contract (aiohttp servers).

The real services cannot be reached from the test machines, so these stand in for them, checking requests as the
services document them and answering as they do:

* PagerDuty Events API v2 (`POST /v2/enqueue`): a valid event is answered 202
  `{"status": "success", "message": "Event processed", "dedup_key": ...}` (a trigger without `dedup_key` gets a
  new one); an invalid one 400 `{"status": "invalid event", "message": "Event object is invalid", "errors": [...]}`
  (`routing_key`, `event_action` in trigger/acknowledge/resolve, `dedup_key` for acknowledge and resolve, and
  for a trigger `payload.summary` (at most 1024 chars), `payload.source`, `payload.severity` in
  critical/error/warning/info); when told to, 429 (too many events) before it takes more.
* Slack incoming webhook: a JSON body with `text` (or `blocks`) is answered 200 `ok` (text/plain); a body that is
  not JSON 400 `invalid_payload`, one without text 400 `no_text`; when told to, 429 with `Retry-After`.
* A signed webhook: 200 when `X-Aiops-Signature` verifies against the secret (`payloads.verify_signature`), 401
  otherwise.

`fail_with` queues answers (status, headers) given before the normal one, for retry tests.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from correlator.notify.payloads import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    verify_signature,
)

HOST = "127.0.0.1"
_PD_ACTIONS = {"trigger", "acknowledge", "resolve"}
_PD_SEVERITIES = {"critical", "error", "warning", "info"}


@dataclass
class Receiver:
    """A running loopback receiver: what it accepted, what it refused, and queued failures to answer first."""

    kind: str
    secret: str = ""
    accepted: list[Any] = field(default_factory=list)
    refused: list[tuple[int, Any]] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)
    failures: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    delay_s: float = 0.0
    runner: web.AppRunner | None = None
    port: int = 0

    @property
    def url(self) -> str:
        """Where deliveries go."""
        path = {"pagerduty": "/v2/enqueue", "slack": "/services/T0/B0/X0", "webhook": "/hook"}[self.kind]
        return f"http://{HOST}:{self.port}{path}"

    def fail_with(self, status: int, times: int = 1, headers: dict[str, str] | None = None) -> None:
        """Answer the next `times` requests with `status` (and headers) before answering normally."""
        self.failures += [(status, headers or {})] * times

    async def stop(self) -> None:
        """Shut the server down."""
        if self.runner is not None:
            await self.runner.cleanup()


def _pagerduty_errors(event: Any) -> list[str]:
    if not isinstance(event, dict):
        return ["Event object is not a JSON object"]
    errors = []
    if not isinstance(event.get("routing_key"), str) or not event["routing_key"]:
        errors.append("'routing_key' is missing or blank")
    action = event.get("event_action")
    if action not in _PD_ACTIONS:
        errors.append("'event_action' is missing or invalid")
    if action in ("acknowledge", "resolve") and not event.get("dedup_key"):
        errors.append("'dedup_key' is required for acknowledge and resolve")
    if len(str(event.get("dedup_key", ""))) > 255:
        errors.append("'dedup_key' is longer than 255 characters")
    if action == "trigger":
        payload: dict[str, Any] = event["payload"] if isinstance(event.get("payload"), dict) else {}
        if not payload.get("summary") or len(str(payload["summary"])) > 1024:
            errors.append("'payload.summary' is missing or longer than 1024 characters")
        if not payload.get("source"):
            errors.append("'payload.source' is missing or blank")
        if payload.get("severity") not in _PD_SEVERITIES:
            errors.append("'payload.severity' must be one of critical, error, warning, info")
    return errors


async def _pagerduty(receiver: Receiver, request: web.Request) -> web.Response:
    try:
        event = json.loads(await request.read())
    except ValueError:
        event = None
    errors = _pagerduty_errors(event)
    if errors:
        body = {"status": "invalid event", "message": "Event object is invalid", "errors": errors}
        receiver.refused.append((400, event))
        return web.json_response(body, status=400)
    key = event.get("dedup_key") or uuid.uuid4().hex
    receiver.accepted.append(event)
    return web.json_response({"status": "success", "message": "Event processed", "dedup_key": key}, status=202)


async def _slack(receiver: Receiver, request: web.Request) -> web.Response:
    try:
        message = json.loads(await request.read())
    except ValueError:
        receiver.refused.append((400, None))
        return web.Response(status=400, text="invalid_payload")
    if not isinstance(message, dict) or not (message.get("text") or message.get("blocks")):
        receiver.refused.append((400, message))
        return web.Response(status=400, text="no_text")
    receiver.accepted.append(message)
    return web.Response(status=200, text="ok")


async def _webhook(receiver: Receiver, request: web.Request) -> web.Response:
    body = (await request.read()).decode()
    stamp, signature = request.headers.get(TIMESTAMP_HEADER, ""), request.headers.get(SIGNATURE_HEADER, "")
    if not verify_signature(receiver.secret, stamp, body, signature, now=time.time()):
        receiver.refused.append((401, body))
        return web.json_response({"error": "bad signature"}, status=401)
    receiver.accepted.append(json.loads(body))
    return web.json_response({"ok": True})


_HANDLERS = {"pagerduty": _pagerduty, "slack": _slack, "webhook": _webhook}


async def start_receiver(kind: str, *, secret: str = "") -> Receiver:
    """A receiver of `kind` (pagerduty, slack, webhook) on a free loopback port, in the running loop."""
    import asyncio

    receiver = Receiver(kind, secret=secret)

    async def handle(request: web.Request) -> web.StreamResponse:
        receiver.arrivals.append(time.monotonic())
        if receiver.delay_s:
            await asyncio.sleep(receiver.delay_s)
        if receiver.failures:
            status, headers = receiver.failures.pop(0)
            receiver.refused.append((status, None))
            return web.Response(status=status, headers=headers, text="slow down" if status == 429 else "failed")
        return await _HANDLERS[kind](receiver, request)

    app = web.Application()
    app.router.add_post("/{tail:.*}", handle)
    receiver.runner = web.AppRunner(app, access_log=None)
    await receiver.runner.setup()
    site = web.TCPSite(receiver.runner, HOST, 0)
    await site.start()
    server = site._server
    assert server is not None and server.sockets  # type: ignore[attr-defined]
    receiver.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
    return receiver
