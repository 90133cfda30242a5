"""What stage 2 publishes (`correlator.stage2.publishing`): causes of one incident only with `lone_causes`."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from correlator.config import DEFAULT_CONFIG
from correlator.models import IncidentEvent
from correlator.notify import NotifyPolicy, NotifyRecord
from correlator.replay import ReplayReport, replay
from correlator.sources.generic import parse
from correlator.stage2 import (
    DEFAULT_GROUPING, Assignment, Grouper, GroupingOutput, LateChildren, ParentEvent, Progress, Relation, announced,
    decided_to, published,
)
from stream.commands.replay import read_alerts

from .paths import ROOT
from .test_notify_storm import STORM, _pagerduty, run
from .test_stage2 import CFG, T0, _event, events_of

LAB = ROOT / "benchmarks" / "storms" / "lab-m32.ndjson"
MICROSS = ROOT.parent / "shared" / "datasets" / "rca-micross" / "alerts.ndjson"


def _grouped() -> GroupingOutput:
    """A cascade of two (db then api, sharing a host) and a lone failure elsewhere, to the end."""
    grouper = Grouper(CFG)
    specs = [("inc-db", "db/DBDown", 0.0, 30.0, {"host": ["h1"]}),
             ("inc-api", "api/ErrorRate", 10.0, 40.0, {"host": ["h1"]}),
             ("inc-mail", "mail/QueueFull", 20.0, 50.0, {"host": ["h9"]})]
    out = grouper.ingest(events_of(specs))
    out.extend(grouper.ingest([_event(cid, key, start, end, 3, "resolved", entities, status="resolved", emitted=90)
                               for cid, key, start, end, entities in specs]))
    out.extend(grouper.advance(10_000_000_000.0))
    out.extend(grouper.finish())
    return out


def test_a_cause_of_one_incident_is_not_announced_and_a_cause_of_two_always_is() -> None:
    out = _grouped()
    lone = {p.parent_id for p in out.parents if p.first_child == "inc-mail"}
    pair = {p.parent_id for p in out.parents if p.first_child == "inc-db"}
    assert len(lone) == 1 and len(pair) == 1 and any(p.kind == "opened" for p in out.parents)  # as the engine says
    shown = published(out, lone_causes=False)
    assert shown.parents and {p.parent_id for p in shown.parents} == pair
    assert all(len(p.children) >= 2 for p in shown.parents)
    assert [p.kind for p in shown.parents if p.parent_id in pair][-1] == "resolved"  # its end is announced too
    # the child that opened the pair is named by an assignment beside its announced firing event, after the others
    assert [(a.child_id, a.relation) for a in shown.assignments] == [("inc-api", Relation.ENTITY),
                                                                     ("inc-db", Relation.FIRST)]


def test_a_partition_with_nothing_held_has_decided_up_to_its_watermark() -> None:
    """`decided_to`: the release point at least; with nothing held, the watermark (every incident up to it has
    arrived and been placed); with children held, just before the oldest of them (never past the watermark)."""
    assert decided_to(95.0, 100.0, []) == 100.0
    assert decided_to(95.0, 100.0, [98.0, 99.0]) < 98.0 and decided_to(95.0, 100.0, [98.0]) > 97.99
    assert decided_to(95.0, 100.0, [120.0]) == 100.0
    assert decided_to(95.0, 100.0, [90.0]) == 95.0  # never behind what it released
    assert decided_to(float("-inf"), float("-inf"), []) == float("-inf")


def test_with_lone_causes_every_parent_event_goes_out_and_no_first_assignment() -> None:
    out = _grouped()
    shown = published(out, lone_causes=True)
    assert shown.parents == out.parents
    assert all(a.relation is not Relation.FIRST for a in shown.assignments)
    assert any(a.relation is Relation.FIRST for a in out.assignments)


def test_once_announced_every_later_event_of_a_parent_is_announced_too() -> None:
    """Children never leave a group, so the rule never hides the end of a cause a reader has seen."""
    records: list[IncidentEvent | ParentEvent | Assignment] = []
    replay(read_alerts(MICROSS)[:3000], DEFAULT_CONFIG, grouping=DEFAULT_GROUPING, listener=records.append)
    seen: set[str] = set()
    for parent in (r for r in records if isinstance(r, ParentEvent)):
        if parent.parent_id in seen:
            assert announced(parent, lone_causes=False), parent
        elif announced(parent, lone_causes=False):
            seen.add(parent.parent_id)
    assert seen


def test_the_replay_listener_hears_what_the_stream_publishes_without_lone_causes() -> None:
    alerts = read_alerts(Path(LAB))
    everything: list[IncidentEvent | ParentEvent | Assignment | Progress] = []
    heard: list[IncidentEvent | ParentEvent | Assignment | Progress] = []
    report = replay(alerts, DEFAULT_CONFIG, grouping=DEFAULT_GROUPING, listener=everything.append)
    again = replay(alerts, DEFAULT_CONFIG, grouping=DEFAULT_GROUPING, listener=heard.append, lone_causes=False)
    assert report.parents is not None and again.parents is not None
    assert [p.as_dict() for p in again.parents] == [p.as_dict() for p in report.parents]  # the same grouping
    sizes = Counter(len(p.children) for p in report.parents)
    assert sizes[1] >= 1 and sum(n for size, n in sizes.items() if size >= 2) >= 1  # the storm is what it says
    grouped = {p.id for p in report.parents if len(p.children) >= 2}
    parents = [r for r in heard if isinstance(r, ParentEvent)]
    assert {p.parent_id for p in parents} == grouped
    assert [r for r in everything if isinstance(r, IncidentEvent)] == [r for r in heard if isinstance(r, IncidentEvent)]
    # each announced firing parent event's first child is named by a `first` assignment beside it, before the
    # progress that follows (the reader of the child's partition knows it grouped before it knows it decided)
    for i, parent in enumerate(heard):
        if isinstance(parent, ParentEvent) and parent.status == "firing":
            upto = next((j for j in range(i, len(heard)) if isinstance(heard[j], Progress)), len(heard))
            assert any(isinstance(r, Assignment) and r.relation is Relation.FIRST and r.child_id == parent.first_child
                       for r in heard[i - 10:upto])
    # every incident is decided by some progress after its first event: no stage-2 silence about it
    progress = [(i, r.decided[0]) for i, r in enumerate(heard) if isinstance(r, Progress)]
    assert progress and all(b > a for (_, a), (_, b) in zip(progress, progress[1:], strict=False))
    last = progress[-1][1]
    assert all(r.first_seen <= last for r in heard if isinstance(r, IncidentEvent))


def _storm_without_lone_causes() -> tuple[list[NotifyRecord], ReplayReport]:
    alerts = parse(STORM.read_bytes(), max_bytes=None)
    end = max(a.starts_at for a in alerts) + 120
    resolved = [a.model_copy(update={"status": "resolved", "ends_at": end + i}) for i, a in enumerate(alerts)]
    records: list[NotifyRecord] = []
    report = replay(alerts + resolved, grouping=DEFAULT_GROUPING, listener=records.append, lone_causes=False)
    return records, report


def test_without_lone_causes_a_lone_incident_pages_on_stage2_progress_and_a_late_second_child_pages_once() -> None:
    """The lab storm through the notify fold as the stream publishes it with `lone_causes` off (the default now).
    Each critical incident whose cause is of one pages on its own as soon as stage 2's progress covers it (its own
    id as dedup_key), not `cause_wait_s` after it was seen. The cause of three: its first incident is seen alone
    for 48 s before its second child joins (60 s after it), so it pages alone first; the cause, announced then, takes
    that page over: one trigger and one resolve for the fault, both with the first incident's id (session 29's
    mode paged that fault twice, this test's predecessor asserted it)."""
    records, report = _storm_without_lone_causes()
    assert report.parents is not None
    [cause] = [p for p in report.parents if len(p.children) >= 2]
    alone = {p.children[0].id: p.max_severity for p in report.parents if len(p.children) == 1}
    assert len(cause.children) == 3 and len(alone) == 2  # the storm is what it says
    policy = NotifyPolicy(lone_causes=False, stage2_partitions=1)
    made, _ = run(records, policy=policy)
    first = cause.children[0].id
    assert {d.subject_id for d in made} <= {first, *alone}  # the cause and its later children never page
    paged = sorted([first, *(i for i, severity in alone.items() if severity == "critical")])
    # and the carrying page updated with its cause twice: announced with two children, then a third (session 33)
    assert _pagerduty(made) == Counter({("trigger", s): 1 for s in paged} | {("resolve", s): 1 for s in paged}
                                       | {("update", first): 2})
    seen = {r.incident_id: r.emitted_at for r in records if isinstance(r, IncidentEvent) and r.seq == 1}
    waited = {d.subject_id: d.created_at - seen[d.subject_id] for d in made
              if d.receiver == "oncall" and d.action == "trigger"}
    assert waited and max(waited.values()) < 10.0, waited  # stage 2's lateness (5 s) and a slice, not the 30 s wait
    resolves = [d for d in made if d.receiver == "oncall" and d.action == "resolve" and d.subject_id == first]
    cause_end = max(r.emitted_at for r in records if isinstance(r, ParentEvent) and r.parent_id == cause.id)
    assert resolves[0].created_at >= cause_end  # the page carried the cause: it resolved with it


