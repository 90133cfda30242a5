"""The README's first-hour sections say what the code does: the Alertmanager receiver a person pastes (the e2e
test runs Alertmanager with it, see test_e2e_prometheus.py), the command that starts the correlator, and the
settings it names for how long a person waits for an incident."""

from __future__ import annotations

import subprocess
import urllib.parse
from pathlib import Path

import yaml

from stream.cli import build_parser
from stream.commands.worker import LATENCY_SETTINGS
from stream.ingest import ENDPOINTS
from stream.settings import Settings

from . import readme
from .paths import ROOT
from .promstack import AMTOOL, require_binaries


def _hooks(config: dict[str, object]) -> list[dict[str, object]]:
    receivers = config["receivers"]
    assert isinstance(receivers, list)
    return [hook for receiver in receivers for hook in receiver.get("webhook_configs", [])]


def test_the_readme_receiver_posts_to_the_ingest_of_a_default_worker() -> None:
    config = readme.alertmanager_config()
    (hook,) = _hooks(config)
    url = urllib.parse.urlparse(str(hook["url"]))
    assert url.path == "/ingest/alertmanager" and url.path in {e.path for e in ENDPOINTS}
    assert url.port == Settings.model_fields["web_port"].default
    assert hook["send_resolved"] is True and hook["max_alerts"] > 0  # never 0: sized in test_webhook_limit
    assert config["route"]["receiver"] == config["receivers"][0]["name"]


def test_the_readme_receiver_agrees_with_the_deploy_sample() -> None:
    sample = yaml.safe_load((ROOT / "deploy" / "alertmanager" / "alertmanager.yml").read_text())
    config = readme.alertmanager_config()
    local = {"url", "http_config"}  # where the worker is and its token differ per site
    assert [{k: v for k, v in h.items() if k not in local} for h in _hooks(config)] == \
        [{k: v for k, v in h.items() if k not in local} for h in _hooks(sample)]
    assert config["route"] == {k: v for k, v in sample["route"].items() if k in config["route"]}


def test_the_readme_receiver_is_a_valid_alertmanager_config(tmp_path: Path) -> None:
    require_binaries(AMTOOL)
    path = tmp_path / "alertmanager.yml"
    path.write_text(yaml.safe_dump(readme.alertmanager_config()))
    done = subprocess.run([str(AMTOOL), "check-config", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_readme_start_command_is_aiops_up() -> None:
    argv = readme.start_command()
    assert Path(argv[0]).name == "aiops" and (ROOT / argv[0]).parent == ROOT / ".venv" / "bin"
    assert build_parser().parse_args(argv[1:]).command == "up"
    assert readme.sample_incident_lines(), "the README shows what a person should see"


def test_the_wait_section_names_the_settings_and_their_defaults() -> None:
    text = " ".join(readme.section("How long you wait for an incident").split())
    for name in LATENCY_SETTINGS:
        assert f"--{name.replace('_', '-')}" in text and f"AIOPS_{name.upper()}" in text
    flush, lateness = (Settings.model_fields[n].default for n in ("idle_flush", "allowed_lateness"))
    assert f"--idle-flush {flush:g}s --allowed-lateness {lateness:g}s" in text
    assert "python benchmarks/first_incident.py" in text and (ROOT / "benchmarks" / "first_incident.py").exists()
