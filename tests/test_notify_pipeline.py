"""The notify stage on the real embedded broker, with loopback receivers and the routes file of issue 18.

The lab storm (`benchmarks/storms/lab-m32.ndjson`) through a worker (stage 1, stage 2, notify): exactly one
PagerDuty trigger per critical cause with `dedup_key` = the cause's id, one resolve when its alerts resolve,
nothing for a cause a silence (`POST /silences`) covers, which `GET /notify/{id}` shows as `silenced`; the same
after the worker is SIGKILLed mid-storm (at most repeats that the dedup_key absorbs). An acknowledgement
(`POST /incidents/{id}/ack`) reaches PagerDuty; a receiver that cannot be reached ends in `deadletter`.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from correlator.replay import replay
from correlator.sources.generic import parse
from correlator.stage2 import DEFAULT_GROUPING, ParentEvent, parent_id
from stream.broker import EmbeddedBroker, free_port

from .notifying import ISSUE_ROUTES
from .receivers import Receiver, start_receiver
from .workers import ROOT, Deployment, WorkerProc

pytestmark = pytest.mark.e2e

STORM = ROOT / "benchmarks" / "storms" / "lab-m32.ndjson"


class Receivers:
    """PagerDuty, Slack and webhook loopback receivers served from a thread of their own."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.oncall = self._run(start_receiver("pagerduty"))
        self.chat = self._run(start_receiver("slack"))
        self.hook = self._run(start_receiver("webhook", secret="s3cret"))

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def stop(self) -> None:
        """Stop the servers and the loop."""
        for receiver in (self.oncall, self.chat, self.hook):
            self._run(receiver.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture
def receivers() -> Iterator[Receivers]:
    """The loopback receivers, stopped when the test ends."""
    running = Receivers()
    yield running
    running.stop()


def notify_file(path: Path, receivers: Receivers) -> Path:
    """The issue's routes file, pointing at the loopback receivers, and critical incidents also posted to `am`,
    an Alertmanager at a closed port (its deliveries end as dead letters)."""
    text = (ISSUE_ROUTES.replace("http://127.0.0.1:9/v2/enqueue", receivers.oncall.url)
            .replace("http://127.0.0.1:9/slack", receivers.chat.url)
            .replace("http://127.0.0.1:9/hook", receivers.hook.url)
            .replace('url: "http://127.0.0.1:9093"}', f'url: "http://127.0.0.1:{free_port()}", retries: 1}}')
            .replace("routes:", "routes:\n  - {match: {severity: critical}, receiver: am, continue: true}", 1))
    path.write_text(text)
    return path


def ndjson(alerts: list[dict[str, Any]]) -> bytes:
    """Generic alerts as one NDJSON body."""
    return b"\n".join(json.dumps(a).encode() for a in alerts)


def storm_alerts() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The lab storm's alerts firing, then all of them resolved two minutes after the last (generic JSON)."""
    alerts = [json.loads(line) for line in STORM.read_text().splitlines() if line.strip()]
    end = max(parse(STORM.read_bytes(), max_bytes=None), key=lambda a: a.starts_at).starts_at + 120
    resolved = [{**a, "status": "resolved", "ends_at": end + i} for i, a in enumerate(alerts)]
    # each resolve again, later: repeats that change nothing but move every partition's event time past the
    # resolve hold (event time is per partition; the wall clock takes over only after AIOPS_IDLE_ADVANCE)
    resolved += [{**a, "ends_at": end + 1000} for a in resolved]
    return alerts, resolved


def storm_bodies() -> tuple[bytes, bytes]:
    """`storm_alerts` as two bodies."""
    alerts, resolved = storm_alerts()
    return ndjson(alerts), ndjson(resolved)


def causes() -> dict[str, ParentEvent]:
    """The storm's causes as the offline replay names them (their last event each)."""
    alerts = parse(STORM.read_bytes(), max_bytes=None)
    records: list[Any] = []
    replay(alerts, grouping=DEFAULT_GROUPING, listener=records.append)
    return {r.parent_id: r for r in records if isinstance(r, ParentEvent)}


def pages(receiver: Receiver) -> Counter[tuple[str, str]]:
    """(event_action, dedup_key) of every event PagerDuty accepted; a trigger that updates an open page with its
    cause (`NotifyPolicy.update_carried`: the same dedup key, so PagerDuty adds it to the alert's log, no new page)
    counts as `update`."""
    return Counter((_action(e), e["dedup_key"]) for e in list(receiver.accepted))


def _action(event: dict[str, Any]) -> str:
    details = event.get("payload", {}).get("custom_details", {})
    return "update" if event["event_action"] == "trigger" and details.get("action") == "update" else \
        str(event["event_action"])


def wait_for(check: Callable[[], bool], timeout: float, what: str, worker: WorkerProc | None = None) -> None:
    """Poll `check` until it holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}" + (f":\n{worker.tail()}" if worker else ""))


def call(worker: WorkerProc, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """One JSON call to the worker's web port."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"http://127.0.0.1:{worker.web_port}{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as resp:
        return json.loads(resp.read())


def deployment(broker: EmbeddedBroker, tmp_path: Path, receivers: Receivers, *, lone_causes: bool = True) -> Deployment:
    """A deployment with the notify stage on; its topics created. `lone_causes`: stage 2 publishes causes of one
    incident (the storm tests page every critical cause by its id; off is the product's default)."""
    dep = Deployment(broker, tmp_path, partitions=2)
    dep.extra_env.update({"AIOPS_NOTIFY_FILE": str(notify_file(tmp_path / "notify.yaml", receivers)),
                          "AIOPS_CHECKPOINT_INTERVAL": "0.2",
                          "AIOPS_STAGE2_LONE_CAUSES": "true" if lone_causes else "false"})
    dep.create_topics()
    return dep


def test_the_storm_pages_each_critical_cause_once_and_resolves_it(
        broker: EmbeddedBroker, tmp_path: Path, workers: list[WorkerProc], receivers: Receivers) -> None:
    known = causes()
    critical = sorted(p for p, ev in known.items() if ev.max_severity == "critical")
    assert len(known) == 3 and len(critical) == 2  # the storm is what the test says
    silenced, paged = critical  # cause ids are deterministic: a maintenance window for one of them, set before
    dep = deployment(broker, tmp_path, receivers)
    worker = dep.start_worker()
    workers.append(worker)
    worker.wait_partitions()
    wait_for(lambda: _ok(worker, "/silences"), 30, "the notify state", worker)
    made = call(worker, "POST", "/silences", {
        "matchers": [{"name": "incident_id", "value": silenced}],
        "endsAt": time.time() + 3600, "comment": "replica rebuild"})
    wait_for(lambda: made["silenceID"] in {s["id"] for s in call(worker, "GET", "/silences")["silences"]}, 10,
             "the silence", worker)
    firing, resolved = storm_bodies()
    dep.produce("alerts_raw", [(b"generic", firing)])
    wait_for(lambda: pages(receivers.oncall)[("trigger", paged)] >= 1, 60, "the cause's page", worker)
    assert call(worker, "GET", f"/notify/{silenced}")["status"] == "silenced"
    call(worker, "POST", f"/incidents/{known[paged].first_child}/ack", {"who": "alice", "note": "on it"})  # a child: its cause
    wait_for(lambda: pages(receivers.oncall)[("acknowledge", paged)] >= 1, 30, "the acknowledgement", worker)
    dep.produce("alerts_raw", [(b"generic", resolved)])
    wait_for(lambda: pages(receivers.oncall)[("resolve", paged)] >= 1, 60, "the resolve", worker)
    assert call(worker, "GET", f"/notify/{silenced}")["status"] == "resolved"
    assert pages(receivers.oncall) == Counter({("trigger", paged): 1, ("acknowledge", paged): 1,
                                               ("resolve", paged): 1})
    assert not receivers.oncall.refused
    letters = dep.read_so_far("deadletter")
    wait_for(lambda: any(dict(r.headers).get("agent") == b"notify" for r in dep.read_so_far("deadletter")), 60,
             "the unreachable Alertmanager's dead letter", worker)
    assert all(dict(r.headers).get("category") == b"undeliverable" for r in letters
               if dict(r.headers).get("agent") == b"notify")


def test_a_worker_killed_mid_storm_pages_no_cause_twice(
        broker: EmbeddedBroker, tmp_path: Path, workers: list[WorkerProc], receivers: Receivers) -> None:
    known = causes()
    critical = sorted(p for p, ev in known.items() if ev.max_severity == "critical")
    dep = deployment(broker, tmp_path, receivers)
    first = dep.start_worker("first")
    workers.append(first)
    first.wait_partitions()
    firing, resolved = storm_alerts()
    early = [a for a in firing if float(a["starts_at"]) < known[critical[1]].first_seen]
    assert early and len(early) < len(firing)  # the second critical cause starts after the kill
    dep.produce("alerts_raw", [(b"generic", ndjson(early))])
    wait_for(lambda: pages(receivers.oncall)[("trigger", critical[0])] >= 1, 60, "a first page", first)
    first.kill()
    assert pages(receivers.oncall)[("trigger", critical[1])] == 0
    second = dep.start_worker("second")
    workers.append(second)
    second.wait_partitions()
    dep.produce("alerts_raw", [(b"generic", ndjson(firing[len(early):])), (b"generic", ndjson(resolved))])
    wait_for(lambda: all(pages(receivers.oncall)[("resolve", p)] >= 1 for p in critical), 90, "the resolves",
             second)
    seen = pages(receivers.oncall)
    assert {key for _, key in seen} == set(critical)  # no child, no non-critical cause at PagerDuty
    # at least once: a repeat is the same event (same dedup_key), which PagerDuty folds into the one incident
    assert all(1 <= seen[("trigger", p)] <= 2 and 1 <= seen[("resolve", p)] <= 2 for p in critical), seen


def _ok(worker: WorkerProc, path: str) -> bool:
    try:
        worker.get(path)
        return True
    except Exception:  # noqa: BLE001 - 503 until the notify state is loaded
        return False


T0 = 1_772_420_400.0


def failure(service: str, symptom: str, start: float, count: int = 6, every: float = 10.0) -> list[dict[str, Any]]:
    """`count` critical alerts of one service and symptom, `every` seconds apart (generic JSON)."""
    return [{"fingerprint": f"{service}-{symptom}-{i}", "starts_at": start + i * every, "severity": "critical",
             "labels": {"alertname": symptom, "service": service, "cluster": "c1", "instance": f"{service}-0"}}
            for i in range(count)]


def test_without_causes_of_one_a_lone_incident_pages_in_seconds_and_a_late_second_child_pages_once(
        broker: EmbeddedBroker, tmp_path: Path, workers: list[WorkerProc], receivers: Receivers) -> None:
    """The default (`AIOPS_STAGE2_LONE_CAUSES=false`): a lone critical incident pages by its own id as soon as stage
    2's progress covers it (seconds, not `AIOPS_NOTIFY_CAUSE_WAIT`'s 30 s); a second incident that joins it a minute
    later (same instance) makes a cause of two, which takes the first incident's page over: PagerDuty gets one
    trigger and one resolve for the fault, with the first incident's id, and nothing with the cause's."""
    dep = deployment(broker, tmp_path, receivers, lone_causes=False)
    worker = dep.start_worker()
    workers.append(worker)
    worker.wait_partitions()
    first = failure("db", "DBDown", T0)
    sent = time.monotonic()
    dep.produce("alerts_raw", [(b"generic", ndjson(first))])
    wait_for(lambda: any(a == "trigger" for a, _ in pages(receivers.oncall)), 30, "the lone incident's page", worker)
    took = time.monotonic() - sent
    [lone] = [key for action, key in pages(receivers.oncall) if action == "trigger"]
    print(f"lone critical incident paged {took:.1f} s after its alerts were produced")
    assert lone.startswith("inc-")  # its own id: stage 2 published no cause of one
    assert took < 20.0  # the cause wait is 30 s, counted from when notify first saw it
    later = failure("db", "HighLatency", T0 + 60)  # shares db-0 with the first: joins its group
    dep.produce("alerts_raw", [(b"generic", ndjson(later))])
    cause = parent_id(lone)
    wait_for(lambda: _ok(worker, f"/notify/{cause}") and call(worker, "GET", f"/notify/{cause}")["status"] == "paged",
             60, "the cause of two, carried by the first incident's page", worker)
    resolved = [{**a, "status": "resolved", "ends_at": T0 + 200 + i} for i, a in enumerate(first + later)]
    resolved += [{**a, "ends_at": T0 + 1200} for a in resolved]  # move every partition's event time on
    dep.produce("alerts_raw", [(b"generic", ndjson(resolved))])
    wait_for(lambda: pages(receivers.oncall)[("resolve", lone)] >= 1, 90, "the resolve, with the cause", worker)
    time.sleep(2)
    # one page, updated once with its cause (update_carried, session 33), one resolve
    assert pages(receivers.oncall) == Counter({("trigger", lone): 1, ("update", lone): 1, ("resolve", lone): 1})
    assert not receivers.oncall.refused


def test_without_causes_of_one_a_single_alert_on_four_partitions_pages_in_seconds(
        broker: EmbeddedBroker, tmp_path: Path, workers: list[WorkerProc], receivers: Receivers) -> None:
    """One critical alert of its own service, no scope label, on the default four partitions: its routing partition
    is the only one with input, and the others must say they decided up to their watermark (not the lateness behind
    it, `correlator.stage2.decided_to`), or the incident waits out the 30 s cause wait (as it did before that rule)."""
    dep = Deployment(broker, tmp_path)
    dep.extra_env.update({"AIOPS_NOTIFY_FILE": str(notify_file(tmp_path / "notify.yaml", receivers))})
    dep.create_topics()
    worker = dep.start_worker()
    workers.append(worker)
    worker.wait_partitions()
    probe = {"starts_at": time.time(), "fingerprint": "probe-0", "severity": "critical",
             "labels": {"alertname": "Probe-0", "service": "probe-0"}}
    sent = time.monotonic()
    dep.produce("alerts_raw", [(b"generic", ndjson([probe]))])
    wait_for(lambda: any(a == "trigger" for a, _ in pages(receivers.oncall)), 20, "the probe's page", worker)
    print(f"single-alert lone incident paged {time.monotonic() - sent:.1f} s after it was produced")
    [(action, key)] = list(pages(receivers.oncall))
    assert action == "trigger" and key.startswith("inc-")


def test_without_causes_of_one_an_incident_reaching_stage2_behind_its_progress_is_not_paged_alone(
        broker: EmbeddedBroker, tmp_path: Path, workers: list[WorkerProc], receivers: Receivers) -> None:
    """Session 33 (left alone in 32): the source of db's alerts falls silent past the idle advance (3 s here), so
    event time, and stage 2's progress, follow the wall clock on without it; then it sends alerts of a second
    symptom of the same instance that began 45 s ago. That incident's first alert is already covered when notify
    first sees it: the old rule paged it alone at once, and stage 2 then grouped it with the first incident, whose
    page carries the cause: two triggers for one fault. Now it waits until stage 2 names it placed (it is grouped
    by then): one trigger. A late incident of another instance, which stage 2 places alone, still pages alone within
    seconds (the progress names it), not after the 30 s cause wait."""
    dep = deployment(broker, tmp_path, receivers, lone_causes=False)
    dep.extra_env["AIOPS_IDLE_ADVANCE"] = "3"
    worker = dep.start_worker()
    workers.append(worker)
    worker.wait_partitions()
    now = time.time()
    dep.produce("alerts_raw", [(b"generic", ndjson(failure("db", "DBDown", now - 50, count=5)))])
    wait_for(lambda: any(a == "trigger" for a, _ in pages(receivers.oncall)), 30, "the first incident's page", worker)
    [lone] = [key for action, key in pages(receivers.oncall) if action == "trigger"]
    time.sleep(8)  # past the idle advance: the progress follows the wall clock, beyond the next alerts' start
    late = failure("db", "HighLatency", now - 45, count=3) + failure("cache", "Evicted", now - 45, count=3)
    sent = time.monotonic()
    dep.produce("alerts_raw", [(b"generic", ndjson(late))])
    cause = parent_id(lone)
    wait_for(lambda: _ok(worker, f"/notify/{cause}") and call(worker, "GET", f"/notify/{cause}")["status"] == "paged",
             60, "the cause of two, carried by the first incident's page", worker)
    wait_for(lambda: len([a for a, _ in pages(receivers.oncall) if a == "trigger"]) >= 2, 60, "the cache page", worker)
    took = time.monotonic() - sent
    print(f"late lone incident paged {took:.1f} s after its alerts were produced")
    time.sleep(3)
    triggers = [key for action, key in pages(receivers.oncall) if action == "trigger"]
    assert len(triggers) == 2 and triggers[0] == lone  # the first fault once, the cache fault once
    assert took < 20.0  # named by the progress, not the 30 s cause wait
    assert not receivers.oncall.refused


def test_without_causes_of_one_a_late_incident_pending_in_stage2_at_a_kill_pages_as_without_the_kill(
        broker: EmbeddedBroker, tmp_path: Path, workers: list[WorkerProc], receivers: Receivers) -> None:
    """Session 35: the scene above, with the worker SIGKILLed after stage 2 noted the two late incidents and wrote
    its checkpoint, but before the progress that names them (one every 12 s here). The late list was only in
    memory: the successor never named the cache incident, which paged alone only at the cause wait (150 s here;
    30 s by default). Now the list is saved with stage 2's progress, and the successor names it in its first
    progress: the same two triggers as the run without a kill, the cache one seconds after the successor is up."""
    dep = deployment(broker, tmp_path, receivers, lone_causes=False)
    dep.extra_env.update({"AIOPS_IDLE_ADVANCE": "3", "AIOPS_STAGE2_PROGRESS_INTERVAL": "12",
                          "AIOPS_NOTIFY_CAUSE_WAIT": "150"})
    first = dep.start_worker("first")
    workers.append(first)
    first.wait_partitions()
    now = time.time()
    dep.produce("alerts_raw", [(b"generic", ndjson(failure("db", "DBDown", now - 50, count=5)))])
    wait_for(lambda: any(a == "trigger" for a, _ in pages(receivers.oncall)), 60, "the first incident's page", first)
    [lone] = [key for action, key in pages(receivers.oncall) if action == "trigger"]
    time.sleep(6)  # past the idle advance: the next progress follows the wall clock, beyond the late alerts' start
    sent = first.get("/stage2/")["progress"]
    wait_for(lambda: first.get("/stage2/")["progress"] > sent, 30, "a progress past the idle advance", first)
    status = first.get("/stage2/")  # the next progress is 12 s away: the late incidents are pending until then
    dep.produce("alerts_raw", [(b"generic", ndjson(
        failure("db", "HighLatency", now - 45, count=3) + failure("cache", "Evicted", now - 45, count=3)))])
    wait_for(lambda: first.get("/stage2/")["grouped"] >= status["grouped"] + 2, 10, "stage 2 folding them", first)
    time.sleep(1.0)  # its checkpoint (every 0.2 s), and notify's
    assert first.get("/stage2/")["progress"] == status["progress"], "a progress named them before the kill"
    first.kill()
    killed = time.monotonic()
    assert [a for a, _ in pages(receivers.oncall)].count("trigger") == 1
    second = dep.start_worker("second")
    workers.append(second)
    second.wait_partitions()
    wait_for(lambda: len({k for a, k in pages(receivers.oncall) if a == "trigger"}) >= 2, 60,
             "the cache page from the successor", second)
    took = time.monotonic() - killed
    print(f"late lone incident paged {took:.1f} s after the kill")
    cause = parent_id(lone)
    wait_for(lambda: _ok(second, f"/notify/{cause}") and call(second, "GET", f"/notify/{cause}")["status"] == "paged",
             30, "the cause of two, carried by the first incident's page", second)
    time.sleep(3)
    seen = pages(receivers.oncall)
    triggers = {key for action, key in seen if action == "trigger"}
    assert len(triggers) == 2 and lone in triggers and cause not in triggers, seen  # as without the kill
    assert all(n <= 2 for (action, _), n in seen.items() if action == "trigger"), seen  # a repeat: same dedup_key
    assert not receivers.oncall.refused
