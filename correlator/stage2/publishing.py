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
With `lone_causes` on (the default), every parent event goes out, as before.
"""

from __future__ import annotations

from .engine import GroupingOutput
from .models import ParentEvent, Relation

__all__ = ["MIN_ANNOUNCED_CHILDREN", "announced", "published"]

MIN_ANNOUNCED_CHILDREN = 2
"""Children a parent must list before it is announced when causes of one incident are not."""


def announced(parent: ParentEvent, lone_causes: bool) -> bool:
    """Whether a parent event goes on `incidents`: always with `lone_causes`, else once it groups two incidents."""
    return lone_causes or len(parent.children) >= MIN_ANNOUNCED_CHILDREN


def published(out: GroupingOutput, lone_causes: bool) -> GroupingOutput:
    """What of one Grouper call goes on `incidents`, in its order: the announced parent events, and the
    assignments of children that joined or moved (the child that opened a parent is named by its events)."""
    return GroupingOutput(
        parents=[p for p in out.parents if announced(p, lone_causes)],
        assignments=[a for a in out.assignments if a.relation is not Relation.FIRST])
