"""A flap rejoins its incident (`CorrelationConfig.rejoin_flaps`, issue 17's twelfth round, on by default): a member that resolved and
fires again past its incident's gap joins that incident instead of opening one of its own, while the same symptom
recurring with new alerts after a dense storm still opens a new incident."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from correlator.config import DEFAULT_CONFIG
from correlator.records import AlertRecord
from correlator.replay import replay
from correlator.windows import rejoins

from .test_engine_properties import final_groups, groups_across_a_restart, jitter_within_lateness, streams
from .test_windows_dense import SMALL, SMALL_DENSE

T0 = 1_780_000_000.0
KEY = "svc4/HighLatency"
OFF = replace(DEFAULT_CONFIG, rejoin_flaps=False)
ON = replace(DEFAULT_CONFIG, rejoin_flaps=True)


def _firing(fp: str, t: float) -> AlertRecord:
    return AlertRecord(fp, KEY, "firing", "warning", t)


def _resolved(fp: str, start: float, end: float) -> AlertRecord:
    return AlertRecord(fp, KEY, "resolved", "warning", start, end)


def _storm(count: int = 40, every: float = 5.0) -> list[AlertRecord]:
    """A dense storm (the dense-storm gap ends it 90 s after its last alert), every member still firing."""
    return [_firing(f"a-{i}", T0 + i * every) for i in range(count)]


def _in_order(records: list[AlertRecord]) -> list[AlertRecord]:
    return sorted(records, key=lambda a: a.ends_at or a.starts_at)


def _members(records: list[AlertRecord], config: object) -> list[list[str]]:
    report = replay(records, config)  # type: ignore[arg-type]
    return [sorted(set(i.members)) for i in report.incidents]


def test_the_default_rejoins_flaps() -> None:
    assert DEFAULT_CONFIG.rejoin_flaps


def test_the_rule_is_a_flag_of_its_own_and_only_where_gaps_are_quiet_gaps() -> None:
    assert rejoins(T0, T0 + 600, ON) and not rejoins(T0, T0 + 600.5, ON)  # within window_s of the last alert
    assert not rejoins(T0, T0 + 10, OFF)
    assert not rejoins(T0, T0 + 10, replace(ON, mode="tumbling"))


def test_a_member_flapping_after_a_dense_storm_rejoins_it() -> None:
    # a member resolves 100 s into the storm and fires again 150 s after the storm's last alert (past its 90 s gap)
    storm = _storm()
    last = storm[-1].starts_at
    records = _in_order([*storm, _resolved("a-3", T0 + 15, T0 + 100), _firing("a-3", last + 150)])
    assert _members(records, OFF) == [sorted(a.fingerprint for a in storm), ["a-3"]]  # the rule before: paged twice
    assert _members(records, ON) == [sorted(a.fingerprint for a in storm)]
    rejoined = replay(records, ON).incidents[0]
    assert rejoined.alert_count == 41  # the re-fire is counted, as a flap within the gap is
    assert (rejoined.first_seen, rejoined.last_seen) == (T0, last)  # but the span is the storm's: stage 2's reach


def test_the_same_symptom_recurring_with_new_alerts_still_opens_a_new_incident() -> None:
    # the dense-storm gap's case: new occurrences 150 s after the storm, none of them a member that resolved
    storm = _storm()
    again = [_firing(f"b-{i}", storm[-1].starts_at + 150 + 5 * i) for i in range(10)]
    records = _in_order([*storm, _resolved("a-3", T0 + 15, T0 + 100), *again])
    assert _members(records, ON) == [sorted(a.fingerprint for a in storm), sorted(a.fingerprint for a in again)]
    # and a flap inside the recurrence's span rejoins the storm, not the recurrence that the rule before gave it
    flapped = _in_order([*records, _firing("a-3", again[2].starts_at + 1)])
    assert _members(flapped, OFF)[1] == sorted(["a-3", *(a.fingerprint for a in again)])
    assert _members(flapped, ON) == _members(records, ON)
    assert [(i.first_seen, i.last_seen) for i in replay(flapped, ON).incidents] == [
        (i.first_seen, i.last_seen) for i in replay(records, ON).incidents]


def test_a_re_fire_without_a_resolution_is_no_flap() -> None:
    # a source that sends no resolutions: a later startsAt of a member is placed like any new alert
    storm = _storm()
    records = [*storm, _firing("a-3", storm[-1].starts_at + 150)]
    assert _members(records, ON) == _members(records, OFF) == [sorted(a.fingerprint for a in storm), ["a-3"]]


def test_a_flap_after_its_incident_resolved_or_past_the_window_opens_a_new_one() -> None:
    storm = _storm(count=3, every=5.0)
    ended = [_resolved(a.fingerprint, a.starts_at, T0 + 30) for a in storm]
    # every member resolved at T0 + 30; the hold (60 s) passes before the re-fire at T0 + 200
    records = _in_order([*storm, *ended, _firing("a-1", T0 + 200)])
    assert _members(records, ON) == [["a-0", "a-1", "a-2"], ["a-1"]]
    # a member still firing keeps the incident open, but a re-fire later than window_s after its last alert
    records = _in_order([*storm, _resolved("a-1", T0 + 5, T0 + 30), _firing("a-1", T0 + 10 + 601)])
    assert _members(records, ON) == [["a-0", "a-1", "a-2"], ["a-1"]]
    records = _in_order([*storm, _resolved("a-1", T0 + 5, T0 + 30), _firing("a-1", T0 + 10 + 599)])
    assert _members(records, ON) == [["a-0", "a-1", "a-2"]]


def test_a_flap_within_the_resolve_hold_rejoins() -> None:
    # resolve_hold_s exists to wait for a re-fire: every member resolved, the re-fire within the hold
    storm = _storm(count=3, every=5.0)
    ended = [_resolved(a.fingerprint, a.starts_at, T0 + 200) for a in storm]
    records = _in_order([*storm, *ended, _firing("a-1", T0 + 230)])
    assert _members(records, OFF) == [["a-0", "a-1", "a-2"], ["a-1"]]
    assert _members(records, ON) == [["a-0", "a-1", "a-2"]]


def test_the_lab_storm_has_no_flaps_so_its_incidents_hold() -> None:
    from pathlib import Path

    from stream.commands.replay import read_alerts

    lab = read_alerts(Path(__file__).resolve().parents[1] / "benchmarks" / "storms" / "lab-m32.ndjson")
    assert len(replay(lab, ON).incidents) == len(replay(lab, OFF).incidents) == 5
    hour = replace(ON, mode="continuation", window_s=3600.0)
    assert len(replay(lab, hour).incidents) == len(replay(lab, replace(hour, rejoin_flaps=False)).incidents) == 4


# The engine's invariants with the rule biting: the property streams re-fire fingerprints after resolving them. Their
# window (120 s) is no wider than their gaps, so the rule bites with the dense rule's short gaps, or a wider window.
DENSE_FLAPS = replace(SMALL_DENSE, rejoin_flaps=True)
WIDE_FLAPS = replace(SMALL, window_s=300.0, rejoin_flaps=True)  # SMALL's own 120 s window leaves the rule no room


@settings(max_examples=150, deadline=None)
@given(streams(), st.integers(0, 10_000))
def test_with_rejoining_flaps_shuffling_within_the_lateness_changes_nothing(alerts: list[AlertRecord],
                                                                            seed: int) -> None:
    shuffled = jitter_within_lateness(alerts, seed)
    for config in (DENSE_FLAPS, WIDE_FLAPS):
        in_order = final_groups(alerts, config=config)
        assert final_groups(shuffled, config=config) == in_order
        assert final_groups(shuffled, batch=7, config=config) == in_order


@settings(max_examples=100, deadline=None)
@given(streams(), st.integers(0, 200))
def test_with_rejoining_flaps_a_restart_on_recovered_state_gives_the_same_incidents(alerts: list[AlertRecord],
                                                                                   cut: int) -> None:
    for config in (DENSE_FLAPS, WIDE_FLAPS):
        assert groups_across_a_restart(alerts, cut, config) == final_groups(alerts, config=config)


def test_the_property_streams_are_changed_by_the_rule() -> None:
    """The two properties above test the rule itself: on streams of their kind it changes the incidents."""
    dense = [AlertRecord(f"api/5xx#{i}", "api/5xx", "firing", "warning", T0 + i) for i in range(5)]
    dense += [AlertRecord("api/5xx#1", "api/5xx", "resolved", "warning", T0 + 1, T0 + 5),
              AlertRecord("api/5xx#1", "api/5xx", "firing", "warning", T0 + 60)]  # past the dense gap (10 s)
    assert len(set(final_groups(dense, config=replace(DENSE_FLAPS, rejoin_flaps=False)).values())) == 2
    assert len(set(final_groups(dense, config=DENSE_FLAPS).values())) == 1
    wide = [AlertRecord("api/5xx#1", "api/5xx", "firing", "warning", T0),
            AlertRecord("api/5xx#2", "api/5xx", "firing", "warning", T0 + 1),
            AlertRecord("api/5xx#1", "api/5xx", "resolved", "warning", T0, T0 + 10),
            AlertRecord("api/5xx#1", "api/5xx", "firing", "warning", T0 + 250)]  # past min_gap (180 s)
    assert len(set(final_groups(wide, config=replace(WIDE_FLAPS, rejoin_flaps=False)).values())) == 2
    assert len(set(final_groups(wide, config=WIDE_FLAPS).values())) == 1
