"""Time you can trust: the one rule that keeps a wrong clock from moving event time.

Event time drives every window, expiry and resolution, and the watermark is the latest event time seen, so one
alert dated in the future (a source whose clock is wrong, `9999-12-31`, epoch seconds typed in milliseconds)
would jump a partition's event time forward and open-and-expire every incident after it: a person would never
see them. The rule, applied to every alert against the time it arrived (passed in, never read here):

- **Future-dated**: a `starts_at` or `ends_at` more than `max_future_skew_s` (5 min) ahead of its arrival, or
  not a number, is clamped to the arrival time and marked with the label `aiops_time_clamped` (its original
  value). It still opens or joins an incident a person sees, at the time it reached us; it is never hidden.
  Within the skew an alert is taken at its word: that is clock drift, and the most it can move event time.
- **Still firing, long**: a firing alert (no `ends_at`, or one within the horizon) that started more than
  `horizon_s` (7 days) before its arrival is a source re-sending what is firing now (Alertmanager does, every
  `repeat_interval`). It is correlated at its arrival, with the label `aiops_firing_since` (its original
  start), and never moves event time: the engine places it at no later than its partition's event time
  (`Correlator.ingest`), so a stale record replayed at a later arrival joins the time it finds, and re-sends of
  one held occurrence are duplicates, not new pages (`Correlator._apply`).
- **Too old**: any other alert whose event time (`ends_at` of a resolution, else `starts_at`) lies more than
  `horizon_s` before its arrival is refused with reason `too_old` (dead-lettered, counted, redrivable): it
  could not move event time anyway (the watermark only moves forward), and an absurd past (a device whose
  clock reset to 1970) stays out of the incidents. Seven days is Kafka's default retention: a backfill or
  replay through the live pipeline of anything the topics could still hold is correlated by its own time, and
  far beyond `stale_after` (24 h), so nothing older could be shown as an open incident anyway.

`aiops replay` has no arrival times: see `guard_replay` for how a recorded file is given them.
Also here: the static range every epoch-seconds field is checked against (alerts and tickets alike).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Final, Literal

if TYPE_CHECKING:  # models imports `epoch_problem` from here for tickets
    from .models import Alert

__all__ = [
    "CLAMP_LABEL",
    "DEFAULT_GUARD",
    "FIRING_SINCE_LABEL",
    "MAX_EPOCH",
    "REPLAY_LOOKAHEAD",
    "Guarded",
    "TimeGuard",
    "Verdict",
    "arrival_of",
    "epoch_problem",
    "guard_alerts",
    "guard_replay",
    "verdict",
]

MAX_EPOCH: Final = 1e11
"""Epoch seconds at or above this (year 5138) are a timestamp in milliseconds or garbage, for any field."""

CLAMP_LABEL: Final = "aiops_time_clamped"
"""Label a clamped alert carries, with the original value(s), so the incident shows why its time is ours."""

FIRING_SINCE_LABEL: Final = "aiops_firing_since"
"""Label of a firing alert that started before the horizon, with its original start: correlated at its arrival,
it moves no event time and its re-sends are duplicates (see the module's rule)."""

REPLAY_LOOKAHEAD: Final = 8
"""Records after an alert whose event times, with the wall clock's, stand in for its arrival in a replay (their
median: nine values, so that up to four bad ones cannot sway it)."""

Verdict = Literal["ok", "future", "too_old"]


@dataclass(frozen=True, slots=True, kw_only=True)
class TimeGuard:
    """How far an alert's time may stray from its arrival: `max_future_skew_s` ahead, `horizon_s` behind (None: no
    horizon, as in a replay of an old recording)."""

    max_future_skew_s: float = 300.0
    horizon_s: float | None = 7 * 86400.0

    def __post_init__(self) -> None:
        if not self.max_future_skew_s >= 0:
            raise ValueError("max_future_skew_s must not be negative")
        if self.horizon_s is not None and not self.horizon_s > 0:
            raise ValueError("horizon_s must be positive (None disables it)")


DEFAULT_GUARD = TimeGuard()


def epoch_problem(seconds: float) -> str | None:
    """Why a number cannot be epoch seconds (not finite, negative, or milliseconds), or None when it can."""
    if not math.isfinite(seconds) or seconds < 0:
        return f"invalid time {seconds!r}: epoch seconds must be finite and not negative"
    if seconds >= MAX_EPOCH:
        return f"invalid time {seconds!r}: epoch seconds expected, this looks like milliseconds"
    return None


def verdict(t: float, arrival: float, guard: TimeGuard = DEFAULT_GUARD) -> Verdict:
    """What the rule says of one time against its arrival: trusted, future-dated (clamp it) or too old (refuse it)."""
    if t - arrival <= guard.max_future_skew_s:  # False for NaN and +inf: both are future-dated
        if guard.horizon_s is not None and t < arrival - guard.horizon_s:
            return "too_old"
        return "ok"
    return "future"


def arrival_of(broker_time: float | None, now: float) -> float:
    """An alert's arrival: the broker's timestamp of its raw record (the same on every re-read after a crash, so a
    clamp gives the same time and ids), but never later than the wall clock (a producer may set any timestamp)."""
    if broker_time is None or not broker_time > 0:
        return now
    return min(broker_time, now)


@dataclass(slots=True)
class Guarded:
    """Alerts after the rule: those to correlate (clamped and long-firing ones marked), and those refused as too
    old."""

    alerts: list[Alert] = field(default_factory=list)
    clamped: int = 0
    too_old: list[Alert] = field(default_factory=list)
    long_firing: int = 0

    def refusal(self) -> str:
        """The dead-letter reason for the too-old alerts of one record, naming the first few."""
        old = self.too_old
        named = ", ".join(f"{a.fingerprint} at {_shown(_event_time(a))}" for a in old[:3])
        more = f" and {len(old) - 3} more" if len(old) > 3 else ""
        return (f"too old: {len(old)} alert(s) dated before the event-time horizon ({named}{more}); "
                f"the record's other {len(self.alerts)} alert(s) were correlated")


def guard_alerts(alerts: Sequence[Alert], arrival: float, guard: TimeGuard = DEFAULT_GUARD) -> Guarded:
    """The rule applied to every alert of one record that arrived at `arrival` (what normalize runs per record)."""
    out = Guarded()
    newest = arrival + guard.max_future_skew_s
    oldest = -math.inf if guard.horizon_s is None else arrival - guard.horizon_s
    for alert in alerts:
        t, ends = alert.event_time, alert.ends_at
        if oldest <= t and alert.starts_at <= newest and (ends is None or ends <= newest):
            out.alerts.append(alert)  # the common case, inlined: nothing to adjust
            continue
        if verdict(t, arrival, guard) == "too_old":
            if alert.status == "resolved" or (ends is not None and ends < oldest):
                out.too_old.append(alert)
                continue
            out.long_firing += 1  # still firing: the source re-sends it now
            alert = alert.model_copy(update={"starts_at": arrival, "labels": {
                **alert.labels, FIRING_SINCE_LABEL: _shown(alert.starts_at)}})
        clamped = _clamped(alert, arrival, arrival, guard)
        out.clamped += clamped is not alert
        out.alerts.append(clamped)
    return out


def guard_replay(alerts: Sequence[Alert], now: float, guard: TimeGuard = DEFAULT_GUARD) -> Guarded:
    """The rule for a recorded file, which has no arrival times; the horizon is off (a recording is old by nature).

    The file is taken in arrival order. An alert dated more than the skew ahead of everything before it (the
    recording's clock) is judged against the median of the event times of the next `REPLAY_LOOKAHEAD` records
    (they arrived after it, so an honest alert started before them) and of `now`, the wall clock (a recording
    is not from the future): a median, so that one bad neighbour cannot sway it. A future-dated one is placed
    at the latest event time of the alerts before it, where the recording's clock stood when it arrived, so it
    moves event time not at all (the first record of a file: at the earliest of those after it). The limit:
    near the end of a file, a time between the recording and `now` is taken at its word.
    """
    replay_guard = TimeGuard(max_future_skew_s=guard.max_future_skew_s, horizon_s=None)
    skew = guard.max_future_skew_s
    out = Guarded()
    clock = -math.inf
    for i, alert in enumerate(alerts):
        t = _event_time(alert)
        if t <= clock + skew and alert.starts_at <= clock + skew:
            out.alerts.append(alert)  # the common case: within the skew of the recording's clock, as live
            clock = max(clock, t)
            continue
        # The wall clock votes too: near the end of a file one bad record must not be the median alone.
        ahead = sorted([*(_event_time(a) for a in alerts[i + 1:i + 1 + REPLAY_LOOKAHEAD]), now])
        reference = ahead[len(ahead) // 2]
        # No clock yet (the first record): the earliest that follows, which moves event time no further either.
        start = clock if clock > -math.inf else ahead[0]
        clamped = _clamped(alert, reference, start, replay_guard)
        out.clamped += clamped is not alert
        out.alerts.append(clamped)
        clock = max(clock, _event_time(clamped))
    return out


def _event_time(alert: Alert) -> float:
    return alert.event_time


def _clamped(alert: Alert, reference: float, clamp_to: float, guard: TimeGuard) -> Alert:
    """The alert with each future-dated time set to `clamp_to` and marked; the same object when none is."""
    changes: dict[str, float] = {}
    if verdict(alert.starts_at, reference, guard) == "future":
        changes["starts_at"] = clamp_to
    if alert.ends_at is not None and verdict(alert.ends_at, reference, guard) == "future":
        changes["ends_at"] = clamp_to
    if not changes:
        return alert
    mark = ",".join(f"{name}={_shown(getattr(alert, name))}" for name in changes)
    return alert.model_copy(update={**changes, "labels": {**alert.labels, CLAMP_LABEL: mark}})


def _shown(t: float) -> str:
    """A time as an on-call engineer reads it: ISO 8601 UTC when it is one, else the number."""
    try:
        return datetime.fromtimestamp(t, timezone.utc).isoformat().replace("+00:00", "Z")
    except (OverflowError, OSError, ValueError):
        return repr(t)
