"""The review API on the worker's web port, and the one call that installs the whole ticket side.

    GET  /review                          the human-review queue (oldest first)
    GET  /review/{ticket_id}              one ticket's record: text, latest event, reviews
    POST /review/{ticket_id}/approve      {"who": "...", "note"?}: route as triage classified it
    POST /review/{ticket_id}/override     {"who": "...", "severity"?, "taxonomy_code"?, "note"?}: route with these
    POST /tickets/{ticket_id}/resolve     {"who": "...", "note"?}: close the ticket and its clock
    POST /incidents/{incident_id}/ack     {"who": "...", "note"?}: acknowledge, stopping the incident's clock
    GET  /incidents/{incident_id}/sla     one incident's clock
    GET  /sla                             readiness, owned partitions, open clocks

Who acts: with tokens configured (stream/auth.py) every POST here needs an operator token, and the actor
recorded (`who`, `acked_by`) is that token's name; a body may leave `who` out, and one naming someone else is
refused (400). Without tokens `who` in the body is required, as the only name there is.

With a learned triage model loaded (stream/triage_model.py), queue entries and `GET /review/{ticket_id}` also
carry `model_version` (of the decision), `similar` (the nearest labelled tickets by the model's vectors, with
their labels and similarity) and `proposal` (the code and severity those neighbours support, and which).

Answers: 200 with the resulting record or event; errors are `application/problem+json` (stream/problems.py):
400 `invalid_body` with `errors: [{"field", "reason"}]`; 404 `not_found` for an id this worker's partitions do
not hold; 409 `conflict` when the state refuses (approving a routed ticket, acking a resolved incident); a
request for an id whose partition another worker owns is forwarded to that worker (stream/console/forward.py),
whose answer is returned; 421 `misdirected` (with `partition` and `owner`) only to a request that was already
forwarded; 503 `recovering` with Retry-After while the worker recovers its tables. Approvals and overrides are published on `tickets.triaged` with the
review (who, when, what changed) and on `tickets.labels` as a labelled example; see
`benchmarks/review_eval.py` for evaluating the classifier on them.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from faust.web import View

from correlator import metrics
from correlator.triage.incident_sla import IncidentClock, acknowledge
from correlator.triage.learned import propose
from correlator.triage.lifecycle import (
    FieldError,
    Refused,
    RequestAction,
    ReviewRequest,
    TicketRecord,
    approve,
    event_of,
    label_of,
    override,
    parse_review,
    resolve,
    waiting_for_review,
)
from stream.app import App
from stream.auth import actor_of
from stream.console.forward import owner_url
from stream.docstore import DocStore, Outbound
from stream.ingest import RETRY_AFTER_S
from stream.pipeline import Pipeline
from stream.problems import problem_response
from stream.settings import Settings
from stream.tickets import Desk, NotHere, NotReady, install_desk, open_incident_clocks, ticket_event

__all__ = ["install", "install_views", "queue_of"]

QUEUE_LIMIT = 500


def install(app: App, settings: Settings, pipe: Pipeline) -> Desk:
    """The ticket side of a worker: triage and incident-SLA agents, the SLA timer, and the review API."""
    desk = install_desk(app, settings, pipe)
    install_views(desk)
    return desk


def queue_of(desk: Desk) -> list[TicketRecord]:
    """Tickets waiting for review on this worker's partitions, oldest first."""
    return waiting_for_review(r for store in desk.tickets.values() for _, r in store.items())


def _queued(record: TicketRecord) -> dict[str, Any]:
    latest = record.latest
    return {"ticket_id": record.ticket_id, "text": record.text, "created_at": record.created_at,
            "queued_at": latest.decided_at, "severity": latest.severity, "confidence": latest.confidence,
            "taxonomy_code": latest.taxonomy_code, "tags": latest.tags, "reason": latest.reason,
            "model_version": latest.model_version}


def similar_of(desk: Desk, texts: list[str]) -> list[dict[str, Any]]:
    """Per text, the nearest labelled tickets of the loaded model and the proposal they make (none without one)."""
    model = desk.models.model
    if model is None:
        return [{"similar": [], "proposal": None, "proposed_by": None} for _ in texts]
    return [{"similar": [{"ticket_id": n.ticket_id, "taxonomy_code": n.taxonomy_code, "severity": n.severity,
                          "similarity": n.similarity, "source": n.source, "text": n.text} for n in near],
             "proposal": propose(near), "proposed_by": model.version} for near in model.neighbours(texts)]


