"""The notify file on disk: read and validated in one step, and re-read when it changes.

`read_notify` is the loader (one line naming the file, the place and the reason on any error); `stamp_of`
and `changed` are the change check, a pure comparison of (mtime_ns, size) stamps, so a test moves a file's
stamp without sleeping; `NotifyFileWatcher` puts them together for the timer: a bad new version is reported
once and the previous routes stay in force, as the topology file's watcher does (`stream/stage2_agent.py`).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from correlator.notify.config import NotifyConfig, NotifyFileError, parse_notify

__all__ = ["FileStamp", "NotifyFileWatcher", "changed", "read_notify", "stamp_of"]

log = logging.getLogger(__name__)

FileStamp = tuple[int, int]
"""(mtime in ns, size) of a file: what tells a changed file from the one read."""


def read_notify(path: Path) -> NotifyConfig:
    """The notify file at `path`, validated; `NotifyFileError` with one line naming the file, the place and the reason otherwise."""
    fmt = "json" if path.suffix.lower() == ".json" else "yaml"  # YAML reads JSON too, but names errors worse
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise NotifyFileError(f"notify file {str(path)!r}: cannot read it: {exc.strerror or exc}") from None
    try:
        return parse_notify(text, fmt=fmt)
    except NotifyFileError as exc:
        raise NotifyFileError(f"notify file {str(path)!r}: {exc}") from None


def stamp_of(path: Path) -> FileStamp | None:
    """The file's stamp, or None while it is missing (an editor's rename leaves a moment without it)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


def changed(previous: FileStamp | None, current: FileStamp | None) -> bool:
    """Whether to read the file again: it is there and its stamp is not the one read last."""
    return current is not None and current != previous


@dataclass
class NotifyFileWatcher:
    """The notify file in force: read at start (a bad file stops the worker), then re-read when it changes."""

    path: Path
    config: NotifyConfig | None = None
    stamp: FileStamp | None = None

    def load(self) -> NotifyConfig:
        """Read the file now; `NotifyFileError` when it cannot be used."""
        self.stamp = stamp_of(self.path)
        self.config = read_notify(self.path)
        return self.config

    def poll(self) -> bool:
        """Re-read the file if it changed since the last look; True when new routes were taken."""
        current = stamp_of(self.path)
        if not changed(self.stamp, current):
            return False
        self.stamp = current  # a bad version is reported once, not on every tick
        try:
            config = read_notify(self.path)
        except NotifyFileError as exc:
            log.warning("notify: %s; keeping the previous routes", exc)
            return False
        taken = config != self.config
        self.config = config
        return taken
