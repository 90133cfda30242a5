"""A page the notify stage decides while the broker refuses its state is still sent once the broker takes it again.

Seen in the chaos soak (session 36's final run, /tmp/soak-final): the broker restarted empty while faults posted
in the 30 s before were held (`hold: 30s`); the first notify tick after the restart decided their triggers, its
checkpoint was refused (`SendFailed ... UnknownError`, the new broker not ready yet), and the rollback kept the
fold's state (each target `sent`) but handed none of the deliveries to the deliverer: they sat in the outbox until
a store was built again, which never came. Faults 48-69 were never paged, and `GET /notify/{id}` said `paged`.

The worker here (`tests.faulty_worker`) has its notify changelog refused while a flag file exists.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from stream.broker import EmbeddedBroker

from .receivers import Receiver, start_receiver
from .workers import PATIENT_ADMISSION, Deployment, WorkerProc

pytestmark = pytest.mark.e2e

HOLD_S = 5

ROUTES = """
defaults: {{hold: {{for: {hold}s}}}}
receivers:
  - {{name: oncall, type: pagerduty, routing_key: "R0UTINGKEY", url: "{url}"}}
routes:
  - {{receiver: oncall}}
"""


@pytest.fixture
def pager() -> Iterator[Receiver]:
    """A loopback PagerDuty served from a thread of its own."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    receiver: Receiver = asyncio.run_coroutine_threadsafe(start_receiver("pagerduty"), loop).result(10)
    yield receiver
    asyncio.run_coroutine_threadsafe(receiver.stop(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)


def wait_for(check: Callable[[], Any], timeout: float, what: str, worker: WorkerProc) -> Any:
    """Poll `check` until it returns something true; that."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            found = check()
        except Exception:  # noqa: BLE001 - 404/503 until the worker knows it
            found = None
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}:\n{worker.tail()}")


def triggers(pager: Receiver) -> list[str]:
    """Dedup keys PagerDuty accepted a trigger for."""
    return [e["dedup_key"] for e in list(pager.accepted) if e["event_action"] == "trigger"]


def test_a_trigger_decided_while_the_notify_changelog_is_refused_is_sent_once_it_is_taken(
        broker: EmbeddedBroker, tmp_path: Path, workers: list[WorkerProc], pager: Receiver) -> None:
    dep = Deployment(broker, tmp_path)
    routes = tmp_path / "notify.yaml"
    routes.write_text(ROUTES.format(hold=HOLD_S, url=pager.url))
    dep.extra_env.update({"AIOPS_NOTIFY_FILE": str(routes), **PATIENT_ADMISSION})
    dep.create_topics()
    flag = tmp_path / "refuse-notify-state"
    worker = dep.start_worker(module=("tests.faulty_worker", str(flag), f"{dep.app_id}-notify-state-changelog"))
    workers.append(worker)
    worker.wait_partitions()
    alert = {"starts_at": time.time(), "fingerprint": "probe-0", "severity": "warning",
             "labels": {"alertname": "Probe", "service": "probe"}}
    dep.produce("alerts_raw", [(b"generic", json.dumps(alert).encode())])
    [incident_id] = wait_for(lambda: [i["id"] for i in worker.get("/incidents/")["incidents"]], 30,
                             "the incident", worker)
    wait_for(lambda: worker.get(f"/notify/{incident_id}")["targets"].get("oncall", {}).get("phase") == "held", 30,
             "the incident held for oncall", worker)
    flag.touch()  # the broker refuses notify's state from before the hold ends until after it
    time.sleep(HOLD_S + 3)
    assert worker.get(f"/notify/{incident_id}")["status"] == "paged"  # decided, while its checkpoint fails
    assert not triggers(pager)  # nothing may be sent before the state that decided it is written
    flag.unlink()
    wait_for(lambda: incident_id in triggers(pager), 20, "the page once the broker takes the state again", worker)
    time.sleep(2)
    assert triggers(pager) == [incident_id]
