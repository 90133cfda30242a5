"""Notify's progress index (`NotifyPolicy.progress_index`, issue 17 session 33): when stage 2's progress moves, the
fold looks only at the incidents it can release instead of scanning every subject it holds, and decides the same
pages in the same order. Evidence: generated record sequences folded with the index and with the old scan give
identical deliveries and identical subjects (the cost: `benchmarks/notify_progress_cost.py`)."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from correlator.models import IncidentEvent
from correlator.notify import (
    Delivery, Matcher, NotifyPolicy, NotifyRecord, NotifyState, Silence, parse_notify,
)
from correlator.stage2 import Progress

from .notifying import T0, assignment, cause, fold_timeline, incident
from .test_notify_progress import first

INDEXED = NotifyPolicy(cause_wait_s=30.0, lone_causes=False, stage2_partitions=2)
SCANNED = NotifyPolicy(cause_wait_s=30.0, lone_causes=False, stage2_partitions=2, progress_index=False)
ROUTES = """
receivers:
  - {name: oncall, type: pagerduty, routing_key: K, url: "http://127.0.0.1:9/pd", rate_limit: {count: 2, per: 10s}}
  - {name: chat, type: slack, url: "http://127.0.0.1:9/slack"}
routes:
  - {match: {severity: critical}, receiver: oncall, continue: true}
  - {match_re: {service: "checkout"}, receiver: chat, hold: {for: 20s}}
  - {match: {service: search, severity: warning}, receiver: chat}
"""
"""A rate limit (so the order in which progress releases incidents decides who waits); every incident has a
route, so one that keeps waiting for progress after it is released is a silenced one."""

IDS = [f"inc-{i}" for i in range(6)]


@st.composite
def sequences(draw: st.DrawFn) -> list[tuple[float, NotifyRecord | None]]:
    """Incident events (opening, updating, moving their first alert, resolving), assignments, causes, progress
    from two routing partitions (naming late incidents placed) and ticks, at non-decreasing times."""
    seqs = dict.fromkeys(IDS, 0)
    now = T0
    out: list[tuple[float, NotifyRecord | None]] = []
    for _ in range(draw(st.integers(1, 40))):
        now += draw(st.sampled_from([0.0, 0.5, 3.0, 12.0]))
        what = draw(st.sampled_from(["incident", "incident", "incident", "progress", "progress", "tick",
                                     "assignment", "cause"]))
        record: NotifyRecord | None = None
        if what == "incident":
            inc = draw(st.sampled_from(IDS))
            seqs[inc] += 1
            ev: IncidentEvent = incident(inc, seqs[inc], severity=draw(st.sampled_from(["critical", "warning"])),
                                         service=draw(st.sampled_from(["checkout", "search"])),
                                         status=draw(st.sampled_from(["firing"] * 4 + ["resolved"])))
            start = T0 + draw(st.sampled_from([0.0, 5.0, 10.0, 20.0, 40.0]))
            record = ev.model_copy(update={"first_seen": start, "window_start": start})
        elif what == "progress":
            record = Progress(decided={draw(st.integers(0, 1)): T0 + draw(st.floats(-5.0, 60.0))}, emitted_at=now,
                              late=draw(st.lists(st.sampled_from(IDS), max_size=2)))
        elif what == "assignment":
            child, parent = draw(st.sampled_from(IDS)), draw(st.sampled_from(["cause-a", "cause-b"]))
            record = draw(st.sampled_from([assignment(child, parent), first(child, parent)]))
        elif what == "cause":
            record = cause(draw(st.sampled_from(["cause-a", "cause-b"])), draw(st.integers(1, 3)),
                           children=draw(st.lists(st.sampled_from(IDS), min_size=2, max_size=3, unique=True)))
        out.append((now, record))
    return out


def fold(records: list[tuple[float, NotifyRecord | None]], policy: NotifyPolicy,
         state: NotifyState | None = None, silence_ends: float = T0) -> tuple[NotifyState, list[Delivery]]:
    """Fold at the given times (None: a tick), forwarded records folded right after; every delivery made. A
    silence of the `search` service ends at `silence_ends` (a silenced incident keeps waiting for progress)."""
    state = state if state is not None else NotifyState()
    silences = [Silence(id="s1", matchers=[Matcher(name="service", value="search")], starts_at=T0 - 100,
                        ends_at=silence_ends, created_by="test")]
    made, _ = fold_timeline(state, records, parse_notify(ROUTES), policy, silences)
    return state, made


@settings(max_examples=400, deadline=None)
@given(sequences(), st.integers(0, 40), st.sampled_from([1.0, 20.0, 60.0]))
def test_the_index_decides_the_same_pages_in_the_same_order_as_the_scan(
        records: list[tuple[float, NotifyRecord | None]], cut: int, silence_s: float) -> None:
    """Also across a restart: at `cut` the state is written and read back (the index is not written: rebuilt)."""
    old_state, old = fold(records, SCANNED, silence_ends=T0 + silence_s)
    head, tail = records[:cut], records[cut:]
    state, new = fold(head, INDEXED, silence_ends=T0 + silence_s)
    again = NotifyState.from_dict(json.loads(json.dumps(state.to_dict())))
    again.progress = dict(state.progress)  # not written back either way (it comes again): not what is tested here
    again.progress_moved_at, again.started_at = state.progress_moved_at, state.started_at  # nor these
    state, more = fold(tail, INDEXED, again, silence_ends=T0 + silence_s)
    assert [d.model_dump() for d in new + more] == [d.model_dump() for d in old]
    assert {k: v.to_dict() for k, v in state.subjects.items()} == {k: v.to_dict() for k, v in old_state.subjects.items()}


def test_an_incident_silenced_when_progress_covered_it_pages_at_a_later_move_after_the_silence_ends() -> None:
    """The old scan looked at it again at every move of the progress: the index keeps it (`_released`, then
    `_wait` again), so it pages at the first move after its silence ended, not at the next tick."""
    search = incident("inc-1", service="search", severity="critical").model_copy(update={"first_seen": T0 + 5, "window_start": T0 + 5})
    records: list[tuple[float, NotifyRecord | None]] = [
        (T0 + 1, search), (T0 + 2, Progress(decided={0: T0 + 10, 1: T0 + 10}, emitted_at=T0 + 2)),
        (T0 + 25, Progress(decided={0: T0 + 30, 1: T0 + 30}, emitted_at=T0 + 25))]
    for policy in (SCANNED, INDEXED):
        _, made = fold(records, policy, silence_ends=T0 + 20)
        assert [(d.action, d.subject_id, d.created_at) for d in made] == [("trigger", "inc-1", T0 + 25)]
