"""Stage 2, issue 17 (session 39, casc26): victims first apart. A trace error names the callee that failed and the caller
that suffered it; a failure climbs from callee to caller. When the caller's own group began before the callee's, the
callee's failure is no step of it and it was not hurt by it: two roots (each group opened by a symptom of its own, no
failed call) failing at the same moment, which a bridging trace error between them must not fold into one page
(`GroupingConfig.victims_first_apart`)."""

from __future__ import annotations

from dataclasses import replace

import orjson

from correlator.models import IncidentEvent
from correlator.stage2 import GroupingConfig, GroupState, Relation

from .test_stage2 import CFG, Spec, events_of, partition, run

ON = replace(CFG, victims_first_apart=True)
OFF = replace(ON, victims_first_apart=False)


def scene(caller_start: float = 0, callee_start: float = 10) -> list[IncidentEvent]:
    """cart's instance ca-1 and stock's st-1 each fail with a symptom of their own; at 15 s a failed call from ca-1 into
    st-1 (the trace error is stock's: its service, its callee) relates to both, to cart's group only by its caller
    (neither service is in `SHOP`: the restart scene runs it with that file, and no path relates them)."""
    specs: list[Spec] = [
        ("ca", "cart/5xx", caller_start, 60, {"instance": ["ca-1"]}),
        ("st", "stock/latency", callee_start, 60, {"instance": ["st-1"]}),
        ("t", "stock/trace:500", 15, 30, {"caller": ["ca-1"], "callee": ["st-1"]}),
    ]
    return events_of(specs)


def test_a_caller_that_failed_first_is_not_folded_into_its_callee() -> None:
    _, out = run(scene(), ON)
    assert partition(out) == "ca|st t"
    joined = next(a for a in out.assignments if a.child_id == "t")
    assert joined.relation is Relation.ENTITY and "caller" not in joined.via


def test_off_the_bridge_folds_the_two_roots_into_one() -> None:
    _, out = run(scene(), OFF)
    assert partition(out) == "ca st t"
    assert GroupingConfig().victims_first_apart is True  # on by default since session 39 (the sixteenth round)


def test_a_callee_that_failed_first_still_takes_its_victim() -> None:
    """stock fails first, cart 10 s later: cart may be stock's victim, so the bridge folds them as before."""
    _, out = run(scene(caller_start=10, callee_start=0), ON)
    assert partition(out) == "ca st t"


def test_a_bridge_with_no_callee_group_still_joins_the_caller_s_group() -> None:
    """Only the fold is refused: a failed call out of ca-1 that relates to nothing else joins cart's group (`victims`)."""
    specs: list[Spec] = [("ca", "cart/5xx", 0, 60, {"instance": ["ca-1"]}),
                         ("t", "stock/trace:500", 15, 30, {"caller": ["ca-1"], "callee": ["st-1"]})]
    _, out = run(events_of(specs), ON)
    assert partition(out) == "ca t"


def test_a_caller_s_group_opened_by_a_trace_error_folds_as_before() -> None:
    """MicroSS's faults open with their callers' trace errors: such a group is no root of its own, so it folds."""
    specs: list[Spec] = [
        ("up", "cart/trace:500", 0, 60, {"caller": ["web-1"], "callee": ["ca-1"]}),  # cart seen failing from a call
        ("st", "stock/latency", 10, 60, {"instance": ["st-1"]}),
        ("t", "stock/trace:500", 15, 30, {"caller": ["ca-1"], "callee": ["st-1"]}),
    ]
    grouper, out = run(events_of(specs), ON)
    assert partition(out) == "st t up"
    assert not any(g.rooted for g in grouper.groups() if "up" in g.children)


def test_rooted_survives_the_changelog_and_old_state_loads() -> None:
    grouper, _ = run(scene(), ON)
    g = next(g for g in grouper.groups() if "ca" in g.children)
    doc = orjson.loads(orjson.dumps(g.to_dict()))
    assert g.rooted and GroupState.from_dict(doc).rooted
    del doc["rooted"]
    assert GroupState.from_dict(doc).rooted is False  # state written before the field: the rule does not apply
