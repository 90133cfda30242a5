"""`GET /openapi.json`: the web port's contract, generated from the pydantic models it reads and writes, and
`GET /schemas/alert.json`: the JSON Schema of the generic alert format.

`OPERATIONS` says, per route, what it takes and answers (by component name); the schemas come from the models
themselves (alerts in: the Alertmanager webhook, Zabbix event, generic and Alertmanager-API-v2 alerts; tickets
and resolutions; review decisions; incident clocks; the problem document of every error), plus the events the
worker publishes on its topics (incident and parent events, triaged tickets), which are not HTTP but are the
other half of the contract. A worker's document lists the operations of the routes it serves (an `--role ingest`
front serves fewer); tests/test_openapi.py checks that every route of a built worker is documented, and that
the document is valid OpenAPI 3.1.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Final

import orjson
from aiohttp import web
from pydantic import BaseModel, Field, TypeAdapter

from correlator.insight import HourAggregate, Trends, WeeklySummary
from correlator.models import IncidentEvent, Ticket, TriagedTicket
from correlator.notify import Matcher
from correlator.sources.alertmanager import PostableAlert, WebhookMessage
from correlator.sources.schemas import ALERT_SCHEMA_ID, alert_body_schema
from correlator.sources.zabbix import ZabbixEvent
from correlator.stage2.models import Assignment, ParentEvent
from correlator.triage.incident_sla import IncidentClock
from correlator.triage.lifecycle import ReviewRequest, TicketRecord, TicketResolution
from correlator.version import version
from stream.app import App
from stream.auth import PROMETHEUS_ALERTS_PATH, access_of
from stream.problems import PROBLEM_JSON, Problem

__all__ = ["OPERATIONS", "Operation", "alert_schema", "install_openapi", "openapi_document", "served_routes"]

JSON: Final = "application/json"
HTML: Final = "text/html"
REF: Final = "#/components/schemas/{model}"
OPENAPI_PATH: Final = "/openapi.json"
ALERT_SCHEMA_PATH: Final = "/schemas/alert.json"


class Accepted(BaseModel):
    """202 from an ingest endpoint: the broker acknowledged every record."""

    accepted: int = Field(ge=0, description="alerts or tickets in the body")
    records: int = Field(ge=0, description="records written (0 for an empty batch)")


class TicketEvent(TriagedTicket):
    """The `tickets.triaged` event a review step published (or the ticket's latest, when nothing changed)."""

    subject: str = Field(default="ticket", description="ticket, or incident for an incident escalation")
    review: dict[str, Any] | None = Field(default=None, description="who decided what, for approvals and overrides")


class SilenceRequest(BaseModel):
    """`POST /silences`: Alertmanager's silence shape; the creator is the operator token's name."""

    matchers: list[Matcher] = Field(min_length=1, description="all must hold on the incident's labels")
    startsAt: float | str | None = Field(default=None, description="epoch seconds or ISO 8601; default now")
    endsAt: float | str = Field(description="epoch seconds or ISO 8601, after startsAt")
    comment: str = ""
    createdBy: str | None = Field(default=None, description="only without tokens; else the token's name")


class InsightHours(BaseModel):
    """200 from `GET /insight/hours`: this worker's hourly aggregates, added up per hour, oldest first."""

    hours: list[HourAggregate]


class SilenceCreated(BaseModel):
    """200 from `POST /silences`."""

    silenceID: str


_COMPONENTS: Mapping[str, Any] = {
    "Accepted": Accepted,
    "AlertmanagerWebhook": WebhookMessage,
    "PostableAlerts": list[PostableAlert],
    "ZabbixBody": ZabbixEvent | list[ZabbixEvent],
    "TicketBody": Ticket | TicketResolution | list[Ticket | TicketResolution],
    "ReviewRequest": ReviewRequest,
    "TicketRecord": TicketRecord,
    "TicketEvent": TicketEvent,
    "IncidentClock": IncidentClock,
    "Problem": Problem,
    "SilenceRequest": SilenceRequest,
    "SilenceCreated": SilenceCreated,
    "InsightHours": InsightHours,
    "Trends": Trends,
    "WeeklySummary": WeeklySummary,
    # published on topics, not answered over HTTP: incidents (stage 1 and 2), tickets.triaged
    "IncidentEvent": IncidentEvent,
    "ParentEvent": ParentEvent,
    "Assignment": Assignment,
    "TriagedTicket": TriagedTicket,
}


@dataclass(frozen=True)
class Operation:
    """One route and method: what it takes (a component name) and answers, and which problems it may return."""

    method: str
    path: str
    summary: str
    ok: int = 200
    response: str | None = None
    request: str | None = None
    errors: tuple[int, ...] = ()
    content: str = JSON
    query: tuple[tuple[str, str], ...] = ()


_INGEST_ERRORS = (400, 413, 415, 503)
_BY_ID = (404, 421, 503)

OPERATIONS: tuple[Operation, ...] = (
    Operation("POST", "/ingest/alertmanager", "Alertmanager webhook (version 4)", 202, "Accepted",
              "AlertmanagerWebhook", _INGEST_ERRORS),
    Operation("POST", "/ingest/zabbix", "Zabbix media-type event, or an array of them", 202, "Accepted",
              "ZabbixBody", _INGEST_ERRORS),
    Operation("POST", "/ingest/alerts", "Generic alerts (also Alertmanager API v2 alerts; NDJSON accepted)", 202,
              "Accepted", "GenericAlertBody", _INGEST_ERRORS),
    Operation("POST", PROMETHEUS_ALERTS_PATH, "Alertmanager API v2 alerts, where Prometheus posts them (its Alertmanager "
              "address set to the worker): /ingest/alerts under Alertmanager's path, same token and handling", 202,
              "Accepted", "PostableAlerts", _INGEST_ERRORS),
    Operation("POST", "/ingest/tickets", "Tickets or resolutions, one object or an array", 202, "Accepted",
              "TicketBody", _INGEST_ERRORS),
    Operation("GET", "/healthz", "200 while the process serves HTTP"),
    Operation("GET", "/readyz", "200 when every readiness check passes, else a 503 problem with the reasons",
              errors=(503,)),
    Operation("GET", "/metrics", "Prometheus exposition", content="text/plain"),
    Operation("GET", "/assignment", "The alerts partitions this worker owns"),
    Operation("GET", "/stats", "The engines' counters summed"),
    Operation("GET", "/incidents", "Incidents of the whole cluster, newest first",
              query=(("status", "firing, resolved or expired"),)),
    Operation("GET", "/incidents/{incident_id}", "One incident or cause: members, acknowledgement, SLA clock "
              "(sla), cause (parent_id, cause), silences; the same on every worker (the read model)",
              errors=(404,)),
    Operation("POST", "/incidents/{incident_id}/ack", "Acknowledge an incident, stopping its clock", 200,
              "IncidentClock", "ReviewRequest", (400, 409, *_BY_ID)),
    Operation("GET", "/incidents/{incident_id}/sla", "One incident's clock", 200, "IncidentClock", errors=_BY_ID),
    Operation("GET", "/sla", "Readiness, owned partitions and open clocks of the SLA side"),
    Operation("GET", "/stage2", "Stage 2's groups (probable causes) held by this worker"),
    Operation("GET", "/review", "The human-review queue, oldest first", errors=(503,)),
    Operation("GET", "/review/{ticket_id}", "One ticket's record", 200, "TicketRecord", errors=_BY_ID),
    Operation("POST", "/review/{ticket_id}/approve", "Route a ticket as triage classified it", 200, "TicketEvent",
              "ReviewRequest", (400, 409, *_BY_ID)),
    Operation("POST", "/review/{ticket_id}/override", "Route a ticket with a person's severity and/or code", 200,
              "TicketEvent", "ReviewRequest", (400, 409, *_BY_ID)),
    Operation("POST", "/tickets/{ticket_id}/resolve", "Close a ticket and its clock", 200, "TicketEvent",
              "ReviewRequest", (400, 409, *_BY_ID)),
    Operation("POST", "/silences", "Create a silence (maintenance window): matching incidents are not paged", 200,
              "SilenceCreated", "SilenceRequest", (400,)),
    Operation("GET", "/silences", "Every silence, with its state (pending, active, expired)", errors=(503,)),
    Operation("GET", "/silences/{silence_id}", "One silence", errors=(404, 503)),
    Operation("DELETE", "/silences/{silence_id}", "End a silence now", errors=(404, 503)),
    Operation("GET", "/notify", "The notify stage's partitions, receivers, subjects and outbox"),
    Operation("GET", "/notify/{subject_id}", "One incident or cause as notify sees it (status: held, paged, "
              "silenced, grouped, resolved)", errors=(404,)),
    Operation("GET", "/", "The console: incidents (headline, charts, filtered and paged list)", content=HTML,
              query=(("status", "open, acknowledged, firing, resolved, expired or merged"), ("service", "part of a "
                     "service name"), ("scope", "part of the scope"), ("severity", "critical, warning or info"),
                     ("offset", "the first row shown"), ("partial", "rows: the list alone"))),
    Operation("GET", "/ui/incidents/{incident_id}", "The console's page of one incident or cause", content=HTML,
              query=(("offset", "the first member shown"), ("partial", "body: the live part alone"))),
    Operation("GET", "/ui/review", "The console's review queue and audit trail", content=HTML,
              query=(("partial", "body: the live part alone"),)),
    Operation("GET", "/ui/events", "Server-Sent Events: the read model's version at each change",
              content="text/event-stream"),
    Operation("GET", "/ui/static/{name}", "The console's script and style sheet", content="text/plain", errors=(404,)),
    Operation("GET", "/login", "The console's sign-in form", content=HTML),
    Operation("POST", "/login", "Sign in: a known token is set in an HttpOnly cookie (303 to the page asked for)",
              303, content=HTML),
    Operation("POST", "/logout", "Sign out: the cookie is removed (303 to /login)", 303, content=HTML),
    Operation("GET", "/insight/hours", "The analytics store's hourly aggregates on this worker", 200, "InsightHours",
              errors=(400, 503), query=(("since", "epoch seconds (default 35 days before until)"),
                                        ("until", "epoch seconds (default a day from now)"))),
    Operation("GET", "/trends", "Recurring blockers: top items, counts per week, trend", 200, "Trends",
              errors=(400, 503), query=(("by", "tag, taxonomy, service or symptom"), ("since", "e.g. 30d"),
                                        ("until", "epoch seconds (default now)"), ("top", "how many (10)"))),
    Operation("GET", "/summary", "The weekly summary's figures", 200, "WeeklySummary", errors=(400, 503),
              query=(("week", "ISO week, e.g. 2026-W49 (default the last whole week)"),)),
    Operation("POST", "/mcp", "MCP over streamable HTTP (JSON-RPC; stateless, JSON answers): the desk's tools"),
    Operation("GET", OPENAPI_PATH, "This document"),
    Operation("GET", ALERT_SCHEMA_PATH, "The JSON Schema of a generic alert body", content="application/schema+json"),
)
"""Every route of the web port; a route served but missing here is a test failure (tests/test_openapi.py)."""


def _components() -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    for name, model in _COMPONENTS.items():
        schema = TypeAdapter(model).json_schema(ref_template=REF, by_alias=True)
        schemas.update(schema.pop("$defs", {}))
        schemas[name] = schema
    body = alert_body_schema(REF)
    schemas.update(body.pop("$defs", {}))
    schemas["GenericAlertBody"] = body
    return schemas


def _ref(name: str) -> dict[str, str]:
    return {"$ref": REF.format(model=name)}


def _problem_response(status: int) -> dict[str, Any]:
    return {"description": f"{status} problem", "content": {PROBLEM_JSON: {"schema": _ref("Problem")}}}


def _operation(op: Operation) -> dict[str, Any]:
    schema: dict[str, Any] = _ref(op.response) if op.response else (
        {"type": "string"} if op.content.startswith("text/") else {"type": "object"})
    spec: dict[str, Any] = {
        "summary": op.summary,
        "operationId": re.sub(r"\W+", "_", f"{op.method.lower()}{op.path}").strip("_"),
        "responses": {str(op.ok): {"description": op.summary, "content": {op.content: {"schema": schema}}}},
    }
    params = [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
              for name in re.findall(r"\{(\w+)\}", op.path)]
    params += [{"name": name, "in": "query", "required": False, "description": text, "schema": {"type": "string"}}
               for name, text in op.query]
    if params:
        spec["parameters"] = params
    if op.request:
        media = {JSON: {"schema": _ref(op.request)}}
        if op.request == "GenericAlertBody":
            media["application/x-ndjson"] = {"schema": {"type": "string", "description": "one alert object a line"}}
        spec["requestBody"] = {"required": True, "content": media}
    guarded = access_of(op.method, op.path) != "open"
    errors = sorted({*op.errors, *((401, 403) if guarded else ())})
    spec["responses"].update({str(status): _problem_response(status) for status in errors})
    spec["responses"]["default"] = {"description": "any other error (404, 405, 413, 500), as a problem",
                                    "content": {PROBLEM_JSON: {"schema": _ref("Problem")}}}
    if guarded:
        spec["security"] = [{"bearer": []}, {}]  # a token once tokens are configured (stream/auth.py)
    return spec


def openapi_document(served: Collection[tuple[str, str]] | None = None) -> dict[str, Any]:
    """The OpenAPI 3.1 document for the operations whose (method, path) are `served` (None: all of them)."""
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        if served is None or (op.method, op.path) in served:
            paths.setdefault(op.path, {})[op.method.lower()] = _operation(op)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "aiops-correlator", "version": version(),
            "description": "The worker's web port. Every path is served with and without a trailing slash; HEAD "
                           "is answered where GET is. Errors are application/problem+json (Problem). "
                           "IncidentEvent and ParentEvent (on `incidents`, with Assignment) and TriagedTicket "
                           "(on `tickets.triaged`) are what the worker publishes on its topics.",
        },
        "paths": paths,
        "components": {
            "schemas": _components(),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "description": "ingest, operator or reader token (README, Tokens)"}},
        },
    }


