"""Stage 1's dense-storm gap (`CorrelationConfig.dense_alerts`, issue 17's eleventh round, on by default): a storm
whose rate is well known ends below min_gap, so the same symptom failing again a minute or two later opens a new
incident."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from correlator.config import DEFAULT_CONFIG, CorrelationConfig
from correlator.models import Alert
from correlator.records import AlertRecord
from correlator.replay import replay
from correlator.windows import continuation_gap

from .test_engine_properties import final_groups, groups_across_a_restart, jitter_within_lateness, streams

T0 = 1_780_000_000.0
OFF = replace(DEFAULT_CONFIG, dense_alerts=0)
"""The rule before (what `dense_alerts=0` gives back)."""


def test_the_default_is_on_with_the_chosen_figures() -> None:
    assert (DEFAULT_CONFIG.dense_alerts, DEFAULT_CONFIG.dense_factor, DEFAULT_CONFIG.dense_floor_s) == (25, 8.0, 90.0)  # seventeenth round


def test_a_dense_storm_has_a_gap_below_min_gap_and_a_sparse_one_keeps_it() -> None:
    # 40 alerts an interval of 5 s apart: the rule before bridges min_gap (180 s), the dense rule 90 s
    assert continuation_gap(T0, T0 + 39 * 5, 40, OFF) == 180.0
    assert continuation_gap(T0, T0 + 39 * 5, 40, DEFAULT_CONFIG) == 90.0
    assert continuation_gap(T0, T0 + 39 * 15, 40, DEFAULT_CONFIG) == 120.0  # every 15 s: 8 x 15 s
    assert continuation_gap(T0, T0 + 39 * 30, 40, DEFAULT_CONFIG) == 180.0  # every 30 s: never more than before
    assert continuation_gap(T0, T0 + 23 * 5, 24, DEFAULT_CONFIG) == 180.0  # fewer alerts than dense_alerts


def _storm(start: float, count: int, every: float, tag: str) -> list[Alert]:
    return [Alert(fingerprint=f"{tag}-{i}", service="svc4", symptom="HighLatency", starts_at=start + i * every)
            for i in range(count)]


def test_the_same_symptom_failing_again_after_a_dense_storm_opens_a_new_incident() -> None:
    # a fault alerting every 5 s for 200 s, then the same root and symptom again 120 s after its last alert
    first = _storm(T0, 41, 5.0, "a")
    again = _storm(T0 + 200 + 120, 21, 5.0, "b")
    before = replay(first + again, OFF)
    assert [i.alert_count for i in before.incidents] == [62]  # glued: no stage-2 rule can undo it
    after = replay(first + again, DEFAULT_CONFIG)
    assert [sorted(i.members) for i in after.incidents] == [sorted(a.fingerprint for a in first),
                                                          sorted(a.fingerprint for a in again)]


def test_a_steady_storm_with_poisson_pauses_stays_one_incident() -> None:
    rng = random.Random(7)
    t, alerts = T0, []
    for i in range(120):  # a 5 s mean interval over ten minutes, pauses as Poisson gives them
        alerts.append(Alert(fingerprint=f"s-{i}", service="svc4", symptom="HighLatency", starts_at=t))
        t += rng.expovariate(1 / 5.0)
    assert len(replay(alerts, DEFAULT_CONFIG).incidents) == 1


def test_dense_alerts_below_rate_alerts_is_refused() -> None:
    with pytest.raises(ValueError, match="dense_alerts"):
        CorrelationConfig(dense_alerts=2)


# The engine's invariants with the rule biting: the property tests' streams step 0-5 s between alerts, so a
# dense rule of 4 alerts, factor 2, floor 10 s ends storms the rule before would bridge.
SMALL = CorrelationConfig(window_s=120, allowed_lateness_s=30.0, update_interval_s=10, resolve_hold_s=20,
                          max_alerts=15, max_lifetime_s=900, retention_s=300, dense_alerts=0)
SMALL_DENSE = replace(SMALL, dense_alerts=4, dense_factor=2.0, dense_floor_s=10.0)


@settings(max_examples=150, deadline=None)
@given(streams(), st.integers(0, 10_000))
def test_with_the_dense_rule_shuffling_within_the_lateness_changes_nothing(alerts: list[AlertRecord],
                                                                           seed: int) -> None:
    shuffled = jitter_within_lateness(alerts, seed)  # the properties' lateness: 30 s, as SMALL's
    in_order = final_groups(alerts, config=SMALL_DENSE)
    assert final_groups(shuffled, config=SMALL_DENSE) == in_order
    assert final_groups(shuffled, batch=7, config=SMALL_DENSE) == in_order


@settings(max_examples=100, deadline=None)
@given(streams(), st.integers(0, 200))
def test_with_the_dense_rule_a_restart_on_recovered_state_gives_the_same_incidents(alerts: list[AlertRecord],
                                                                                   cut: int) -> None:
    assert groups_across_a_restart(alerts, cut, SMALL_DENSE) == final_groups(alerts, config=SMALL_DENSE)


def test_the_property_streams_are_split_by_the_dense_rule() -> None:
    """The two properties above test the rule itself: on a stream of them it changes the incidents."""
    alerts = [AlertRecord(f"k#{i}", "api/5xx", "firing", "warning", T0 + i) for i in range(8)]
    alerts += [AlertRecord(f"k#{i}", "api/5xx", "firing", "warning", T0 + 30 + i) for i in range(8, 12)]
    assert len(set(final_groups(alerts, config=SMALL).values())) == 1
    assert len(set(final_groups(alerts, config=SMALL_DENSE).values())) == 2
