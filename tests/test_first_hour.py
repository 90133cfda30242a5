"""What a new user meets in the first hour, on one live worker of the embedded broker: the lab storm arrives as
the worker starts, and then the headline gauge, the views (both slash forms) and `aiops tail` on the project's
topics are checked as a person would use them. One worker for the module keeps it to seconds."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from stream.app import slash_twin
from stream.settings import Settings
from stream.worker import build_worker_app

from .paths import LAB_STORM, ROOT
from .ticketing import DOWN, ticket
from .workers import Deployment, WorkerProc

T = TypeVar("T")

LAB_ALERTS, LAB_INCIDENTS = 40, 5
METRICS_INTERVAL_S = Settings.model_fields["metrics_interval"].default


@pytest.fixture(scope="module")
def lab(broker: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Deployment, WorkerProc]]:
    """A worker whose first input is the lab storm, written to `alerts.raw` while it starts; stopped by pid."""
    dep = Deployment(broker, tmp_path_factory.mktemp("firsthour"))
    dep.create_topics()
    worker = dep.start_worker()
    try:
        dep.produce("alerts_raw", [(b"generic", LAB_STORM.read_bytes())])
        worker.wait_web()
        yield dep, worker
    finally:
        worker.stop()


def _wait(what: str, probe: Callable[[], T | None], timeout: float, worker: WorkerProc) -> tuple[T, float]:
    """The first truthy `probe()` and when it came (monotonic), or fail naming `what`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = probe()
        if got:
            return got, time.monotonic()
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}:\n{worker.tail()}")


def _status(worker: WorkerProc, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{worker.web_port}{path}", timeout=5) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def _sample(metrics_text: str, series: str) -> float | None:
    """One series' value in a /metrics page, None while it is absent (a gauge not yet set)."""
    for line in metrics_text.splitlines():
        if line.startswith(series + " "):
            return float(line.rpartition(" ")[2])
    return None


def _folded(worker: WorkerProc) -> bool:
    return bool(worker.get("/stats")["counters"].get("alerts", 0) >= LAB_ALERTS)


def test_noise_reduction_reads_the_lab_figure_within_seconds_of_the_storm(
        lab: tuple[Deployment, WorkerProc]) -> None:
    _, worker = lab
    _, folded_at = _wait("the lab storm folded", lambda: _folded(worker), 60, worker)

    def ratios() -> list[float] | None:
        text = worker.get("/metrics")
        values = [_sample(text, f'aiops_noise_reduction_ratio{{window="{w}"}}') for w in ("5m", "1h")]
        numbers = [v for v in values if v is not None and not math.isnan(v)]
        return numbers if len(numbers) == len(values) else None  # absent or NaN: not yet

    # One observe round after the storm is folded, plus room for a busy machine; today's NaN never ends.
    values, read_at = _wait("a noise-reduction figure for both windows (not NaN)", ratios,
                            METRICS_INTERVAL_S + 10, worker)
    assert values == pytest.approx([1 - LAB_INCIDENTS / LAB_ALERTS] * 2), values
    assert read_at - folded_at <= METRICS_INTERVAL_S + 10


def test_every_view_answers_on_both_slash_forms(lab: tuple[Deployment, WorkerProc], tmp_path: Path) -> None:
    _, worker = lab
    _wait("the lab storm folded", lambda: _folded(worker), 60, worker)
    incident_id = worker.get("/incidents/")["incidents"][0]["id"]
    # The GET pages as the worker registers them (built here the way `aiops worker` builds them).
    app = build_worker_app(Settings(data_dir=tmp_path))[0]
    pages = {route.resource.canonical for route in app.web.web_app.router.routes()
             if route.method == "GET" and route.resource is not None}
    pages = {p.replace("{incident_id}", incident_id) for p in pages if "{" not in p.replace("{incident_id}", "")}
    assert {"/incidents", "/incidents/", f"/incidents/{incident_id}", "/review", "/review/"} <= pages
    codes = {page: _status(worker, page) for page in sorted(pages)}
    assert not [p for p, code in codes.items() if code == 404], codes
    assert all(codes[p] == codes[slash_twin(p) or p] for p in codes), codes
    assert worker.get("/incidents")["total"] == worker.get("/incidents/")["total"] == LAB_INCIDENTS


def _tail(dep: Deployment, *args: str) -> list[str]:
    """`aiops tail ARGS` against this deployment, until its `--count` is reached (bounded by a timeout)."""
    env = {**dep.env(), "PYTHONWARNINGS": "ignore"}
    done = subprocess.run([sys.executable, "-m", "stream.cli", "tail", *args], cwd=ROOT, env=env,
                          capture_output=True, timeout=60, check=True)
    return done.stdout.decode().splitlines()


def test_tail_follows_dead_letters_with_their_headers(lab: tuple[Deployment, WorkerProc]) -> None:
    dep, worker = lab
    dep.produce("alerts_raw", [(b"generic", b"this is not an alert")])
    (line,) = _tail(dep, "deadletter", "--from-beginning", "--count", "1")
    for shown in ('reason="', 'agent="normalize"', f'topic="{dep.topic("alerts_raw")}"', "partition=",
                  "offset=", 'size="20"', "value=this is not an alert"):
        assert shown in line, line
    (doc,) = [json.loads(x) for x in _tail(dep, "deadletter", "--from-beginning", "--count", "1", "--json")]
    assert {"reason", "agent", "topic", "partition", "offset"} <= set(doc["headers"]), doc
    assert doc["size"] == 20 and doc["value"] == "this is not an alert"


def test_tail_follows_incidents_and_triaged_tickets(lab: tuple[Deployment, WorkerProc]) -> None:
    dep, worker = lab
    dep.produce("tickets_raw", [ticket("T-first-hour", DOWN)])
    (triaged,) = _tail(dep, "tickets.triaged", "--from-beginning", "--count", "1")
    assert triaged.startswith(f"{dep.topic('tickets_triaged')}[") and "T-first-hour" in triaged, triaged
    assert '"status":"routed"' in triaged, triaged
    (incident,) = _tail(dep, "incidents", "--from-beginning", "--count", "1")
    assert incident.startswith("opened   inc-") and " alerts, " in incident, incident
