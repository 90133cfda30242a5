"""Window rules of stage-1 correlation: where an alert's window starts and whether an incident may absorb it.

The exact rule (DESIGN.md asks for it written down):

* Windows are tumbling, aligned to the epoch: an alert at event time t is in the window starting at
  floor(t / window) * window. An incident is named after the window of its first alert.
* `tumbling` mode: an incident absorbs an alert of its key iff the alert is in the incident's window.
* `continuation` mode (default): an incident absorbs an alert of its key iff the alert's event time lies
  within `window` of the incident's span, i.e. first_seen - window <= t <= last_seen + window. So a storm
  whose alerts never pause longer than the window stays one incident however many boundaries it crosses,
  and a flare after a longer quiet spell is a new incident.
* Either way an incident stops absorbing once it holds `max_alerts` alerts, or once event time has moved
  `max_lifetime` past its first alert, or once it has resolved.
"""

from __future__ import annotations

import math

from .config import CorrelationConfig

__all__ = ["window_start", "absorbs", "absorption_ends_at"]


def window_start(t: float, size: float) -> float:
    """Start of the tumbling window that holds event time `t`."""
    return float(math.floor(t / size) * size)


def absorbs(first_seen: float, last_seen: float, win_start: float, t: float, config: CorrelationConfig) -> bool:
    """Whether an incident spanning [first_seen, last_seen] in window `win_start` may take an alert at `t`.

    Caps (size, lifetime, resolution) are checked by the caller; this is the time rule alone.
    """
    if config.mode == "tumbling":
        return win_start <= t < win_start + config.window_s
    return first_seen - config.window_s <= t <= last_seen + config.window_s


def absorption_ends_at(first_seen: float, last_seen: float, win_start: float, config: CorrelationConfig) -> float:
    """Event time after which no in-order alert can join the incident any more."""
    by_time = win_start + config.window_s if config.mode == "tumbling" else last_seen + config.window_s
    return min(by_time, first_seen + config.max_lifetime_s)
