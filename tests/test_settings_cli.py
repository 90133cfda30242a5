"""Configuration from the command line: every setting a flag named in `--help` with its variable, a config file
(TOML or YAML) under the environment and the flags, one-line errors with exit code 2, `aiops --version`."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
from pydantic import BaseModel

from stream.cli import build_parser, main
from stream.flags import SettingsError, env_name, flag_name, load_settings
from stream.settings import Settings, TopicNames

from .paths import ROOT

NESTED = {name: info.annotation for name, info in Settings.model_fields.items()
          if isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel)}
"""The nested settings (topics, grouping, notify_policy): their fields are the flags and variables."""
assert NESTED["topics"] is TopicNames
LEAVES = [(name,) for name in Settings.model_fields if name not in NESTED] + \
    [(name, leaf) for name, model in NESTED.items() for leaf in model.model_fields]


def aiops(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("AIOPS_")}
    return subprocess.run([sys.executable, "-m", "stream.cli", *argv], cwd=ROOT, capture_output=True, text=True,
                          env={**base, **(env or {})}, timeout=60)


def test_version() -> None:
    done = aiops("--version")
    assert (done.returncode, done.stdout.strip()) == (0, f"aiops {version('aiops-correlator')}")


def test_help_names_every_flag_and_its_environment_variable() -> None:
    text = " ".join(aiops("worker", "--help").stdout.split())
    for path in LEAVES:
        flag = "--config" if path == ("config_file",) else flag_name(path)
        assert flag in text and env_name(path) in text, path
    assert "(default 4, env AIOPS_PARTITIONS)" in text and "(default 10m" not in text  # shown as seconds: 600s
    assert "(default 600s, env AIOPS_WINDOW)" in text


@pytest.mark.parametrize(("argv", "env", "names"), [
    (["worker", "--window", "abc"], {}, "--window / AIOPS_WINDOW: not a duration: 'abc'"),
    (["worker"], {"AIOPS_WEB_PORT": "http"}, "--web-port / AIOPS_WEB_PORT: invalid value: Input should be a valid integer"),
    (["up", "--tier-sla", '{"L9": "1h"}'], {}, "--tier-sla / AIOPS_TIER_SLA: unknown tiers in tier_sla: ['L9']"),
    (["worker", "--topic-replication-factor", "1", "--topic-min-insync-replicas", "2"], {},
     "topic_min_insync_replicas 2 is above topic_replication_factor 1"),
])
def test_a_bad_value_exits_2_with_one_line(argv: list[str], env: dict[str, str], names: str,
                                           capsys: pytest.CaptureFixture[str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """In process: one stderr line naming the flag and the variable, whichever of them was wrong."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and names in err and err.startswith(f"aiops {argv[0]}: error: "), err


def test_a_bad_value_as_a_person_runs_it() -> None:
    done = aiops("worker", "--window", "abc")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.splitlines() == ["aiops worker: error: --window / AIOPS_WINDOW: not a duration: 'abc' (use "
                                        "seconds or e.g. 500ms, 30s, 10m, 4h, 1d)"]


def test_every_setting_is_a_flag_that_reaches_the_settings() -> None:
    parser = build_parser()
    args = parser.parse_args(["worker", "--window", "5m", "--stage2", "--scope-labels", "cluster,namespace",
                              "--topic-retention", '{"alerts": "1d"}', "--topics-incidents", "inc.v2",
                              "--no-changelog-sync-marker", "--broker", "kafka://h1,h2:9093",
                              "--topic-replication-factor", "3"])
    settings = load_settings(args)
    assert (settings.window, settings.stage2, settings.scope_labels) == (300, True, ("cluster", "namespace"))
    assert (settings.topic_retention["alerts"], settings.topics.incidents) == (86400, "inc.v2")
    assert (settings.changelog_sync_marker, settings.broker) == (False, ("kafka://h1", "kafka://h2:9093"))
    assert settings.topic_replication_factor == 3
    dests = {a.dest for a in parser._subparsers._group_actions[0].choices["worker"]._actions}  # type: ignore[union-attr]
    assert {"setting:" + ".".join(path) for path in LEAVES} <= dests
    up = {a.dest for a in parser._subparsers._group_actions[0].choices["up"]._actions}  # type: ignore[union-attr]
    assert "setting:broker" not in up  # `up` runs its own broker


@pytest.mark.parametrize("kind", ["toml", "yaml"])
def test_config_file_under_environment_under_flags(kind: str, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    body = {"toml": 'window = "5m"\nweb_port = 7001\npartitions = 6\n[topics]\nalerts = "alerts.v3"\n',
            "yaml": "window: 5m\nweb_port: 7001\npartitions: 6\ntopics:\n  alerts: alerts.v3\n"}[kind]
    path = tmp_path / f"aiops.{kind}"
    path.write_text(body)
    monkeypatch.setenv("AIOPS_WEB_PORT", "7002")
    monkeypatch.setenv("AIOPS_TOPICS__INCIDENTS", "inc.env")
    settings = load_settings(build_parser().parse_args(["worker", "--config", str(path), "--partitions", "8"]))
    assert settings.window == 300 and settings.topics.alerts == "alerts.v3"  # from the file
    assert settings.web_port == 7002 and settings.topics.incidents == "inc.env"  # the environment wins over it
    assert settings.partitions == 8  # and a flag over both
    monkeypatch.setenv("AIOPS_CONFIG_FILE", str(path))
    assert Settings().window == 300  # the variable names a file too


def test_config_file_errors_are_one_line(tmp_path: Path) -> None:
    typo = tmp_path / "aiops.toml"
    typo.write_text('windw = "5m"\n')
    for path, message in [(typo, "windw: unknown key"),
                          (tmp_path / "missing.toml", "does not exist"),
                          (tmp_path / "aiops.ini", "name it .toml, .yaml or .yml")]:
        if path.suffix == ".ini":
            path.write_text("x")
        with pytest.raises(SettingsError, match=message):
            load_settings(build_parser().parse_args(["worker", "--config", str(path)]))
