"""What stage 2 publishes: parent incident events and child -> parent assignments (pydantic v2)."""

from __future__ import annotations

from enum import Enum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ..models import Severity

__all__ = ["Assignment", "ParentEvent", "ParentEventKind", "ParentStatus", "Relation"]

ParentEventKind = Literal["opened", "updated", "resolved"]
ParentStatus = Literal["firing", "resolved", "expired", "merged"]


class Relation(str, Enum):
    """Why a child joined its parent, strongest first."""

    FIRST = "first"
    """It opened the parent: nothing open was related to it in time."""
    CONTINUES = "continues"
    """It continues (after a stage-1 cap) a child of the parent."""
    ENTITY = "entity"
    """It shares an entity with the parent: a service, host, instance, pod, caller or callee."""
    TOPOLOGY = "topology"
    """One of its entities is within the allowed hops of one of the parent's in the topology."""
    SCOPE = "scope"
    """It shares a scope label value (a namespace, by default) with the parent: the label fallback."""
    BURST = "burst"
    """It names one entity only, shared with nothing open, and started in the parent's burst of onsets while no
    other parent's child started then: time is its only evidence (`GroupingConfig.burst_follow`)."""
    MERGED = "merged"
    """It moved here with the rest of its former parent, merged because a later child related both."""
    RESTATED = "restated"
    """Said again as it stands after the broker lost `incidents` (`Grouper.restate`): it joined before, and the
    assignment that said why may never have been read."""


class ParentEvent(BaseModel):
    """A change of one parent incident (one probable cause), published on `incidents` keyed by parent id."""

    model_config = ConfigDict(frozen=True)

    kind: ParentEventKind
    parent_id: str
    seq: int = Field(ge=1)
    status: ParentStatus
    first_seen: float = Field(description="earliest alert of any child, epoch seconds")
    last_seen: float = Field(description="latest alert of any child, epoch seconds")
    children: list[str] = Field(description="stage-1 incident ids, in the order they joined (bounded by the cap)")
    alert_count: int = Field(ge=0, description="sum of the children's distinct alerts")
    max_severity: Severity
    services: list[str] = Field(default_factory=list, description="services of the children, sorted")
    first_child: str
    previous_id: str | None = Field(default=None, description="the capped parent this one continues")
    merged_into: str | None = Field(default=None, description="set on the last event of a parent merged away")
    topology_version: str | None = None
    reason: str = ""
    emitted_at: float = Field(description="stage-2 event-time watermark when this event was produced")


class Assignment(BaseModel):
    """A child stage-1 incident named to its parent, with the one-line reason it joined."""

    model_config = ConfigDict(frozen=True)

    child_id: str
    child_key: str
    parent_id: str
    relation: Relation
    via: str = Field(default="", description="the shared value, or the topology path a~b~c")
    hops: int = Field(default=0, ge=0)
    gap_s: float = Field(ge=0.0, description="child's first alert after the parent's latest alert (0 inside)")
    explanation: str
    assigned_at: float
