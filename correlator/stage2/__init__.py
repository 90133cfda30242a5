"""Stage 2: groups stage-1 incidents that share a cause into parent incidents (time + labels + topology).

Pure and time-passed-in like stage 1; see `engine` for the exact rule and `relations` for what relates.
"""

from .config import DEFAULT_GROUPING, GroupingConfig
from .engine import Grouper, GroupingCounters, GroupingOutput, parent_id
from .models import Assignment, ParentEvent, ParentEventKind, ParentStatus, Relation
from .publishing import (
    MIN_ANNOUNCED_CHILDREN, LateChildren, Progress, announced, decided_to, first_assignment, progress_due, published,
)
from .relations import ChildView, Link, relate, time_gap, view_of
from .routing import UNSCOPED_ROUTE_KEY, route_key
from .state import ChildState, DictGroupStore, GroupPhase, GroupState, GroupStore
from .watermark import (
    MARKS_HEADER, RESTATED_HEADER, Low, LowWatermark, SourceMark, decode_marks, dump_marks, encode_marks, idle_release,
    load_marks, on_own_time, report_due, source_mark,
)

__all__ = [
    "DEFAULT_GROUPING", "MARKS_HEADER", "RESTATED_HEADER", "MIN_ANNOUNCED_CHILDREN", "UNSCOPED_ROUTE_KEY", "Assignment", "ChildState", "ChildView",
    "DictGroupStore", "GroupPhase", "GroupState", "GroupStore", "Grouper", "GroupingConfig", "GroupingCounters",
    "GroupingOutput", "LateChildren", "Link", "Low", "LowWatermark", "ParentEvent", "ParentEventKind", "ParentStatus", "Progress", "Relation",
    "SourceMark", "announced", "decided_to", "decode_marks", "dump_marks", "encode_marks", "first_assignment", "idle_release",
    "load_marks", "on_own_time", "parent_id", "progress_due", "published", "relate", "report_due", "route_key", "source_mark", "time_gap", "view_of",
]