def _errors(request: Any, errors: list[FieldError]) -> Any:
    detail = "; ".join(f"{e.field}: {e.reason}" for e in errors)
    return problem_response(request, 400, "invalid_body", detail, errors=errors)


def _recovering(request: Any) -> Any:
    return problem_response(request, 503, "recovering", "recovering state, try again shortly",
                            headers={"Retry-After": str(RETRY_AFTER_S)})


async def _body(request: Any, action: RequestAction, desk: Desk) -> ReviewRequest | list[FieldError]:
    """The validated body, or what is wrong with it (field and reason); `who` is the token's name when the
    request carried one, never free text."""
    raw = await request.read()
    try:
        body = orjson.loads(raw) if raw.strip() else {}
    except orjson.JSONDecodeError as exc:
        return [FieldError("body", f"malformed JSON: {exc}")]
    actor = actor_of(request)
    if actor is not None and isinstance(body, dict):
        named = body.get("who")
        if named is not None and named != actor:
            return [FieldError("who", f"the actor is the name of the token used ({actor!r}); leave who out")]
        body = {**body, "who": actor}
    return parse_review(body, action, desk.config.taxonomy)


def _locate(request: Any, desk: Desk, subject: str, item_id: str) -> DocStore[Any, Any] | Any:
    """The store for an id, or the response saying why this worker cannot answer for it."""
    try:
        return desk.locate_ticket(item_id) if subject == "ticket" else desk.locate_incident(item_id)
    except NotReady:
        return _recovering(request)
    except NotHere as exc:
        # The owner's URL lets the forwarding middleware (stream/console/forward.py) hand the request on.
        table = desk.ticket_table if subject == "ticket" else desk.incident_table
        owner = owner_url(desk.app.assignor.tables_metadata(), table.changelog_topic.get_topic_name(), exc.partition)
        return problem_response(request, 421, "misdirected",
                                f"{subject} {item_id} is on partition {exc.partition}, owned by another worker",
                                partition=exc.partition, owner=owner)


def _unknown(request: Any, subject: str, item_id: str, more: str = "") -> Any:
    return problem_response(request, 404, "not_found", f"unknown {subject} {item_id}{more}")


def _conflict(request: Any, exc: Refused) -> Any:
    return problem_response(request, 409, "conflict", str(exc))


async def review_ticket(view: View, desk: Desk, request: Any, ticket_id: str, action: RequestAction) -> Any:
    """Approve, override or resolve one ticket: validate, apply under the store's lock, commit, answer."""
    parsed = await _body(request, action, desk)
    store = _locate(request, desk, "ticket", ticket_id)
    if not isinstance(store, DocStore):
        return store
    async with store.lock:
        record = store.get(ticket_id)
        if record is None:
            return _unknown(request, "ticket", ticket_id)
        if isinstance(parsed, list):
            return _errors(request, parsed)
        try:
            after, events = _step(record, parsed, action, desk)
        except Refused as exc:
            return _conflict(request, exc)
        if after is not None:
            store.put(ticket_id, after, events)
            await desk.commit(store)
    metrics.REVIEWS.labels(action).inc()
    return view.json(events[0].value if after is not None else event_of(record))


def _step(record: TicketRecord, request: ReviewRequest, action: RequestAction, desk: Desk
          ) -> tuple[TicketRecord | None, list[Outbound]]:
    """The record after the action, and its events: the decision with its review, and the labelled example."""
    now = time.time()
    if action == "resolve":
        after = resolve(record, request.who, now, request.note)
        return after, [ticket_event(after)] if after is not None else []
    step = approve if action == "approve" else override
    after = step(record, request, now, desk.policy)
    review = after.reviews[-1]
    return after, [Outbound("tickets_triaged", record.ticket_id, event_of(after, review=review)),
                   Outbound("tickets_labels", record.ticket_id, label_of(after))]


