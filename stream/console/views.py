"""The web console: server-rendered pages on every worker, from the cluster-wide read model.

    GET  /                         incidents: headline noise reduction, charts, filters, the paged list (causes
                                   with their children folded); `?partial=rows` answers the list alone
    GET  /ui/incidents/{id}        one incident or cause: facts, SLA clock, silences, actions, members (paged),
                                   timeline, why each child joined; `?partial=body` answers the body alone
    GET  /ui/review                the review queue (proposal and reason, approve / override) and the audit trail
    GET  /ui/events                Server-Sent Events: the read model's version, each time it changes
    GET  /ui/static/{name}         the console's script and style sheet (package data)
    GET  /login, POST /login       sign in with a token; POST /logout signs out

Pages are Jinja2 templates (stream/console/templates/); the one script (static/console.js, no framework, no
build) listens to `/ui/events` and fetches the live parts again, and sends the action forms to the JSON API
(`POST /incidents/{id}/ack`, `/review/{id}/approve|override`, `/silences`), which any worker forwards to the owner.

How the browser carries the token: `POST /login` checks it against the configured tokens and sets it in an
HttpOnly, SameSite=Strict cookie (`aiops_token`, Secure when the request came over TLS), which the token check
(stream/auth.py) reads when a request has no `Authorization` header: script on the page never sees the token,
and another site cannot make the browser send it. With no token configured everything is open, as the API is.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from typing import Any
from urllib.parse import urlencode

import jinja2
import orjson
from aiohttp import web
from faust.web import View

from correlator import metrics
from correlator.readmodel import (
    Filters,
    ReadModel,
    Row,
    headline_of,
    page_of,
    review_queue,
    review_queue_size,
    reviews_of,
    series_of,
)
from stream.app import App
from stream.auth import COOKIE, Principal, TokenBook, actor_of
from stream.console.charts import reduction_bar, series_chart
from stream.console.feed import FeedState

__all__ = ["Console", "install_console_views"]

PAGE_SIZE = 50
MEMBERS_PAGE = 25
HEARTBEAT_S = 15.0
STATIC = {"console.js": "text/javascript", "console.css": "text/css"}
SEVERITIES = ("critical", "warning", "info")
STATUSES = ("open", "acknowledged", "firing", "resolved", "expired", "merged")


@dataclass
class Console:
    """What the console's views read: the model, its feed's progress, the token book, the review proposals."""

    model: ReadModel
    feed: FeedState
    book: TokenBook
    proposals: Callable[[list[str]], list[dict[str, Any]]]
    """Per ticket text, the learned model's neighbours and proposal (stream.review.similar_of)."""
    taxonomy: tuple[str, ...]
    """The codes an override may choose."""
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    closing: bool = False

    async def on_change(self) -> None:
        """The model moved: wake every event stream."""
        changed, self.changed = self.changed, asyncio.Event()
        changed.set()

    async def close(self) -> None:
        """End the event streams (a stop hook: an open stream must not hold the worker's web server)."""
        self.closing = True
        await self.on_change()


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("stream.console", "templates"),
                             autoescape=jinja2.select_autoescape(default=True), undefined=jinja2.StrictUndefined)
    env.filters["clock"] = _clock
    env.filters["ago"] = _ago
    return env


def _clock(epoch: float | None) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S") if epoch else "–"


def _ago(seconds: float) -> str:
    sign, seconds = ("-" if seconds < 0 else ""), abs(seconds)
    if seconds < 120:
        return f"{sign}{seconds:.0f} s"
    if seconds < 7200:
        return f"{sign}{seconds / 60:.0f} min"
    return f"{sign}{seconds / 3600:.1f} h"


def _int(value: str | None, default: int = 0) -> int:
    try:
        return max(0, int(value or default))
    except ValueError:
        return default


def _filters(query: Any) -> Filters:
    return Filters(status=query.get("status", ""), service=query.get("service", "").strip(),
                   scope=query.get("scope", "").strip(), severity=query.get("severity", ""))


def _row_view(console: Console, row: Row, now: float) -> dict[str, Any]:
    model = console.model
    acked = model.acked(row)
    return {"row": row, "acked": acked, "silenced": model.silenced(row, now), "children": model.children_of(row),
            "why": model.why(row), "parent": model.parent(row)}


def incidents_context(console: Console, query: Any, now: float, tops: list[Row] | None = None) -> dict[str, Any]:
    """What the incidents page and its live list show for a query (filters and offset); `tops` as in `page_of`."""
    filters = _filters(query)
    page = page_of(console.model, filters, _int(query.get("offset")), PAGE_SIZE, tops)
    shown = {k: v for k, v in (("status", filters.status), ("service", filters.service), ("scope", filters.scope),
                               ("severity", filters.severity)) if v}
    pages = {"prev": urlencode({**shown, "offset": max(0, page.offset - PAGE_SIZE)}) if page.offset else None,
             "next": urlencode({**shown, "offset": page.offset + PAGE_SIZE})
             if page.offset + PAGE_SIZE < page.total else None}
    return {"page": page, "rows": [_row_view(console, r, now) for r in page.rows], "filters": filters,
            "query": urlencode(shown), "pages": pages, "now": now}


def incident_context(console: Console, row: Row, query: Any, now: float) -> dict[str, Any]:
    """What one incident's page shows: its facts, clock, silences, members page and timeline."""
    base = _row_view(console, row, now)
    children: list[Row] = base["children"]
    members: list[Any] = children if row.kind == "cause" else list(row.member_sample)
    offset = _int(query.get("offset"))
    clock = console.model.clocks.get(row.id)
    return {**base, "clock": clock, "now": now, "offset": offset, "size": MEMBERS_PAGE,
            "members": members[offset:offset + MEMBERS_PAGE], "member_total": len(members),
            "why_of": {c.id: console.model.why(c) for c in children},
            "timeline": list(reversed(row.timeline))}


