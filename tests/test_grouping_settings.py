"""Stage 2's rules and the notify fold's switches as settings (stream/derived_settings.py): every field of
`GroupingConfig` and `NotifyPolicy` an AIOPS_* variable, a flag and a config-file key, derived from the dataclass
(a field appended later is covered with no edit); bad values stop the start with one line naming the setting;
the older AIOPS_STAGE2_GAP/HOPS/BURST/MERGE_WINDOW keep their meaning; the worker and `aiops replay` build the
same GroupingConfig from the same environment."""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
import types
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

import orjson
import pytest

from correlator.config import DEFAULT_CONFIG
from correlator.notify.state import NotifyPolicy
from correlator.stage2 import DEFAULT_GROUPING, GroupingConfig
from stream.cli import build_parser, main
from stream.commands import replay as replay_command
from stream.commands.worker import settings_from
from stream.derived_settings import field_notes
from stream.flags import env_name, flag_name
from stream.notify.stage import notify_policy
from stream.settings import Settings

from .paths import LAB_STORM, ROOT
from .readme import code_blocks, section

FIXED = {"prompt_pairs"}  # set by stage2_lone_causes
NOTIFY_FIXED = {"page_causes", "cause_wait_s", "retention_s", "lone_causes", "stage2_partitions", "source_of"}


def other_values(default: Any, kind: Any) -> list[tuple[str, Any]]:
    """Values unlike `default` for a field of type `kind`, each as an environment variable and as read back;
    several, since a field's own check may refuse some (the test takes the first its dataclass accepts)."""
    args = [a for a in get_args(kind) if a is not type(None)]
    if get_origin(kind) in (Union, types.UnionType) and len(args) == 1:
        kind = args[0]
    if kind is bool:
        return [(str(not default).lower(), not default)]
    if kind is int:
        return [(str(v), v) for v in (default + 3, default + 1, default - 1, 1, 0) if v != default]
    if kind is float:
        return [(repr(v), v) for v in (default + 7.5, default / 2, default * 2, 0.5, 1.0, 0.0) if v != default]
    if kind is str:
        return [(f"{default}-other", f"{default}-other")]
    if get_origin(kind) is Literal:
        return [(str(v), v) for v in get_args(kind) if v != default]
    if get_origin(kind) is tuple:
        return [('["zone", "rack"]', ("zone", "rack"))]
    if get_origin(kind) is frozenset:
        return [("zone,rack", frozenset({"zone", "rack"}))]
    raise AssertionError(f"a field of a type this test does not know: {kind}")


def other_value(target: Any, name: str) -> tuple[str, Any]:
    """The first of `other_values` for the field `name` of the dataclass `target` that the dataclass accepts."""
    default = getattr(target(), name)
    for text, value in other_values(default, get_type_hints(type(target()))[name]):
        try:
            dataclasses.replace(target(), **{name: value})
        except ValueError:
            continue
        return text, value
    raise AssertionError(f"no other value of {name} that {target.__name__} accepts")


def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("AIOPS_") and n != "AIOPS_PURE"]:
        monkeypatch.delenv(name)


@pytest.mark.parametrize("field", [f for f in dataclasses.fields(GroupingConfig) if f.name not in FIXED],
                         ids=lambda f: f.name)
def test_every_grouping_field_is_a_variable_that_reaches_the_config(
        field: dataclasses.Field[Any], monkeypatch: pytest.MonkeyPatch) -> None:
    clean_env(monkeypatch)
    default = getattr(DEFAULT_GROUPING, field.name)
    text, value = other_value(GroupingConfig, field.name)
    monkeypatch.setenv(env_name(("grouping", field.name)), text)
    config = Settings().grouping_config()
    assert getattr(config, field.name) == value != default
    assert dataclasses.replace(config, **{field.name: default}) == dataclasses.replace(
        DEFAULT_GROUPING, prompt_pairs=True)  # nothing else moved (prompt_pairs: causes of one not published)


@pytest.mark.parametrize("field", [f for f in dataclasses.fields(NotifyPolicy) if f.name not in NOTIFY_FIXED],
                         ids=lambda f: f.name)
def test_every_notify_policy_switch_is_a_variable_that_reaches_the_policy(
        field: dataclasses.Field[Any], monkeypatch: pytest.MonkeyPatch) -> None:
    clean_env(monkeypatch)
    default = getattr(NotifyPolicy(), field.name)
    text, value = other_value(NotifyPolicy, field.name)
    monkeypatch.setenv(env_name(("notify_policy", field.name)), text)
    assert getattr(notify_policy(Settings()), field.name) == value != default


