"""Stage-2 state: groups (parents) with their children, and children held for reordering; behind a Protocol.

The engine needs get / put / delete / iterate of groups by id, and hold / release / iterate of children not
yet assigned; a dict serves tests and replay, and the stream can back the same calls with Faust tables.
Everything else the engine keeps (child -> group index, entity index, timers) is rebuilt from this.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol

from ..keys import split_key
from ..models import SEVERITY_RANK, IncidentEvent

__all__ = ["ChildState", "DictGroupStore", "GroupPhase", "GroupState", "GroupStore"]

_DONE_STATUSES = frozenset({"resolved", "expired"})


class GroupPhase(str, Enum):
    """Where a parent is in its life: open (firing), or resolved (every child finished)."""

    OPEN = "open"
    RESOLVED = "resolved"


@dataclass(slots=True, eq=False)
class ChildState:
    """What a group keeps of one child: the figures of its latest stage-1 event."""

    id: str
    key: str
    seq: int
    status: str
    first_seen: float
    last_seen: float
    alert_count: int
    severity: str
    done_at: float | None = None
    entity_values: int = 0
    """Label values the child's event carried; stage 1 only adds to them, so an equal count means no news."""
    extends: bool = True
    """Whether the child's span extends its group's reach: it started in the group's burst of onsets."""
    by_path: bool = False
    """Whether it joined through a topology path alone: the names it brings are borrowed (`GroupState.borrowed`)."""
    by_chain: bool = False
    """Whether it joined by a call chain alone: the names it brings relate as caller names do (`GroupState.callers`)."""
    moves_onset: bool = False
    """Whether, joined by calls climbing with `GroupingConfig.climb_onset`, it moves its group's latest onset although its
    names relate as caller names (`by_chain`)."""

    @classmethod
    def of(cls, ev: IncidentEvent) -> ChildState:
        """The state of a child from one of its events."""
        done = ev.emitted_at if ev.status in _DONE_STATUSES else None
        return cls(ev.incident_id, ev.key, ev.seq, ev.status, ev.first_seen, ev.last_seen, ev.alert_count,
                   ev.max_severity, done, sum(map(len, ev.entities.values())))

    def to_list(self) -> list[Any]:
        """Compact plain form for a changelog."""
        return [self.id, self.key, self.seq, self.status, self.first_seen, self.last_seen, self.alert_count,
                self.severity, self.done_at, self.entity_values, self.extends, self.by_path, self.by_chain,
                self.moves_onset]


