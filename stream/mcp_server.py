"""The desk as MCP tools (the official `mcp` SDK, `MCPServer`), for any MCP client: `aiops mcp` serves them
over stdio. Every tool is a call to a worker's web API (`stream.api_client`, URL and token from the settings),
so the server needs no Kafka and acts with the token's rights: with tokens configured, acknowledging and
reviewing need an operator token, and the actor recorded is that token's name.

Tools: list_incidents, get_incident (members, cause, SLA clock and acknowledgement), acknowledge_incident,
list_review_queue, approve_ticket, override_ticket, triage_text (the rules, locally), trends, weekly_summary.
Each input is typed (its JSON schema names the allowed values and bounds); each refusal is a tool error whose
text is the worker's reason (`404 not found: unknown incident ...`, `409 conflict: incident ... is resolved`).
"""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

from correlator.triage import DEFAULT_ROUTING, RuleClassifier, route
from correlator.triage.taxonomy import DEFAULT_TAXONOMY
from stream.api_client import ApiClient, ApiError
from stream.auth import bearer_token
from stream.commands.triage import decision_record

__all__ = ["build_server"]

Id = Annotated[str, Field(min_length=1, max_length=300, description="the id as the worker lists it")]
Who = Annotated[str | None, Field(default=None, max_length=200, description="who acts; leave out when the "
                                  "server's token names a person (it is then the token's name)")]
Note = Annotated[str, Field(default="", max_length=2000, description="a note kept with the decision")]
Limit = Annotated[int, Field(default=50, ge=1, le=500, description="at most this many")]
Severity = Literal["sev1", "sev2", "sev3"]
TaxonomyCode = Literal[DEFAULT_TAXONOMY]  # type: ignore[valid-type]  # the closed list, as the schema's enum
TrendBy = Literal["tag", "taxonomy", "service", "symptom"]
"""`correlator.insight.BY`'s keys, spelled out for the type checker (a test checks they agree)."""


def _path_id(item_id: str) -> str:
    if "/" in item_id or item_id in (".", ".."):
        raise ToolError(f"not an id: {item_id!r}")
    return item_id


def _body(who: str | None, note: str, **more: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"note": note, **{k: v for k, v in more.items() if v is not None}}
    if who:
        body["who"] = who
    return body


def caller_token(ctx: Context) -> str | None:
    """Over HTTP (`stream.mcp_http`), the bearer token the client sent: the worker's API is called with it, so
    the caller acts with its own rights and name. Over stdio none: the server's own token (`api_token`)."""
    try:
        request = ctx.request_context.request
    except ValueError:  # no request: a direct call, as the tests' `call_tool`
        return None
    headers = getattr(request, "headers", None)
    return bearer_token(headers.get("authorization")) if headers is not None else None


def build_server(api: ApiClient) -> MCPServer:
    """The MCP server whose tools call the worker at `api`."""
    server: MCPServer = MCPServer("aiops-correlator", instructions="Incidents, the ticket review queue, "
                                  "recurring blockers and the weekly summary of a streaming AIOps correlator.")

    async def call(ctx: Context, method: str, path: str, body: dict[str, Any] | None = None,
                   query: dict[str, object] | None = None) -> Any:
        token = caller_token(ctx)
        try:
            if method == "GET":
                return await asyncio.to_thread(partial(api.get, path, query, token=token))
            return await asyncio.to_thread(partial(api.post, path, body or {}, token=token))
        except ApiError as exc:
            raise ToolError(str(exc)) from None

    @server.tool()
    async def list_incidents(ctx: Context, status: Literal["firing", "resolved", "expired"] | None = None,
                             limit: Limit = 50) -> dict[str, Any]:
        """Incidents the worker holds, newest first (optionally only those with `status`)."""
        found = await call(ctx, "GET", "/incidents/", query={"status": status})
        return {"incidents": found["incidents"][:limit], "total": found["total"]}

    @server.tool()
    async def get_incident(ctx: Context, incident_id: Id) -> dict[str, Any]:
        """One incident: counts, members (alert fingerprints), entities, its stage-2 cause (parent id and the
        incidents grouped with it) and its SLA clock (acknowledged by whom)."""
        found: dict[str, Any] = await call(ctx, "GET", f"/incidents/{_path_id(incident_id)}/")
        return found

    @server.tool()
    async def acknowledge_incident(ctx: Context, incident_id: Id, who: Who = None, note: Note = "") -> dict[str, Any]:
        """Acknowledge an incident: its SLA clock stops and paging stops re-notifying. A repeat returns the first
        acknowledgement; a resolved incident is refused."""
        done: dict[str, Any] = await call(ctx, "POST", f"/incidents/{_path_id(incident_id)}/ack", _body(who, note))
        return done

    @server.tool()
    async def list_review_queue(ctx: Context, limit: Limit = 50) -> dict[str, Any]:
        """Tickets waiting for a person's review (triage was not sure enough), oldest first."""
        found = await call(ctx, "GET", "/review")
        return {"tickets": found["tickets"][:limit], "total": found["total"]}

    @server.tool()
    async def approve_ticket(ctx: Context, ticket_id: Id, who: Who = None, note: Note = "") -> dict[str, Any]:
        """Route a ticket waiting for review as triage classified it."""
        done: dict[str, Any] = await call(ctx, "POST", f"/review/{_path_id(ticket_id)}/approve", _body(who, note))
        return done

    @server.tool()
    async def override_ticket(ctx: Context, ticket_id: Id, severity: Severity | None = None,
                              taxonomy_code: TaxonomyCode | None = None, who: Who = None,
                              note: Note = "") -> dict[str, Any]:
        """Route a ticket with a person's severity and/or taxonomy code (at least one of them)."""
        if severity is None and taxonomy_code is None:
            raise ToolError("an override needs severity and/or taxonomy_code")
        body = _body(who, note, severity=severity, taxonomy_code=taxonomy_code)
        done: dict[str, Any] = await call(ctx, "POST", f"/review/{_path_id(ticket_id)}/override", body)
        return done

    @server.tool()
    async def triage_text(text: Annotated[str, Field(min_length=1, max_length=20000)]) -> dict[str, Any]:
        """Triage a ticket text with the rules (as `aiops triage`): severity, confidence, taxonomy code, tags,
        and whether it would be routed (tier, SLA) or held for review. Changes nothing."""
        result = RuleClassifier().classify(text)
        return decision_record(None, result, route(result, DEFAULT_ROUTING))

    @server.tool()
    async def trends(ctx: Context, by: TrendBy = "tag", since: Annotated[str, Field(default="30d", pattern=r"^\d+(\.\d+)?[smhd]?$",
                                                                        description="e.g. 30d")] = "30d",
                     top: Annotated[int, Field(default=10, ge=1, le=100)] = 10) -> dict[str, Any]:
        """Recurring blockers: the top items by ticket tag, taxonomy code, service or symptom, with counts per
        week and whether each is rising."""
        found: dict[str, Any] = await call(ctx, "GET", "/trends", query={"by": by, "since": since, "top": top})
        return found

    @server.tool()
    async def weekly_summary(ctx: Context, week: Annotated[str | None, Field(default=None, pattern=r"^\d{4}-W\d{2}$",
                                                               description="ISO week, e.g. 2026-W49; default: "
                                                               "the last whole week")] = None) -> dict[str, Any]:
        """The weekly summary's figures: headlines against the week before, noisiest services and symptoms,
        longest incidents, SLA breaches, review share and override rate, recurring blockers."""
        found: dict[str, Any] = await call(ctx, "GET", "/summary", query={"week": week})
        return found

    return server
