"""The observability stack for tests and `benchmarks/dashboard.py`: a worker, real Prometheus scraping it with the
deploy rules loaded, a storm flowing through, and every PromQL expression of the dashboard and the rules files.

`probes()` lists what must return data: each dashboard target's `expr`, each recording rule's `expr`, and for
each alerting rule the operands of its condition (`A > 0.01 and on () B > 100` gives `A` and `B`): an alert's
full expression is empty whenever it does not fire, which is the normal state, while its operands must be live
series, or the rule can never fire (a typo in a metric or label name).
"""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
import yaml

from stream.broker import free_port

from . import promstack
from .paths import ROOT
from .promstack import HOST, PROMETHEUS, Proc
from .ticketing import DOWN, REQUEST, VAGUE
from .workers import PATIENT_ADMISSION, Deployment, WorkerProc

DEPLOY = ROOT / "deploy"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "aiops-correlator.json"
PROMETHEUS_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
RULE_FILES = sorted((DEPLOY / "prometheus" / "rules").glob("*.yml"))
JOB = "aiops-correlator"  # the job name the rules and the dashboard expect

# A worker whose gauges, idle timers and SLA clocks move in test time: gauges every 0.5 s, event time follows
# the wall clock after 1 s of silence, L1's SLA is 1 s (a REQUEST ticket breaches it), the SLA timer 4x/s.
OBSERVED_ENV = {
    "AIOPS_METRICS_INTERVAL": "0.5", "AIOPS_IDLE_ADVANCE": "1", "AIOPS_IDLE_FLUSH": "0.5",
    "AIOPS_UPDATE_INTERVAL": "1", "AIOPS_RESOLVE_HOLD": "2", "AIOPS_SLA_CHECK_INTERVAL": "0.25",
    "AIOPS_TIER_SLA": json.dumps({"L1": "1s", "L2": "1h", "L3": "1h"}),
    "AIOPS_NOTIFY_FILE": str(Path(__file__).parent / "data" / "notify-observed.yaml"),  # the notify stage's series
    **PATIENT_ADMISSION,  # every panel needs the whole storm in
}


# ---------------------------------------------------------------- the expressions


def dashboard_exprs(path: Path = DASHBOARD) -> list[tuple[str, str]]:
    """(panel title / refId, expr) of every target of every panel, rows' nested panels included."""
    doc = json.loads(path.read_text())
    out: list[tuple[str, str]] = []
    stack = list(doc["panels"])
    while stack:
        panel = stack.pop(0)
        stack.extend(panel.get("panels", []))
        for target in panel.get("targets", []):
            out.append((f"panel {panel['title']!r} {target.get('refId', '')}", target["expr"]))
    return out


def rule_exprs(paths: list[Path] = RULE_FILES) -> list[tuple[str, str, str]]:
    """(where, 'record' | 'alert', expr) of every rule of every rules file."""
    out = []
    for path in paths:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                kind = "record" if "record" in rule else "alert"
                out.append((f"{path.name}: {rule.get('record') or rule.get('alert')}", kind, rule["expr"].strip()))
    return out


_SET_OPS = re.compile(r"\b(and|or|unless)\b")
_COMPARISONS = ("==", "!=", ">=", "<=", ">", "<")
_LEADING_MATCHING = re.compile(r"^\s*(on|ignoring)\s*\([^)]*\)\s*(group_left|group_right)?\s*(\([^)]*\))?")


def _top_level(expr: str) -> Iterator[tuple[int, str]]:
    """(index, char) of the characters outside (), [], {} and quotes."""
    depth, quote = 0, ""
    for i, ch in enumerate(expr):
        if quote:
            if ch == quote and expr[i - 1] != "\\":
                quote = ""
            continue
        if ch in "\"'`":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif depth == 0:
            yield i, ch


def alert_operands(expr: str) -> list[str]:
    """The operands of an alert condition: split at top-level and/or/unless, each cut before its comparison."""
    top = "".join(ch if (i, ch) in set(_top_level(expr)) else " " for i, ch in enumerate(expr))
    cuts = [0] + [c for m in _SET_OPS.finditer(top) for c in (m.start(), m.end())] + [len(expr)]
    parts = [(expr[a:b], top[a:b]) for a, b in zip(cuts[::2], cuts[1::2], strict=True)]
    out = []
    for text, masked in parts:
        start = 0
        matching = _LEADING_MATCHING.match(text)
        if matching:  # the and/or's own `on (...)` belongs to the operator, not to the operand
            start = matching.end()
        end = len(text)
        for op in _COMPARISONS:
            found = masked.find(op, start)
            if found != -1 and masked[found - 1:found + 1] not in ("=~", "!~") and found < end:
                end = found
        out.append(text[start:end].strip())
    return out


