"""Real Prometheus and Alertmanager for end-to-end tests: loopback ports, configs in a temp dir, stopped by pid.

`Target` is the scrape target the test controls: one tiny HTTP server per instance, each serving a gauge
`e2e_healthy` that the test flips. `start_alertmanager` and `start_prometheus` write a config, start the
Debian binaries on free loopback ports and wait for `/-/ready`; `Proc.stop()` ends them by pid.

Without the binaries a test skips, except under CI (`CI=true`), where a missing binary is a failure:
`make test` installs them (Debian's prometheus and prometheus-alertmanager).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from stream.broker import die_with_parent, free_port

from . import readme

PROMETHEUS = Path("/usr/bin/prometheus")
ALERTMANAGER = Path("/usr/bin/prometheus-alertmanager")
PROMTOOL = Path("/usr/bin/promtool")  # from the prometheus package
AMTOOL = Path("/usr/bin/amtool")  # from the prometheus-alertmanager package
HOST = "127.0.0.1"


def require_binaries(*extra: Path) -> None:
    """Skip (fail under CI=true) when Prometheus, Alertmanager or one of `extra` (their tools) is not installed."""
    require_installed((PROMETHEUS, ALERTMANAGER, *extra), "prometheus prometheus-alertmanager")


def require_installed(paths: tuple[Path, ...], packages: str) -> None:
    """Skip (fail under CI=true) when one of `paths` is not an executable; `packages` install them."""
    missing = [str(p) for p in paths if not os.access(p, os.X_OK)]
    if not missing:
        return
    message = f"missing {', '.join(missing)}: `apt-get install {packages}` (`make test` does it)"
    if os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}:
        pytest.fail(message)
    pytest.skip(message)


# ---------------------------------------------------------------- the scrape target


class Target:
    """One HTTP server per instance, each serving `e2e_healthy <0|1>` on /metrics."""

    def __init__(self, instances: list[str]) -> None:
        self.healthy = dict.fromkeys(instances, True)
        self.servers: dict[str, ThreadingHTTPServer] = {}
        for name in instances:
            server = ThreadingHTTPServer((HOST, 0), _handler(self, name))
            self.servers[name] = server
            threading.Thread(target=server.serve_forever, name=f"target-{name}", daemon=True).start()

    def address(self, name: str) -> str:
        """`host:port` of one instance, as Prometheus's static config wants it."""
        return f"{HOST}:{self.servers[name].server_address[1]}"

    def set(self, healthy: bool, *names: str) -> None:
        """Flip the gauge of the named instances."""
        for name in names:
            self.healthy[name] = healthy

    def stop(self) -> None:
        """Shut every server down."""
        for server in self.servers.values():
            server.shutdown()
            server.server_close()


def metrics_handler(body: Callable[[], str]) -> type[BaseHTTPRequestHandler]:
    """An http.server handler answering every GET with `body()` as a Prometheus text exposition."""

    class Metrics(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            data = body().encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Metrics


def _handler(target: Target, name: str) -> type[BaseHTTPRequestHandler]:
    return metrics_handler(lambda: f"# TYPE e2e_healthy gauge\ne2e_healthy {int(target.healthy[name])}\n")


# ---------------------------------------------------------------- the processes


@dataclass
class Proc:
    """A started binary; stop() sends SIGTERM, then SIGKILL, by pid."""

    name: str
    process: subprocess.Popen[bytes]
    port: int
    log: Path
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        """Base URL on loopback."""
        return f"http://{HOST}:{self.port}"

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, SIGKILL after `timeout`, by pid."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout)

    def tail(self, lines: int = 30) -> str:
        """The end of its log, for assertion messages."""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def get_json(self, path: str) -> Any:
        """GET a JSON API path."""
        with urllib.request.urlopen(self.url + path, timeout=5) as resp:
            return json.loads(resp.read())


def _spawn(name: str, argv: list[str], port: int, workdir: Path) -> Proc:
    log = workdir / f"{name}.log"
    with open(log, "ab") as out:
        process = subprocess.Popen(argv, cwd=workdir, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                   preexec_fn=die_with_parent())
    proc = Proc(name, process, port, log)
    try:
        _wait_ready(proc)
    except BaseException:
        proc.stop()
        raise
    return proc


def _wait_ready(proc: Proc, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.process.poll() is not None:
            raise RuntimeError(f"{proc.name} exited with {proc.process.returncode}:\n{proc.tail()}")
        try:
            with urllib.request.urlopen(f"{proc.url}/-/ready", timeout=1) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{proc.name} not ready on {proc.url}:\n{proc.tail()}")


TEST_TIMERS = {"group_wait": "1s", "group_interval": "1s", "repeat_interval": "1h"}
"""Alertmanager's timers shortened so that a test's steps take seconds."""


def alertmanager_config(webhook_url: str, token: str | None) -> dict[str, Any]:
    """The route and receiver the README tells a person to paste ("Use it with your Alertmanager"), with the
    test's worker URL, its bearer token (when set) and the tight timers of a test."""
    config = readme.alertmanager_config()
    for receiver in config["receivers"]:
        for webhook in receiver["webhook_configs"]:
            webhook["url"] = webhook_url
            if token:
                webhook["http_config"] = {"authorization": {"type": "Bearer", "credentials": token}}
    config["route"].update(TEST_TIMERS)
    return config


def start_alertmanager(workdir: Path, webhook_url: str, token: str | None = None, *,
                       config: dict[str, Any] | None = None, log_level: str = "debug") -> Proc:
    """Alertmanager on a free loopback port, clustering off, routing every alert to `webhook_url`.

    `config` replaces the test config (`alertmanager_config`) whole; benchmarks pass their own timers.
    """
    port = free_port()
    path = workdir / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config if config is not None else alertmanager_config(webhook_url, token)))
    argv = [str(ALERTMANAGER), f"--config.file={path}", f"--storage.path={workdir / 'am-data'}",
            f"--web.listen-address={HOST}:{port}", "--cluster.listen-address=", f"--log.level={log_level}"]
    return _spawn("alertmanager", argv, port, workdir)


