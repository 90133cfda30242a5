"""Admission control's pure rule (correlator/backlog.py): when the backlog sheds, when it resumes, what it
answers while it knows nothing."""

from __future__ import annotations

import pytest

from correlator.backlog import BacklogLimits, BacklogMeter, BacklogSample

RAW, ALERTS = "alerts.raw", "alerts"


def sample(at: float, raw_lag: int, raw_done: int, alerts_lag: int = 0, alerts_done: int = 0) -> BacklogSample:
    return BacklogSample(at, {RAW: raw_lag, ALERTS: alerts_lag}, {RAW: raw_done, ALERTS: alerts_done})


def test_records_limit_sheds_above_and_resumes_below_the_resume_ratio() -> None:
    meter = BacklogMeter(BacklogLimits(records=100, seconds=0))
    assert not meter.observe(sample(0, 100, 0)).shed  # at the limit: still accepted
    shed = meter.observe(sample(1, 60, 0, alerts_lag=41))  # both topics count
    assert shed.shed and shed.records == 101 and "101 records" in shed.reasons[0]
    assert meter.observe(sample(2, 90, 50)).shed  # under the limit but above 80% of it: still shedding
    back = meter.observe(sample(3, 80, 100))
    assert not back.shed and back.reasons == ()


def test_seconds_limit_uses_the_measured_drain_rate() -> None:
    meter = BacklogMeter(BacklogLimits(records=0, seconds=10, rate_window=10))
    meter.observe(sample(0, 500, 0))
    verdict = meter.observe(sample(5, 500, 250))  # drained 50 records/s: 500 left is 10 s
    assert verdict.rates[RAW] == pytest.approx(50.0) and verdict.seconds == pytest.approx(10.0)
    assert not verdict.shed
    verdict = meter.observe(sample(10, 1100, 500))  # still 50/s, 1,100 left: 22 s
    assert verdict.shed and verdict.seconds == pytest.approx(22.0)
    assert verdict.retry_after == 14  # 22 s down to 80% of the 10 s limit


def test_a_backlog_that_does_not_move_sheds_after_the_limit() -> None:
    """No consumer drains (agents down, group never started): how long it stood still is the backlog's age."""
    meter = BacklogMeter(BacklogLimits(records=0, seconds=30))
    assert not meter.observe(sample(0, 5, 0)).shed
    assert not meter.observe(sample(20, 5, 0)).shed
    stalled = meter.observe(sample(31, 5, 0))
    assert stalled.shed and stalled.seconds == pytest.approx(31.0)
    assert stalled.reasons == ("backlog on alerts.raw has not moved for 31 s, above the limit of 30 s",)
    assert not meter.observe(sample(32, 0, 5)).shed  # it moved and nothing is left


def test_a_stall_counts_from_when_the_backlog_appeared_not_from_a_quiet_spell() -> None:
    """An hour with nothing to do, then one body: offsets have not moved for an hour, but nothing was stalled."""
    meter = BacklogMeter(BacklogLimits(records=0, seconds=30))
    for at in range(0, 3600, 60):
        meter.observe(sample(at, 0, 7))
    assert not meter.observe(sample(3600, 1, 7)).shed
    assert meter.observe(sample(3601, 1, 7)).seconds == pytest.approx(1.0)
    assert meter.observe(sample(3631, 1, 7)).shed  # and that body then waits 31 s with nothing draining


def test_no_backlog_never_sheds_however_long_nothing_moves() -> None:
    meter = BacklogMeter(BacklogLimits(records=1, seconds=1))
    for at in range(0, 100, 10):
        assert not meter.observe(sample(at, 0, 7)).shed


def test_unknown_backlog_never_sheds() -> None:
    meter = BacklogMeter(BacklogLimits(records=10, seconds=0, max_age=5))
    assert not meter.current(0).known and not meter.current(0).shed
    assert meter.observe(sample(0, 50, 0)).shed
    assert meter.current(4).shed
    old = meter.current(6)  # the probe stopped answering: a guess must not refuse alerts
    assert not old.known and not old.shed


def test_offsets_going_back_start_the_rate_afresh() -> None:
    """An emptied in-memory broker or a reset group: committed offsets fall; no negative rate, no false stall."""
    meter = BacklogMeter(BacklogLimits(records=0, seconds=20, rate_window=100))
    meter.observe(sample(0, 10, 1000))
    meter.observe(sample(10, 10, 2000))
    after = meter.observe(sample(20, 10, 5))
    assert after.rates == {} and not after.shed and after.seconds == 0.0


def test_limits_off_never_shed() -> None:
    limits = BacklogLimits(records=0, seconds=0)
    meter = BacklogMeter(limits)
    assert not limits.enabled
    assert not meter.observe(sample(0, 10**9, 0)).shed
    assert not meter.observe(sample(1000, 10**9, 0)).shed
