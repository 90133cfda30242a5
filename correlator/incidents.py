"""Stage-1 incident state and its lifecycle, as plain data: members, counts, phase, and the events it emits."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from .keys import split_key
from .models import IncidentEvent, IncidentEventKind, IncidentStatus, trusted_event

__all__ = ["Phase", "IncidentState", "incident_id", "event_of"]

_SEVERITY_NAMES = ("info", "warning", "critical")


class Phase(str, Enum):
    """Where an incident is in its life. Only `open` incidents can still change."""

    OPEN = "open"
    RESOLVED = "resolved"
    EXPIRED = "expired"


def incident_id(key: str, win_start: float, n: int = 0, late_fingerprint: str | None = None) -> str:
    """Deterministic id from the key and the first window, so a replay or a restart names it the same.

    `n` separates successors opened in the same window after a cap; a late alert that opens an incident
    folds its fingerprint in so it can never reuse the id of an incident already forgotten.
    """
    text = f"{key}|{float(win_start):.3f}|{n}|{late_fingerprint or ''}"
    return "inc-" + hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


@dataclass(slots=True, eq=False)
class IncidentState:
    """One stage-1 incident as the engine keeps it; `members` maps fingerprint -> starts_at of its occurrence."""

    id: str
    key: str
    window_start: float
    first_seen: float
    last_seen: float
    previous_id: str | None = None
    members: dict[str, float] = field(default_factory=dict)
    resolved: set[str] = field(default_factory=set)
    alert_count: int = 0
    duplicates: int = 0
    late_alerts: int = 0
    severity_rank: int = 0
    sample: list[str] = field(default_factory=list)
    entities: dict[str, list[str]] = field(default_factory=dict)
    accepting: bool = True
    phase: Phase = Phase.OPEN
    last_change: float = 0.0
    all_resolved_at: float | None = None
    done_at: float | None = None
    seq: int = 0
    last_emit_at: float = float("-inf")
    dirty: bool = False
    gap_cap: float = float("inf")
    """Longest quiet gap it bridges, from its key's background rate when it opened (`windows.background_cap`)."""

    @property
    def firing_count(self) -> int:
        """Members whose current occurrence has not resolved."""
        return len(self.members) - len(self.resolved)

    def to_dict(self) -> dict[str, Any]:
        """Plain, orjson-ready form for a changelog table."""
        return {
            "id": self.id, "key": self.key, "ws": self.window_start, "first": self.first_seen,
            "last": self.last_seen, "prev": self.previous_id, "members": self.members,
            "resolved": sorted(self.resolved), "count": self.alert_count, "dups": self.duplicates,
            "late": self.late_alerts, "sev": self.severity_rank, "sample": self.sample, "entities": self.entities,
            "accepting": self.accepting, "phase": self.phase.value, "changed": self.last_change,
            "all_resolved": self.all_resolved_at, "done": self.done_at, "seq": self.seq,
            "emitted": self.last_emit_at if self.last_emit_at != float("-inf") else None, "dirty": self.dirty,
            "cap": self.gap_cap if self.gap_cap != float("inf") else None,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> IncidentState:
        """Inverse of `to_dict`."""
        emitted = d["emitted"]
        return cls(
            id=d["id"], key=d["key"], window_start=d["ws"], first_seen=d["first"], last_seen=d["last"],
            previous_id=d["prev"], members=dict(d["members"]), resolved=set(d["resolved"]),
            alert_count=d["count"], duplicates=d["dups"], late_alerts=d["late"], severity_rank=d["sev"],
            sample=list(d["sample"]), entities={k: list(v) for k, v in d.get("entities", {}).items()},
            accepting=d["accepting"], phase=Phase(d["phase"]),
            last_change=d["changed"], all_resolved_at=d["all_resolved"], done_at=d["done"], seq=d["seq"],
            last_emit_at=float("-inf") if emitted is None else emitted, dirty=d["dirty"],
            gap_cap=float("inf") if d.get("cap") is None else d["cap"],
        )


_STATUS: dict[Phase, IncidentStatus] = {
    Phase.OPEN: "firing", Phase.RESOLVED: "resolved", Phase.EXPIRED: "expired",
}


def event_of(inc: IncidentState, kind: IncidentEventKind, now: float, reason: str = "") -> IncidentEvent:
    """The event that publishes the incident's current state; bumps its sequence number."""
    inc.seq += 1
    inc.last_emit_at = now
    inc.dirty = False
    return _event(inc, kind, now, reason)


def said_again(inc: IncidentState) -> IncidentEvent | None:
    """The incident as it stands under the sequence number and time it was last published with, changing nothing: for a
    reader that may have lost that event (`Correlator.restate`); one that holds it counts a duplicate. None if it was
    never published (its first event is still to come)."""
    if inc.seq == 0:
        return None
    return _event(inc, "opened" if inc.seq == 1 else "updated", inc.last_emit_at)


def _event(inc: IncidentState, kind: IncidentEventKind, now: float, reason: str = "") -> IncidentEvent:
    scope, service, symptom = split_key(inc.key)
    # Not validated again: every value is the engine's own, typed as the model has them (`trusted_event`; the
    # validated constructor was a quarter of the compiled engine's time).
    return trusted_event({
        "kind": kind, "incident_id": inc.id, "seq": inc.seq, "key": inc.key, "service": service,
        "symptom": symptom, "scope": scope, "status": _STATUS[inc.phase], "first_seen": float(inc.first_seen),
        "last_seen": float(inc.last_seen), "window_start": float(inc.window_start), "alert_count": inc.alert_count,
        "distinct_fingerprints": len(inc.members), "firing_count": inc.firing_count,
        "duplicates": inc.duplicates, "max_severity": _SEVERITY_NAMES[inc.severity_rank],
        "member_sample": list(inc.sample), "entities": {k: list(v) for k, v in inc.entities.items()},
        "previous_id": inc.previous_id, "late_alerts": inc.late_alerts, "reason": reason, "emitted_at": float(now),
    })
