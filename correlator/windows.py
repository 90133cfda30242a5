"""Window rules of stage-1 correlation: where an alert's window starts and whether an incident may absorb it.

The exact rule (DESIGN.md asks for it written down):

* Windows are tumbling, aligned to the epoch: an alert at event time t is in the window starting at
  floor(t / window) * window. An incident is named after the window of its first alert.
* `tumbling` mode: an incident absorbs an alert of its key iff the alert is in the incident's window.
* `quiet-gap` mode (default): an incident absorbs an alert of its key iff the alert's event time lies within
  the incident's gap of its span, first_seen - gap <= t <= last_seen + gap, where the gap follows the
  incident's own rate: gap = min(window, max(min_gap, gap_factor * (last_seen - first_seen) / (n - 1)))
  for an incident of n >= rate_alerts (3) alerts, min_gap for one of two alerts, and first_gap for a lone
  alert (nothing is known of its rate yet, so only an alert close behind it makes it a storm: a lone
  background alert minutes before a fault's burst of the same key is not glued onto it). Two alerts make
  one interval, not a rate: stretching the gap to 5 x a single interval let two background alerts minutes
  apart (a sparse key's noise) bridge up to the window and glue the next fault's burst onto them, so the
  fault's incident started minutes early, at the noise, and stage 2 grouped it apart from the rest of the
  fault (issue 17, fourth round, read on the development seed). Defaults: window 10 min, first_gap 90 s, min_gap 3 min,
  gap_factor 2.5 (5 until issue 17's session 31: a chain of sparse background alerts of one key, a minute or two
  apart, then bridged 5 x its interval and took the next fault's burst of that key, which stage 2 cannot undo;
  `benchmarks/stage1_windows.py` chose 2.5 on development data by a rule declared before its grid). So a
  storm whose alerts keep coming stays one incident however long it lasts and however many window
  boundaries it crosses, while the same symptom recurring after a pause that is long *for that storm*
  (a second fault minutes later) opens a new incident: a storm of an alert every 15 s ends after a
  min_gap (3 min) of quiet, a storm of an alert every 2 min after 5 min. Every figure of the rule is the
  incident's own (first and last alert, count), so it decides the same after a restart from a checkpoint.
  An incident of at least `dense_alerts` (25) alerts has a gap of at most max(dense_floor_s (90 s), dense_factor
  (8) x its mean interval), below min_gap for a dense storm: a storm of an alert every 5 s then ends after 90 s
  of quiet (the same symptom failing again a minute or two after a dense fault ended opens a new incident), one
  of an alert every 15 s after 120 s, one of an alert every 22.5 s or slower as before. dense_alerts 0: the rule
  before.
* A flap rejoins its incident (`rejoin_flaps`, on by default; False gives the rule before): a member that resolved
  and fires again (the same fingerprint, a later startsAt) joins the incident that holds it, whatever that
  incident's gap, while the incident is open (not resolved: some member still firing, or all resolved within
  resolve_hold_s, the hold that exists to wait for a re-fire) and the re-fire comes within `window` of its last
  alert (the longest quiet any incident bridges). Taken so (past the gap, or when a newer incident of the key would
  take it), it counts and is held like any occurrence but does not stretch the incident's span (first and last
  alert): the span is what the gap and stage 2's reach are measured from, and a member flapping minutes after its
  storm stopped says nothing of how far the fault reached; stretched, stage 2's choice for the next incident of its
  scope depended on whether it heard of the flap before deciding, so the stream and a replay named different
  parents. Without the rule a re-fire after the gap opens an incident of its own: the dense-storm gap ends a storm
  90 s after its last new alert while its members' flaps come minutes later (issue 17, twelfth round, the generated
  storms). A member's resolution is what tells a flap from the same symptom recurring in a new fault, whose alerts
  are new occurrences that never resolved in the old incident; a source that sends no resolutions never flaps.
* The key's background rate caps that gap: when an incident opens at t and its key opened other incidents (not
  successors after a cap) within background_s (1 h) before t, its gap is at most background_factor (0.1)
  times their mean spacing, (t - earliest of them) / their number. A key that fires every 5 min without a
  storm gets at most 30 s, so its steady background is not glued onto a fault's incident of the same key;
  a key quiet for the last hour has no cap. A successor after a cap keeps its predecessor's cap.
* `continuation` mode: the gap is always `window` (the rule before quiet-gap; a recurring symptom with
  pauses shorter than the window stays one incident however many faults it spans).
* Every mode: an incident stops absorbing once it holds `max_alerts` alerts, or once event time has moved
  `max_lifetime` past its first alert, or once it has resolved. The next incident of the key names it in
  `previous_id` only when it was stopped by one of the two caps (a continuation); an incident that went
  quiet or resolved is followed by a new occurrence that names nothing (stage 2 relates continuations first).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from .config import RATE_ALERTS, CorrelationConfig

__all__ = ["RATE_ALERTS", "window_start", "absorbs", "absorption_ends_at", "background_cap", "continuation_gap",
           "rejoins"]

_INF = float("inf")


def window_start(t: float, size: float) -> float:
    """Start of the tumbling window that holds event time `t`."""
    return float(math.floor(t / size) * size)


def background_cap(onsets: Iterable[float], t: float, config: CorrelationConfig) -> float:
    """The cap on the gap of an incident of a key opening at `t`, from the onsets of the key's earlier incidents.

    A key that keeps opening incidents at a steady background rate (an alert every few minutes that no storm
    explains) must not have that background glued onto a fault's incident: the gap is capped at
    background_factor times the mean spacing of the key's incident onsets within background_s before `t`
    (this one included). A key with no earlier incident in that span has no cap (inf).
    """
    if config.mode != "quiet-gap" or config.background_factor <= 0:
        return _INF
    horizon = t - config.background_s
    recent = [o for o in onsets if horizon <= o < t]
    if not recent:
        return _INF
    return config.background_factor * (t - min(recent)) / len(recent)


def continuation_gap(
    first_seen: float, last_seen: float, count: int, config: CorrelationConfig, cap: float = _INF,
) -> float:
    """The longest quiet time an incident of `count` alerts over [first_seen, last_seen] bridges (not tumbling)."""
    window = config.window_s
    if config.mode != "quiet-gap":
        return window
    if count < 2:
        return min(window, config.first_gap_s, cap)
    if count < config.rate_alerts:
        return min(window, config.min_gap_s, cap)
    mean = (last_seen - first_seen) / (count - 1)
    gap = min(window, cap, max(config.min_gap_s, config.gap_factor * mean))
    if config.dense_alerts and count >= config.dense_alerts:  # a well-known rate may end the storm below min_gap
        gap = min(gap, max(config.dense_floor_s, config.dense_factor * mean))
    return gap


def absorbs(
    first_seen: float, last_seen: float, count: int, win_start: float, t: float, config: CorrelationConfig,
    cap: float = _INF,
) -> bool:
    """Whether an incident of `count` alerts spanning [first_seen, last_seen] in window `win_start` may take `t`.

    Caps (size, lifetime, resolution) are checked by the caller; this is the time rule alone.
    """
    if config.mode == "tumbling":
        return win_start <= t < win_start + config.window_s
    gap = continuation_gap(first_seen, last_seen, count, config, cap)
    return first_seen - gap <= t <= last_seen + gap


def rejoins(last_seen: float, t: float, config: CorrelationConfig) -> bool:
    """Whether a member's re-fire at `t` after its resolution (a flap) rejoins its open incident whose last alert was
    at `last_seen`, past the incident's gap (`rejoin_flaps`). Caps and the incident's phase are checked by the caller."""
    return config.rejoin_flaps and config.mode != "tumbling" and t <= last_seen + config.window_s


def absorption_ends_at(
    first_seen: float, last_seen: float, count: int, win_start: float, config: CorrelationConfig, cap: float = _INF,
) -> float:
    """Event time after which no in-order alert can join the incident any more."""
    if config.mode == "tumbling":
        by_time = win_start + config.window_s
    else:
        by_time = last_seen + continuation_gap(first_seen, last_seen, count, config, cap)
    return min(by_time, first_seen + config.max_lifetime_s)
