"""Double pages from notify, session 33 (issue 17's stream-throughput change left them): one fault, one page.

Each scene is folded twice where it has an old rule to compare: with the new `NotifyPolicy` fields and with them
off (the old rule), which pages twice. Fixed clocks, no I/O; handovers are folded back into the same state, as
the stream does over the control topic (`tests/test_notify_progress.drive`)."""

from __future__ import annotations

import json
from dataclasses import replace

from correlator.models import IncidentEvent
from correlator.notify import Acknowledgement, Delivery, NotifyRecord, status_of
from correlator.stage2 import Assignment, Progress, Relation

from .notifying import T0, cause, incident
from .test_notify_progress import POLICY, drive, first, progress, started
from .test_notify_progress import pages as deliveries

OLD = replace(POLICY, every_child_answers=False)


def pages(made: list[Delivery], receiver: str = "oncall") -> list[tuple[str, str]]:
    """(action, dedup_key) of each delivery to `receiver`, updates of a carrying page left out (`test_updates`)."""
    return [p for p in deliveries(made, receiver) if p[0] != "update"]


def merged(child_id: str, parent_id: str, source: str) -> Assignment:
    """A child moved with the rest of `source` into `parent_id` (stage 2's merge)."""
    return Assignment(child_id=child_id, child_key="", parent_id=parent_id, relation=Relation.MERGED,
                      via="inc-4", gap_s=0.0, explanation=f"merged in from {source}", assigned_at=T0)


def joined(child_id: str, parent_id: str) -> Assignment:
    """A child that joined an existing cause by a shared host."""
    return Assignment(child_id=child_id, child_key="", parent_id=parent_id, relation=Relation.ENTITY,
                      via="host=db1", gap_s=0.0, explanation=f"shares host=db1 with {parent_id}", assigned_at=T0)


def quiet(incident_id: str, first_seen: float, seq: int = 1, status: str = "firing") -> IncidentEvent:
    """A warning incident of a service no route pages at once (the default route's 30 s hold)."""
    return started(incident(incident_id, seq, status=status, service="search"), first_seen)


def test_a_carried_cause_merged_into_a_cause_that_had_not_paged_pages_once() -> None:
    """inc-1 paged alone, and its page carries cause-1 (inc-1, inc-2). inc-3 started earlier and is still held
    (warning, 30 s). At T0+20 inc-4 relates both: cause-1 folds into inc-3's group, cause-3, announced now with
    every child. Old rule: cause-3 hears only from inc-3 (not paged), pages, and cause-1's close frees inc-1's
    page: two triggers. New: inc-1's page moves on to cause-3 (it answers its merge), one trigger."""
    scene: list[tuple[float, NotifyRecord | None]] = [
        (T0 + 1, quiet("inc-3", T0 - 10)),
        (T0 + 1, incident("inc-1", severity="critical")),
        (T0 + 7, progress(0, T0 + 2)), (T0 + 7, progress(1, T0 + 2)),
        (T0 + 10, started(incident("inc-2", severity="critical"), T0 + 9)),
        (T0 + 12, cause("cause-1", 2, children=["inc-1", "inc-2"])),
        (T0 + 12, joined("inc-2", "cause-1")), (T0 + 12, first("inc-1", "cause-1")),
        (T0 + 20, started(incident("inc-4", severity="critical"), T0 + 19)),
        (T0 + 22, cause("cause-3", 2, children=["inc-3", "inc-1", "inc-2", "inc-4"])),
        (T0 + 22, first("inc-3", "cause-3")), (T0 + 22, joined("inc-4", "cause-3")),
        (T0 + 22, cause("cause-1", 3, children=["inc-1", "inc-2"], status="merged", merged_into="cause-3")),
        (T0 + 23, merged("inc-1", "cause-3", "cause-1")), (T0 + 23, merged("inc-2", "cause-3", "cause-1")),
        (T0 + 40, None), (T0 + 60, Acknowledgement(incident_id="cause-3", who="ana", at=T0 + 60))]
    _, made, _ = drive(scene, OLD)
    assert pages(made) == [("trigger", "inc-1"), ("trigger", "cause-3"), ("acknowledge", "cause-3")]
    state, made, _ = drive(scene)
    assert pages(made) == [("trigger", "inc-1"), ("acknowledge", "inc-1")]  # the ack of cause-3 reaches the page
    assert state.subjects["cause-3"].carried_by == "inc-1" and state.subjects["inc-1"].carries == "cause-3"
    end: list[tuple[float, NotifyRecord | None]] = [
        (T0 + 90, incident("inc-1", 3, status="resolved", severity="critical")), (T0 + 95, None),
        (T0 + 300, cause("cause-3", 3, children=["inc-3", "inc-1", "inc-2", "inc-4"], status="resolved"))]
    _, made, _ = drive(scene + end)
    assert pages(made)[-1] == ("resolve", "inc-1")
    assert {d.created_at for d in made if d.action == "resolve"} == {T0 + 300}  # with cause-3, not cause-1


