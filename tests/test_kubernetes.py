"""The Kubernetes manifests in deploy/kubernetes/: valid against the API schemas (kubernetes-validate, offline,
strict: an unknown field is an error), and consistent with the program they run (settings, roles, probes)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from stream.flags import env_name
from stream.ingest import ENDPOINTS
from stream.settings import Settings

from .paths import ROOT

MANIFESTS = sorted((ROOT / "deploy" / "kubernetes").glob("*.yaml"))
KUBERNETES = "1.30.0"  # the oldest minor still in wide support; the manifests use nothing newer


def _docs() -> list[tuple[Path, dict[str, Any]]]:
    return [(path, doc) for path in MANIFESTS for doc in yaml.safe_load_all(path.read_text()) if doc]


def _by_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for _, doc in _docs() if doc["kind"] == kind}


@pytest.mark.parametrize(("path", "doc"), _docs(), ids=lambda v: v.name if isinstance(v, Path) else v["kind"])
def test_each_manifest_is_valid(path: Path, doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, KUBERNETES, strict=True)


def test_validation_would_catch_a_typo() -> None:
    doc = _by_kind("Deployment")["aiops-worker"]
    broken = {**doc, "spec": {**doc["spec"], "replica": 3}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES, strict=True)


def test_manifests_run_the_program_as_it_is() -> None:
    config = _by_kind("ConfigMap")["aiops-correlator"]
    toml = tomllib.loads(config["data"]["worker.toml"])
    settings = Settings(**toml)  # every key a setting, every value valid
    known = {env_name((name,)) for name in Settings.model_fields}
    deployments = _by_kind("Deployment")
    assert set(deployments) == {"aiops-ingest", "aiops-worker"}
    for name, deployment in deployments.items():
        pod = deployment["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        env = {e["name"] for e in container["env"]}
        assert env <= known, env - known
        mounted = {m["mountPath"] for m in container["volumeMounts"]}
        config_file = next(e["value"] for e in container["env"] if e["name"] == "AIOPS_CONFIG_FILE")
        assert str(Path(config_file).parent) in mounted and Path(config_file).name in config["data"]
        assert container["ports"][0]["containerPort"] == Settings.model_fields["web_port"].default
        probes = {container["readinessProbe"]["httpGet"]["path"], container["livenessProbe"]["httpGet"]["path"]}
        assert probes == {"/readyz", "/healthz"}
        assert ("--role" in container["args"]) == (name == "aiops-ingest")
        assert pod["securityContext"]["runAsUser"] == 10001  # the Dockerfile's numeric user
    assert deployments["aiops-worker"]["spec"]["replicas"] <= settings.partitions
    assert settings.topic_replication_factor == 3 and settings.log_format == "json"
    assert "useradd --system --uid 10001" in (ROOT / "deploy" / "compose" / "Dockerfile").read_text()
    service = _by_kind("Service")["aiops-ingest"]
    assert service["spec"]["selector"] == deployments["aiops-ingest"]["spec"]["selector"]["matchLabels"]
    assert "/ingest/alertmanager" in {e.path for e in ENDPOINTS}