async def ack_incident(view: View, desk: Desk, request: Any, incident_id: str) -> Any:
    """Acknowledge an incident: its clock stops, with who and when; a repeat returns the first acknowledgement."""
    parsed = await _body(request, "ack", desk)
    store = _locate(request, desk, "incident", incident_id)
    if not isinstance(store, DocStore):
        return store
    async with store.lock:
        clock: IncidentClock | None = store.get(incident_id)
        if clock is None:
            return _unknown(request, "incident", incident_id, " (not opened, or not seen yet)")
        if isinstance(parsed, list):
            return _errors(request, parsed)
        try:
            after = acknowledge(clock, parsed.who, time.time(), parsed.note)
        except Refused as exc:
            return _conflict(request, exc)
        if after is not clock:
            store.put(incident_id, after)
            await desk.commit(store)
            if desk.acknowledged is not None:  # the notify stage: PagerDuty acknowledge, re-notifying stops
                await desk.acknowledged(incident_id, parsed.who, time.time(), parsed.note)
    metrics.REVIEWS.labels("ack").inc()
    return view.json(after.model_dump(mode="json"))


def sla_status(desk: Desk) -> dict[str, Any]:
    """What the SLA side of this worker holds: readiness, owned partitions, records and open clocks."""
    tickets = [r for store in desk.tickets.values() for _, r in store.items()]
    return {
        "ready": desk.ready(),
        "tickets_partitions": sorted(desk.owned("tickets_raw")),
        "incidents_partitions": sorted(desk.owned("incidents")),
        "tickets": len(tickets), "review_queue": sum(r.latest.status == "human_review" for r in tickets),
        "open_ticket_clocks": sum(r.latest.status in ("routed", "escalated") for r in tickets),
        "incidents": sum(len(store) for store in desk.incidents.values()),
        "open_incident_clocks": open_incident_clocks(desk),
        "triage_model": desk.models.status(),
        "unsent_events": sum(len(s.pending()) for s in desk.tickets.values())
        + sum(len(s.pending()) for s in desk.incidents.values()),
    }


def install_views(desk: Desk) -> None:
    """Register the review, resolution, acknowledgement and SLA views on the app's web server."""
    app = desk.app

    @app.page("/sla")
    class Sla(View):
        async def get(self, request: Any) -> Any:
            return self.json(sla_status(desk))

    @app.page("/review")
    class Queue(View):
        async def get(self, request: Any) -> Any:
            if not desk.ready():
                return _recovering(request)
            waiting = queue_of(desk)
            shown = waiting[:QUEUE_LIMIT]
            near = similar_of(desk, [r.text for r in shown])
            return self.json({"tickets": [{**_queued(r), **n} for r, n in zip(shown, near, strict=True)],
                              "total": len(waiting)})

    @app.page("/review/{ticket_id}")
    class Record(View):
        async def get(self, request: Any, ticket_id: str) -> Any:
            store = _locate(request, desk, "ticket", ticket_id)
            if not isinstance(store, DocStore):
                return store
            record = store.get(ticket_id)
            if record is None:
                return _unknown(request, "ticket", ticket_id)
            return self.json({**record.model_dump(mode="json"), **similar_of(desk, [record.text])[0]})

    @app.page("/review/{ticket_id}/approve")
    class Approve(View):
        async def post(self, request: Any, ticket_id: str) -> Any:
            return await review_ticket(self, desk, request, ticket_id, "approve")

    @app.page("/review/{ticket_id}/override")
    class Override(View):
        async def post(self, request: Any, ticket_id: str) -> Any:
            return await review_ticket(self, desk, request, ticket_id, "override")

    @app.page("/tickets/{ticket_id}/resolve")
    class Resolve(View):
        async def post(self, request: Any, ticket_id: str) -> Any:
            return await review_ticket(self, desk, request, ticket_id, "resolve")

    @app.page("/incidents/{incident_id}/ack")
    class Ack(View):
        async def post(self, request: Any, incident_id: str) -> Any:
            return await ack_incident(self, desk, request, incident_id)

    @app.page("/incidents/{incident_id}/sla")
    class IncidentSla(View):
        async def get(self, request: Any, incident_id: str) -> Any:
            store = _locate(request, desk, "incident", incident_id)
            if not isinstance(store, DocStore):
                return store
            clock = store.get(incident_id)
            if clock is None:
                return _unknown(request, "incident", incident_id)
            return self.json(clock.model_dump(mode="json"))