def probes() -> list[tuple[str, str]]:
    """(where, expr) for everything that must return data: dashboard targets, recording rules, alert operands."""
    out = list(dashboard_exprs())
    for where, kind, expr in rule_exprs():
        if kind == "record":
            out.append((where, expr))
        else:
            out += [(f"{where} operand {i + 1}", op) for i, op in enumerate(alert_operands(expr))]
    return out


# ---------------------------------------------------------------- a watched service (for services.rules.yml)


class ServiceTarget:
    """A service's /metrics: `http_requests_total{code}` that grows on every scrape, 2% of it 500s."""

    def __init__(self) -> None:
        self.scrapes = 0
        handler = self._handler()
        self.server = ThreadingHTTPServer((HOST, 0), handler)
        threading.Thread(target=self.server.serve_forever, name="service-target", daemon=True).start()

    @property
    def address(self) -> str:
        """host:port for a static scrape config."""
        return f"{HOST}:{self.server.server_address[1]}"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        def exposition() -> str:
            self.scrapes += 1
            n = self.scrapes * 100
            return ("# TYPE http_requests_total counter\n"
                    f'http_requests_total{{code="200"}} {n - n // 50}\n'
                    f'http_requests_total{{code="500"}} {n // 50}\n')

        return promstack.metrics_handler(exposition)

    def stop(self) -> None:
        """Shut the server down."""
        self.server.shutdown()
        self.server.server_close()


# ---------------------------------------------------------------- Prometheus with the deploy rules


def prometheus_config(workers: list[str], service: str, interval: str = "1s") -> dict[str, Any]:
    """deploy/prometheus/prometheus.yml's jobs and rule files, pointed at loopback targets, at test speed."""
    deployed = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    return {
        "global": {"scrape_interval": interval, "scrape_timeout": interval, "evaluation_interval": interval,
                   "external_labels": deployed["global"].get("external_labels", {})},
        "rule_files": [str((PROMETHEUS_CONFIG.parent / f).resolve()) for f in deployed["rule_files"]],
        "scrape_configs": [
            {"job_name": JOB, "static_configs": [{"targets": workers}]},
            {"job_name": "checkout", "static_configs": [{"targets": [service], "labels": {"service": "checkout"}}]},
        ],
    }


def start_prometheus(workdir: Path, workers: list[str], service: str, interval: str = "1s") -> Proc:
    """Prometheus on a free loopback port scraping `workers` and `service`, the deploy rules loaded."""
    port = free_port()
    config = workdir / "prometheus-obs.yml"
    config.write_text(yaml.safe_dump(prometheus_config(workers, service, interval)))
    argv = [str(PROMETHEUS), f"--config.file={config}", f"--storage.tsdb.path={workdir / 'prom-obs-data'}",
            f"--web.listen-address={HOST}:{port}"]
    return promstack._spawn("prometheus", argv, port, workdir)


def query(prom: Proc | str, expr: str) -> list[dict[str, Any]]:
    """An instant query's result vector (or scalar as one element)."""
    base = prom if isinstance(prom, str) else prom.url
    with urllib.request.urlopen(f"{base}/api/v1/query?query={urllib.parse.quote(expr)}", timeout=10) as resp:
        data = json.loads(resp.read())["data"]
    result: list[dict[str, Any]] = data["result"] if data["resultType"] in ("vector", "matrix") else [data]
    return result


