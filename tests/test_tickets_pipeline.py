"""The ticket side on the embedded broker: triage, SLA escalation once, a SIGKILL before the deadline, incidents."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pytest

from correlator.triage.lifecycle import InputError
from stream.broker import EmbeddedBroker
from stream.tickets import parse_incident

from .ticketing import (
    DOWN,
    REQUEST,
    VAGUE,
    call,
    events_of,
    incident,
    resolution,
    sla_env,
    ticket,
    triaged,
    wait_events,
    wait_ready,
    wait_until,
)
from .workers import Deployment, WorkerProc


def deploy(broker: EmbeddedBroker, tmp_path: Path, **tiers: str) -> Deployment:
    dep = Deployment(broker, tmp_path, extra_env=sla_env(**tiers))
    dep.create_topics()
    return dep


def escalations(events: list[dict[str, object]]) -> list[dict[str, object]]:
    return [e for e in events if e["status"] == "escalated"]


def test_tickets_in_triaged_out_and_bad_records_dead_lettered(broker: EmbeddedBroker, tmp_path: Path,
                                                             workers: list[WorkerProc]) -> None:
    dep = deploy(broker, tmp_path)
    worker = dep.start_worker()
    workers.append(worker)
    bad = [(b"T-x", b'{"ticket_id": "T-x", "text": '), (b"T-y", b'{"ticket_id": "T-y", "text": "no time"}'),
           (b"T-z", b'{"ticket_id": "T-z", "status": "resolved"}')]
    _, misrouted = ticket("T-3", REQUEST)
    dep.produce("tickets_raw", [ticket("T-1", DOWN), ticket("T-2", VAGUE), *bad, (None, misrouted),
                                ticket("T-1", DOWN)])  # T-1 twice: triaged once
    got = wait_until(lambda: (lambda e: e if len(e) >= 3 else None)(triaged(dep, 1.0)), 60, "three events", worker)
    time.sleep(2)
    by_id = {e["ticket_id"]: e for e in triaged(dep, 2.0)}
    assert len(triaged(dep, 1.0)) == 3, got
    down, vague, request = by_id["T-1"], by_id["T-2"], by_id["T-3"]
    assert (down["status"], down["severity"], down["tier"], down["confidence"]) == ("routed", "sev1", "L3", 1.0)
    assert (vague["status"], vague["severity"], vague["tier"]) == ("human_review", "sev3", None)
    assert (request["status"], request["tier"], request["subject"]) == ("routed", "L1", "ticket")
    for record in dep.read("tickets_triaged", 10, timeout=1.0):
        assert record.key.decode() == orjson.loads(record.value)["ticket_id"]
    letters = {r.value: dict(r.headers) for r in dep.read("deadletter", 3, timeout=10)}
    assert set(letters) == {v for _, v in bad}
    assert b"malformed JSON" in letters[bad[0][1]]["reason"]
    assert b"created_at" in letters[bad[1][1]]["reason"]
    assert letters[bad[2][1]]["category"] == b"unknown_ticket"
    assert worker.metric("aiops_deadletters_total", agent="triage", reason="malformed_json") == 1
    assert worker.metric("aiops_tickets_triaged_total", status="routed", tier="L3") == 1
    assert worker.metric("aiops_tickets_triaged_total", status="routed", tier="L1") == 1
    assert worker.metric("aiops_tickets_triaged_total", status="human_review", tier="none") == 1
    assert worker.metric("aiops_ticket_duplicates_total") == 1


def test_an_sla_breach_escalates_once(broker: EmbeddedBroker, tmp_path: Path, workers: list[WorkerProc]) -> None:
    dep = deploy(broker, tmp_path, L1="2s")
    worker = dep.start_worker()
    workers.append(worker)
    dep.produce("tickets_raw", [ticket("S-1", REQUEST), ticket("S-2", DOWN), ticket("S-3", REQUEST)])
    events = wait_events(dep, "S-1", lambda ev: bool(escalations(ev)), 60, worker)
    routed = events[0]
    time.sleep(4)  # two more L1 SLAs: the escalated ticket is on L2 (1 h) now, so nothing more may come
    events = events_of(dep, "S-1")
    assert [e["status"] for e in events] == ["routed", "escalated"]
    [up] = escalations(events)
    assert (up["tier"], up["seq"], up["escalations"]) == ("L2", 2, 1)
    assert up["decided_at"] > routed["due_at"]
    assert up["reason"].startswith("escalated: L1 -> L2")
    assert [e["status"] for e in events_of(dep, "S-2")] == ["routed"]  # sev1 on L3, an hour
    # a resolved ticket's clock stops: S-3 escalated once too, then resolved; nothing after that
    wait_events(dep, "S-3", lambda ev: bool(escalations(ev)), 30, worker)
    dep.produce("tickets_raw", [resolution("S-3")])
    wait_events(dep, "S-3", lambda ev: ev[-1]["status"] == "resolved", 30, worker)
    assert worker.metric("aiops_sla_escalations_total", subject="ticket", reason="escalated") == 2
    assert worker.metric("aiops_sla_breaches_total", subject="ticket", severity="sev3", tier="L1",
                         outcome="escalated") == 2


def test_a_worker_killed_before_the_deadline_still_escalates_once(
        broker: EmbeddedBroker, tmp_path: Path, workers: list[WorkerProc]) -> None:
    dep = deploy(broker, tmp_path, L1="6s")
    first = dep.start_worker("first")
    workers.append(first)
    dep.produce("tickets_raw", [ticket("K-1", REQUEST)])
    [routed] = wait_events(dep, "K-1", lambda ev: len(ev) >= 1, 60, first)
    first.kill()  # SIGKILL: no shutdown, no offset commit, no flush
    assert time.time() < routed["due_at"], "the kill must come before the deadline"
    time.sleep(max(0.0, routed["due_at"] - time.time()) + 1)  # the deadline passes with no worker running
    second = dep.start_worker("second")
    workers.append(second)
    events = wait_events(dep, "K-1", lambda ev: bool(escalations(ev)), 90, second)
    time.sleep(8)  # longer than an L1 SLA: a second escalation would have shown by now
    events = events_of(dep, "K-1")
    assert [e["status"] for e in events] == ["routed", "escalated"], events  # not re-triaged, escalated once
    assert escalations(events)[0]["decided_at"] > routed["due_at"]


def test_two_workers_escalate_each_breach_once(broker: EmbeddedBroker, tmp_path: Path,
                                               workers: list[WorkerProc]) -> None:
    dep = deploy(broker, tmp_path, L1="3s")
    a, b = dep.start_worker("a"), dep.start_worker("b")
    workers += [a, b]
    wait_until(lambda: a.wait_partitions(1) and b.wait_partitions(1), 90, "both workers to own partitions")
    wait_ready(a)
    wait_ready(b)
    ids = [f"M-{i}" for i in range(12)]
    dep.produce("tickets_raw", [ticket(i, REQUEST) for i in ids])
    wait_until(lambda: len({e["ticket_id"] for e in escalations(triaged(dep, 1.0))}) == len(ids) or None, 90,
               "every ticket to escalate", a)
    time.sleep(5)
    events = triaged(dep, 2.0)
    assert sorted(e["ticket_id"] for e in escalations(events)) == sorted(ids)
    assert sorted(e["ticket_id"] for e in events if e["status"] == "routed") == sorted(ids)
    owned_a, owned_b = a.get("/sla")["tickets_partitions"], b.get("/sla")["tickets_partitions"]
    assert not set(owned_a) & set(owned_b) and sorted(owned_a + owned_b) == [0, 1, 2, 3]


def test_an_incident_not_acknowledged_escalates_and_an_acknowledged_one_does_not(
        broker: EmbeddedBroker, tmp_path: Path, workers: list[WorkerProc]) -> None:
    dep = deploy(broker, tmp_path, L2="4s")  # warning incidents: L2, 4 s; escalated to L3, an hour
    worker = dep.start_worker()
    workers.append(worker)
    wait_ready(worker)
    dep.produce("incidents", [incident("inc-late"), incident("inc-acked"), incident("inc-gone"),
                              incident("inc-gone", 2, "resolved")])
    wait_until(lambda: call(worker, "GET", "/incidents/inc-acked/sla")[0] == 200 or None, 30, "the clock", worker)
    status, acked = call(worker, "POST", "/incidents/inc-acked/ack", {"who": "carol", "note": "looking"})
    assert (status, acked["phase"], acked["acked_by"]) == (200, "acknowledged", "carol")
    assert acked["acked_at"] >= acked["opened_at"]
    [up] = wait_events(dep, "incident:inc-late", lambda ev: len(ev) >= 1, 30, worker)
    assert (up["status"], up["tier"], up["subject"], up["incident"]["incident_id"]) == (
        "escalated", "L3", "incident", "inc-late")
    time.sleep(5)  # past the acknowledged one's deadline too
    keys = [e["ticket_id"] for e in triaged(dep, 2.0)]
    assert keys == ["incident:inc-late"]
    assert call(worker, "GET", "/incidents/inc-gone/sla")[1]["phase"] == "resolved"
    assert call(worker, "POST", "/incidents/inc-gone/ack", {"who": "carol"})[0] == 409
    assert call(worker, "POST", "/incidents/nope/ack", {"who": "carol"})[0] == 404
    assert call(worker, "POST", "/incidents/inc-late/ack", {"note": "no who"})[0] == 400


@pytest.mark.parametrize(("value", "expected"), [
    (incident("inc-1")[1], "inc-1"),
    (b'{"kind": "opened", "parent_id": "p-1", "seq": 1}', None),          # a stage-2 parent: not clocked here
    (b'{"child_id": "inc-1", "parent_id": "p-1", "relation": "first"}', None),  # a stage-2 assignment
])
def test_incident_records_are_stage_1_events_or_skipped(value: bytes, expected: str | None) -> None:
    parsed = parse_incident(value)
    assert (parsed.incident_id if parsed is not None else None) == expected


@pytest.mark.parametrize(("value", "category"), [(b"{nope", "malformed_json"),
                                                 (b'{"incident_id": "x"}', "invalid_incident_event")])
def test_bad_incident_records_name_their_category(value: bytes, category: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_incident(value)
    assert caught.value.category == category


def test_a_closed_incident_clock_leaves_after_its_retention_and_a_running_one_stays(
        broker: EmbeddedBroker, tmp_path: Path, workers: list[WorkerProc]) -> None:
    dep = Deployment(broker, tmp_path, extra_env={**sla_env(), "AIOPS_SLA_RETENTION": "3"})
    dep.create_topics()
    worker = dep.start_worker()
    workers.append(worker)
    wait_ready(worker)
    produced = time.monotonic()
    dep.produce("incidents", [incident("inc-open"), incident("inc-done"), incident("inc-done", 2, "resolved")])
    wait_until(lambda: (call(worker, "GET", "/incidents/inc-done/sla")[1] or {}).get("phase") == "resolved", 30,
               "the closed clock", worker)
    status = call(worker, "GET", "/sla")[1]
    assert (status["incidents"], status["open_incident_clocks"]) == (2, 1)
    wait_until(lambda: call(worker, "GET", "/incidents/inc-done/sla")[0] == 404 or None, 30, "the purge", worker)
    assert time.monotonic() - produced >= 3.0  # kept for its retention first
    status_code, running = call(worker, "GET", "/incidents/inc-open/sla")
    assert (status_code, running["phase"]) == (200, "open")  # a running clock is never purged
    status = call(worker, "GET", "/sla")[1]
    assert (status["incidents"], status["open_incident_clocks"]) == (1, 1)


def test_triage_retries_a_batch_whose_state_the_broker_refuses(broker: EmbeddedBroker, tmp_path: Path,
                                                               workers: list[WorkerProc]) -> None:
    """The ticket table's changelog refused for a while (tests/faulty_worker.py): triage's commit fails before
    any event goes out (state first), is rolled back and retried in the same process; once the changelog takes
    it again every ticket is triaged exactly once."""
    dep = deploy(broker, tmp_path)
    flag = tmp_path / "changelog-down"
    flag.touch()
    worker = dep.start_worker(module=("tests.faulty_worker", str(flag), f"{dep.app_id}-ticket-sla-changelog"))
    workers.append(worker)
    ids = [f"R-{i}" for i in range(12)]
    dep.produce("tickets_raw", [ticket(i, DOWN if n % 2 else REQUEST) for n, i in enumerate(ids)])
    wait_until(lambda: worker.metric_or_zero("aiops_batch_retries_total", agent="triage") >= 2, 60, "retries", worker)
    assert triaged(dep, 1.0) == []  # nothing decided is published before its state is out
    flag.unlink()
    wait_until(lambda: (lambda e: e if len(e) >= len(ids) else None)(triaged(dep, 1.0)), 60, "every ticket", worker)
    time.sleep(2)
    events = triaged(dep, 2.0)
    assert sorted(e["ticket_id"] for e in events) == sorted(ids)  # each once
    assert worker.proc.poll() is None  # never restarted

