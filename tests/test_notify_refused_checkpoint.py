"""A page the notify stage decides while the broker refuses its state is still sent once the broker takes it again.

Seen in the chaos soak (session 36's final run, /tmp/soak-final): the broker restarted empty while faults posted
in the 30 s before were held (`hold: 30s`); the first notify tick after the restart decided their triggers, its
checkpoint was refused (`SendFailed ... UnknownError`, the new broker not ready yet), and the rollback kept the
fold's state (each target `sent`) but handed none of the deliveries to the deliverer: they sat in the outbox until
a store was built again, which never came. Faults 48-69 were never paged, and `GET /notify/{id}` said `paged`.

A refused checkpoint, or a refused send of the record itself, also lost what a fold re-addresses to another
partition (`Step.forward`, sent on the control topic after the checkpoint): a cause's close, sent to the child whose
page carries it, was never sent again (the refold skips the cause's event by its seq), and that page stayed open
for the retention (an hour) after the fault ended.

The worker here (`tests.faulty_worker`) has one topic refused while a flag file exists.
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

from correlator.stage2 import parent_id
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


def triggers(pager: Receiver, action: str = "trigger") -> list[str]:
    """Dedup keys PagerDuty accepted an event of `action` for."""
    return [e["dedup_key"] for e in list(pager.accepted) if e["event_action"] == action]


def refusing_worker(dep: Deployment, pager: Receiver, tmp_path: Path, hold_s: int,
                    refused: str = "notify-state-changelog") -> tuple[WorkerProc, Path]:
    """A worker with one route to PagerDuty (hold `hold_s`) whose topic `<app id>-<refused>` is refused while the
    returned flag file exists."""
    routes = tmp_path / "notify.yaml"
    routes.write_text(ROUTES.format(hold=hold_s, url=pager.url))
    dep.extra_env.update({"AIOPS_NOTIFY_FILE": str(routes), **PATIENT_ADMISSION})
    dep.create_topics()
    flag = tmp_path / f"refuse-{refused}"
    worker = dep.start_worker(module=("tests.faulty_worker", str(flag), f"{dep.app_id}-{refused}"))
    worker.wait_partitions()
    return worker, flag


def failure(service: str, symptom: str, start: float, count: int = 6) -> bytes:
    """`count` critical alerts of one service and symptom, 10 s apart, as one NDJSON body."""
    return b"\n".join(json.dumps({
        "fingerprint": f"{service}-{symptom}-{i}", "starts_at": start + i * 10.0, "severity": "critical",
        "labels": {"alertname": symptom, "service": service, "cluster": "c1", "instance": f"{service}-0"}}).encode()
        for i in range(count))


def test_a_trigger_decided_while_the_notify_changelog_is_refused_is_sent_once_it_is_taken(
        broker: EmbeddedBroker, tmp_path: Path, workers: list[WorkerProc], pager: Receiver) -> None:
    dep = Deployment(broker, tmp_path)
    worker, flag = refusing_worker(dep, pager, tmp_path, HOLD_S)
    workers.append(worker)
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


def test_a_cause_closed_while_the_notify_control_topic_is_refused_resolves_the_page_that_carries_it(
        broker: EmbeddedBroker, tmp_path: Path, workers: list[WorkerProc], pager: Receiver) -> None:
    """A lone incident pages by its own id; a second one joins it (same instance) and the page carries their cause
    (`correlator.notify.state`: the cause sends no trigger). The fault ends while the control topic is refused: the
    cause's close, which frees the carrying page's resolve, must reach that page once the topic takes it. Before,
    the fold that closed the cause sent the close, the send failed, and the batch folded again decided nothing (the
    cause's event skipped by its seq): the batch passed, the close was gone. Now what is not sent stays with its
    store, and the stage retries until it is out (no later record of the store is folded meanwhile)."""
    dep = Deployment(broker, tmp_path)
    worker, flag = refusing_worker(dep, pager, tmp_path, 0, refused="notify-control")
    workers.append(worker)
    t0 = 1_772_420_400.0  # a replay (no event-time horizon in tests): the resolves below move event time on freely
    dep.produce("alerts_raw", [(b"generic", failure("db", "DBDown", t0))])
    [lone] = wait_for(lambda: triggers(pager), 30, "the lone incident's page", worker)
    dep.produce("alerts_raw", [(b"generic", failure("db", "HighLatency", t0 + 60))])
    cause = parent_id(lone)
    wait_for(lambda: worker.get(f"/notify/{cause}")["status"] == "paged", 60, "the cause, carried by the page", worker)
    flag.touch()
    ended = [json.loads(line) for line in failure("db", "DBDown", t0).splitlines()
             + failure("db", "HighLatency", t0 + 60).splitlines()]
    resolved = [{**a, "status": "resolved", "ends_at": t0 + 200 + i} for i, a in enumerate(ended)]
    resolved += [{**a, "ends_at": t0 + 1200} for a in resolved]  # every partition's event time past the hold
    dep.produce("alerts_raw", [(b"generic", b"\n".join(json.dumps(a).encode() for a in resolved))])
    wait_for(lambda: worker.get(f"/incidents/{cause}/")["status"] == "resolved", 90, "stage 2 closing the cause",
             worker)  # on `incidents` (the console's read model): notify reads it within a second or two
    time.sleep(8)  # the old code folds it, refused, and drops the close; the new one retries it
    assert not triggers(pager, "resolve")
    flag.unlink()
    wait_for(lambda: lone in triggers(pager, "resolve"), 30, "the carrying page's resolve", worker)
    assert set(triggers(pager)) == {lone}  # its trigger, and its update with the cause (no new page)