def test_without_lone_causes_and_no_stage2_progress_a_lone_incident_waits_the_cause_wait() -> None:
    """The same records without stage 2's progress (`stage2_partitions` 0, as with a stopped stage 2): each lone
    critical incident pages `cause_wait_s` after it was first seen, as before; the fault of three still pages once."""
    records, report = _storm_without_lone_causes()
    records = [r for r in records if not isinstance(r, Progress)]
    made, _ = run(records, policy=NotifyPolicy(lone_causes=False))
    seen = {r.incident_id: r.emitted_at for r in records if isinstance(r, IncidentEvent) and r.seq == 1}
    waited = [d.created_at - seen[d.subject_id] for d in made if d.receiver == "oncall" and d.action == "trigger"]
    assert waited and min(waited) >= 30.0
    assert len(waited) == len({d.subject_id for d in made if d.action == "trigger" and d.receiver == "oncall"})


def test_a_stage2_record_is_the_models_json_byte_for_byte_and_decodes_back() -> None:
    """`stage2_agent._dump` writes `__dict__` for speed: the same bytes as the model's JSON dump, every field set."""
    import orjson

    from stream.incident_records import ASSIGNMENT_HEADERS, PARENT_HEADERS, decode_incident_record
    from stream.stage2_agent import Stage2, _dump

    out = _grouped()
    full = out.parents[-1].model_copy(update={
        "previous_id": "par-old", "merged_into": "par-other", "topology_version": "v1 ✓", "reason": "naïve \"why\"",
        "first_seen": 1772420450.472, "last_seen": 1e-7, "services": ["a", "b"]})
    out.parents.append(ParentEvent.model_validate(full.model_dump()))
    assert out.assignments and {a.relation for a in out.assignments} >= {Relation.FIRST, Relation.ENTITY}
    for model in [*out.parents, *out.assignments]:
        assert _dump(model) == orjson.dumps(model.model_dump(mode="json"))
    records = list(Stage2._records(out))
    assert [key for key, _, _ in records] == [p.parent_id for p in out.parents] + [a.child_id for a in out.assignments]
    assert [decode_incident_record(value, headers) for _, value, headers in records] == [*out.parents, *out.assignments]
    assert {id(h) for _, _, h in records} == {id(PARENT_HEADERS), id(ASSIGNMENT_HEADERS)}