@dataclass(slots=True, eq=False)
class GroupState:
    """One parent: its children in joining order, the entities and scopes it matches on, its lifecycle."""

    id: str
    first_child: str
    first_seen: float
    last_seen: float
    reach: float = float("-inf")
    """Latest alert of a child that extends the group (see `ChildState.extends`): where time relates from."""
    last_onset: float = float("-inf")
    """Latest first alert of any child not joined through a topology path (`ChildState.by_path`)."""
    path_onset: float = float("-inf")
    """Latest first alert of a child joined through a topology path: like its names (`borrowed`), a path's guess
    relates a later child only as a path does, so it moves no onset that admits a shared machine or a merge."""
    previous_id: str | None = None
    topology_version: str | None = None
    children: dict[str, ChildState] = field(default_factory=dict)
    entities: set[str] = field(default_factory=set)
    borrowed: set[str] = field(default_factory=set)
    """Names among `entities` that only children joined through a topology path brought: they relate a later
    child only as a path does (`engine`), so a path's guess cannot become a name the group matches on at will."""
    callers: set[str] = field(default_factory=set)
    """Names among `entities` that every child carrying them carries only as a caller (`relations.CALLER_LABELS`):
    a service that called the failing one and suffered for it. A new fault of its own there is another cause, so
    they relate a later child only near the group's latest onset (`engine`; issue 17, seventh round)."""
    scopes: dict[str, set[str]] = field(default_factory=dict)
    accepting: bool = True
    resume_at: float | None = None
    """When its only child resumed after a lull, until the release point passes it (`engine._resume`)."""
    phase: GroupPhase = GroupPhase.OPEN
    rooted: bool = False
    """Whether the child that opened it names no failed call (`relations.names_call`): a service's own symptom, a root's
    view of its failure, not a caller's (`GroupingConfig.victims_first_apart`)."""
    done_at: float | None = None
    seq: int = 0
    last_emit_at: float = float("-inf")
    dirty: bool = False

    @property
    def alert_count(self) -> int:
        """Sum of the children's distinct alerts."""
        return sum(c.alert_count for c in self.children.values())

    @property
    def max_severity(self) -> str:
        """The worst severity of any child."""
        return max((c.severity for c in self.children.values()), key=lambda s: SEVERITY_RANK.get(s, 1))

    @property
    def scope(self) -> str:
        """The scope of the group's keys: every child has the same one (a stage-2 boundary, see `relations`)."""
        return split_key(next(iter(self.children.values())).key)[0] if self.children else ""

    @property
    def all_done(self) -> bool:
        """Whether every child has resolved or expired."""
        return all(c.done_at is not None for c in self.children.values())

    def refresh(self, child: ChildState) -> None:
        """Take a child's latest figures into the group's span."""
        self.children[child.id] = child
        first, last = child.first_seen, child.last_seen
        # comparisons, not min()/max(): this runs on every child event stage 2 folds
        self.first_seen = first if first < self.first_seen else self.first_seen
        self.last_seen = last if last > self.last_seen else self.last_seen
        if child.by_chain:
            if child.moves_onset and first > self.last_onset:
                self.last_onset = first
        elif child.by_path:
            self.path_onset = first if first > self.path_onset else self.path_onset
        elif first > self.last_onset:
            self.last_onset = first
        if child.extends and not child.by_chain and last > self.reach:
            self.reach = last

    def to_dict(self) -> dict[str, Any]:
        """Plain, orjson-ready form for a changelog table."""
        return {
            "id": self.id, "first_child": self.first_child, "first": self.first_seen, "last": self.last_seen,
            "reach": self.reach, "onset": self.last_onset, "path_onset": _finite(self.path_onset),
            "prev": self.previous_id, "topo": self.topology_version,
            "children": [c.to_list() for c in self.children.values()], "entities": sorted(self.entities),
            "borrowed": sorted(self.borrowed), "callers": sorted(self.callers),
            "scopes": {k: sorted(v) for k, v in self.scopes.items()},
            "accepting": self.accepting, "resume": self.resume_at,
            "phase": self.phase.value, "done": self.done_at, "seq": self.seq,
            "emitted": _finite(self.last_emit_at), "dirty": self.dirty, "rooted": self.rooted,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GroupState:
        """Inverse of `to_dict`."""
        children = [ChildState(*c) for c in d["children"]]
        return cls(
            id=d["id"], first_child=d["first_child"], first_seen=d["first"], last_seen=d["last"],
            reach=d.get("reach", d["last"]), last_onset=d.get("onset", d["last"]),
            path_onset=_unset(d.get("path_onset")), previous_id=d["prev"],
            topology_version=d["topo"], children={c.id: c for c in children},
            entities=set(d["entities"]), borrowed=set(d.get("borrowed", ())), callers=set(d.get("callers", ())),
            scopes={k: set(v) for k, v in d["scopes"].items()},
            accepting=d["accepting"], resume_at=d.get("resume"), phase=GroupPhase(d["phase"]), done_at=d["done"], seq=d["seq"],
            last_emit_at=_unset(d["emitted"]), dirty=d["dirty"], rooted=d.get("rooted", False),
        )


def _finite(t: float) -> float | None:
    """A time for a changelog: None for never (JSON has no infinity)."""
    return None if t == float("-inf") else t


def _unset(t: float | None) -> float:
    """Inverse of `_finite`."""
    return float("-inf") if t is None else t


class GroupStore(Protocol):
    """Where stage 2 keeps its groups and its held children. `put` after every change, for a changelog."""

    def get(self, group_id: str) -> GroupState | None:
        """The group, or None."""
        ...

    def put(self, group_id: str, state: GroupState) -> None:
        """Record a group after a change."""
        ...

    def delete(self, group_id: str) -> None:
        """Forget a finished group past retention."""
        ...

    def items(self) -> Iterator[tuple[str, GroupState]]:
        """Every group held, to rebuild the indexes and timers after a restart."""
        ...

    def __len__(self) -> int:
        """Number of groups held: the figure that must stay flat on a long run."""
        ...

    def hold(self, child_id: str, event: IncidentEvent, first_seq: int) -> None:
        """Keep the latest event of a child not yet assigned, and the seq of the first event of it stage 2 took.

        Its parent's id derives from that seq (`engine.parent_id`), so a restart must get it back as it was,
        not take the held event's own seq (a child updated while held came back as a straggler, issue 17)."""
        ...

    def held(self, child_id: str) -> IncidentEvent | None:
        """The held event of a child, or None."""
        ...

    def first_seq(self, child_id: str) -> int:
        """The seq of the first event stage 2 took of a held child (0 when it is not held)."""
        ...

    def release(self, child_id: str) -> IncidentEvent | None:
        """Take a held child out (to assign it); None if it was not held."""
        ...

    def held_items(self) -> Iterator[tuple[str, IncidentEvent]]:
        """Every held child, to rebuild the reorder buffer after a restart."""
        ...


class DictGroupStore:
    """An in-memory GroupStore for tests and offline replay."""

    def __init__(self) -> None:
        self._groups: dict[str, GroupState] = {}
        self._held: dict[str, IncidentEvent] = {}
        self._first_seq: dict[str, int] = {}

    def get(self, group_id: str) -> GroupState | None:
        """The group, or None."""
        return self._groups.get(group_id)

    def put(self, group_id: str, state: GroupState) -> None:
        """Keep `state` under `group_id`."""
        self._groups[group_id] = state

    def delete(self, group_id: str) -> None:
        """Drop a group if present."""
        self._groups.pop(group_id, None)

    def items(self) -> Iterator[tuple[str, GroupState]]:
        """Every (group id, group)."""
        return iter(list(self._groups.items()))

    def __len__(self) -> int:
        return len(self._groups)

    def hold(self, child_id: str, event: IncidentEvent, first_seq: int) -> None:
        """Keep the child's latest event and the seq stage 2 first took of it."""
        self._held[child_id] = event
        self._first_seq[child_id] = first_seq

    def held(self, child_id: str) -> IncidentEvent | None:
        """The held event, or None."""
        return self._held.get(child_id)

    def first_seq(self, child_id: str) -> int:
        """The seq stage 2 first took of a held child, 0 when not held."""
        return self._first_seq.get(child_id, 0)

    def release(self, child_id: str) -> IncidentEvent | None:
        """Remove and return the held event."""
        self._first_seq.pop(child_id, None)
        return self._held.pop(child_id, None)

    def held_items(self) -> Iterator[tuple[str, IncidentEvent]]:
        """Every (child id, held event)."""
        return iter(list(self._held.items()))
