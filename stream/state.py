"""The engine's StateStore on a changelog-backed Faust table, scoped to one partition of `alerts`.

The engine keeps live `KeyState` objects in a dict (no decode per alert); `flush()` writes each key changed
since the last flush to the table once, as orjson bytes, with an explicit changelog partition. Writing with
an explicit partition (rather than Faust's "partition of the current event") is what lets the idle timer,
which runs outside any stream iteration, close and resolve incidents too.

Table keys are `"<partition>|<correlation key>"`: after a restore a worker finds a partition's keys by
prefix, and the changelog partition of a key is always the partition of `alerts` that owns it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

from correlator.records import dict_of_record, record_from_dict
from correlator.state import KeyState

__all__ = ["TableStore", "encode_state", "decode_state"]


def encode_state(state: KeyState) -> bytes:
    """Changelog value of one key's state."""
    return orjson.dumps(state.to_dict(dict_of_record))


def decode_state(raw: bytes) -> KeyState:
    """Inverse of `encode_state`."""
    return KeyState.from_dict(orjson.loads(raw), record_from_dict)


class TableStore:
    """A `correlator.state.StateStore` over one partition of a Faust table (value_serializer raw)."""

    def __init__(self, table: Any, partition: int) -> None:
        self._table = table
        self._partition = partition
        self._prefix = f"{partition}|"
        self._live: dict[str, KeyState] = {}
        self._dirty: set[str] = set()
        self._deleted: set[str] = set()
        self._load()

    def _load(self) -> None:
        """Take over every key of this partition the table holds (restored from the changelog)."""
        for table_key, raw in list(self._table.data.items()):
            key = table_key.decode() if isinstance(table_key, bytes) else str(table_key)
            if key.startswith(self._prefix) and raw is not None:
                self._live[key[len(self._prefix):]] = decode_state(raw)

    def get(self, key: str) -> KeyState | None:
        """The live state of `key`, or None."""
        return self._live.get(key)

    def put(self, key: str, state: KeyState) -> None:
        """Keep `state` and mark it for the next flush."""
        self._live[key] = state
        self._dirty.add(key)
        self._deleted.discard(key)

    def delete(self, key: str) -> None:
        """Forget `key`; the next flush writes its tombstone."""
        if self._live.pop(key, None) is not None:
            self._deleted.add(key)
        self._dirty.discard(key)

    def items(self) -> Iterator[tuple[str, KeyState]]:
        """Every (key, state) of this partition."""
        return iter(list(self._live.items()))

    def __len__(self) -> int:
        return len(self._live)

    def flush(self) -> int:
        """Write every key changed since the last flush to the table and its changelog; returns the count."""
        table, partition = self._table, self._partition
        for key in self._dirty:
            value = encode_state(self._live[key])
            table.data[self._prefix + key] = value
            table.send_changelog(partition, self._prefix + key, value)
        for key in self._deleted:
            table.data.pop(self._prefix + key, None)
            table.send_changelog(partition, self._prefix + key, None, value_serializer="raw")
        written = len(self._dirty) + len(self._deleted)
        self._dirty.clear()
        self._deleted.clear()
        return written