def test_an_incident_that_paged_alone_then_joins_a_cause_that_had_not_paged_carries_it() -> None:
    """inc-5 paged alone (progress covered it); inc-6 started earlier, still held; stage 2 puts inc-5 into inc-6's
    group, announced as cause-6. Old rule: cause-6 hears from inc-6 only and pages: two triggers."""
    scene: list[tuple[float, NotifyRecord | None]] = [
        (T0 + 1, quiet("inc-6", T0 - 5)), (T0 + 1, started(incident("inc-5", severity="critical"), T0)),
        (T0 + 3, progress(0, T0 + 1)), (T0 + 3, progress(1, T0 + 1)),
        (T0 + 5, cause("cause-6", 2, children=["inc-6", "inc-5"])),
        (T0 + 5, first("inc-6", "cause-6")), (T0 + 6, joined("inc-5", "cause-6")), (T0 + 10, None)]
    _, made, _ = drive(scene, OLD)
    assert pages(made) == [("trigger", "inc-5"), ("trigger", "cause-6")]
    state, made, _ = drive(scene)
    assert pages(made) == [("trigger", "inc-5")]
    assert state.subjects["cause-6"].carried_by == "inc-5"


def test_a_cause_waits_for_every_child_it_names_but_not_beyond_the_cause_wait() -> None:
    """A child whose answer never comes (its partition's worker is down) delays the cause by `cause_wait_s` at
    most, as a missing first answer did."""
    grouped = cause("cause-1", 2, children=["inc-1", "inc-2"])
    scene: list[tuple[float, NotifyRecord | None]] = [(T0 + 6, grouped), (T0 + 6, first("inc-1", "cause-1"))]
    _, made, _ = drive([*scene, (T0 + 30, None)])
    assert pages(made) == []
    _, made, _ = drive([*scene, (T0 + 36.5, None)])
    assert pages(made) == [("trigger", "cause-1")]
    _, made, _ = drive([*scene, (T0 + 7, joined("inc-2", "cause-1"))])
    assert pages(made) == [("trigger", "cause-1")]  # both answered: at once


def test_a_second_carrying_child_is_freed_when_the_cause_is_carried_already() -> None:
    """Two children paged alone before stage 2 grouped them (both late): the first answer carries the cause, the
    second child is told its page is its own (it resolves with itself). Both pages were out before the cause was
    known: what still pages twice (the prevention is the late rule, stage 2's side)."""
    scene: list[tuple[float, NotifyRecord | None]] = [
        (T0 + 1, incident("inc-1", severity="critical")), (T0 + 1, incident("inc-2", severity="critical")),
        (T0 + 3, progress(0, T0 + 1)), (T0 + 3, progress(1, T0 + 1)),
        (T0 + 5, cause("cause-1", 2, children=["inc-1", "inc-2"])),
        (T0 + 5, first("inc-1", "cause-1")), (T0 + 6, joined("inc-2", "cause-1")),
        (T0 + 9, incident("inc-2", 3, status="resolved", severity="critical"))]
    state, made, handovers = drive(scene)
    assert pages(made) == [("trigger", "inc-1"), ("trigger", "inc-2"), ("resolve", "inc-2")]
    assert [(h.kind, h.child_id, h.carried) for h in handovers] == [
        ("answer", "inc-1", True), ("update", "inc-1", False), ("answer", "inc-2", True), ("closed", "inc-2", False)]
    assert state.subjects["cause-1"].carried_by == "inc-1" and state.subjects["inc-2"].carries is None


LATE_OFF = replace(POLICY, late_waits=False)


def late_progress(*late: str, at: float = T0 + 30) -> Progress:
    """A progress of both routing partitions that names children placed late."""
    return Progress(decided={0: at, 1: at}, emitted_at=at, late=list(late))


