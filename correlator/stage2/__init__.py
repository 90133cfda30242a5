"""Stage 2: groups stage-1 incidents that share a cause into parent incidents (time + labels + topology).

Pure and time-passed-in like stage 1; see `engine` for the exact rule and `relations` for what relates.
"""

from .config import DEFAULT_GROUPING, GroupingConfig
from .engine import Grouper, GroupingCounters, GroupingOutput, parent_id
from .models import Assignment, ParentEvent, ParentEventKind, ParentStatus, Relation
from .relations import ChildView, Link, relate, time_gap, view_of
from .state import ChildState, DictGroupStore, GroupPhase, GroupState, GroupStore

__all__ = [
    "DEFAULT_GROUPING", "Assignment", "ChildState", "ChildView", "DictGroupStore", "GroupPhase", "GroupState",
    "GroupStore", "Grouper", "GroupingConfig", "GroupingCounters", "GroupingOutput", "Link", "ParentEvent",
    "ParentEventKind", "ParentStatus", "Relation", "parent_id", "relate", "time_gap", "view_of",
]
