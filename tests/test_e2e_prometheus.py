"""End to end with the real thing: a target the test flips, Prometheus alerting on it, Alertmanager posting to the
worker's /ingest/alertmanager, the pipeline on the embedded broker, and the incident on `incidents`.

Every wait is bounded by the stack's intervals (scrape and evaluation 1 s, group_wait and group_interval 1 s,
the worker's idle advance and resolve hold 1 s), with generous multiples for a loaded machine; nothing sleeps
for a fixed time. Every process the test starts is stopped by pid.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from correlator.models import IncidentEvent
from stream.broker import EmbeddedBroker
from stream.feed import follow_until, format_event
from stream.ingest import ENDPOINTS

from . import promstack, readme
from .paths import ROOT
from .promstack import (
    AMTOOL,
    PROMTOOL,
    Proc,
    Target,
    require_binaries,
    start_alertmanager,
    start_prometheus,
    wait_for,
)
from .test_ingest import wait_ready
from .workers import Deployment, WorkerProc

SERVICE, ALERTNAME = "checkout", "CheckoutUnhealthy"
KEY = f"{SERVICE}/{ALERTNAME}"
INSTANCES = ["node-1", "node-2", "node-3"]
FAILING = INSTANCES[:2]
TOKEN = "e2e-token"
# Per step: scrape 1 s + evaluation 1 s + group_wait/group_interval 1 s + idle flush/advance 1 s + hold 1 s,
# about 5 s; the bound leaves room for a busy 2-core machine.
STEP_TIMEOUT_S = 45.0


@contextmanager
def _running(broker: EmbeddedBroker, tmp_path: Path,
             via_alertmanager: bool) -> Iterator[tuple[Deployment, WorkerProc, Target, Proc]]:
    """Worker, target and Prometheus, up and scraping, Prometheus's alerts going through Alertmanager to
    /ingest/alertmanager, or (`via_alertmanager` false) to the worker itself, named as its Alertmanager; all
    stopped afterwards by pid."""
    require_binaries()
    env = {"AIOPS_IDLE_ADVANCE": "1", "AIOPS_IDLE_FLUSH": "0.5", "AIOPS_RESOLVE_HOLD": "1",
           "AIOPS_UPDATE_INTERVAL": "1", "AIOPS_INGEST_TOKEN": TOKEN}
    dep = Deployment(broker, tmp_path, extra_env=env)
    dep.create_topics()
    started: list[WorkerProc | Proc] = []
    target = Target(INSTANCES)
    try:
        worker = dep.start_worker()
        started.append(worker)
        worker.wait_web()
        wait_ready(worker)
        worker.wait_partitions(dep.partitions)
        # Directly, Prometheus re-sends each resolved alert every resend delay: 3 s leaves the partition quiet for
        # longer than the idle advance (1 s), so event time follows the clock past the resolve hold.
        manager, token, resend = f"127.0.0.1:{worker.web_port}", TOKEN, "3s"
        if via_alertmanager:
            am = start_alertmanager(tmp_path, f"http://127.0.0.1:{worker.web_port}/ingest/alertmanager", TOKEN)
            started.append(am)
            manager, token, resend = f"127.0.0.1:{am.port}", None, "1s"
        prom = start_prometheus(tmp_path, [target.address(i) for i in INSTANCES], manager,
                                service=SERVICE, alertname=ALERTNAME, token=token, resend_delay=resend)
        started.append(prom)
        wait_for("every instance scraped", lambda: len(_query(prom, "e2e_healthy == 1")) == len(INSTANCES), 20)
        yield dep, worker, target, prom
    finally:
        for proc in reversed(started):
            proc.stop()
        target.stop()


@pytest.fixture
def stack(broker: EmbeddedBroker, tmp_path: Path) -> Iterator[tuple[Deployment, WorkerProc, Target, Proc]]:
    """Worker, target, Alertmanager and Prometheus (`_running`)."""
    with _running(broker, tmp_path, via_alertmanager=True) as running:
        yield running


@pytest.fixture
def direct(broker: EmbeddedBroker, tmp_path: Path) -> Iterator[tuple[Deployment, WorkerProc, Target, Proc]]:
    """Worker, target and Prometheus whose Alertmanager address is the worker itself (`_running`)."""
    with _running(broker, tmp_path, via_alertmanager=False) as running:
        yield running


def _query(prom: Proc, expr: str) -> list[dict[str, object]]:
    result: list[dict[str, object]] = prom.get_json(f"/api/v1/query?query={urllib.parse.quote(expr)}")["data"]["result"]
    return result


def _follow(dep: Deployment, done: Callable[[dict[str, IncidentEvent]], bool]) -> dict[str, IncidentEvent]:
    return asyncio.run(follow_until(dep.broker.bootstrap, done, topic=dep.topic("incidents"),
                                    timeout=STEP_TIMEOUT_S, quiet_s=0.0))


def _shape(line: str) -> str:
    """A `tail incidents` line without what differs per run: the id, the seq, and whether the event that first
    showed every failing instance was the opening one or an update (Alertmanager may send them apart)."""
    line = re.sub(r"\binc-[0-9a-f]+", "inc-ID", re.sub(r"#\d+", "#N", line))
    return re.sub(r"^(opened|updated) +", "firing-event ", line)


def _firing(latest: dict[str, IncidentEvent]) -> IncidentEvent | None:
    return next((e for e in latest.values() if e.key == KEY and e.status == "firing"
                 and e.firing_count >= len(FAILING)), None)


def _recover(dep: Deployment, target: Target, opened: IncidentEvent) -> dict[str, IncidentEvent]:
    """Heal the failing instances and follow `incidents` until the opened incident resolves; the latest events."""
    target.set(True, *FAILING)

    def resolved(latest: dict[str, IncidentEvent]) -> bool:
        event = latest.get(opened.incident_id)
        return event is not None and event.status == "resolved"

    final = _follow(dep, resolved)
    assert resolved(final), f"incident {opened.incident_id} not resolved: {final.get(opened.incident_id)}"
    return final


@pytest.mark.parametrize(("ci", "outcome"), [("true", pytest.fail.Exception), ("", pytest.skip.Exception)])
def test_missing_binary_fails_under_ci_and_skips_otherwise(monkeypatch: pytest.MonkeyPatch, ci: str,
                                                           outcome: type[BaseException]) -> None:
    monkeypatch.setattr(promstack, "ALERTMANAGER", Path("/nonexistent/prometheus-alertmanager"))
    monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome, match="prometheus-alertmanager"):
        require_binaries()


def test_deploy_samples_are_valid_and_route_to_the_ingest() -> None:
    require_binaries(PROMTOOL, AMTOOL)
    deploy = ROOT / "deploy"
    subprocess.run([str(PROMTOOL), "check", "config", str(deploy / "prometheus" / "prometheus.yml")], check=True,
                   capture_output=True, cwd=deploy / "prometheus")
    subprocess.run([str(AMTOOL), "check-config", str(deploy / "alertmanager" / "alertmanager.yml")], check=True,
                   capture_output=True)
    config = yaml.safe_load((deploy / "alertmanager" / "alertmanager.yml").read_text())
    hooks = [h for r in config["receivers"] for h in r.get("webhook_configs", [])]
    assert hooks and all(urllib.parse.urlparse(h["url"]).path == "/ingest/alertmanager" for h in hooks)
    assert all(h["send_resolved"] is True and h["max_alerts"] > 0 for h in hooks)  # sized: test_webhook_limit
    assert {"group_by", "group_wait", "group_interval", "repeat_interval"} <= set(config["route"])
    paths = {e.path for e in ENDPOINTS}
    assert "/ingest/alertmanager" in paths and "/ingest/zabbix" in paths
    assert "/ingest/zabbix" in (deploy / "zabbix" / "README.md").read_text()


@pytest.mark.e2e
def test_failing_instances_open_one_incident_and_recovery_resolves_it(
        stack: tuple[Deployment, WorkerProc, Target, Proc]) -> None:
    dep, worker, target, prom = stack

    target.set(False, *FAILING)
    opened = _firing(_follow(dep, lambda latest: _firing(latest) is not None))
    assert opened is not None, f"no firing incident {KEY}:\n{worker.tail()}"
    assert (opened.service, opened.symptom, opened.max_severity) == (SERVICE, ALERTNAME, "critical")
    assert opened.distinct_fingerprints == len(FAILING)  # one member per failing instance, re-sends deduped
    assert len(_query(prom, 'ALERTS{alertstate="firing"}')) == len(FAILING)

    final = _recover(dep, target, opened)
    assert final[opened.incident_id].firing_count == 0
    assert [e.incident_id for e in final.values() if e.key == KEY] == [opened.incident_id]  # one incident
    # what the README's "Use it with your Alertmanager" says a person sees, line for line
    seen = [format_event(opened), format_event(final[opened.incident_id])]
    assert [_shape(x) for x in seen] == [_shape(x) for x in readme.sample_incident_lines()], seen

    assert worker.metric("aiops_ingest_requests_total", endpoint="alertmanager", code="202") >= 2
    assert worker.metric("aiops_ingest_refusals_total", endpoint="alertmanager", reason="unauthorized") == 0


@pytest.mark.e2e
def test_prometheus_posts_to_the_worker_directly(direct: tuple[Deployment, WorkerProc, Target, Proc]) -> None:
    """Prometheus appends `/api/v2/alerts` to its Alertmanager address: the worker's alias of /ingest/alerts takes
    its posts (with the ingest token), opens the incident and resolves it when the instances recover."""
    dep, worker, target, prom = direct
    target.set(False, *FAILING)
    opened = _firing(_follow(dep, lambda latest: _firing(latest) is not None))
    assert opened is not None, f"no firing incident {KEY}:\n{worker.tail()}\n{prom.tail()}"
    assert (opened.service, opened.symptom, opened.max_severity) == (SERVICE, ALERTNAME, "critical")

    _recover(dep, target, opened)
    assert worker.metric("aiops_ingest_requests_total", endpoint="alerts", code="202") >= 2
    assert worker.metric("aiops_ingest_refusals_total", endpoint="alerts", reason="unauthorized") == 0
