"""Helpers for the ticket-side integration tests: records, HTTP calls, reading `tickets.triaged`, waiting."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any, TypeVar

import orjson

from .workers import Deployment, WorkerProc

DOWN = "The whole app is down, all users cannot log in!"
VAGUE = "Hmm, something just feels a bit off lately."
REQUEST = "Please add a new user account for our branch office"  # sev3, routed to L1

T = TypeVar("T")


def sla_env(**tiers: str) -> dict[str, str]:
    """Worker environment with per-tier SLAs (others an hour), a fast SLA timer, and the tests' idle advance."""
    slas = {"L1": "1h", "L2": "1h", "L3": "1h", **tiers}
    return {"AIOPS_IDLE_ADVANCE": "300", "AIOPS_TIER_SLA": json.dumps(slas), "AIOPS_SLA_CHECK_INTERVAL": "0.25"}


def ticket(ticket_id: str, text: str) -> tuple[bytes, bytes]:
    """A `tickets.raw` record keyed by ticket id."""
    return ticket_id.encode(), orjson.dumps({"ticket_id": ticket_id, "text": text, "created_at": time.time()})


def resolution(ticket_id: str, who: str = "helpdesk") -> tuple[bytes, bytes]:
    """A `tickets.raw` record resolving a ticket."""
    return ticket_id.encode(), orjson.dumps({"ticket_id": ticket_id, "status": "resolved", "who": who})


def incident(incident_id: str, seq: int = 1, kind: str = "opened", severity: str = "warning") -> tuple[bytes, bytes]:
    """An `incidents` record (an `IncidentEvent`) keyed by incident id, as the correlate agent writes it."""
    now = time.time()
    status = {"opened": "firing", "updated": "firing"}.get(kind, kind)
    return incident_id.encode(), orjson.dumps({
        "kind": kind, "incident_id": incident_id, "seq": seq, "key": "web/Down", "service": "web",
        "symptom": "Down", "status": status, "first_seen": now, "last_seen": now, "window_start": now,
        "alert_count": 1, "distinct_fingerprints": 1, "firing_count": 1, "duplicates": 0,
        "max_severity": severity, "emitted_at": now,
    })


def call(worker: WorkerProc, method: str, path: str, body: Any = None, raw: bytes | None = None
         ) -> tuple[int, Any]:
    """An HTTP call to a worker: (status, decoded JSON body), error statuses included."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    request = urllib.request.Request(f"http://127.0.0.1:{worker.web_port}{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")


def wait_until(probe: Callable[[], T | None], timeout: float, what: str, worker: WorkerProc | None = None) -> T:
    """Poll `probe` until it returns something other than None (or falsy); fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = probe()
        if got:
            return got
        time.sleep(0.3)
    tail = f"\n{worker.tail()}" if worker is not None else ""
    raise AssertionError(f"timed out after {timeout}s waiting for {what}{tail}")


def wait_ready(worker: WorkerProc, timeout: float = 60.0) -> None:
    """Wait until the worker's SLA side has recovered and owns partitions."""
    def ready() -> bool:
        try:
            status = worker.get("/sla")
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False
        return bool(status["ready"] and status["tickets_partitions"])
    worker.wait_web()
    wait_until(ready, timeout, "the SLA side to be ready", worker)


def triaged(dep: Deployment, timeout: float = 5.0, topic: str = "tickets_triaged") -> list[dict[str, Any]]:
    """Every value on a topic so far, decoded (read to the end offsets; `timeout` bounds the read)."""
    return [orjson.loads(r.value) for r in dep.read_so_far(topic, timeout=timeout)]


def events_of(dep: Deployment, key: str, timeout: float = 3.0) -> list[dict[str, Any]]:
    """The `tickets.triaged` events of one ticket (or `incident:<id>`), in order."""
    return [e for e in triaged(dep, timeout) if e["ticket_id"] == key]


def wait_events(dep: Deployment, key: str, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float,
                worker: WorkerProc | None = None) -> list[dict[str, Any]]:
    """Read `tickets.triaged` until the events of `key` satisfy `predicate`."""
    def probe() -> list[dict[str, Any]] | None:
        events = events_of(dep, key, timeout=1.0)
        return events if predicate(events) else None
    return wait_until(probe, timeout, f"events of {key}", worker)