def test_an_incident_first_seen_behind_the_progress_waits_until_stage2_places_it_then_joins_without_a_page() -> None:
    """cause-1 (inc-1, inc-2) paged. Progress reached T0+30; then inc-9, whose first alert is at T0+10 (its source
    came back after the idle advance), arrives: old rule, progress covers it, it pages alone at once, and stage 2
    then puts it into cause-1: two pages for one fault. New: it waits; stage 2's assignment groups it; the
    progress that names it placed finds it grouped: no page."""
    scene: list[tuple[float, NotifyRecord | None]] = [
        (T0 + 5, cause("cause-1", 2, children=["inc-1", "inc-2"])),
        (T0 + 5, first("inc-1", "cause-1")), (T0 + 5, joined("inc-2", "cause-1")),
        (T0 + 31, late_progress()),
        (T0 + 40, started(incident("inc-9", severity="critical"), T0 + 10)),
        (T0 + 41, joined("inc-9", "cause-1")), (T0 + 41, late_progress("inc-9", at=T0 + 40)), (T0 + 45, None)]
    _, made, _ = drive(scene, LATE_OFF)
    assert pages(made) == [("trigger", "cause-1"), ("trigger", "inc-9")]
    state, made, _ = drive(scene)
    assert pages(made) == [("trigger", "cause-1")]
    assert status_of(state.subjects["inc-9"], POLICY) == "grouped"


def test_a_late_incident_stage2_placed_alone_pages_when_the_progress_names_it() -> None:
    scene: list[tuple[float, NotifyRecord | None]] = [
        (T0 + 31, late_progress()), (T0 + 40, started(incident("inc-9", severity="critical"), T0 + 10)),
        (T0 + 40.5, late_progress(at=T0 + 35)), (T0 + 41, None)]
    state, made, _ = drive(scene)
    assert pages(made) == []  # covered, but not named: stage 2 has not placed it yet
    assert state.subjects["inc-9"].late
    state, made, _ = drive([*scene, (T0 + 42, late_progress("inc-9", at=T0 + 35))])
    assert [(d.action, d.subject_id, d.created_at) for d in made if d.receiver == "oncall"] == [
        ("trigger", "inc-9", T0 + 42)]
    assert not state.subjects["inc-9"].late


def test_a_late_incident_never_named_still_pages_after_the_cause_wait() -> None:
    """Stage 2 stopped, or the progress that named it was lost: a stopped stage 2 never hides an outage."""
    scene: list[tuple[float, NotifyRecord | None]] = [
        (T0 + 31, late_progress()), (T0 + 40, started(incident("inc-9", severity="critical"), T0 + 10))]
    _, made, _ = drive([*scene, (T0 + 69, None)])
    assert pages(made) == []
    _, made, _ = drive([*scene, (T0 + 70.5, None)])
    assert pages(made) == [("trigger", "inc-9")]


def test_an_incident_first_seen_before_the_progress_covers_it_is_not_late() -> None:
    """The usual order (the incident, then the progress that covers it) pages at that progress, as before."""
    scene: list[tuple[float, NotifyRecord | None]] = [
        (T0 + 1, incident("inc-1", severity="critical")), (T0 + 3, late_progress(at=T0 + 2))]
    state, made, _ = drive(scene)
    assert pages(made) == [("trigger", "inc-1")] and not state.subjects["inc-1"].late


UPDATES_OFF = replace(POLICY, update_carried=False)