def prometheus_config(targets: list[str], alertmanager: str, service: str, token: str | None = None) -> dict[str, Any]:
    """Scrape and evaluate every second; alert on `e2e_healthy == 0` per instance at once; `token`: the bearer
    token Prometheus sends to its Alertmanager (a worker's ingest token, when it posts to the worker directly)."""
    manager: dict[str, Any] = {"static_configs": [{"targets": [alertmanager]}]}
    if token:
        manager["authorization"] = {"type": "Bearer", "credentials": token}
    return {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": ["rules.yml"],
        "alerting": {"alertmanagers": [manager]},
        "scrape_configs": [{"job_name": service, "static_configs": [{"targets": targets,
                                                                     "labels": {"service": service}}]}],
    }


def alert_rules(alertname: str) -> dict[str, Any]:
    """One alerting rule: the instance's gauge reads 0."""
    return {"groups": [{"name": "e2e", "interval": "1s", "rules": [{
        "alert": alertname, "expr": "e2e_healthy == 0", "for": "0s", "labels": {"severity": "critical"},
        "annotations": {"summary": "{{ $labels.service }} unhealthy on {{ $labels.instance }}"},
    }]}]}


def start_prometheus(workdir: Path, targets: list[str], alertmanager: str, *, service: str, alertname: str,
                     token: str | None = None, resend_delay: str = "1s") -> Proc:
    """Prometheus on a free loopback port scraping `targets`, sending alerts to `alertmanager` (host:port: an
    Alertmanager, or a worker, which serves Alertmanager's `/api/v2/alerts`) with `token` as its bearer token.

    `--rules.alert.resend-delay=1s` (`resend_delay`): firing alerts are re-sent every second instead of every
    minute, so Alertmanager never lets one time out during the test. Prometheus also re-sends a resolved alert at
    that interval (for 15 min); posting to a worker directly, the test's interval must leave the partition quiet
    for longer than the worker's idle advance, or event time never passes the resolve hold.
    """
    port = free_port()
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(prometheus_config(targets, alertmanager, service, token)))
    (workdir / "rules.yml").write_text(yaml.safe_dump(alert_rules(alertname)))
    argv = [str(PROMETHEUS), f"--config.file={workdir / 'prometheus.yml'}",
            f"--storage.tsdb.path={workdir / 'prom-data'}", f"--web.listen-address={HOST}:{port}",
            f"--rules.alert.resend-delay={resend_delay}", "--log.level=debug"]
    return _spawn("prometheus", argv, port, workdir)


def wait_for(what: str, check: Any, timeout: float, interval: float = 0.25) -> Any:
    """Poll `check()` until it returns something truthy; TimeoutError naming `what` otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(interval)
    raise TimeoutError(f"{what}: not within {timeout}s")