def alert_schema() -> dict[str, Any]:
    """The generic alert body's JSON Schema as served (deploy/schemas/alert.json holds the same)."""
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": ALERT_SCHEMA_ID, **alert_body_schema()}


def served_routes(app: App) -> set[tuple[str, str]]:
    """(method, path) of every route the app's web server has, paths without their trailing slash, HEAD left
    out (aiohttp answers it wherever GET is; Faust adds it to POST-only views, which answer 405)."""
    router: web.UrlDispatcher = app.web.web_app.router  # type: ignore[attr-defined]  # the aiohttp driver's
    return {(route.method, route.resource.canonical.rstrip("/") or "/")
            for route in router.routes() if route.resource is not None and route.method != "HEAD"}


def install_openapi(app: App) -> None:
    """Serve `GET /openapi.json` (for the routes this app serves, built at the first request, when every route is
    registered) and `GET /schemas/alert.json`."""
    cache: dict[str, bytes] = {}

    @app.page(OPENAPI_PATH)
    async def openapi(web_: Any, request: web.Request) -> Any:
        if "doc" not in cache:
            cache["doc"] = orjson.dumps(openapi_document(served_routes(app)))
        return web_.bytes(cache["doc"], content_type=JSON)

    @app.page(ALERT_SCHEMA_PATH)
    async def schema(web_: Any, request: web.Request) -> Any:
        if "alert" not in cache:
            cache["alert"] = orjson.dumps(alert_schema(), option=orjson.OPT_INDENT_2)
        return web_.bytes(cache["alert"], content_type="application/schema+json")
