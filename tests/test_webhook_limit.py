"""The webhook limit cannot drop a storm: the sample Alertmanager's largest body fits the ingest's default limit.

Alertmanager does not retry a 4xx, so a 413 loses a whole notification. The sample config bounds a body with
`max_alerts`; the largest body it can produce is `max_alerts` alerts of the sample rules (deploy/prometheus)
with every label value at Kubernetes' 63-character name limit. That body is built here from the deploy files
themselves, checked against the default limit, and posted to a worker with default settings: accepted, and
read back as one incident of every alert (a record above the consumer's old 1 MB fetch size).
"""

from __future__ import annotations

import re
import time
import urllib.parse
from pathlib import Path
from typing import Any

import orjson
import yaml

from stream.broker import EmbeddedBroker
from stream.settings import Settings

from .paths import ROOT
from .test_ingest import request, wait_ready
from .workers import Deployment

DEPLOY = ROOT / "deploy"
LONG = 63  # longest Kubernetes name, and so the longest value of a namespace, pod, node or service label
TARGET_LABELS = ("job", "instance", "service", "namespace", "pod", "node", "container", "team")
GROUP_WIDE = ("job", "service", "namespace", "team")  # one group is one service (the sample's group_by)
TEMPLATE = re.compile(r"\{\{\s*\$labels\.(\w+)\s*\}\}")  # what Prometheus fills in from the alert's labels
OLD_LIMIT = 1_000_000  # the ingest's limit before the sample was sized: a 413 of this body


def sample_max_alerts() -> int:
    """`max_alerts` of the sample's correlator receiver (every webhook of it)."""
    config = yaml.safe_load((DEPLOY / "alertmanager" / "alertmanager.yml").read_text())
    (value,) = {h["max_alerts"] for r in config["receivers"] for h in r.get("webhook_configs", [])}
    return int(value)


def _value(name: str, i: int) -> str:
    return f"{name}-{i:06d}-".ljust(LONG, "x")


def largest_alert(rule: dict[str, Any], i: int, prometheus_url: str) -> dict[str, Any]:
    """One alert of `rule` as Alertmanager sends it, every label value as long as a Kubernetes name."""
    labels = {name: _value(name, 0 if name in GROUP_WIDE else i) for name in TARGET_LABELS}
    labels["instance"] = f"{_value('host', i)}.{_value('domain', 0)}:65535"
    labels.update(rule.get("labels", {}), alertname=rule["alert"], cluster=_value("cluster", 0))
    annotations = {k: TEMPLATE.sub(lambda m: labels.get(m.group(1), ""), v)
                   for k, v in rule.get("annotations", {}).items()}
    expr = urllib.parse.quote(rule["expr"], safe="")
    return {"status": "firing", "labels": labels, "annotations": annotations,
            "startsAt": f"2026-03-01T10:{i // 60 % 60:02d}:{i % 60:02d}.123456789Z", "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": f"{prometheus_url}/graph?g0.expr={expr}&g0.tab=1", "fingerprint": f"{i:016x}"}


def largest_body() -> bytes:
    """`max_alerts` alerts of the sample rule whose alert is largest, in one webhook v4 body."""
    rules = [r for g in yaml.safe_load((DEPLOY / "prometheus" / "rules" / "services.rules.yml").read_text())["groups"]
             for r in g["rules"] if "alert" in r]
    url = "http://" + _value("prometheus", 0) + ":9090"
    rule = max(rules, key=lambda r: len(orjson.dumps(largest_alert(r, 0, url))))
    alerts = [largest_alert(rule, i, url) for i in range(sample_max_alerts())]
    group = {"alertname": rule["alert"], "service": alerts[0]["labels"]["service"]}
    common = {k: v for k, v in alerts[0]["labels"].items() if all(a["labels"][k] == v for a in alerts)}
    return orjson.dumps({
        "receiver": "aiops-correlator", "status": "firing", "alerts": alerts, "groupLabels": group,
        "commonLabels": common, "commonAnnotations": {}, "externalURL": "http://" + _value("alertmanager", 0),
        "version": "4", "groupKey": "{}:" + orjson.dumps(group).decode(), "truncatedAlerts": 0,
    })


def test_the_largest_sample_body_fits_the_default_limit() -> None:
    body = largest_body()
    limit = Settings().ingest_max_body_bytes
    per_alert = len(body) / sample_max_alerts()
    assert OLD_LIMIT < len(body) <= limit, (len(body), limit)  # refused before, accepted now
    assert 1000 < per_alert < limit / sample_max_alerts() / 2  # the limit leaves each alert twice what it takes


def test_the_largest_sample_body_is_accepted_and_correlated(broker: EmbeddedBroker, tmp_path: Path) -> None:
    """Default limit, topics created by the worker itself (with their record-size configs): 202, one incident."""
    body = largest_body()
    dep = Deployment(broker, tmp_path, partitions=1)
    worker = dep.start_worker()
    try:
        worker.wait_web()
        wait_ready(worker)
        status, answer, _ = request(worker.web_port, "POST", "/ingest/alertmanager", body)
        # its alerts on `alerts`, in as many records as keep each under MAX_RECORD_BYTES (2 for this body)
        assert (status, answer["accepted"]) == (202, sample_max_alerts()) and answer["records"] >= 1
        deadline, counts = time.monotonic() + 60, []
        while time.monotonic() < deadline and sample_max_alerts() not in counts:
            counts = [i["alert_count"] for i in worker.get("/incidents")["incidents"]]
            time.sleep(0.5)
        assert counts == [sample_max_alerts()], worker.tail()
        assert worker.metric("aiops_ingest_refusals_total", endpoint="alertmanager", reason="too_large") == 0
    finally:
        worker.stop()
