"""The `alertmanager` receiver against the real Debian Alertmanager on a loopback port: the correlator posts an
incident as one alert (POST /api/v2/alerts), reads it back through GET /api/v2/alerts, sees Alertmanager's own
webhook receiver deliver it, ends it with `endsAt`, and the loop guard recognises what comes back.

A silence set in that Alertmanager marks an alert `status.silencedBy`, which `source_mute` reads as silenced.
Every wait is bounded by Alertmanager's 1 s timers with generous multiples; the process is stopped by pid.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from correlator.models import Alert
from correlator.notify import (
    NotifyPolicy,
    NotifyState,
    on_record,
    parse_notify,
)
from correlator.notify.payloads import iso
from correlator.sources import alertmanager as am_source
from correlator.sources.screening import source_mute, without_own_alerts
from stream.notify.delivery import Deliverer

from .notifying import incident
from .promstack import (
    HOST,
    TEST_TIMERS,
    Proc,
    require_binaries,
    start_alertmanager,
    wait_for,
)

pytestmark = pytest.mark.e2e

STEP_TIMEOUT_S = 30.0


class Hooks:
    """Alertmanager's webhook receiver: a loopback server keeping every body it is posted."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        hooks = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                hooks.bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((HOST, 0), Handler)
        threading.Thread(target=self.server.serve_forever, name="am-hooks", daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.server.server_address[1]}/hook"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[tuple[Proc, Hooks]]:
    """Alertmanager routing every alert to `Hooks`, resolved ones too; stopped by pid afterwards."""
    require_binaries()
    hooks = Hooks()
    config = {"route": {"receiver": "hooks", "group_by": ["incident_id"], **TEST_TIMERS},
              "receivers": [{"name": "hooks", "webhook_configs": [{"url": hooks.url, "send_resolved": True}]}]}
    proc = start_alertmanager(tmp_path, hooks.url, config=config)
    try:
        yield proc, hooks
    finally:
        proc.stop()
        hooks.stop()


def _post(url: str, body: Any) -> Any:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as resp:
        return json.loads(resp.read() or b"null")


def _alerts(proc: Proc) -> list[dict[str, Any]]:
    return [a for a in proc.get_json("/api/v2/alerts") if a["labels"].get("alertname") == "CorrelatedIncident"]


def test_an_incident_is_posted_read_back_delivered_and_ended(alertmanager: tuple[Proc, Hooks]) -> None:
    proc, hooks = alertmanager
    config = parse_notify(f"receivers: [{{name: am, type: alertmanager, url: '{proc.url}', repost: 1m}}]\n"
                          "routes: [{receiver: am, hold: {for: 0}}]")
    state, policy = NotifyState(), NotifyPolicy(page_causes=False)
    opened = time.time()

    async def deliver(record: Any, now: float) -> None:
        async with Deliverer() as deliverer:
            for delivery in on_record(state, record, now, config, policy=policy).deliveries:
                outcome = await deliverer.send(delivery)
                assert (outcome.delivered, outcome.status) == (True, 200), outcome.reason

    asyncio.run(deliver(incident("inc-am", severity="critical", scope="cluster=prod"), opened))
    (alert,) = wait_for("the incident alert in /api/v2/alerts", lambda: _alerts(proc), STEP_TIMEOUT_S)
    assert alert["labels"] == {"alertname": "CorrelatedIncident", "incident_id": "inc-am", "service": "checkout",
                               "severity": "critical", "scope": "cluster=prod", "cluster": "prod",
                               "kind": "incident"}
    assert alert["status"]["state"] == "active"
    assert alert["annotations"]["link"].endswith("/incidents/inc-am")

    def firing_hook() -> list[dict[str, Any]]:
        return [b for b in hooks.bodies if b["status"] == "firing"]
    (body,) = wait_for("Alertmanager's webhook delivering it", firing_hook, STEP_TIMEOUT_S)[:1]
    kept, own = without_own_alerts(am_source.parse(json.dumps(body).encode()))
    assert (kept, own) == ([], 1)  # back through /ingest/alertmanager it would not be correlated again

    asyncio.run(deliver(incident("inc-am", 2, status="resolved", severity="critical", scope="cluster=prod"),
                        time.time()))
    wait_for("the alert ended", lambda: not _alerts(proc), STEP_TIMEOUT_S)
    resolved = wait_for("the resolved notification",
                        lambda: [b for b in hooks.bodies if b["status"] == "resolved"], STEP_TIMEOUT_S)
    assert resolved[0]["alerts"][0]["labels"]["incident_id"] == "inc-am"


def test_an_alertmanager_silence_reads_as_a_source_mute(alertmanager: tuple[Proc, Hooks]) -> None:
    proc, _ = alertmanager
    now = time.time()
    labels = {"alertname": "DiskFull", "service": "db"}
    _post(proc.url + "/api/v2/alerts", [{"labels": labels, "startsAt": iso(now)}, {
        "labels": {"alertname": "DiskFull", "service": "web"}, "startsAt": iso(now)}])
    _post(proc.url + "/api/v2/silences", {
        "matchers": [{"name": "service", "value": "db", "isRegex": False, "isEqual": True}],
        "startsAt": iso(now - 1), "endsAt": iso(now + 3600), "createdBy": "alice", "comment": "maintenance"})

    def by_service() -> dict[str, dict[str, Any]]:
        found = {a["labels"]["service"]: a for a in proc.get_json("/api/v2/alerts")}
        return found if found.get("db", {}).get("status", {}).get("silencedBy") and "web" in found else {}
    found = wait_for("the silence applied", by_service, STEP_TIMEOUT_S)
    mutes = {service: source_mute(Alert(fingerprint=a["fingerprint"], service=service, symptom="DiskFull",
                                        starts_at=now, extra={"status": a["status"]}))
             for service, a in found.items()}
    assert mutes == {"db": "silenced", "web": None}

