"""Stage 2, issue 17 (session 38, casc25): a name borrowed through a path that a later child carries only as a caller
becomes a caller name, as without the file, not the group's own (`GroupingConfig.borrowed_callers`)."""

from __future__ import annotations

from dataclasses import replace

from correlator.stage2 import GroupingConfig

from correlator.models import IncidentEvent

from .test_stage2 import CFG, SHOP, Spec, _event, events_of, partition, run

ON = replace(CFG, caller_window_s=30, borrowed_callers=True)
OFF = replace(ON, borrowed_callers=False)

SPECS: list[Spec] = [
    ("pay", "payments/5xx", 10, 60, {"instance": ["p1"]}),  # joins db's group by the path payments~db: p1 borrowed
    ("late", "reports/errors", 50, 60, {"instance": ["p1"]}),  # 38 s after the latest onset: past caller_window_s
]


def scene() -> list[IncidentEvent]:
    """db fails; tr, a trace error into db, joins its group by db, and its later alerts name p1 only as a caller (as
    8101's fault 21: its root's trace errors named the path child's callee svc14-1 as a caller from a later alert on),
    after tr was placed (db's update at 25 moves event time past tr's release)."""
    db = [_event("db", "db/latency", 0, 0, 1, "opened", {}), _event("db", "db/latency", 0, 25, 2, "updated", {}),
          _event("db", "db/latency", 0, 60, 3, "updated", {})]
    tr = [_event("tr", "db/trace", 12, 12, 1, "opened", {"caller": ["x9"], "callee": ["db-0"]}),
          _event("tr", "db/trace", 12, 30, 2, "updated", {"caller": ["x9", "p1"], "callee": ["db-0"]}),
          _event("tr", "db/trace", 12, 60, 3, "updated", {"caller": ["x9", "p1"], "callee": ["db-0"]})]
    return sorted([*events_of(SPECS), *db, *tr], key=lambda e: e.emitted_at)


def test_a_borrowed_name_a_child_names_only_as_a_caller_stays_a_caller_name() -> None:
    grouper, out = run(scene(), ON, SHOP)
    assert partition(out) == "db pay tr|late"
    group = next(g for g in grouper.groups() if "db" in g.children)
    assert "p1" in group.callers and "p1" not in group.borrowed


def test_off_the_caller_made_it_the_group_s_own_name() -> None:
    grouper, out = run(scene(), OFF, SHOP)
    assert partition(out) == "db late pay tr"
    group = next(g for g in grouper.groups() if "db" in g.children)
    assert "p1" not in group.callers and "p1" not in group.borrowed
    assert GroupingConfig().borrowed_callers is True  # on by default since session 39 (the fifteenth round)


def test_without_the_file_p1_is_a_caller_name_of_db_s_group() -> None:
    """What the labels give: pay stands apart, db's group knows p1 only as a caller, late joins pay by its own p1."""
    grouper, out = run(scene(), OFF, None)
    assert partition(out) == "db tr|late pay"
    group = next(g for g in grouper.groups() if "db" in g.children)
    assert "p1" in group.callers


CLIMB: list[Spec] = [
    ("pay", "payments/5xx", 10, 120, {"instance": ["p1"]}),  # joins by the path payments~db: payments borrowed
    ("tr", "db/trace", 12, 120, {"caller": ["chk-1"], "callee": ["db-0"]}),  # chk-1: a caller name of db's group
    # a failed call out of payments into chk, 48 s on: payments is borrowed (past burst_s: not admitted), so it relates
    # to nothing open and climbs into db's group, which knows chk-1 as a caller (`climb_s`): its names are heard
    ("up", "payments/trace", 60, 120, {"caller": ["x-1"], "callee": ["chk-2"]}),
    ("late", "payments/latency", 100, 120, {"instance": ["p9"]}),  # 88 s after the latest onset
]


def climb_scene() -> list[IncidentEvent]:
    """db alerts throughout (an update every 30 s moves the group's reach), the children of `CLIMB` around it."""
    db = [_event("db", "db/latency", 0, end, seq, "opened" if seq == 1 else "updated", {})
          for seq, end in enumerate((0, 30, 60, 90, 120), 1)]
    return sorted([*events_of(CLIMB), *db], key=lambda e: e.emitted_at)


def test_a_borrowed_name_a_climbing_child_brings_is_a_caller_name() -> None:
    grouper, out = run(climb_scene(), ON, SHOP)
    assert partition(out) == "db pay tr up|late"
    group = next(g for g in grouper.groups() if "db" in g.children)
    assert group.children["up"].by_chain and "payments" in group.callers


def test_off_a_climbing_child_made_it_the_group_s_own_name() -> None:
    grouper, out = run(climb_scene(), OFF, SHOP)
    assert partition(out) == "db late pay tr up"
    group = next(g for g in grouper.groups() if "db" in g.children)
    assert "payments" not in group.callers and "payments" not in group.borrowed
