"""Stage 2, issue 17 (session 38, casc24): late symptoms. A service's own new symptom (no failed call named), starting
alone long after its group's latest onset, is another root failing and opens its own group; one that comes in a burst
with another incident, a key the group holds, or a trace error still joins (`GroupingConfig.late_symptom_s`)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from correlator.stage2 import GroupingConfig, Relation, parent_id

from .test_stage2 import CFG, Spec, events_of, partition, run

ON = replace(CFG, late_symptom_s=120)
OFF = replace(ON, late_symptom_s=0)

ROOT: Spec = ("r", "api/5xx", 0, 190, {"instance": ["api-1"]})
LATE: Spec = ("s", "api/latency", 200, 260, {"instance": ["api-1"]})


def test_a_late_symptom_alone_opens_its_own() -> None:
    assert partition(run(events_of([ROOT, LATE]), ON)[1]) == "r|s"


def test_off_it_joins_by_the_shared_name() -> None:
    assert partition(run(events_of([ROOT, LATE]), OFF)[1]) == "r s"
    assert GroupingConfig().late_symptom_s == 60  # by default since session 39 (the fifteenth round)


def test_the_default_refuses_a_late_symptom() -> None:
    """The scenes' `CFG` keeps late symptoms off for other rules' scenes; the default setting refuses this one."""
    default = replace(CFG, late_symptom_s=GroupingConfig().late_symptom_s)
    assert partition(run(events_of([ROOT, LATE]), default)[1]) == "r|s"


def test_within_the_window_it_joins() -> None:
    root: Spec = ("r", "api/5xx", 0, 90, {"instance": ["api-1"]})
    early: Spec = ("s", "api/latency", 100, 160, {"instance": ["api-1"]})
    assert partition(run(events_of([root, early]), ON)[1]) == "r s"


def test_a_late_symptom_in_company_joins() -> None:
    """Another incident of its scope started 5 s before it: it is no new root's first alert."""
    other: Spec = ("o", "db/cpu", 195, 250, {"instance": ["db-1"]})
    assert partition(run(events_of([ROOT, other, LATE]), ON)[1]) == "o|r s"


@pytest.mark.parametrize("child", [
    ("s", "api/5xx", 200, 260, {"instance": ["api-1"]}),  # the key the group holds: the symptom going on
    ("s", "api/trace:500", 200, 260, {"caller": ["web-1"], "callee": ["api-1"]}),  # a failed call into it
])
def test_a_held_key_or_a_trace_error_still_joins(child: Spec) -> None:
    assert partition(run(events_of([ROOT, child]), ON)[1]) == "r s"


def test_negative_is_refused() -> None:
    with pytest.raises(ValueError):
        GroupingConfig(late_symptom_s=-1)


def test_the_parent_a_late_symptom_opens_says_why() -> None:
    """An on-call reads why the symptom paged on its own, and next to which cause it was weighed."""
    _, out = run(events_of([ROOT, LATE]), ON)
    opened = next(a for a in out.assignments if a.child_id == "s")
    assert opened.explanation == (f"opened it: a symptom of its own (no failed call), started alone 3.3m after "
                                  f"{parent_id('r')}'s latest child onset")
    _, off = run(events_of([ROOT, LATE]), OFF)
    assert next(a for a in off.assignments if a.child_id == "s").relation is Relation.ENTITY
