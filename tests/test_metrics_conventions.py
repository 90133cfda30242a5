"""Prometheus conventions: no `_created` series, `aiops_build_info`, recording rules named level:metric:operations,
a `runbook_url` on every alerting rule that points at an existing section of deploy/README.md."""

from __future__ import annotations

import re
import urllib.parse
from importlib.metadata import version

import yaml
from prometheus_client import REGISTRY, generate_latest

from correlator import metrics

from .obsstack import RULE_FILES
from .paths import ROOT

README = ROOT / "deploy" / "README.md"


def _rules(kind: str) -> list[dict[str, object]]:
    return [rule for path in RULE_FILES for group in yaml.safe_load(path.read_text())["groups"]
            for rule in group["rules"] if kind in rule]


def _anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces as hyphens."""
    headings = re.findall(r"^#+ (.+)$", markdown, re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def test_exposition_has_build_info_and_no_created_series() -> None:
    metrics.ALERTS_RECEIVED.labels("generic").inc(0)
    text = generate_latest().decode()
    series = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if not line.startswith("#")}
    assert not [name for name in series if name.endswith("_created")]
    assert 'aiops_build_info{python="' in text and f'version="{version("aiops-correlator")}"}} 1.0' in text


def test_every_alerting_rule_has_a_runbook_section() -> None:
    anchors = _anchors(README.read_text())
    alerts = _rules("alert")
    assert len(alerts) >= 13
    for rule in alerts:
        url = urllib.parse.urlparse(str(rule["annotations"]["runbook_url"]))  # type: ignore[index]
        assert url.path.endswith("/deploy/README.md"), rule["alert"]
        assert url.fragment == str(rule["alert"]).lower() and url.fragment in anchors, rule["alert"]


def test_recording_rules_are_named_level_metric_operations() -> None:
    """level: the labels the result keeps (the outermost `by`, minus `le`); metric: a real aiops_ metric."""
    records = _rules("record")
    assert len(records) >= 19
    for rule in records:
        name, expr = str(rule["record"]), str(rule["expr"])
        level, metric, operations = name.split(":")
        by = re.search(r"sum by \(([^)]*)\)", expr)
        kept = [label.strip() for label in by.group(1).split(",") if label.strip() != "le"] if by else []
        assert level == "_".join(kept), name
        assert metric.startswith("aiops_") and not metric.endswith("_total"), name
        family = metric.removeprefix("aiops_").split("_")[0]
        assert operations.startswith("ratio") or f"aiops_{family}" in expr, name  # named after what it sums
        assert re.fullmatch(r"(rate|ratio|increase|quantile)\d+[mh]|sum", operations), name


def test_no_metric_name_carries_a_label() -> None:
    """A label belongs in the label set, not the name (`aiops_incidents_open{service}`, not `..._by_service`)."""
    families = {m.name for m in REGISTRY.collect() if m.name.startswith("aiops_")}
    named = [f for f in families if re.search(r"_(by|per)_[a-z]+$", f)]
    assert not named, named
    assert "aiops_incidents_open" in families
    recorded = {str(rule["record"]) for rule in _rules("record")}
    assert "job_service:aiops_incidents_open:sum" in recorded
