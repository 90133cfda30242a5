"""Stage 2's event time from several stage-1 partitions (`correlator.stage2.watermark`) and its routing key
(`correlator.stage2.routing`): tables with fixed times; the stream's wiring is in tests/test_stage2_pipeline.py."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from correlator.models import IncidentEvent
from correlator.stage2 import (
    UNSCOPED_ROUTE_KEY,
    Grouper,
    GroupingConfig,
    GroupingOutput,
    Low,
    LowWatermark,
    SourceMark,
    decode_marks,
    encode_marks,
    idle_release,
    on_own_time,
    report_due,
    route_key,
    source_mark,
)
from stream.stage2_state import GroupTableStore

from .test_broker_faults import FakeTable
from .test_stage2 import CFG, T0, _event, partition

INF = float("inf")
IDLE = SourceMark(-INF, idle=True)


# ---- the routing key -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("key", "entities", "expected"), [
    ("cluster=eu/api/5xx", {"cluster": ["eu"]}, "cluster=eu"),
    ("cluster=eu,region=w/api/5xx", {"cluster": ["eu"], "region": ["w"]}, "cluster=eu,region=w"),
    ("api/5xx", {}, UNSCOPED_ROUTE_KEY),
    # the scope of the key, not the labels seen later: every event of an incident goes the same way
    ("api/5xx", {"cluster": ["eu", "us"]}, UNSCOPED_ROUTE_KEY),
    ("cluster=eu/api/5xx", {"cluster": ["us", "eu"]}, "cluster=eu"),
])
def test_route_key_is_the_scope_of_the_key(key: str, entities: dict[str, list[str]], expected: str) -> None:
    service, symptom = key.rsplit("/", 2)[-2:]
    ev = IncidentEvent(kind="opened", incident_id="i", seq=1, key=key, service=service, symptom=symptom,
                       status="firing", first_seen=0, last_seen=0, window_start=0, alert_count=1,
                       distinct_fingerprints=1, firing_count=1, duplicates=0, max_severity="critical",
                       entities=entities, emitted_at=0)
    assert route_key(ev) == expected


# ---- marks of stage-1 partitions ---------------------------------------------------------------------------


@pytest.mark.parametrize(("flushed", "expected"), [
    (False, SourceMark(95.0, idle=False)),  # holding alerts: published up to its release point
    (True, SourceMark(100.0, idle=True)),  # flushed: everything up to its watermark is out
])
def test_source_mark(flushed: bool, expected: SourceMark) -> None:
    assert source_mark(95.0, 100.0, flushed) == expected


def tracker(marks: dict[int, SourceMark], heard: float = 0.0, since: float = 0.0) -> LowWatermark:
    low = LowWatermark(sources=3, silent_s=10.0, since=since)
    low.note(marks, heard)
    return low


@pytest.mark.parametrize(("name", "marks", "now", "expected"), [
    ("nobody reported yet: wait", {}, 1.0, Low(-INF, drained=False)),
    ("one source not heard of yet: wait for it", {0: SourceMark(50.0), 1: SourceMark(60.0)}, 1.0,
     Low(-INF, drained=False)),
    ("all report: the lowest", {0: SourceMark(50.0), 1: SourceMark(60.0), 2: SourceMark(55.0)}, 1.0,
     Low(50.0, drained=False)),
    ("an idle source is not waited for", {0: SourceMark(50.0, idle=True), 1: SourceMark(60.0), 2: SourceMark(55.0)},
     1.0, Low(55.0, drained=False)),
    ("all idle: drained at the highest", {0: SourceMark(50.0, True), 1: SourceMark(60.0, True), 2: IDLE}, 1.0,
     Low(60.0, drained=True)),
    ("silent past silent_s: not waited for", {0: SourceMark(50.0), 1: SourceMark(60.0, True), 2: IDLE}, 10.0,
     Low(60.0, drained=True)),
    ("a source never heard of, past silent_s", {0: SourceMark(50.0, True), 1: SourceMark(60.0, True)}, 10.0,
     Low(60.0, drained=True)),
])
def test_low_watermark(name: str, marks: dict[int, SourceMark], now: float, expected: Low) -> None:
    assert tracker(marks).low(now) == expected


def test_a_source_s_time_never_goes_back_and_its_latest_idleness_counts() -> None:
    low = tracker({0: SourceMark(50.0), 1: SourceMark(60.0), 2: SourceMark(70.0)})
    low.note({0: SourceMark(40.0)}, 1.0)  # a restarted owner re-reports from its last checkpoint
    assert low.marks[0] == SourceMark(50.0) and low.low(1.0) == Low(50.0, drained=False)
    low.note({0: SourceMark(45.0, idle=True)}, 2.0)
    assert low.marks[0] == SourceMark(50.0, idle=True) and low.low(2.0) == Low(60.0, drained=False)
    low.note({0: SourceMark(80.0)}, 3.0)  # new input: waited for again
    assert low.low(3.0) == Low(60.0, drained=False)


def test_a_source_beyond_the_expected_partitions_is_waited_for_too() -> None:
    low = tracker({0: IDLE, 1: IDLE, 2: IDLE, 5: SourceMark(30.0)})  # the alerts topic grew partitions
    assert low.low(1.0) == Low(30.0, drained=False)


# ---- the idle release decision -----------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "watermark", "held", "low", "flush", "step", "expected"), [
    ("waiting: up to the low watermark only", 40.0, [45.0], Low(50.0, False), True, 3.0, 50.0),
    ("waiting, the low watermark behind: stay", 60.0, [45.0], Low(50.0, False), True, 3.0, None),
    ("drained, nothing due: up to the sources", 40.0, [45.0], Low(50.0, True), False, None, 50.0),
    ("drained, flush: the latest held child plus the lateness", 40.0, [45.0, 52.0], Low(50.0, True), True, None,
     57.0),
    ("drained, flush with nothing held", 40.0, [], Low(50.0, True), True, None, 50.0),
    ("drained, advance: by the silence", 60.0, [], Low(50.0, True), False, 3.0, 63.0),
    ("drained, flush then advance", 40.0, [52.0], Low(50.0, True), True, 3.0, 60.0),
    ("no time yet, held children of another producer: flushed", -INF, [45.0], Low(-INF, True), True, None, 50.0),
    ("no time yet, nothing held: no advance from nowhere", -INF, [], Low(-INF, True), False, 3.0, None),
])
def test_idle_release(name: str, watermark: float, held: list[float], low: Low, flush: bool, step: float | None,
                      expected: float | None) -> None:
    assert idle_release(watermark, held, 5.0, low, flush, step) == expected


# ---- heartbeats --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "reported", "current", "now", "expected"), [
    ("nothing to tell", None, {}, 0.0, False),
    ("never told", None, {0: IDLE}, 0.0, True),
    ("told the same", {0: SourceMark(5.0)}, {0: SourceMark(5.0)}, 1.0, False),
    ("a waited-for source moved", {0: SourceMark(5.0)}, {0: SourceMark(6.0)}, 1.0, True),
    ("a source went idle", {0: SourceMark(5.0)}, {0: SourceMark(5.0, True)}, 1.0, True),
    ("an idle source's time is no news", {0: SourceMark(5.0, True)}, {0: SourceMark(9.0, True)}, 1.0, False),
    ("a new source", {0: IDLE}, {0: IDLE, 1: IDLE}, 1.0, True),
    ("a waited-for source is refreshed", {0: SourceMark(5.0)}, {0: SourceMark(5.0)}, 3.0, True),
    ("idle sources are never refreshed", {0: IDLE}, {0: IDLE}, 100.0, False),
])
def test_report_due(name: str, reported: dict[int, SourceMark] | None, current: dict[int, SourceMark], now: float,
                    expected: bool) -> None:
    assert report_due(reported, current, 0.0, now, refresh_s=2.5) is expected


# ---- the header and the saved progress ---------------------------------------------------------------------


def test_marks_round_trip_through_the_header() -> None:
    marks = {0: SourceMark(1_772_420_400.25), 3: IDLE, 12: SourceMark(5.0, idle=True)}
    assert decode_marks(encode_marks(marks)) == marks
    assert encode_marks({}) == b"{}" and decode_marks(b"{}") == {}


@pytest.mark.parametrize(("raw", "reason"), [
    (b"[1]", "not an object"), (b"{not json", "not JSON"), (b'{"x": [1, false]}', "partition 'x' is not a number"),
    (b'{"1": [1]}', "1: not [event time or null, idle]"), (b'{"1": ["1", false]}', "1: not [event time"),
    (b'{"1": [1, 0]}', "1: not [event time"), (b'{"1": [true, false]}', "1: not [event time"),
])
def test_a_bad_marks_header_is_refused_with_its_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(ValueError, match=reason.replace("[", r"\[")):
        decode_marks(raw)


def test_the_marks_are_saved_with_the_progress_they_cover() -> None:
    table = FakeTable()
    store = GroupTableStore(table, 1)
    store.marks.update({0: SourceMark(50.0), 1: IDLE})
    store.offset, store.watermark = 7, 45.0
    store.write_progress()
    again = GroupTableStore(table, 1)  # as a Grouper is rebuilt after a restart
    assert (again.offset, again.watermark, again.marks) == (7, 45.0, {0: SourceMark(50.0), 1: IDLE})


# ---- a source that runs ahead changes nothing --------------------------------------------------------------


def _children(rng: random.Random, source: int, n: int) -> list[IncidentEvent]:
    """Children of one stage-1 partition over half an hour, announced a second after their first alert as
    stage 1 announces them; some share a host with children of the other partition."""
    out = []
    for i in range(n):
        start = rng.uniform(0, 1800)
        out.append(_event(f"s{source}-{i}", f"svc{source}{i % 3}/sym{i}", start, start, 1, "opened",
                          {"host": [f"h{rng.randrange(3)}"]}))
    return sorted(out, key=lambda e: e.emitted_at)


def _grouped(steps: list[tuple[list[IncidentEvent], float | None]]) -> str:
    grouper, out = Grouper(CFG), GroupingOutput()
    for events, watermark in steps:
        out.extend(grouper.ingest(events, watermark=watermark))
    out.extend(grouper.finish())
    return partition(out)


@pytest.mark.parametrize("seed", range(4))
def test_a_partition_running_ahead_changes_nothing_under_the_low_watermark(seed: int) -> None:
    rng = random.Random(seed)
    ahead, behind = _children(rng, 0, 40), _children(rng, 1, 40)
    in_order = sorted(ahead + behind, key=lambda e: e.emitted_at)
    reference = _grouped([([ev], None) for ev in in_order])  # one stage-1 engine: the replay's order
    low = LowWatermark(sources=2, silent_s=INF, since=0.0)
    steps: list[tuple[list[IncidentEvent], float | None]] = []
    for source, events in ((0, ahead), (1, behind)):  # partition 0 whole, then partition 1 in steps of five
        for i in range(0, len(events), 5):
            chunk = events[i:i + 5]
            low.note({source: SourceMark(chunk[-1].emitted_at)}, 0.0)
            steps.append((chunk, low.low(0.0).at))
    assert _grouped(steps) == reference
    # the same arrival with event time taken from the events (stage 2 before the low watermark) differs
    assert _grouped([(chunk, None) for chunk, _ in steps]) != reference


# ---- a source back from idle with a backlog (session 39, across39) -----------------------------------------


Records = list[tuple[dict[int, SourceMark], list[IncidentEvent]]]


def _fold_into(records: Records, low: LowWatermark, grouper: Grouper, out: GroupingOutput) -> None:
    """Routing records folded as `stream.stage2_agent._fold` folds them: the children each record shows on time for
    their own partition (`on_own_time`, against the marks held before the record's), its marks noted, then its events
    taken at the low watermark of the sources."""
    for marks, events in records:
        on_time = on_own_time(events, low.marks, marks, grouper.config.lateness_s)
        low.note(marks, 0.0)
        out.extend(grouper.ingest(events, watermark=low.low(0.0).at, on_time=on_time))


def _fold_routed(records: Records, config: GroupingConfig) -> str:
    """`_fold_into` four sources from the start, then the end of input."""
    low, grouper, out = LowWatermark(sources=4, silent_s=INF, since=0.0), Grouper(config), GroupingOutput()
    _fold_into(records, low, grouper, out)
    out.extend(grouper.finish())
    return partition(out)


def _idle_backlog(back_by: float = 0.0) -> tuple[Records, Records, str]:
    """Session 39's quick chaos soak (fault 6, posted across the broker restart) as routing records: the first three
    (up to the low's jump), the return of the idle sources with the fault's rest (its first alerts moved `back_by`
    seconds earlier), and the replay's grouping."""
    t = 1000.0
    web = {"service": ["web"]}
    a = _event("a", "web/cpu", 0, 0, 1, "opened", web, emitted=1)  # partitions 1, 3 before they flushed
    b = _event("b", "web/disk", 1, 1, 1, "opened", web, emitted=t)  # partition 0: the fault's child, then the next
    z = _event("z", "db/latency", t, t, 1, "opened", {"service": ["db"]})  # fault half an hour on, in one commit
    c = _event("c", "web/mem", 2 - back_by, 2 - back_by, 1, "opened", web, emitted=t)  # 1, 3 back with the fault's rest
    d = _event("d", "web/io", 3 - back_by, 3 - back_by, 1, "opened", web, emitted=t)
    at = b.emitted_at
    before = [
        ({1: SourceMark(a.emitted_at), 3: SourceMark(a.emitted_at), 0: SourceMark(0.0), 2: SourceMark(0.0)}, [a]),
        ({1: SourceMark(a.emitted_at, idle=True), 3: SourceMark(a.emitted_at, idle=True)}, []),
        ({0: SourceMark(at), 2: SourceMark(at)}, [b, z]),  # the low jumps past the group: 1 and 3 are idle
    ]
    back = [({1: SourceMark(at), 3: SourceMark(at)}, [c, d])]  # late: behind the low
    # the replay's order: one stage-1 engine announces each child a second after its first alert
    replay = _grouped([([ev.model_copy(update={"emitted_at": ev.first_seen + 1})], None)
                       for ev in sorted([a, b, c, d, z], key=lambda e: e.first_seen)])
    return before, back, replay


@pytest.mark.parametrize(("late_placed", "expected"), [(True, "a b c d|z"), (False, "a b|c d|z")])
def test_a_source_back_from_idle_with_a_backlog_puts_its_children_where_the_replay_does(
        late_placed: bool, expected: str) -> None:
    """Session 39's quick chaos soak (fault 6, posted across the broker restart): stage-1 partitions 1 and 3 said idle
    right after the restart, partitions 0 and 2 then published the fault's children with the next fault's first ones
    (the soak compresses the half hour between them into seconds), so the low watermark jumped past the fault's group
    and closed it; partitions 1 and 3 came back with the rest of the fault, now late, and those opened a second cause
    (two pages where the replay has one). A late child is placed by its own first alert among the groups still
    open: it joins the fault's group (`GroupingConfig.late_placed`; off, the rule before: the second cause)."""
    t = 1000.0
    web = {"service": ["web"]}
    a = _event("a", "web/cpu", 0, 0, 1, "opened", web, emitted=1)  # partitions 1, 3 before they flushed
    b = _event("b", "web/disk", 1, 1, 1, "opened", web, emitted=t)  # partition 0: the fault's child, then the next
    z = _event("z", "db/latency", t, t, 1, "opened", {"service": ["db"]})  # fault half an hour on, in one commit
    c = _event("c", "web/mem", 2, 2, 1, "opened", web, emitted=t)  # partitions 1, 3 back with the fault's rest
    d = _event("d", "web/io", 3, 3, 1, "opened", web, emitted=t)
    at = b.emitted_at
    records = [
        ({1: SourceMark(a.emitted_at), 3: SourceMark(a.emitted_at), 0: SourceMark(0.0), 2: SourceMark(0.0)}, [a]),
        ({1: SourceMark(a.emitted_at, idle=True), 3: SourceMark(a.emitted_at, idle=True)}, []),
        ({0: SourceMark(at), 2: SourceMark(at)}, [b, z]),  # the low jumps past the group: 1 and 3 are idle
        ({1: SourceMark(at), 3: SourceMark(at)}, [c, d]),  # late: behind the low
    ]
    # the replay's order: one stage-1 engine announces each child a second after its first alert
    replay = _grouped([([ev.model_copy(update={"emitted_at": ev.first_seen + 1})], None)
                       for ev in sorted([a, b, c, d, z], key=lambda e: e.first_seen)])
    assert replay == "a b c d|z"
    assert _fold_routed(records, replace(CFG, late_placed=late_placed, idle_placed=False)) == expected


# ---- only the children on time for their own partition (session 40, late40) --------------------------------


@pytest.mark.parametrize(("name", "previous", "reported", "firsts", "expected"), [
    ("at or after the source's previous mark less the lateness", {1: SourceMark(100.0, idle=True)},
     {1: SourceMark(900.0)}, [95.0, 100.0, 300.0], [0, 1, 2]),
    ("behind it: late for its own partition too", {1: SourceMark(100.0, idle=True)}, {1: SourceMark(900.0)},
     [94.0, 50.0], []),
    ("the lowest previous mark of the record's sources decides", {1: SourceMark(100.0), 3: SourceMark(200.0)},
     {1: SourceMark(900.0), 3: SourceMark(900.0)}, [96.0, 150.0, 20.0], [0, 1]),
    ("a source with no input since it was assigned promised nothing", {1: SourceMark(-INF, idle=True)},
     {1: SourceMark(900.0)}, [-1e9, 5.0], [0, 1]),
    ("a record without marks: none", {1: SourceMark(100.0)}, {}, [300.0], []),
    ("a source stage 2 has no previous mark of: none", {1: SourceMark(100.0)},
     {1: SourceMark(900.0), 2: SourceMark(900.0)}, [300.0], []),
])
def test_on_own_time(name: str, previous: dict[int, SourceMark], reported: dict[int, SourceMark],
                     firsts: list[float], expected: list[int]) -> None:
    events = [_event(f"c{i}", "web/x", f - T0, f - T0, 1, "opened", {}) for i, f in enumerate(firsts)]
    assert on_own_time(events, previous, reported, 5.0) == [f"c{i}" for i in expected]


@pytest.mark.parametrize(("idle_placed", "expected"), [(True, "a b c d|z"), (False, "a b|c d|z")])
def test_a_source_back_from_idle_places_the_children_on_time_for_it_by_event_time(
        idle_placed: bool, expected: str) -> None:
    """The soak's scene with `late_placed` off: the returning sources' children came after those sources' previous
    (idle) mark, so they were late for stage 2 only because the low moved on without them (`on_own_time`); with
    `GroupingConfig.idle_placed` they join the fault's group as in the replay (one cause), without it a second
    cause opens (two pages for one fault)."""
    before, back, replay = _idle_backlog()
    assert replay == "a b c d|z"
    assert _fold_routed(before + back, replace(CFG, idle_placed=idle_placed)) == expected


def test_a_child_late_for_its_own_partition_too_keeps_today_s_rule() -> None:
    """The same scene, but the returning children started more than the lateness (5 s) before their sources' previous
    mark (T0 + 2): stage 1 itself published them late (as it does the jittered replays' alerts), so they are not placed
    by event time: today's rule, a cause of their own. `late_placed` places them."""
    before, back, replay = _idle_backlog(back_by=8.0)
    assert replay == "a b c d|z"
    assert _fold_routed(before + back, CFG) == "a b|c d|z"
    assert _fold_routed(before + back, replace(CFG, late_placed=True)) == "a b c d|z"


def test_after_a_restart_the_marks_from_the_store_say_which_children_were_on_time() -> None:
    """Stage 2 restarts between the low's jump and the idle sources' return: its Grouper and low watermark are rebuilt
    from the changelog as `stream.stage2_agent.Stage2.grouper` rebuilds them, the idle marks included, so the
    returning children are placed as without the restart. Without the saved marks the record's sources have no
    previous mark and the children keep today's rule (the second cause)."""
    before, back, _ = _idle_backlog()
    table = FakeTable()
    store = GroupTableStore(table, 0)
    low, grouper, out = LowWatermark(4, INF, 0.0, store.marks), Grouper(CFG, store=store), GroupingOutput()
    _fold_into(before, low, grouper, out)
    store.write_keys()
    store.watermark = grouper.watermark
    store.write_progress()

    def rebuilt(saved_marks: bool) -> str:
        again = GroupTableStore(table, 0)
        grouper = Grouper(CFG, store=again)
        grouper.watermark = again.watermark
        low = LowWatermark(4, INF, 0.0, again.marks if saved_marks else {})
        after = GroupingOutput()
        after.extend(out)
        _fold_into(back, low, grouper, after)
        after.extend(grouper.finish())
        return partition(after)

    assert GroupTableStore(table, 0).marks[1].idle
    assert rebuilt(saved_marks=True) == "a b c d|z"
    assert rebuilt(saved_marks=False) == "a b|c d|z"


LATE = replace(CFG, late_placed=True)


def _late_scene(a: IncidentEvent, late: list[IncidentEvent], after: list[IncidentEvent] = ()) -> str:
    """`a` taken on time, event time moved far past its group's gap, then `late` children (behind the release point),
    then `after` on time at the release point they left."""
    grouper, out = Grouper(LATE), GroupingOutput()
    out.extend(grouper.ingest([a], watermark=a.emitted_at))
    out.extend(grouper.advance(T0 + 500))
    out.extend(grouper.ingest(late, watermark=T0 + 500))
    if after:
        out.extend(grouper.ingest(list(after), watermark=T0 + 600))
    return partition(out)


@pytest.mark.parametrize(("name", "a", "late", "after", "expected"), [
    ("within the closed group's gap: joins it", _event("a", "web/cpu", 0, 0, 1, "opened", {"service": ["web"]}),
     [_event("c", "web/mem", 10, 10, 1, "opened", {"service": ["web"]}, emitted=500)], [], "a c"),
    ("a group it would not join on time (alone, 30 s after its reach): its own",
     _event("a", "web/cpu", 0, 0, 1, "opened", {"service": ["web"]}),
     [_event("c", "web/mem", 30, 30, 1, "opened", {"service": ["web"]}, emitted=500)], [], "a|c"),
    ("beyond its gap (60 s after its reach): its own", _event("a", "web/cpu", 0, 0, 1, "opened", {"service": ["web"]}),
     [_event("c", "web/mem", 100, 100, 1, "opened", {"service": ["web"]}, emitted=500)], [], "a|c"),
    ("a resolved group is not reopened: its own",
     _event("a", "web/cpu", 0, 0, 1, "opened", {"service": ["web"]}, status="resolved"),
     [_event("c", "web/mem", 10, 10, 1, "opened", {"service": ["web"]}, emitted=500)], [], "a|c"),
    ("carried past the release point: it accepts again, and an on-time child joins",
     _event("a", "web/cpu", 0, 0, 1, "opened", {"service": ["web"]}),
     [_event("c", "web/mem", 10, 480, 2, "updated", {"service": ["web"]}, emitted=500)],
     [_event("e", "web/disk", 498, 498, 1, "opened", {"service": ["web"]})], "a c e"),
])
def test_a_late_child_is_placed_by_its_first_alert_among_the_groups_still_open(
        name: str, a: IncidentEvent, late: list[IncidentEvent], after: list[IncidentEvent], expected: str) -> None:
    assert _late_scene(a, late, after) == expected


def test_a_grouper_rebuilt_on_its_store_places_a_late_child_as_before_the_restart() -> None:
    a = _event("a", "web/cpu", 0, 0, 1, "opened", {"service": ["web"]})
    c = _event("c", "web/mem", 10, 10, 1, "opened", {"service": ["web"]}, emitted=500)
    before = Grouper(LATE)
    out = before.ingest([a], watermark=a.emitted_at)
    out.extend(before.advance(T0 + 500))
    after = Grouper(LATE, store=before.store)  # a restart: indexes and timers rebuilt from the store alone
    after.watermark = before.watermark  # as the stream restores it with the progress
    out.extend(after.ingest([c], watermark=T0 + 500))
    assert partition(out) == "a c"


def test_a_late_one_name_child_follows_the_closed_burst_it_came_in() -> None:
    """Session 39's quick chaos soak q5 (late_placed on): the soak's flush alerts, one service each and related by
    nothing but time, came 2-35 s behind the release point, and 15 of them paged alone: burst-follow read accepting
    groups only. A late one-name child follows the burst it started in when that group is still open."""
    a = _event("a", "flush-0/x", 0, 0, 1, "opened", {"service": ["flush-0"]})
    b = _event("b", "flush-1/x", 1, 1, 1, "opened", {"service": ["flush-1"]})  # with a by time: a group of two
    c = _event("c", "flush-2/x", 2, 2, 1, "opened", {"service": ["flush-2"]}, emitted=500)
    out = GroupingOutput()
    grouper = Grouper(LATE)
    out.extend(grouper.ingest([a, b], watermark=T0 + 10))
    out.extend(grouper.advance(T0 + 500))
    out.extend(grouper.ingest([c], watermark=T0 + 500))
    assert partition(out) == "a b c"
