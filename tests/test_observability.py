"""Metrics, rules and dashboard: the pure parts as tables, then the whole thing live.

The live test runs a worker on the embedded broker, real Prometheus scraping it every second with the deploy
rules loaded, a storm through the HTTP ingest, and then evaluates every PromQL expression of the Grafana
dashboard and of every rules file through Prometheus's HTTP API: each must return data (no dead panel, no
typo in a metric or label name). Waits poll; nothing sleeps for a fixed time.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from correlator.noise import NoiseWindow
from stream.broker import EmbeddedBroker
from stream.ingest import producer_options
from stream.observe import capped_by_service, lag_topics
from stream.security import client_options, faust_credentials
from stream.settings import Settings

from .obsstack import (
    DASHBOARD,
    DEPLOY,
    OBSERVED_ENV,
    PROMETHEUS_CONFIG,
    RULE_FILES,
    alert_operands,
    dashboard_exprs,
    flow,
    probes,
    query,
    start_stack,
    storm_bodies,
    wait_for_data,
)
from .paths import ROOT
from .promstack import AMTOOL, PROMTOOL, require_binaries, wait_for
from .workers import Deployment

# Operands that only have data after a real outage: a 503 needs the broker down, and the session's broker
# is shared by every test. For these the metric must exist and every label value the rule names must be
# one the ingest emits (checked against its source).
EVENT_ONLY = {"correlator.rules.yml: CorrelatorIngestBrokerUnavailable operand 1"}


# ---------------------------------------------------------------- pure parts


@pytest.mark.parametrize(("samples", "period", "expected"), [
    ([], 300, None),                                           # nothing seen
    ([(0, 0, 0), (10, 100, 5)], 300, 0.95),                    # younger than the period: since start
    ([(0, 0, 0), (100, 100, 10), (400, 300, 12)], 300, 0.99),  # base is the sample at the period's start
    ([(0, 0, 0), (100, 100, 10), (400, 100, 10)], 300, None),  # no alert in the last 5 minutes
    ([(0, 500, 50), (10, 10, 1)], 300, 0.9),                   # counters restarted: history restarts
])
def test_noise_window(samples: list[tuple[float, float, float]], period: float, expected: float | None) -> None:
    window = NoiseWindow(horizon_s=3600)
    for at, alerts, incidents in samples:
        window.add(at, alerts, incidents)
    got = window.reduction(samples[-1][0] if samples else 0, period)
    assert got == pytest.approx(expected) if expected is not None else got is None


def test_noise_window_counts_a_storm_that_came_before_its_first_sample() -> None:
    window = NoiseWindow.since(100.0)  # the worker starts, nothing counted yet
    window.add(105.0, 40, 5)  # its first periodic sample: the lab storm is already counted
    assert window.reduction(105.0, 300) == pytest.approx(0.875)
    assert window.reduction(165.0, 3600) == pytest.approx(0.875)


def test_noise_window_memory_is_bounded_by_the_horizon() -> None:
    window = NoiseWindow(horizon_s=60)
    for t in range(10_000):
        window.add(t, t * 10, t)
    assert len(window.samples) <= 62
    assert window.reduction(9999, 60) == pytest.approx(0.9)


@pytest.mark.parametrize(("keys", "top", "expected"), [
    ([], 2, {"other": 0}),
    (["a/x", "a/y", "b/x", "c/x"], 2, {"a": 2, "b": 1, "other": 1}),
    (["a/x", "other/x", "b/x"], 5, {"a": 1, "b": 1, "other": 1}),  # a service named "other" joins the bucket
    ([f"h{i}/down" for i in range(1000)], 3, {"h0": 1, "h1": 1, "h2": 1, "other": 997}),
    # scoped keys (scope/service/symptom): the service, not the scope
    (["cluster=eu/a/x", "cluster=us/a/y", "env=prod,region=n/b/x"], 5, {"a": 2, "b": 1, "other": 0}),
])
def test_open_incidents_by_service_is_capped(keys: list[str], top: int, expected: dict[str, int]) -> None:
    assert capped_by_service(keys, top) == expected


@pytest.mark.parametrize(("stage2", "route"), [(True, {"aiops-correlator-stage2-route"}), (False, set())])
def test_lag_covers_every_consumed_topic_stage_2_s_route_included(stage2: bool, route: set[str]) -> None:
    names = Settings().topics
    expected = {names.alerts_raw, names.alerts, names.incidents, names.tickets_raw} | route
    assert lag_topics(Settings(stage2=stage2)) == expected


@pytest.mark.parametrize(("expr", "operands"), [
    ("up == 0", ["up"]),
    ('rate(x_total{reason=~"a|b"}[5m]) > 0', ['rate(x_total{reason=~"a|b"}[5m])']),
    ("a:b:ratio1h < 0.5 and on () sum(increase(x[1h])) > 100", ["a:b:ratio1h", "sum(increase(x[1h]))"]),
    ("sum by (t) (deriv(l[10m])) > 0 and on (t) r:s:sum > 1000", ["sum by (t) (deriv(l[10m]))", "r:s:sum"]),
    ('x{a!="b"} / y >= 2 unless z', ['x{a!="b"} / y', "z"]),
])
def test_alert_operands(expr: str, operands: list[str]) -> None:
    assert alert_operands(expr) == operands


def test_kafka_security_settings_reach_faust_and_aiokafka() -> None:
    assert faust_credentials(Settings()) is None and client_options(Settings()) == {}
    sasl = Settings(broker_security_protocol="SASL_SSL", broker_sasl_mechanism="SCRAM-SHA-512",
                    broker_sasl_username="svc", broker_sasl_password="pw")
    creds = faust_credentials(sasl)
    assert creds is not None and creds.protocol.value == "SASL_SSL" and creds.mechanism.value == "SCRAM-SHA-512"
    options = client_options(sasl)
    assert (options["security_protocol"], options["sasl_plain_username"], options["sasl_plain_password"]) == (
        "SASL_SSL", "svc", "pw")
    assert options["ssl_context"] is not None
    assert producer_options(sasl)["sasl_mechanism"] == "SCRAM-SHA-512"  # the ingest's own producer too
    assert faust_credentials(Settings(broker_security_protocol="SSL")).protocol.value == "SSL"  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="broker_sasl_username"):
        Settings(broker_security_protocol="SASL_PLAINTEXT")


# ---------------------------------------------------------------- the files


def test_promtool_accepts_the_config_and_every_rules_file() -> None:
    require_binaries(PROMTOOL)
    subprocess.run([str(PROMTOOL), "check", "config", str(PROMETHEUS_CONFIG)], check=True, capture_output=True,
                   cwd=PROMETHEUS_CONFIG.parent)
    result = subprocess.run([str(PROMTOOL), "check", "rules", *map(str, RULE_FILES)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    loaded = yaml.safe_load(PROMETHEUS_CONFIG.read_text())["rule_files"]
    assert sorted(Path(f).name for f in loaded) == sorted(p.name for p in RULE_FILES)  # none left unloaded


def test_dashboard_is_provisionable() -> None:
    doc = json.loads(DASHBOARD.read_text())
    datasource = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text())
    uid = datasource["datasources"][0]["uid"]
    provider = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "dashboards" / "aiops.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
    ids = [p["id"] for p in doc["panels"]]
    assert len(ids) == len(set(ids)) and doc["uid"]
    for panel in doc["panels"]:
        assert panel["datasource"]["uid"] == uid and panel["targets"], panel["title"]
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
    exprs = [e for _, e in dashboard_exprs()]
    assert not [e for e in exprs if "$" in e]  # nothing Prometheus alone could not evaluate
    titles = " ".join(p["title"].lower() for p in doc["panels"])
    for needed in ("noise reduction", "alerts vs incidents", "by service", "latency", "dead letters", "triage",
                   "sla", "lag"):
        assert needed in titles


def test_compose_file_names_the_provisioned_files() -> None:
    compose = yaml.safe_load((DEPLOY / "compose" / "compose.yml").read_text())
    services = compose["services"]
    assert {"kafka", "worker-1", "worker-2", "prometheus", "alertmanager", "grafana"} <= set(services)
    mounts = " ".join(v for s in services.values() for v in s.get("volumes", []) if isinstance(v, str))
    for path in ("grafana/dashboards", "grafana/provisioning", "prometheus/rules", "alertmanager"):
        assert path in mounts
    for source in re.findall(r"(\.\./[\w./-]+):", mounts):  # every mounted file or folder exists
        assert (DEPLOY / "compose" / source).resolve().exists(), source


def test_compose_prometheus_and_alertmanager_configs_are_valid(tmp_path: Path) -> None:
    require_binaries(PROMTOOL, AMTOOL)
    config = yaml.safe_load((DEPLOY / "compose" / "prometheus.yml").read_text())
    # /etc/prometheus/rules is ../prometheus/rules mounted: check against the files themselves
    config["rule_files"] = [str(DEPLOY / "prometheus" / "rules" / Path(f).name) for f in config["rule_files"]]
    assert {Path(f).name for f in config["rule_files"]} == {"correlator.rules.yml", "correlator.recording.yml"}
    assert config["scrape_configs"][0]["job_name"] == "aiops-correlator"
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    subprocess.run([str(PROMTOOL), "check", "config", str(tmp_path / "prometheus.yml")], check=True, capture_output=True)
    subprocess.run([str(AMTOOL), "check-config", str(DEPLOY / "compose" / "alertmanager.yml")], check=True,
                   capture_output=True)


# ---------------------------------------------------------------- live


@pytest.mark.e2e
def test_every_dashboard_and_rule_expression_returns_data(broker: EmbeddedBroker, tmp_path: Path) -> None:
    require_binaries()
    started = time.monotonic()
    dep = Deployment(broker, tmp_path, extra_env=dict(OBSERVED_ENV))
    stack = start_stack(dep, tmp_path, workers=2)  # each exports its own; the rules must add them up
    try:
        codes = flow(dep, stack.worker, storm_bodies(2000, seed=5, end=time.time()))
        assert codes == {"202": 20, "400": 1}, codes
        live = [p for p in probes() if p[0] not in EVENT_ONLY]
        assert len(live) >= 50
        empty = wait_for_data(stack.prom, live, timeout=60)
        assert not empty, "no data for:\n" + "\n".join(f"  {w}: {e}" for w, e in empty) + "\n" + stack.worker.tail()

        # the figures mean what they say
        ratio = wait_for("noise reduction recorded", lambda: [float(s["value"][1]) for s in query(
            stack.prom, "job:aiops_noise_reduction:ratio1h") if not math.isnan(float(s["value"][1]))], 30)
        assert 0.5 < ratio[0] < 1.0, ratio
        gauges = [w.metric("aiops_noise_reduction_ratio", window="1h") for w in stack.workers]
        assert all(0.5 < g < 1.0 for g in gauges), gauges  # NaN fails too

        # two workers, one figure: every alert record folded once across them, both did some of the work
        per_worker = [w.metric("aiops_alert_records_correlated_total") for w in stack.workers]
        assert sum(per_worker) == 2000 and all(per_worker), per_worker
        total = wait_for("both workers' counts scraped", lambda: [float(s["value"][1]) for s in query(
            stack.prom, "sum(aiops_alert_records_correlated_total)") if float(s["value"][1]) == 2000], 30)
        assert total == [2000.0]
        # arrival to incident event: seconds on a loopback broker, far below the top bucket (60 s)
        p99 = wait_for("arrival latency recorded", lambda: [float(s["value"][1]) for s in query(
            stack.prom, 'job:aiops_correlation_latency_seconds:quantile5m{quantile="0.99"}')
            if not math.isnan(float(s["value"][1]))], 30)
        assert 0 < p99[0] < 30, p99
        # the REQUEST ticket breaches L1's 1 s SLA once (the series exist at 0 from the start: wait for the 1)
        breaches = wait_for("the SLA breach scraped", lambda: query(
            stack.prom, 'job_subject_severity_tier_outcome:aiops_sla_breaches:increase1h{subject="ticket"} > 0'), 30)
        assert {(b["metric"]["severity"], b["metric"]["tier"], b["metric"]["outcome"]) for b in breaches} == {
            ("sev3", "L1", "escalated")}
        by_service = query(stack.prom, "count by (instance) (aiops_incidents_open)")
        assert len(by_service) == 2  # per worker: its top services and "other", never more
        assert all(1 <= float(s["value"][1]) <= Settings().metrics_top_services + 1 for s in by_service)
        lag = query(stack.prom, "aiops_consumer_lag_records")
        placed = [(s["metric"]["topic"], s["metric"]["partition"]) for s in lag]
        assert len(placed) == len(set(placed))  # a partition's lag comes from the one worker that owns it
        route = f"{dep.app_id}-stage2-route"
        assert route in {s["metric"]["topic"] for s in lag}  # stage 2 on by default: its input is covered
        assert {s["metric"]["topic"] for s in lag} <= {dep.topic(t) for t in ("alerts_raw", "alerts", "incidents",
                                                                             "tickets_raw")} | {route}
        assert len(lag) <= 5 * dep.partitions

        # the outage-only operand: its metric is live and every reason it names is one the ingest emits
        assert query(stack.prom, "aiops_ingest_refusals_total")
        source = (ROOT / "stream" / "ingest.py").read_text()
        [(_, expr)] = [p for p in probes() if p[0] in EVENT_ONLY]
        for reason in re.search(r'reason=~"([^"]+)"', expr).group(1).split("|"):  # type: ignore[union-attr]
            assert f'unavailable("{reason}"' in source, reason
    finally:
        stack.stop()
    assert time.monotonic() - started < 120  # the target is under 60 s on an idle machine
