"""The HTTP ingest and the triage agent read a `tickets.raw` document with one rule (issue 19): every body
below is accepted by both or refused by both, with the same field path and reason."""

from __future__ import annotations

from collections.abc import Callable

import orjson
import pytest

from correlator.sources import SourceError
from correlator.triage.lifecycle import InputError, TicketResolution, parse_ticket_input
from stream.ingest import parse_tickets

NOW = 1_760_000_000
TICKET = {"ticket_id": "T-1", "text": "the link to riga is down", "created_at": NOW}

BODIES: list[tuple[str, object, str | None]] = [
    ("ticket", TICKET, None),
    ("ticket with unknown fields", {**TICKET, "lang": "en", "queue": 7}, None),
    ("resolution", {"ticket_id": "T-1", "status": "resolved"}, None),
    ("resolution with who and time", {"ticket_id": "T-1", "status": "resolved", "who": "desk", "resolved_at": NOW},
     None),
    ("resolution without id", {"status": "resolved"}, "ticket_id"),
    ("resolution with empty id", {"ticket_id": "", "status": "resolved"}, "ticket_id"),
    ("resolution dated in ms", {"ticket_id": "T-1", "status": "resolved", "resolved_at": NOW * 1000},
     "resolved_at"),
    ("ticket without text", {"ticket_id": "T-1", "created_at": NOW}, "text"),
    ("ticket with text a number", {**TICKET, "text": 5}, "text"),
    ("ticket dated in ms", {**TICKET, "created_at": NOW * 1000}, "created_at"),
    ("ticket dated true", {**TICKET, "created_at": True}, "created_at"),
    ("ticket with another status", {**TICKET, "status": "open"}, None),
    ("a string", "T-1", "body"),
    ("null", None, "body"),
]


def _verdict(parser: Callable[[bytes], object], refusal: type[SourceError | InputError], body: bytes
             ) -> tuple[str, str] | None:
    try:
        parser(body)
    except refusal as exc:
        return exc.field, exc.reason
    return None


def _ingest(body: bytes) -> tuple[str, str] | None:
    return _verdict(parse_tickets, SourceError, body)


def _agent(body: bytes) -> tuple[str, str] | None:
    return _verdict(parse_ticket_input, InputError, body)


@pytest.mark.parametrize(("doc", "field"), [(d, f) for _, d, f in BODIES], ids=[n for n, _, _ in BODIES])
def test_ingest_and_agent_agree(doc: object, field: str | None) -> None:
    body = orjson.dumps(doc)
    ingest, agent = _ingest(body), _agent(body)
    assert ingest == agent, (ingest, agent)
    assert (ingest and ingest[0]) == field, ingest


def test_an_array_is_refused_at_the_place_the_agent_would_refuse_its_record() -> None:
    docs = [TICKET, {"ticket_id": "T-2", "status": "resolved"}, {"ticket_id": "T-3", "created_at": NOW}]
    agent = _agent(orjson.dumps(docs[2]))
    assert agent is not None
    assert _ingest(orjson.dumps(docs)) == (f"[2].{agent[0]}", agent[1])
    records = parse_tickets(orjson.dumps(docs[:2]))
    assert [key for key, _ in records] == [b"T-1", b"T-2"]
    assert isinstance(parse_ticket_input(records[1][1]), TicketResolution)  # each record is what the agent reads
