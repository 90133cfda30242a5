"""Stage 2's progress from the reorder buffer's top (`Grouper.oldest_held`) is the one a scan of the held store gives.

`publishing.decided_to` needs the first alert of the oldest held child. The stream and the replay scanned every held
child for it at each progress report; the Grouper's held heap has it at its top once the stale entries above it are
dropped (a child released since, or whose first alert a late alert moved earlier). Checked on generated streams:
the same progress after every step, and dropping those entries changes nothing the Grouper publishes.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from correlator.models import IncidentEvent
from correlator.stage2 import DEFAULT_GROUPING, GroupingConfig, GroupingOutput, Grouper
from correlator.stage2.publishing import decided_to

from .test_stage2 import CFG, T0

KEYS = ["api/5xx", "db/latency", "web/5xx", "cache/miss", "queue/backlog"]
HOSTS = ["h1", "h2"]


@dataclass
class Child:
    """What the generator knows of one stage-1 incident so far."""

    cid: str
    key: str
    host: str
    first: float
    seq: int = 0


def _event(child: Child, t: float, resolved: bool) -> IncidentEvent:
    service, _, symptom = child.key.partition("/")
    child.seq += 1
    return IncidentEvent.model_validate({
        "kind": "resolved" if resolved else ("opened" if child.seq == 1 else "updated"), "incident_id": child.cid,
        "seq": child.seq, "key": child.key, "service": service, "symptom": symptom,
        "status": "resolved" if resolved else "firing", "first_seen": T0 + child.first, "last_seen": T0 + t,
        "window_start": T0 + child.first, "alert_count": child.seq, "distinct_fingerprints": child.seq,
        "firing_count": child.seq, "duplicates": 0, "max_severity": "warning", "entities": {"host": [child.host]},
        "emitted_at": T0 + t + 1.0})


Step = tuple[int, float, float, int, bool, bool]
"""(0: a new child, n: the n-th latest child again; seconds on; how far the first alert lies back; which key and host;
resolved; an idle advance instead)."""

SHORT_OR_LONG = st.one_of(st.floats(0, 2), st.floats(0, 40))
SOMETIMES = st.sampled_from([False, False, False, True])
STEPS = st.lists(st.tuples(st.integers(0, 3), SHORT_OR_LONG, st.one_of(st.floats(0, 1), st.floats(0, 12)),
                           st.integers(0, 9), SOMETIMES, SOMETIMES), min_size=10, max_size=80)
"""Many steps shorter than the lateness (5 s in `CFG`) and the latest children again: children held while their next
event moves their start, sometimes across the release point (the stale entry then outlives its child's release)."""


def _stream(steps: list[Step]) -> list[IncidentEvent | float]:
    """Events in emission order, with idle advances (a float: the watermark) among them. A child's next event may
    move its first alert earlier (a late alert): the held heap then keeps a stale entry for it."""
    children: list[Child] = []
    out: list[IncidentEvent | float] = []
    t = 0.0
    for n, (back_to, dt, back, kh, resolved, idle) in enumerate(steps):
        t += dt
        if idle:
            out.append(T0 + t)
            continue
        start = max(0.0, t - back)
        if back_to == 0 or back_to > len(children):
            child = Child(f"c{n}", KEYS[kh % len(KEYS)], HOSTS[kh % len(HOSTS)], start)
            children.append(child)
        else:
            child = children[-back_to]
            child.first = min(child.first, start)
        out.append(_event(child, t, resolved))
        if resolved:
            children.remove(child)
    return out


def _fold(grouper: Grouper, item: IncidentEvent | float) -> GroupingOutput:
    return grouper.advance(item) if isinstance(item, float) else grouper.ingest([item])


def _scanned(grouper: Grouper) -> float:
    """The progress as the stream and the replay computed it before: a scan of every held child."""
    return decided_to(grouper.released_to, grouper.watermark,
                      (ev.first_seen for _, ev in grouper.store.held_items()))


def _published(out: GroupingOutput) -> list[str]:
    return [x.model_dump_json() for x in (*out.parents, *out.assignments)]


@settings(max_examples=400, deadline=None)
@given(STEPS, st.sampled_from([CFG, DEFAULT_GROUPING]))
def test_the_heap_s_oldest_held_child_gives_the_scan_s_progress_and_the_same_grouping(
        steps: list[Step], config: GroupingConfig) -> None:
    reading, plain = Grouper(config), Grouper(config)  # one asked for its oldest held child after every step
    for item in _stream(steps):
        got, expected = _fold(reading, item), _fold(plain, item)
        assert _published(got) == _published(expected)
        held = [ev.first_seen for _, ev in reading.store.held_items()]
        assert reading.oldest_held() == min(held, default=float("inf"))
        assert decided_to(reading.released_to, reading.watermark, (reading.oldest_held(),)) == _scanned(reading)
    assert _published(reading.finish()) == _published(plain.finish())
    assert reading.oldest_held() == float("inf")


def test_a_late_alert_leaves_a_stale_entry_that_the_top_skips() -> None:
    """The case the heap needs care for: a held child whose first alert moved has two entries, the stale one here
    older than every live one (the generated streams move it earlier, as a late alert does, which leaves the stale
    entry behind the live one until its child is released)."""
    grouper = Grouper(CFG)
    a = Child("a", "api/5xx", "h1", 10.0)
    grouper.ingest([_event(a, 10.0, False)])
    b = Child("b", "db/latency", "h2", 11.0)
    grouper.ingest([_event(b, 11.0, False)])
    a.first = 12.0  # not earlier: a later start cannot happen in stage 1, but the heap must not trust it either
    grouper.ingest([_event(a, 12.5, False)])
    assert grouper.oldest_held() == T0 + 11.0 == min(ev.first_seen for _, ev in grouper.store.held_items())
    grouper.advance(T0 + 100.0)
    assert grouper.oldest_held() == float("inf") and not list(grouper.store.held_items())