def test_updates_a_carrying_page_says_what_its_cause_is_and_changes_with_it_never_as_a_new_page() -> None:
    """inc-1 paged alone; cause-1 (inc-1, inc-2) takes its page over. A person reading inc-1's PagerDuty alert or
    Slack thread learns it is now the page of cause-1, with its summary and children (a trigger with the same
    dedup key: added to the open alert's log, not a new page), again when a third child joins, not when only the
    alert count moves. Off (the old rule): nothing, the page keeps showing inc-1 alone."""
    scene: list[tuple[float, NotifyRecord | None]] = [
        (T0 + 1, incident("inc-1", severity="critical")), (T0 + 7, progress(0, T0 + 2)),
        (T0 + 7, progress(1, T0 + 2)),
        (T0 + 66, cause("cause-1", 2, children=["inc-1", "inc-2"], services=["checkout", "db"])),
        (T0 + 66, joined("inc-2", "cause-1")), (T0 + 66, first("inc-1", "cause-1")),
        (T0 + 80, cause("cause-1", 3, children=["inc-1", "inc-2"], services=["checkout", "db"], alerts=9)),
        (T0 + 90, cause("cause-1", 4, children=["inc-1", "inc-2", "inc-3"], services=["checkout", "db", "api"]))]
    _, made, _ = drive(scene, UPDATES_OFF)
    assert [d.action for d in made] == ["trigger", "trigger"]  # oncall and chat, inc-1's own
    state, made, _ = drive(scene)
    assert [(d.receiver, d.action, d.created_at) for d in made if d.action == "update"] == [
        ("oncall", "update", T0 + 66), ("chat", "update", T0 + 66), ("oncall", "update", T0 + 90),
        ("chat", "update", T0 + 90)]
    first_update, _, last_update, last_chat = [json.loads(d.body) for d in made if d.action == "update"]
    assert first_update["event_action"] == "trigger" and first_update["dedup_key"] == "inc-1"
    summary = first_update["payload"]["summary"]
    assert summary.startswith("cause across checkout, db") and "2 incidents" in summary
    assert "(paged first as checkout/5xx" in summary
    assert first_update["payload"]["custom_details"]["cause"]["children"] == ["inc-1", "inc-2"]
    assert "3 incidents" in last_update["payload"]["summary"]
    assert last_chat["text"].startswith("*[NOW THE PAGE OF cause-1]* cause across api, checkout, db") or \
        last_chat["text"].startswith("*[NOW THE PAGE OF cause-1]* cause across checkout, db, api")
    assert state.subjects["inc-1"].cause_facts is not None
    resolved = [(T0 + 120, cause("cause-1", 5, children=["inc-1", "inc-2", "inc-3"], status="resolved")),
                (T0 + 121, incident("inc-1", 3, status="resolved", severity="critical"))]
    _, made, _ = drive(scene + resolved)
    assert [d.action for d in made if d.receiver == "oncall"] == ["trigger", "update", "update", "resolve"]


def test_a_cause_that_paged_itself_merged_into_one_that_had_not_hands_its_page_on() -> None:
    """cause-1 (inc-1, inc-2) paged by itself; inc-3 started earlier, still held, is the first child of the older
    group cause-1 folds into (cause-3). Old rule: cause-1's page resolves while the fault goes on, and cause-3 pages
    anew: two triggers. New: inc-1 and inc-2 answer cause-3 that they moved from cause-1, so cause-3 waits for
    cause-1's word too; cause-1's page carries cause-3 (no trigger for cause-3, cause-1's resolve waits for it)."""
    late_start = 9.0
    scene: list[tuple[float, NotifyRecord | None]] = [
        (T0 + 1, quiet("inc-3", T0 - 10)),
        (T0 + 10, started(incident("inc-1", severity="critical"), T0 + late_start)),
        (T0 + 10, started(incident("inc-2", severity="critical"), T0 + late_start)),
        (T0 + 12, cause("cause-1", 1, children=["inc-1", "inc-2"])),
        (T0 + 12, first("inc-1", "cause-1")), (T0 + 12, joined("inc-2", "cause-1")),
        (T0 + 22, cause("cause-3", 2, children=["inc-3", "inc-1", "inc-2", "inc-4"])),
        (T0 + 22, first("inc-3", "cause-3")), (T0 + 22, joined("inc-4", "cause-3")),
        (T0 + 23, merged("inc-1", "cause-3", "cause-1")), (T0 + 23, merged("inc-2", "cause-3", "cause-1")),
        (T0 + 24, cause("cause-1", 2, children=["inc-1", "inc-2"], status="merged", merged_into="cause-3")),
        (T0 + 40, None), (T0 + 60, Acknowledgement(incident_id="cause-3", who="ana", at=T0 + 60))]
    _, made, _ = drive(scene, OLD)
    assert pages(made) == [("trigger", "cause-1"), ("trigger", "cause-3"), ("resolve", "cause-1"),
                           ("acknowledge", "cause-3")]
    state, made, _ = drive(scene)
    assert pages(made) == [("trigger", "cause-1"), ("acknowledge", "cause-1")]
    assert state.subjects["cause-3"].carried_by == "cause-1" and state.subjects["cause-1"].carries == "cause-3"
    end: list[tuple[float, NotifyRecord | None]] = [
        (T0 + 300, cause("cause-3", 3, children=["inc-3", "inc-1", "inc-2", "inc-4"], status="resolved"))]
    _, made, _ = drive(scene + end)
    assert pages(made)[-1] == ("resolve", "cause-1")
    assert {d.created_at for d in made if d.action == "resolve"} == {T0 + 300}  # with cause-3
