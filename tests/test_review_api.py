"""The review API on a worker's web port, on the embedded broker: queue, approve, override, resolve, validation."""

from __future__ import annotations

import contextlib
import io
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stream.broker import EmbeddedBroker

from .ticketing import DOWN, VAGUE, call, events_of, sla_env, ticket, triaged, wait_events, wait_ready, wait_until
from .workers import Deployment, WorkerProc

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import review_eval  # noqa: E402


@pytest.fixture(scope="module")
def desk(broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Deployment, WorkerProc]]:
    """One worker for the module, with R-1 and R-2 held for review and R-3 routed."""
    dep = Deployment(broker, tmp_path_factory.mktemp("review"), extra_env=sla_env())
    dep.create_topics()
    worker = dep.start_worker()
    try:
        wait_ready(worker)
        dep.produce("tickets_raw", [ticket("R-1", VAGUE), ticket("R-2", VAGUE), ticket("R-3", DOWN)])
        wait_until(lambda: queue(worker) == ["R-1", "R-2"] or None, 60, "the review queue", worker)
        yield dep, worker
    finally:
        worker.stop()


def queue(worker: WorkerProc) -> list[str]:
    status, body = call(worker, "GET", "/review")
    return [t["ticket_id"] for t in body["tickets"]] if status == 200 else []


def test_the_queue_lists_held_tickets_with_their_triage(desk: tuple[Deployment, WorkerProc]) -> None:
    _, worker = desk
    status, body = call(worker, "GET", "/review")
    assert status == 200
    first = body["tickets"][0]
    assert (first["ticket_id"], first["text"], first["severity"], first["confidence"]) == ("R-1", VAGUE, "sev3", 0.2)


def test_an_override_routes_the_ticket_and_keeps_a_labelled_example(desk: tuple[Deployment, WorkerProc]) -> None:
    dep, worker = desk
    change = {"who": "bob", "severity": "sev2", "taxonomy_code": "network.dns", "note": "DNS outage in Riga"}
    status, event = call(worker, "POST", "/review/R-1/override", change)
    assert status == 200, event
    assert (event["status"], event["severity"], event["taxonomy_code"], event["tier"]) == (
        "routed", "sev2", "network.dns", "L2")
    assert (event["review"]["action"], event["review"]["who"]) == ("override", "bob")
    assert event["review"]["at"] == event["decided_at"]
    events = wait_events(dep, "R-1", lambda ev: len(ev) >= 2, 30, worker)
    assert [(e["status"], e["seq"]) for e in events] == [("human_review", 1), ("routed", 2)]
    assert events[1]["review"]["who"] == "bob"
    [label] = wait_until(lambda: triaged(dep, 1.0, topic="tickets_labels") or None, 30, "the label", worker)
    assert (label["id"], label["taxonomy_code"], label["severity"], label["source"], label["text"]) == (
        "R-1", "network.dns", "sev2", "override", VAGUE)
    assert "R-1" not in queue(worker)
    status, record = call(worker, "GET", "/review/R-1")
    assert (status, len(record["reviews"]), record["latest"]["status"]) == (200, 1, "routed")


def test_an_approval_routes_as_triaged_once(desk: tuple[Deployment, WorkerProc]) -> None:
    _, worker = desk
    status, event = call(worker, "POST", "/review/R-2/approve", {"who": "alice"})
    assert status == 200, event
    assert (event["status"], event["severity"], event["tier"], event["review"]["action"]) == (
        "routed", "sev3", "L1", "approve")
    status, again = call(worker, "POST", "/review/R-2/approve", {"who": "alice"})
    assert status == 409 and "not waiting for review" in again["detail"]


BAD: list[tuple[str, str, Any, int, str | None]] = [
    ("/review/NOPE/override", "POST", {"who": "b", "severity": "sev1"}, 404, None),
    ("/review/R-3/override", "POST", {"who": "b", "severity": "sev9"}, 400, "severity"),
    ("/review/R-3/override", "POST", {"who": "b", "taxonomy_code": "network.nope"}, 400, "taxonomy_code"),
    ("/review/R-3/override", "POST", {"who": "b"}, 400, "body"),
    ("/review/R-3/override", "POST", {"severity": "sev1"}, 400, "who"),
    ("/review/R-3/override", "POST", b"{not json", 400, "body"),
    ("/review/R-3/approve", "POST", {"who": "b", "unknown": 1}, 400, "unknown"),
    ("/review/R-3/approve", "POST", {"who": "b"}, 409, None),  # routed, not held for review
]


@pytest.mark.parametrize(("path", "method", "body", "status", "field"), BAD)
def test_bad_requests_name_the_field_and_reason(desk: tuple[Deployment, WorkerProc], path: str, method: str,
                                                body: Any, status: int, field: str | None) -> None:
    _, worker = desk
    raw = body if isinstance(body, bytes) else None
    got, answer = call(worker, method, path, None if raw else body, raw=raw)
    assert got == status, answer
    if field is not None:
        assert field in [e["field"] for e in answer["errors"]], answer
        assert all(e["reason"] for e in answer["errors"])


def test_resolving_stops_the_clock_once(desk: tuple[Deployment, WorkerProc]) -> None:
    dep, worker = desk
    status, event = call(worker, "POST", "/tickets/R-3/resolve", {"who": "eve", "note": "restarted the app"})
    assert (status, event["status"], event["reason"]) == (200, "resolved", "resolved by eve: restarted the app")
    status, again = call(worker, "POST", "/tickets/R-3/resolve", {"who": "eve"})
    assert (status, again["seq"]) == (200, event["seq"])  # already resolved: the same event, nothing new sent
    events = wait_events(dep, "R-3", lambda ev: ev[-1]["status"] == "resolved", 30, worker)
    assert [e["status"] for e in events] == ["routed", "resolved"]
    assert call(worker, "POST", "/review/R-3/override", {"who": "b", "severity": "sev1"})[0] == 409


def test_the_classifier_is_evaluated_on_the_review_labels(desk: tuple[Deployment, WorkerProc]) -> None:
    dep, _ = desk
    wait_until(lambda: len(triaged(dep, 1.0, topic="tickets_labels")) >= 2 or None, 30, "both labels")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = review_eval.main(["--broker", dep.broker.url, "--topic", dep.topic("tickets_labels"), "--json"])
    assert code == 0
    report = json.loads(out.getvalue())
    sections = report["sections"]
    assert (report["labels"], sections["override"]["n"], sections["approve"]["n"]) == (2, 1, 1)
    assert sections["approve"]["accuracy"]["both"] == 1.0  # the person agreed with triage
    assert sections["override"]["accuracy"]["taxonomy"] == 0.0  # the person corrected it
    assert events_of(dep, "R-2")[-1]["status"] == "routed"