def test_a_child_behind_the_progress_sent_is_named_late_once_placed_and_a_known_one_never() -> None:
    """`LateChildren` (session 33): inc-late starts at T0+10 and reaches the Grouper when the progress sent already
    covers T0+60; it is named once the Grouper placed it (here at once: behind its release point), and an update of
    a child the Grouper knew is not late."""
    grouper, late = Grouper(CFG), LateChildren()
    early = events_of([("inc-db", "db/DBDown", 0.0, 70.0, {"host": ["h1"]})])
    late.note(0, grouper, early, None)  # no progress sent yet: nothing is late
    grouper.ingest(early, watermark=T0 + 70)
    later = [_event("inc-db", "db/DBDown", 0.0, 80.0, 3, "updated", {"host": ["h1"]}),
             _event("inc-late", "api/ErrorRate", 10.0, 20.0, 1, "opened", {"host": ["h1"]}, emitted=75)]
    late.note(0, grouper, later, T0 + 60)
    assert late.pending == {0: {"inc-late"}}
    out = grouper.ingest(later, watermark=T0 + 80)
    assert [a.child_id for a in out.assignments] == ["inc-late"]  # it joined inc-db's group, at once
    assert late.placed({0: grouper}) == ["inc-late"] and late.placed({0: grouper}) == []