def empty_probes(prom: Proc | str, todo: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The probes whose query returns no series."""
    return [(where, expr) for where, expr in todo if not query(prom, expr)]


def wait_for_data(prom: Proc | str, todo: list[tuple[str, str]], timeout: float) -> list[tuple[str, str]]:
    """Poll until every probe returns data or `timeout` passes; the ones still empty (none on success)."""
    deadline = time.monotonic() + timeout
    while True:
        todo = empty_probes(prom, todo)
        if not todo or time.monotonic() >= deadline:
            return todo
        time.sleep(0.5)


# ---------------------------------------------------------------- the traffic


@dataclass
class Stack:
    """What `start_stack` started; `stop()` ends it by pid, in reverse order."""

    dep: Deployment
    workers: list[WorkerProc]
    prom: Proc
    service: ServiceTarget

    @property
    def worker(self) -> WorkerProc:
        """The first worker (whose ingest the traffic goes to; any worker's would do)."""
        return self.workers[0]

    def stop(self) -> None:
        """Prometheus, the service target, then the workers."""
        self.prom.stop()
        self.service.stop()
        for worker in self.workers:
            worker.stop()


def owned(workers: list[WorkerProc]) -> list[list[int]] | None:
    """Each worker's partitions of `alerts` once together they own each exactly once, else None."""
    try:
        parts = [sorted(w.get("/assignment")["alerts_partitions"]) for w in workers]
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None
    flat = sorted(p for ps in parts for p in ps)
    return parts if all(parts) and flat == sorted(set(flat)) and len(flat) == len(set(flat)) else None


def start_stack(dep: Deployment, workdir: Path, interval: str = "1s", workers: int = 1) -> Stack:
    """Topics, `workers` workers (waited until they share every partition), the service target and Prometheus."""
    dep.create_topics()
    procs = [dep.start_worker(f"w{i + 1}") for i in range(workers)]
    service: ServiceTarget | None = None
    prom: Proc | None = None
    try:
        for worker in procs:
            worker.wait_web()
        promstack.wait_for("every partition owned once", lambda: (lambda o: o and sum(map(len, o)) == dep.partitions)(
            owned(procs)), 90, interval=0.5)
        service = ServiceTarget()
        prom = start_prometheus(workdir, [f"{HOST}:{w.web_port}" for w in procs], service.address, interval)
        # A sample before the traffic: rate() and increase() need the counters' starting values, or a storm
        # folded between two scrapes would not show at all.
        started = prom
        promstack.wait_for("the workers scraped", lambda: len(query(started, f'up{{job="{JOB}"}} == 1')) == workers,
                           30)
    except BaseException:
        for part in (prom, service, *procs):
            if part is not None:
                part.stop()
        raise
    return Stack(dep, procs, prom, service)


def post(worker: WorkerProc, path: str, body: bytes) -> int:
    """POST a body to the worker's ingest; the status code."""
    request = urllib.request.Request(f"http://{HOST}:{worker.web_port}{path}", data=body, method="POST",
                                     headers={"Content-Type": "application/x-ndjson"})
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as err:
        return int(err.code)


def storm_bodies(alerts: int, seed: int, end: float, per_body: int = 100) -> list[bytes]:
    """A generated storm (re-sends, resolutions, flaps) whose event times end near `end`, as NDJSON bodies."""
    import sys

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from storms import StormSpec, generate

    spec = StormSpec(alerts=alerts, services=25, seed=seed, storm_rate_per_s=0.2)
    records = [record for record, _ in generate(spec)][:alerts]
    shift = end - max(float(r.get("starts_at", spec.start)) for r in records)
    for r in records:  # the storm moved to end now: the event-time latency is then a real figure
        for field in ("starts_at", "ends_at"):
            if isinstance(r.get(field), int | float):
                r[field] = r[field] + shift
    lines = [orjson.dumps(r) for r in records]
    return [b"\n".join(lines[i:i + per_body]) for i in range(0, len(lines), per_body)]


def flow(dep: Deployment, worker: WorkerProc, bodies: list[bytes], wave: int = 0) -> dict[str, int]:
    """Send a storm through the ingest, plus what every panel needs to show: refused bodies, dead letters,
    tickets (routed, human review, one breaching L1's SLA; ids unique per `wave`). The statuses the ingest
    answered, counted."""
    codes: dict[str, int] = {}
    for body in bodies:
        code = str(post(worker, "/ingest/alerts", body))
        codes[code] = codes.get(code, 0) + 1
    code = str(post(worker, "/ingest/alerts", b'{"labels": {"alertname": "NoStart"}}'))  # 400: no starts_at
    codes[code] = codes.get(code, 0) + 1
    dep.produce("alerts_raw", [(b"generic", b'{"starts_at": 1772420400, "labels": '),  # dead letters
                               (b"generic", b'{"hello": "world"}')])
    now = time.time()
    tickets = [(f"OBS-{wave}-1", DOWN), (f"OBS-{wave}-2", VAGUE), (f"OBS-{wave}-3", REQUEST)]
    dep.produce("tickets_raw", [(tid.encode(), orjson.dumps({"ticket_id": tid, "text": text, "created_at": now}))
                                for tid, text in tickets])
    return codes