def review_context(console: Console) -> dict[str, Any]:
    """The review queue with each ticket's proposals, and the audit trail with each ticket's route now."""
    queued = review_queue(console.model)
    waiting = queued[:PAGE_SIZE * 4]
    near = console.proposals([r.text for r in waiting])
    trail = [(ticket_id, review, console.model.tickets.get(ticket_id)) for ticket_id, review in
             reviews_of(console.model)]
    return {"queue": list(zip(waiting, near, strict=True)), "queued": len(queued),
            "trail": trail, "taxonomy": console.taxonomy, "ticket_severities": ("sev1", "sev2", "sev3")}


def install_console_views(app: App, console: Console) -> None:
    """Register the console's pages, event stream, static files and sign-in on the app's web server."""
    env = _environment()
    static: dict[str, bytes] = {}  # the packaged files do not change while the worker runs: read each once

    def render(view: View, request: web.Request, template: str, status: int = 200, **context: Any) -> Any:
        model = console.model
        base = {"actor": actor_of(request), "queue_size": review_queue_size(model), "version": model.version,
                "caught_up": console.model.whole, "severities": SEVERITIES, "statuses": STATUSES}
        return view.html(env.get_template(template).render({**base, **context}), status=status)

    @app.page("/")
    class Incidents(View):
        async def get(self, request: web.Request) -> Any:
            now = time.time()
            tops = console.model.top_rows()
            context = incidents_context(console, request.query, now, tops)
            if request.query.get("partial") == "rows":
                return render(self, request, "_rows.html", **context)
            head = headline_of(console.model, tops)
            charts = {"series": series_chart(*series_of(console.model)),
                      "reduction": reduction_bar(head.alerts, head.groups)}
            return render(self, request, "incidents.html", head=head, charts=charts, **context)

    @app.page("/ui/incidents/{incident_id}")
    class Incident(View):
        async def get(self, request: web.Request, incident_id: str) -> Any:
            row = console.model.rows.get(incident_id)
            if row is None:
                return render(self, request, "missing.html", 404, what=f"incident {incident_id}")
            context = incident_context(console, row, request.query, time.time())
            template = "_incident.html" if request.query.get("partial") == "body" else "incident.html"
            return render(self, request, template, **context)

    @app.page("/ui/review")
    class Review(View):
        async def get(self, request: web.Request) -> Any:
            template = "_review.html" if request.query.get("partial") == "body" else "review.html"
            return render(self, request, template, **review_context(console))

    @app.page("/ui/events")
    class Events(View):
        async def get(self, request: web.Request) -> Any:
            return await event_stream(console, request)

    @app.page("/ui/static/{name}")
    class Static(View):
        async def get(self, request: web.Request, name: str) -> Any:
            if name not in STATIC:
                raise web.HTTPNotFound()
            body = static.get(name)
            if body is None:
                body = static[name] = resources.files("stream.console").joinpath("static", name).read_bytes()
            return self.bytes(body, content_type=STATIC[name], headers={"Cache-Control": "max-age=300"})

    @app.page("/login")
    class Login(View):
        async def get(self, request: web.Request) -> Any:
            return render(self, request, "login.html", next=request.query.get("next", "/"), error="",
                          open=not console.book.enabled)

        async def post(self, request: web.Request) -> Any:
            form = await request.post()
            token, target = str(form.get("token", "")), _local(str(form.get("next", "/")))
            principal = console.book.identify(f"Bearer {token}")
            if not isinstance(principal, Principal) or principal.role == "ingest":
                return render(self, request, "login.html", next=target, open=not console.book.enabled,
                              error="unknown token, or one that may not read (an ingest token)")
            answer = web.HTTPSeeOther(target)
            answer.set_cookie(COOKIE, token, httponly=True, samesite="Strict", secure=request.secure, path="/")
            raise answer

    @app.page("/logout")
    class Logout(View):
        async def post(self, request: web.Request) -> Any:
            answer = web.HTTPSeeOther("/login")
            answer.del_cookie(COOKIE, path="/")
            raise answer


def _local(target: str) -> str:
    """A redirect target on this site only (never `//elsewhere` or `https://elsewhere`)."""
    return target if target.startswith("/") and not target.startswith("//") else "/"


async def event_stream(console: Console, request: web.Request) -> web.StreamResponse:
    """`text/event-stream` of the model's version and the review queue's length: one event now, one per change (at
    most 4 a second), a comment as heartbeat when nothing changes, until the client leaves, the worker stops or
    `?limit=N` events are out (for probes and tests)."""
    stream = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await stream.prepare(request)
    sent, left = -1, _int(request.query.get("limit"), -1) or -1
    metrics.CONSOLE_STREAMS.inc()
    try:
        while not console.closing and left != 0:
            changed = console.changed
            if console.model.version != sent:
                sent, left = console.model.version, left - 1
                event = {"version": sent, "queue": review_queue_size(console.model)}
                await stream.write(b"data: " + orjson.dumps(event) + b"\n\n")
                await asyncio.sleep(0.25)
                continue
            try:
                await asyncio.wait_for(changed.wait(), HEARTBEAT_S)
            except TimeoutError:
                await stream.write(b": heartbeat\n\n")
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        metrics.CONSOLE_STREAMS.dec()
    return stream
