"""The engine's StateStore on a changelog-backed Faust table, scoped to one partition of `alerts`.

The engine keeps live `KeyState` objects in a dict (no decode per alert); a checkpoint writes each key changed
since the last one to the table's local data once, as orjson bytes, and hands back the changelog records
for the caller to send on this partition of the changelog as whole record batches (`stream.sends`; Faust's
per-record `send_changelog` cost more than correlating the alerts). Writing with an explicit partition
(rather than Faust's "partition of the current event") is what lets the idle timer, which runs outside any
stream iteration, close and resolve incidents too.

Table keys are the UTF-8 bytes of `"<partition>|<correlation key>"`: after a restore a worker finds a partition's keys by
prefix, and the changelog partition of a key is always the partition of `alerts` that owns it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

from correlator.records import dict_of_record, record_from_dict
from correlator.state import KeyState
from stream.checkpoint import ChangelogRecord, Outbound, changelog_of
from stream.runtime import set_local

__all__ = ["TableStore", "encode_state", "decode_state"]


def encode_state(state: KeyState) -> bytes:
    """Changelog value of one key's state."""
    return orjson.dumps(state.to_dict(dict_of_record), option=orjson.OPT_NON_STR_KEYS)


def decode_state(raw: bytes | str) -> KeyState:
    """Inverse of `encode_state`."""
    return KeyState.from_dict(orjson.loads(raw), record_from_dict)


class TableStore:
    """A `correlator.state.StateStore` over one partition of a Faust table (bytes keys and values), and a
    `stream.checkpoint.CheckpointStore`.

    Beside the keys it keeps the partition's progress: per `alerts.raw` partition the last offset applied,
    and the engine's watermark, written last in every commit (see `stream.batches`).
    """

    def __init__(self, table: Any, partition: int) -> None:
        self._table = table
        self._partition = partition
        self._prefix = f"{partition}|"
        self._progress_key = f"{partition}#progress".encode()
        self._live: dict[str, KeyState] = {}
        self._dirty: set[str] = set()
        self._deleted: set[str] = set()
        self.progress: dict[int, int] = {}
        self.watermark = float("-inf")
        """The engine's watermark, written with the progress (the pipeline sets it before a checkpoint)."""
        self._load()

    def _load(self) -> None:
        """Take over every key of this partition the table holds (restored from the changelog)."""
        for table_key, raw in list(self._table.data.items()):
            key = table_key.decode() if isinstance(table_key, bytes) else str(table_key)
            if key.startswith(self._prefix) and raw is not None:
                self._live[key[len(self._prefix):]] = decode_state(raw)
        saved = self._table.data.get(self._progress_key)
        if saved is not None:
            doc = orjson.loads(saved)
            self.progress = {int(p): int(o) for p, o in doc["progress"].items()}
            self.watermark = float("-inf") if doc["watermark"] is None else doc["watermark"]

    def get(self, key: str) -> KeyState | None:
        """The live state of `key`, or None."""
        return self._live.get(key)

    def put(self, key: str, state: KeyState) -> None:
        """Keep `state` and mark it for the next commit."""
        self._live[key] = state
        self._dirty.add(key)
        self._deleted.discard(key)

    def delete(self, key: str) -> None:
        """Forget `key`; the next commit writes its tombstone."""
        if self._live.pop(key, None) is not None:
            self._deleted.add(key)
        self._dirty.discard(key)

    def items(self) -> Iterator[tuple[str, KeyState]]:
        """Every (key, state) of this partition."""
        return iter(list(self._live.items()))

    def __len__(self) -> int:
        return len(self._live)

    def seen(self, source: tuple[int, int] | None) -> bool:
        """Whether a segment from this (raw partition, offset) has been applied already."""
        return source is not None and source[1] <= self.progress.get(source[0], -1)

    def advance_progress(self, source: tuple[int, int] | None) -> None:
        """Record that the segment from `source` is applied (written at the next commit)."""
        if source is not None:
            self.progress[source[0]] = source[1]

    def forget_input(self) -> None:
        """Forget every `alerts.raw` offset held (the progress) and mark every key for the next commit: after the
        broker lost its topics `alerts.raw` starts again at offset 0, so the old offsets would make new segments
        look applied (and skip them), and the changelog that held the keys is gone (`stream.checkpoint.InputStore`)."""
        self.progress.clear()
        self._dirty.update(self._live)

    @property
    def partition(self) -> int:
        """The table's (and so its changelog's) partition this store owns."""
        return self._partition

    @property
    def changelog_topic(self) -> str:
        """Kafka name of the table's changelog, where `write_keys` and `write_progress` records go."""
        return changelog_of(self._table)

    def write_keys(self) -> list[ChangelogRecord]:
        """Every key changed since the last commit, and the tombstones of keys deleted since, written locally; their
        records. A tombstone is part of its checkpoint like any key: restored only with that checkpoint's progress
        (`stream.checkpoint.CommitGate`), so a re-read of the checkpoint's input still finds the key."""
        prefix = self._prefix
        out = [self._write((prefix + key).encode(), None) for key in self._deleted]
        out += [self._write((prefix + key).encode(), encode_state(self._live[key])) for key in self._dirty]
        self._deleted.clear()
        self._dirty.clear()
        return out

    def write_progress(self) -> ChangelogRecord:
        """The partition's progress and watermark, written locally; the record, to send after the keys it covers."""
        wm = None if self.watermark == float("-inf") else self.watermark
        return self._write(self._progress_key, orjson.dumps({"progress": self.progress, "watermark": wm},
                                                            option=orjson.OPT_NON_STR_KEYS))

    def pending(self) -> list[Outbound]:
        """Nothing: stage 1 publishes its events before it checkpoints the state that produced them."""
        return []

    def mark_sent(self, n: int) -> ChangelogRecord | None:
        """Nothing to mark (no outbox)."""
        return None

    def rewrite(self) -> None:
        """Mark every key for the next checkpoint (after a failed one: the changelog may lack what the table has)."""
        self._dirty.update(self._live)

    def _write(self, table_key: bytes, value: bytes | None) -> ChangelogRecord:
        """Set (None: delete) a key in the table's local data; the changelog record the caller sends."""
        set_local(self._table.data, table_key, value)
        return table_key, value
