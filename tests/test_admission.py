"""Admission control: the alert ingest sheds with 503 + Retry-After past the backlog limit, /readyz says why,
and once the backlog drains it accepts again; every alert answered 202 reaches an incident.

The request path against a stand-in verdict first, then a flood on a real worker on the embedded broker.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson
import pytest

from correlator.backlog import Backlog
from stream.broker import EmbeddedBroker
from stream.ingest import Ingest
from stream.settings import Settings

from .test_ingest import GENERIC_ONE, FakeSender, am_body, ready_worker, run_client, ticket, wait_ready
from .workers import Deployment, WorkerProc

SHEDDING = Backlog(shed=True, records=500, seconds=0.0, rates={}, reasons=("backlog of 500 records above the "
                                                                            "limit of 100",), retry_after=7)


class FixedVerdict:
    """Admission control that answers one verdict."""

    def __init__(self, verdict: Backlog) -> None:
        self.backlog = verdict

    def verdict(self) -> Backlog:
        return self.backlog


def test_shedding_refuses_alerts_with_retry_after_but_never_tickets() -> None:
    sender = FakeSender(set(Settings().topic_plan()))  # the broker holds every topic: shedding is the only reason
    ingest = Ingest(Settings(), sender, admission=FixedVerdict(SHEDDING))

    async def calls(client: Any) -> list[tuple[int, Any, Any]]:
        out = []
        for path, body in [("/ingest/alertmanager", am_body()), ("/ingest/alerts", GENERIC_ONE),
                           ("/ingest/tickets", orjson.dumps(ticket("SHED-1")))]:
            resp = await client.post(path, data=body)
            out.append((resp.status, await resp.json(), resp.headers))
        return out

    (am, am_answer, am_headers), (generic, _, _), (tickets, _, _) = run_client(ingest, calls)
    assert (am, generic, tickets) == (503, 503, 202)
    assert am_answer["error"] == "backlog" and am_answer["backlog"]["records"] == 500
    assert am_headers["Retry-After"] == "7"
    assert [t for t, _, _ in sender.sent] == ["tickets.raw"]  # nothing of the refused alerts went out


def test_readyz_lists_every_reason() -> None:
    sender = FakeSender(set())  # no topics: the broker check fails too
    ingest = Ingest(Settings(), sender, admission=FixedVerdict(SHEDDING))
    import asyncio
    reply = asyncio.run(ingest.ready())
    assert reply.status == 503 and reply.body["ready"] is False
    reasons = reply.body["reasons"]
    assert reasons[0].startswith("missing topics: ") and reasons[1].startswith("shedding alert ingest: backlog of")
    assert reply.body["backlog"]["shedding"] is True


# ---------------------------------------------------------------- a flood on a real worker

LIMIT_RECORDS = 20
ALERTS_PER_BODY = 50
KEYS = 4


def body(n: int, now: float) -> bytes:
    """ALERTS_PER_BODY distinct alerts (their own fingerprints), on KEYS services, started just now."""
    return orjson.dumps([{"starts_at": now - 1, "labels": {"alertname": "Flood", "service": f"svc{(n + i) % KEYS}",
                                                           "body": str(n), "i": str(i)}}
                         for i in range(ALERTS_PER_BODY)])


@pytest.fixture(scope="module")
def tight(broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Deployment, WorkerProc]]:
    """A worker whose ingest sheds past a backlog of 20 records, measured every 0.2 s."""
    env = {"AIOPS_IDLE_ADVANCE": "300", "AIOPS_ADMISSION_BACKLOG_RECORDS": str(LIMIT_RECORDS),
           "AIOPS_ADMISSION_BACKLOG_SECONDS": "0", "AIOPS_ADMISSION_INTERVAL": "0.2", "AIOPS_LOG_LEVEL": "warning"}
    with ready_worker(broker, tmp_path_factory.mktemp("admission"), env) as running:
        yield running


def post(conn: http.client.HTTPConnection, data: bytes) -> tuple[int, dict[str, str], Any]:
    conn.request("POST", "/ingest/alerts", body=data, headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    answer = orjson.loads(resp.read())
    return resp.status, dict(resp.getheaders()), answer


def test_a_flood_is_shed_then_accepted_again_and_nothing_accepted_is_lost(tight: tuple[Deployment, WorkerProc]
                                                                           ) -> None:
    _, worker = tight
    port = worker.web_port
    stop = threading.Event()
    lock = threading.Lock()
    answers: list[tuple[int, dict[str, str], Any]] = []
    counter = iter(range(10**9))

    def flood() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            while not stop.is_set():
                with lock:
                    n = next(counter)
                got = post(conn, body(n, time.time()))
                with lock:
                    answers.append(got)
        finally:
            conn.close()

    not_ready: list[Any] = []
    deadline = time.monotonic() + 60
    with ThreadPoolExecutor(6) as pool:
        futures = [pool.submit(flood) for _ in range(6)]
        while time.monotonic() < deadline:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("GET", "/readyz")
            resp = conn.getresponse()
            ready = orjson.loads(resp.read())
            conn.close()
            if resp.status == 503:
                not_ready.append(ready)
            with lock:
                shed = sum(1 for a in answers if a[0] == 503)
            if shed >= 20 and not_ready:
                break
            time.sleep(0.1)
        stop.set()
        for f in futures:
            f.result()

    codes = [a[0] for a in answers]
    refused = [a for a in answers if a[0] == 503]
    assert set(codes) <= {202, 503}, [a[2] for a in answers if a[0] not in (202, 503)][:3]
    assert len(refused) >= 20, f"never shed in 60 s: {len(answers)} requests, {worker.tail()}"
    assert all(a[2]["error"] == "backlog" and 1 <= int(a[1]["Retry-After"]) <= 60 for a in refused)
    assert any("shedding alert ingest" in r for ready in not_ready for r in ready["reasons"]), not_ready[:2]
    accepted = sum(a[2]["accepted"] for a in answers if a[0] == 202)
    assert accepted > 0

    # the backlog drains: ready again and 202 again, with no restart
    wait_ready(worker, timeout=60)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    status, _, answer = post(conn, body(10**8, time.time()))
    conn.close()
    assert status == 202, answer
    accepted += answer["accepted"]

    # count: requests in = accepted + refused, and every accepted alert is in an incident
    assert worker.metric("aiops_ingest_requests_total", endpoint="alerts", code="202") == len(answers) - len(
        refused) + 1
    assert worker.metric("aiops_ingest_requests_total", endpoint="alerts", code="503") == len(refused)
    assert worker.metric("aiops_ingest_refusals_total", endpoint="alerts", reason="backlog") == len(refused)

    def folded() -> int:
        return int(worker.get("/stats")["counters"]["alerts"])

    end = time.monotonic() + 60
    while folded() < accepted and time.monotonic() < end:
        time.sleep(0.5)
    assert folded() == accepted
    incidents = worker.get("/incidents/")
    assert incidents["total"] == len(incidents["incidents"])  # the whole list, so the sum below covers all
    assert sum(i["alert_count"] for i in incidents["incidents"]) == accepted


def test_admission_cost_benchmark_quick() -> None:
    """`benchmarks/admission_cost.py --quick --json` runs and reports well-formed figures (no speed asserted)."""
    import json
    import subprocess
    import sys

    from .paths import ROOT
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "admission_cost.py"), "--quick", "--json"],
                         check=True, capture_output=True, text=True, timeout=300, cwd=ROOT)
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert len(report["runs"]) == 1 and report["median"]["probe_ms"] > 0 and report["ratio_wall"] > 0
    assert report["backlog_seen"]["records"] == 4 * (400 // 4 + 1 - 400 // 4 // 2)  # what the benchmark left


def test_overload_benchmark_quick() -> None:
    """`benchmarks/overload.py --quick --json` runs both arms and reports well-formed figures (no speed asserted)."""
    import json
    import subprocess
    import sys

    from .paths import ROOT
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "overload.py"), "--quick", "--json"],
                         check=True, capture_output=True, text=True, timeout=300, cwd=ROOT)
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert sorted(r["arm"] for r in report["runs"]) == ["off", "on"]
    for run in report["runs"]:
        assert run["codes"].get("202", 0) > 0 and run["peak_backlog"] >= 0 and run["broker_peak_rss_mb"] > 0
        assert run["drain_s"] is not None  # the backlog of a 4 s flood drains
    assert report["median"]["off"]["shed_503"] == 0  # admission off never sheds