def test_the_default_settings_give_the_engine_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    clean_env(monkeypatch)
    settings = Settings()
    assert settings.grouping_config() == dataclasses.replace(DEFAULT_GROUPING, prompt_pairs=True)
    assert dataclasses.replace(notify_policy(settings), page_causes=True, lone_causes=True, stage2_partitions=0,
                               source_of=None) == NotifyPolicy()
    monkeypatch.setenv("AIOPS_STAGE2_LONE_CAUSES", "true")
    assert Settings().grouping_config() == DEFAULT_GROUPING


def test_every_grouping_field_is_a_flag_with_its_variable_in_the_help() -> None:
    text = " ".join(subprocess.run([sys.executable, "-m", "stream.cli", "worker", "--help"], cwd=ROOT,
                                   capture_output=True, text=True, check=True, timeout=60).stdout.split())
    for f in dataclasses.fields(GroupingConfig):
        if f.name not in FIXED:
            flag = re.escape(flag_name(("grouping", f.name)))
            assert re.search(f"{flag}[ ,]", text) and f"env {env_name(('grouping', f.name))})" in text, f.name
    assert "(default 0s, env AIOPS_GROUPING__LULL_S)" in text  # a duration, shown in seconds
    notes = field_notes(GroupingConfig)
    assert notes["max_lifetime_s"] == notes["max_children"]  # `a / b: text` entries describe both
    assert notes["lull_s"].startswith("a child whose event moves its latest alert") and notes["prompt_pairs"]


def test_flags_and_durations(monkeypatch: pytest.MonkeyPatch) -> None:
    clean_env(monkeypatch)
    monkeypatch.setenv("AIOPS_GROUPING__LULL_S", "2m")
    args = build_parser().parse_args(["worker", "--grouping-machine-follow", "--grouping-caller-window-s", "90s",
                                      "--grouping-shared-labels", "host,rack", "--no-grouping-company"])
    config = settings_from(args).grouping_config()
    assert (config.lull_s, config.machine_follow, config.caller_window_s) == (120.0, True, 90.0)
    assert (config.shared_labels, config.company) == (("host", "rack"), False)


def test_the_older_stage2_names_keep_their_meaning(monkeypatch: pytest.MonkeyPatch) -> None:
    clean_env(monkeypatch)
    for name, value in {"AIOPS_STAGE2_GAP": "1m", "AIOPS_STAGE2_HOPS": "2", "AIOPS_STAGE2_BURST": "30s",
                        "AIOPS_STAGE2_MERGE_WINDOW": "0"}.items():
        monkeypatch.setenv(name, value)
    config = Settings().grouping_config()
    assert (config.gap_s, config.max_hops, config.burst_s, config.merge_window_s) == (60.0, 2, 30.0, 0.0)
    monkeypatch.setenv("AIOPS_GROUPING__GAP_S", "60")  # the same value under both names: no conflict
    assert Settings().grouping_config().gap_s == 60.0


@pytest.mark.parametrize(("env", "line"), [
    ({"AIOPS_GROUPING__RESUME_BELOW": "-1"},
     "--grouping-resume-below / AIOPS_GROUPING__RESUME_BELOW: resume_below must not be negative"),
    ({"AIOPS_GROUPING__MAX_ENTITIES": "0"},
     "--grouping-max-entities / AIOPS_GROUPING__MAX_ENTITIES: max_children and max_entities must be at least 1"),
    ({"AIOPS_GROUPING__LULL_S": "soon"}, "--grouping-lull-s / AIOPS_GROUPING__LULL_S: not a duration: 'soon'"),
    ({"AIOPS_GROUPING__TRACE_FOLLOW": "maybe"},
     "--grouping-trace-follow / AIOPS_GROUPING__TRACE_FOLLOW: invalid value: Input should be a valid boolean"),
    ({"AIOPS_GROUPING__TRACE_FOLOW": "true"}, "grouping.trace_folow: unknown key"),
    ({"AIOPS_NOTIFY_POLICY__LATE_WAITS": "sometimes"},
     "--notify-policy-late-waits / AIOPS_NOTIFY_POLICY__LATE_WAITS: invalid value"),
    ({"AIOPS_STAGE2_GAP": "60", "AIOPS_GROUPING__GAP_S": "90"},
     "--stage2-gap / AIOPS_STAGE2_GAP and --grouping-gap-s / AIOPS_GROUPING__GAP_S: stage2_gap (60) and "
     "grouping.gap_s (90) are the same setting: give one of them"),
    ({"AIOPS_STAGE2_HOPS": "4"}, "--stage2-hops / AIOPS_STAGE2_HOPS: invalid value"),
])
@pytest.mark.parametrize("command", ["worker", "up", "replay"])
def test_a_bad_value_stops_the_start_with_one_line_naming_it(
        env: dict[str, str], line: str, command: str, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    clean_env(monkeypatch)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    argv = [command, str(LAB_STORM)] if command == "replay" else [command]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"aiops {command}: error: {line}"), err


