"""The notify file on disk: `--notify FILE` / AIOPS_NOTIFY_FILE checked at start with one line and exit code 2,
the pure change check, and the watcher that takes a good new version and keeps the old one over a bad one."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from correlator.notify import NotifyFileError
from stream.cli import main
from stream.notify.files import NotifyFileWatcher, changed, read_notify, stamp_of
from stream.settings import Settings

from .notifying import ISSUE_ROUTES

BAD = "receivers: [{name: oncall, type: pagerduty, routing_key: K}]\nroutes: [{receiver: oncal}]\n"


def _write(path: Path, text: str, mtime_ns: int) -> None:
    """Write the file and set its mtime, so that a test moves the stamp without sleeping."""
    path.write_text(text)
    os.utime(path, ns=(mtime_ns, mtime_ns))


@pytest.mark.parametrize(("argv", "env"), [
    (["worker", "--notify", "{path}"], {}),
    (["up", "--notify-file", "{path}"], {}),
    (["worker"], {"AIOPS_NOTIFY_FILE": "{path}"}),
])
def test_a_bad_notify_file_stops_the_command_with_one_line(argv: list[str], env: dict[str, str], tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "notify.yaml"
    path.write_text(BAD)
    for name, value in env.items():
        monkeypatch.setenv(name, value.format(path=path))
    assert main([a.format(path=path) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert (f"--notify-file / AIOPS_NOTIFY_FILE: notify file '{path}': routes[0].receiver: unknown receiver "
            "'oncal' (receivers: oncall)") in err


def test_a_good_file_is_a_setting(tmp_path: Path) -> None:
    path = tmp_path / "notify.yaml"
    path.write_text(ISSUE_ROUTES)
    assert Settings(notify_file=path).notify_file == path
    assert Settings().notify_file is None  # the default: nothing is paged
    with pytest.raises(NotifyFileError, match="cannot read it"):
        read_notify(tmp_path / "missing.yaml")


@pytest.mark.parametrize(("previous", "current", "expected"), [
    (None, (1, 10), True),       # first sight
    ((1, 10), (1, 10), False),   # unchanged
    ((1, 10), (2, 10), True),    # touched
    ((1, 10), (1, 11), True),    # same mtime, new size
    ((1, 10), None, False),      # gone for a moment (an editor's rename): keep what we have
])
def test_changed(previous: tuple[int, int] | None, current: tuple[int, int] | None, expected: bool) -> None:
    assert changed(previous, current) is expected


def test_the_watcher_takes_good_versions_and_keeps_the_old_over_a_bad_one(tmp_path: Path) -> None:
    path = tmp_path / "notify.json"
    _write(path, '{"receivers": [{"name": "a", "type": "slack", "url": "http://x"}], "routes": [{"receiver": "a"}]}',
           1_000_000_000)
    watcher = NotifyFileWatcher(path)
    first = watcher.load()
    assert [r.name for r in first.receivers] == ["a"] and watcher.stamp == stamp_of(path)
    assert watcher.poll() is False  # nothing changed
    _write(path, '{"receivers": [], "routes": [{"receiver": "a"}]}', 2_000_000_000)
    assert watcher.poll() is False and watcher.config is first  # bad: the previous routes stay
    assert watcher.poll() is False  # reported once, not on every tick
    _write(path, '{"receivers": [{"name": "b", "type": "slack", "url": "http://y"}], "routes": []}', 3_000_000_000)
    assert watcher.poll() is True and watcher.config is not None and watcher.config.receivers[0].name == "b"
    path.unlink()
    assert watcher.poll() is False and watcher.config.receivers[0].name == "b"
