"""Which of stage 2's output goes on `incidents`: the rule for a cause of one incident (issue 17, throughput).

On a storm of independent failures nearly every stage-1 incident opens a group that never takes a second
child: its parent's `opened` and `resolved` events were a third of every record on `incidents` (100,000 alerts
of `benchmarks/pipeline_throughput.py`: 5,835 stage-2 records beside 11,800 stage-1 events, 25 of them for
groups of two or more), and every reader of the topic paid for them. A cause of one incident says nothing its
incident does not, so with `lone_causes` off a parent is announced only once it groups two incidents or more:

* a parent event goes out when it lists at least two children. Children never leave a group (a merge moves
  them all and retires the group), so once a parent is announced, every later event of it is too, and one
  that never took a second child is never seen: its incident has no parent and stands for its own cause, as
  with stage 2 off;
* the first event a reader sees of a parent may be `updated` or `resolved` (its `opened` named one child);
  it lists every child, the first included (`first_child`);
* assignments go out for every child that joins or moves (relation other than `first`), whether or not its
  parent is announced yet: the parent's event follows within `update_interval_s`, and a reader that meets
  the assignment first knows the child is grouped. The child that opened a parent is named by the parent's
  events (`first_child`, `children`), never by an assignment of its own.

The grouping is the same either way (the Grouper decides, this only filters what it said), so `aiops replay`
lists the same parents, the one-child ones included; a reader of the stream gets those as ungrouped incidents.
With `lone_causes` on, every parent event goes out, as before. Off is the default (issue 17, session 32).

What a reader then needs to know, cheaply: when stage 2 has decided an incident, so that one no parent names
pages as its own cause at once instead of after notify's cause wait. Two things say it, both only with
`lone_causes` off:

* `Progress`: per worker, at most once per interval (`progress_due`), never per incident, for each routing
  partition it owns the event time up to which every stage-1 incident routed there is decided (`decided_to`:
  each child whose first alert lies at or before it has arrived and joined or opened a group). It goes
  to every partition of `incidents` after the records of the folds it covers, so a reader of one partition that
  meets it has already met every assignment it covers (one producer, one partition: in order);
* an assignment of the first child beside each announced firing parent event (`first_assignment`), keyed by that
  child: its partition learns it is grouped from the same partition that carries the progress, before the
  progress that covers it, not by a later hop from the parent's partition.

A first child decided alone may still take a second child later (up to `gap_s`): its incident has then paged as
its own cause, and the cause takes that page over (`correlator.notify.state`, the handover).

A child that reaches stage 2 after the progress already published covers its first alert (a source back after the
idle advance moved event time on without it) is late: a reader that met the progress would page it alone before
stage 2 has placed it. Once it is placed (joined a group, or opened one), the next progress names it (`late`,
at once rather than at the next move), after its assignment if any: a reader pages it alone only then.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field

from ..models import IncidentEvent
from .engine import Grouper, GroupingOutput
from .models import Assignment, ParentEvent, Relation

__all__ = ["MIN_ANNOUNCED_CHILDREN", "LateChildren", "Progress", "announced", "decided_to", "first_assignment",
           "progress_due", "published"]

MIN_ANNOUNCED_CHILDREN = 2
"""Children a parent must list before it is announced when causes of one incident are not."""


def announced(parent: ParentEvent, lone_causes: bool) -> bool:
    """Whether a parent event goes on `incidents`: always with `lone_causes`, else once it groups two incidents."""
    return lone_causes or len(parent.children) >= MIN_ANNOUNCED_CHILDREN


class Progress(BaseModel):
    """Stage 2's progress on the routing partitions of one worker: every stage-1 incident routed to partition `p`
    whose first alert lies at or before `decided[p]` has joined or opened a group (and its assignment, if any, is
    on `incidents` before this)."""

    model_config = ConfigDict(frozen=True)

    decided: dict[int, float] = Field(description="routing partition -> event time, epoch seconds")
    emitted_at: float = Field(description="when it was sent (wall clock in the stream, event time in a replay)")
    late: list[str] = Field(default_factory=list, description="children placed since the last progress whose first "
                            "alert that progress already covered when they arrived (their assignments come first)")


def decided_to(released_to: float, watermark: float, held: Iterable[float]) -> float:
    """Event time up to which a Grouper has placed every incident routed to it (`Progress.decided`).

    Its release point (`released_to`) at least; beyond it, everything that has arrived and is not held: the marks
    say every incident whose first alert lies at or before the watermark has arrived, and each held one (`held`:
    first alerts) is undecided, so up to the watermark, or to just before the oldest held child. A partition with
    nothing held, one no incident is routed to among them, has so decided up to its watermark, not its release
    point: without this, the idle timer's release, which moves an empty partition only to the low watermark,
    left it the lateness behind the others and a lone incident waited for notify's cause wait (found on four
    partitions, session 32)."""
    oldest = min(held, default=math.inf)
    bound = watermark if watermark < oldest else math.nextafter(oldest, -math.inf)
    return max(released_to, bound)


@dataclass(slots=True)
class LateChildren:
    """Children that reached a Grouper behind the progress already sent for its routing partition, per partition,
    until a progress names them placed (`Progress.late`; the module docstring says why). The stream keeps each
    partition's set in that partition's store, so that it survives a crash or a rebalance with the groups."""

    pending: dict[int, set[str]] = field(default_factory=dict)

    def note(self, partition: int, grouper: Grouper, events: Iterable[IncidentEvent], covered: float | None) -> bool:
        """Before `grouper` takes `events`: those of children new to it whose first alert `covered` (the progress
        sent for the partition, None: none yet) already covers; whether any was new to the pending."""
        if covered is None:
            return False
        noted = False
        for ev in events:
            if ev.first_seen <= covered and grouper.parent_of(ev.incident_id) is None \
                    and grouper.store.held(ev.incident_id) is None:
                pending = self.pending.setdefault(partition, set())
                noted = noted or ev.incident_id not in pending
                pending.add(ev.incident_id)
        return noted

    def placed(self, groupers: dict[int, Grouper]) -> list[str]:
        """Those placed by now (no longer held; a partition no longer here counts as placed), out of the pending."""
        done: list[str] = []
        for p, pending in self.pending.items():
            grouper = groupers.get(p)
            now_placed = {cid for cid in pending if grouper is None or grouper.store.held(cid) is None}
            pending -= now_placed
            done += now_placed
        return sorted(done)


def progress_due(last: Progress | None, decided: dict[int, float], now: float, interval_s: float,
                 late: bool = False) -> bool:
    """Whether a worker's progress goes out now: some partition moved or a late child was placed (`late`), and
    `interval_s` passed since the last."""
    if not decided and not late:
        return False
    if last is None:
        return True
    moved = late or any(at > last.decided.get(p, float("-inf")) for p, at in decided.items())
    return moved and now - last.emitted_at >= interval_s


def first_assignment(parent: ParentEvent) -> Assignment:
    """The assignment of the child that opened `parent`, as `lone_causes` off publishes it beside its events."""
    return Assignment(child_id=parent.first_child, child_key="", parent_id=parent.parent_id, relation=Relation.FIRST,
                      gap_s=0.0, explanation=f"opened cause {parent.parent_id}", assigned_at=parent.emitted_at)


def published(out: GroupingOutput, lone_causes: bool) -> GroupingOutput:
    """What of one Grouper call goes on `incidents`, in its order: the announced parent events, and the
    assignments of children that joined or moved (the child that opened a parent is named by its events; with
    `lone_causes` off, also by an assignment beside each announced firing event, after the others)."""
    parents = [p for p in out.parents if announced(p, lone_causes)]
    assignments = [a for a in out.assignments if a.relation is not Relation.FIRST]
    if not lone_causes:
        assignments += [first_assignment(p) for p in parents if p.status == "firing"]
    return GroupingOutput(parents=parents, assignments=assignments)
