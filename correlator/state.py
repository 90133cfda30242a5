"""Per-key correlation state, and the store it lives in, declared as a Protocol.

The engine only ever needs get / put / delete / iterate by key; a dict serves tests and replay, and the
stream layer provides a changelog-backed Faust table with the same four calls.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from .incidents import IncidentState

__all__ = ["Entry", "KeyState", "StateStore", "DictStore", "entry_of"]

Entry = tuple[float, bool, str, int, Any]
"""A held alert: (event time, is a resolution, fingerprint, arrival number, alert). Tuples sort in C, and
this order (time, then firing before resolution, then fingerprint) is what makes the result independent
of arrival order within the allowed lateness."""


def entry_of(a: Any, seq: int) -> Entry:
    """The reorder-buffer entry of an alert; its event time is the resolution time for a resolution."""
    if a.status == "resolved":
        ends = a.ends_at
        return (a.starts_at if ends is None else ends, True, a.fingerprint, seq, a)
    return (a.starts_at, False, a.fingerprint, seq, a)


@dataclass(slots=True, eq=False)
class KeyState:
    """Everything stage 1 keeps for one correlation key.

    `incidents` is ordered oldest first; at most the last one is still absorbing. `pending` holds entries
    of alerts waiting out the allowed lateness (the reorder buffer), and `max_t` is the latest event time seen,
    from which a restarted engine rebuilds its watermark.
    """

    key: str
    incidents: list[IncidentState] = field(default_factory=list)
    pending: list[Entry] = field(default_factory=list)
    max_t: float = float("-inf")
    applied_to: float = float("-inf")
    """Event time up to which this key's alerts have been applied; an alert behind it is late."""
    due: float = float("-inf")
    """Lower bound of the next time-driven change; -inf (the default after a restore) means settle first."""

    def to_dict(self, pending_to_dict: Any = None) -> dict[str, Any]:
        """Plain form for a changelog; `pending_to_dict` turns a buffered alert into a dict."""
        dump = pending_to_dict or (lambda a: a.model_dump())
        return {
            "key": self.key,
            "incidents": [inc.to_dict() for inc in self.incidents],
            "pending": [dump(e[4]) for e in self.pending],
            "max_t": self.max_t,
            "applied_to": self.applied_to,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], pending_from_dict: Any) -> KeyState:
        """Inverse of `to_dict`; `pending_from_dict` rebuilds a buffered alert."""
        return cls(
            key=d["key"],
            incidents=[IncidentState.from_dict(i) for i in d["incidents"]],
            # arrival numbers below any the restored engine gives (it counts from 1 again): two equal alerts, one
            # held across the restart and one after it, had equal entries up to the alert, and sorting them raised
            pending=[entry_of(pending_from_dict(a), n - len(d["pending"])) for n, a in enumerate(d["pending"])],
            max_t=_time(d["max_t"]),
            applied_to=_time(d.get("applied_to")),
        )


def _time(value: float | None) -> float:
    """A time `to_dict` wrote: JSON has no -inf (orjson writes it as null), the time of a key with no alert yet."""
    return float("-inf") if value is None else value


class StateStore(Protocol):
    """Where the engine keeps per-key state. `put` after every change, so a changelog sees it."""

    def get(self, key: str) -> KeyState | None:
        """The state of `key`, or None when the key has nothing open."""
        ...

    def put(self, key: str, state: KeyState) -> None:
        """Record the state of `key` after a change."""
        ...

    def delete(self, key: str) -> None:
        """Forget `key`: all its incidents are finished and past retention."""
        ...

    def items(self) -> Iterator[tuple[str, KeyState]]:
        """Every key held, to rebuild timers and the watermark after a restart."""
        ...

    def __len__(self) -> int:
        """Number of keys held: the figure that must stay flat on a long run."""
        ...


class DictStore:
    """An in-memory StateStore for tests and offline replay."""

    def __init__(self) -> None:
        self._data: dict[str, KeyState] = {}

    def get(self, key: str) -> KeyState | None:
        """The state of `key`, or None."""
        return self._data.get(key)

    def put(self, key: str, state: KeyState) -> None:
        """Keep `state` under `key`."""
        self._data[key] = state

    def delete(self, key: str) -> None:
        """Drop `key` if present."""
        self._data.pop(key, None)

    def items(self) -> Iterator[tuple[str, KeyState]]:
        """Every (key, state)."""
        return iter(list(self._data.items()))

    def __len__(self) -> int:
        return len(self._data)
