"""Stage 2, issue 17's seventh round: names a group knows only as a caller, and the onset of a child joined by a path.

A trace error names the failing callee and the caller that suffered it. A group that knows an instance only as such
a caller holds a victim of its cause, not the cause: a fault of that instance's own, later, is another fault. And a
child joined through a topology path is a guess: its onset relates later children only as a path does.
"""

from __future__ import annotations

from dataclasses import replace

import orjson
import pytest

from correlator.stage2 import GroupingConfig, GroupState, Relation
from correlator.stage2.relations import view_of

from .test_stage2 import CFG, SHOP, Spec, _event, events_of, partition, run

# gap 60 s, burst 20 s; the company rule (a child starting alone after the burst opens its own cause) off, so that
# only the caller rule splits these
CALLERS = replace(CFG, max_hops=1, caller_window_s=40, company=False)

# the cause: pay fails; checkout's instance co-1 calls it and its trace errors name co-1 as the caller
CAUSE: list[Spec] = [("pay", "payments/5xx", 0, 100, {"instance": ["pay-1"]}),
                     ("tr", "payments/trace:500", 5, 100, {"caller": ["co-1"], "callee": ["pay-1"]})]


@pytest.mark.parametrize(("name", "child", "expected"), [
    # co-1's own fault 115 s after the cause's latest onset (5 s), within the gap of its reach (100 s): a victim
    # failing on its own is another fault
    ("a name known only as a caller relates nothing far from the cause's onsets",
     ("co", "checkout/5xx", 120, 120, {"instance": ["co-1"]}), "co|pay tr"),
    ("near the cause's onsets it still relates (MicroSS: the faulty instance is often the caller)",
     ("co", "checkout/5xx", 30, 30, {"instance": ["co-1"]}), "co pay tr"),
    ("exactly the window after the latest onset", ("co", "checkout/5xx", 45, 45, {"instance": ["co-1"]}),
     "co pay tr"),
    ("another caller's trace naming co-1 as a caller, far from the onsets",
     ("t2", "db/trace:500", 110, 110, {"caller": ["co-1"], "callee": ["db-1"]}), "pay tr|t2"),
    # a name the group has in another role too (pay-1 is an instance and a callee) relates across the gap
    ("a name the group has as an instance relates across the whole gap",
     ("p2", "payments/latency", 140, 140, {"instance": ["pay-1"]}), "p2 pay tr"),
])
def test_a_name_known_only_as_a_caller_relates_only_near_the_group_s_onsets(
        name: str, child: Spec, expected: str) -> None:
    _, out = run(events_of([*CAUSE, child]), CALLERS)
    assert partition(out) == expected, name


def test_a_child_carrying_the_name_in_another_role_makes_it_the_group_s_own() -> None:
    # x joins within the window by co-1 and carries it as its instance: from then on co-1 is an ordinary name
    specs: list[Spec] = [*CAUSE, ("x", "checkout/latency", 30, 30, {"instance": ["co-1"]}),
                         ("co", "checkout/5xx", 140, 140, {"instance": ["co-1"]})]
    grouper, out = run(events_of(specs), CALLERS)
    assert partition(out) == "co pay tr x"
    assert not next(grouper.groups()).callers


def test_the_reason_names_the_caller_rule() -> None:
    _, out = run(events_of([*CAUSE, ("co", "checkout/5xx", 30, 30, {"instance": ["co-1"]})]), CALLERS)
    joined = out.assignments[-1]
    assert (joined.relation, joined.via) == (Relation.ENTITY, "instance co-1")
    assert joined.explanation == "shares instance co-1, which it knows only as a caller, near its latest onset, " \
                                 "within its span"


def test_the_child_view_knows_which_names_it_carries_only_as_a_caller() -> None:
    ev = _event("t", "payments/trace:500", 0, 0, 1, "opened",
                {"caller": ["co-1", "pay-1"], "callee": ["pay-1"], "instance": ["x-1"]})
    assert view_of(ev, GroupingConfig(), None).callers == {"co-1"}


# db fails at 0; payments (one edge up) joins through the path at 15: a guess. A host-only alert at 30 shares the
# machine of db's instance: 30 s after db's onset, 15 s after the path child's. Only a child that started with the
# group's own incidents may relate by a shared machine, so the path child's onset must not admit it; a child one
# edge from the path child still joins as a path does (a cascade, step by step within the burst)
@pytest.mark.parametrize(("name", "third", "expected"), [
    ("a path child's onset admits no shared machine", ("h", "node/load", 30, 30, {"host": ["h1"]}), "db pay|h"),
    ("a path child's onset admits the next step of a path", ("co", "checkout/5xx", 30, 30, {}), "co db pay"),
])
def test_a_child_joined_through_a_path_moves_only_the_path_onset(name: str, third: Spec, expected: str) -> None:
    specs: list[Spec] = [("db", "db/latency", 0, 100, {"instance": ["db-1"], "host": ["h1"]}),
                         ("pay", "payments/5xx", 15, 100, {}), third]
    # machine-follow (on by default since session 35) would take the host-only alert while db alerts: off here,
    # the onset rule is what this scene reads
    grouper, out = run(events_of(specs), replace(CALLERS, machine_follow=False), SHOP)
    assert partition(out) == expected, name
    g = next(g for g in grouper.groups() if "db" in g.children)
    assert (g.last_onset, g.path_onset) == (CFG_T0 + 0, CFG_T0 + (30 if third[0] == "co" else 15))


CFG_T0 = events_of([("x", "a/b", 0, 0, {})])[0].first_seen


def test_callers_and_the_path_onset_survive_a_restart_and_old_state_loads() -> None:
    grouper, _ = run(events_of(CAUSE), CALLERS)
    g = next(grouper.groups())
    doc = orjson.loads(orjson.dumps(g.to_dict()))
    back = GroupState.from_dict(doc)
    assert back.callers == g.callers == {"co-1"}
    assert back.path_onset == g.path_onset == float("-inf")  # never: JSON has no infinity, the changelog has null
    del doc["callers"], doc["path_onset"]
    legacy = GroupState.from_dict(doc)
    assert legacy.callers == set() and legacy.path_onset == float("-inf")


def test_config_refuses_a_negative_caller_window() -> None:
    with pytest.raises(ValueError):
        GroupingConfig(caller_window_s=-1)