def test_the_worker_and_replay_build_the_same_grouping_from_the_same_environment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clean_env(monkeypatch)
    config_file = tmp_path / "aiops.toml"
    config_file.write_text('[grouping]\nmachine_follow = true\nresume_below = 3\n')
    for name, value in {"AIOPS_CONFIG_FILE": str(config_file), "AIOPS_GROUPING__LULL_S": "2m",
                        "AIOPS_GROUPING__TENANTS_APART": "true", "AIOPS_STAGE2_BURST": "25s",
                        "AIOPS_GROUPING__SHARED_LABELS": "host,rack"}.items():
        monkeypatch.setenv(name, value)
    worker = settings_from(build_parser().parse_args(["worker"])).grouping_config()
    replayed = replay_command.replay_settings(build_parser().parse_args(["replay", "x"])).grouping_config()
    assert worker == replayed
    assert (worker.machine_follow, worker.resume_below, worker.lull_s, worker.tenants_apart, worker.burst_s,
            worker.shared_labels) == (True, 3, 120.0, True, 25.0, ("host", "rack"))
    assert worker.prompt_pairs  # causes of one incident are not published, in both


def test_the_worker_and_replay_build_the_same_windows_from_the_same_environment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Stage 1's rules too: a replay of a recording differs from the worker only in having no horizon, and no
    lateness unless one is set."""
    clean_env(monkeypatch)
    config_file = tmp_path / "aiops.toml"
    config_file.write_text('window_mode = "continuation"\nmax_incident_alerts = 77\n')
    for name, value in {"AIOPS_CONFIG_FILE": str(config_file), "AIOPS_WINDOW": "5m", "AIOPS_GAP_FACTOR": "3",
                        "AIOPS_MAX_FUTURE_SKEW": "1m", "AIOPS_DENSE_ALERTS": "0",
                        "AIOPS_REJOIN_FLAPS": str(not DEFAULT_CONFIG.rejoin_flaps).lower()}.items():
        monkeypatch.setenv(name, value)
    worker = settings_from(build_parser().parse_args(["worker"])).correlation_config()
    replayed = replay_command.replay_config(replay_command.replay_settings(build_parser().parse_args(["replay", "x"])))
    assert (worker.mode, worker.window_s, worker.max_alerts, worker.gap_factor, worker.time_guard.max_future_skew_s,
            worker.dense_alerts, worker.rejoin_flaps) == ("continuation", 300.0, 77, 3.0, 60.0, 0,
                                                          not DEFAULT_CONFIG.rejoin_flaps)
    assert dataclasses.replace(replayed, allowed_lateness_s=worker.allowed_lateness_s,
                               time_guard=worker.time_guard) == worker
    assert (replayed.allowed_lateness_s, replayed.time_guard.horizon_s) == (0.0, None)
    monkeypatch.setenv("AIOPS_ALLOWED_LATENESS", "2s")
    flagged = replay_command.replay_config(replay_command.replay_settings(
        build_parser().parse_args(["replay", "x", "--mode", "tumbling", "--dense-alerts", "40"])))
    assert (flagged.allowed_lateness_s, flagged.mode, flagged.window_s, flagged.dense_alerts) \
        == (2.0, "tumbling", 300.0, 40)


def _replay_json(env: dict[str, str], *argv: str) -> dict[str, Any]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("AIOPS_") or k == "AIOPS_PURE"}
    done = subprocess.run([sys.executable, "-m", "stream.cli", "replay", str(LAB_STORM), "--json", *argv], cwd=ROOT,
                          capture_output=True, check=True, env={**base, **env}, timeout=120)
    parsed: dict[str, Any] = orjson.loads(done.stdout)
    return parsed


def test_aiops_replay_groups_by_the_environment_as_by_its_flags() -> None:
    """The environment reaches `aiops replay` as a person runs it: the same parents as its flags give, unlike the
    defaults'."""
    by_env = _replay_json({"AIOPS_GROUPING__MERGE_WINDOW_S": "0", "AIOPS_GROUPING__BURST_S": "0"})
    by_flags = _replay_json({}, "--merge-window", "0", "--burst", "0s")
    by_new_flags = _replay_json({}, "--grouping-merge-window-s", "0", "--grouping-burst-s", "0")
    default = _replay_json({})
    assert by_env["parents"] == by_flags["parents"] == by_new_flags["parents"] != default["parents"]


def test_the_readme_configuration_example_is_valid_and_each_variable_moves_its_field(
        monkeypatch: pytest.MonkeyPatch) -> None:
    (block,) = code_blocks(section("Configuration"), "sh")
    exports = [line.split()[1].partition("=") for line in block.splitlines() if line.startswith("export ")]
    assert exports
    for name, _, value in exports:
        clean_env(monkeypatch)
        monkeypatch.setenv(name, value)
        settings = Settings()
        moved = (settings.grouping_config(), notify_policy(settings))
        clean_env(monkeypatch)
        assert moved != (Settings().grouping_config(), notify_policy(Settings())), name
