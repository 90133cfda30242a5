"""Noise reduction over trailing periods, from cumulative counts sampled over time (pure; time passed in).

The worker samples two running totals (distinct alerts after dedup, incidents opened) every few seconds;
`NoiseWindow` keeps those samples for the longest period asked and answers "1 - incidents / alerts over the
last N seconds" by differencing the newest sample with the one at the period's start. Memory is bounded by
`horizon_s / sample interval` samples, never by the number of alerts.

A window must know the totals at the moment counting began (`NoiseWindow.since`): without that base, the first
sample taken after a storm already counted is both the period's start and its end, and the storm shows as no
alerts at all (NaN) until the period has passed.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

__all__ = ["NoiseSample", "NoiseWindow"]


@dataclass(frozen=True)
class NoiseSample:
    """Running totals at one moment: distinct alerts folded into incidents, incidents opened."""

    at: float
    alerts: float
    incidents: float


@dataclass
class NoiseWindow:
    """Trailing-window noise reduction from `NoiseSample`s; keeps `horizon_s` of history (plus one sample)."""

    horizon_s: float = 3600.0
    samples: deque[NoiseSample] = field(default_factory=deque)

    @classmethod
    def since(cls, at: float, alerts: float = 0.0, incidents: float = 0.0, horizon_s: float = 3600.0) -> NoiseWindow:
        """A window whose history starts with the totals at `at`, when counting began (a worker's start), so
        alerts counted before the first periodic sample are inside the periods that cover them."""
        window = cls(horizon_s=horizon_s)
        window.add(at, alerts, incidents)
        return window

    def add(self, at: float, alerts: float, incidents: float) -> None:
        """Record the totals at `at`; totals that went down (a restarted counter) restart the history from zero
        at the previous sample's time, as Prometheus's `increase` treats a counter reset."""
        last = self.samples[-1] if self.samples else None
        if last is not None and (alerts < last.alerts or incidents < last.incidents or at < last.at):
            self.samples.clear()
            self.samples.append(NoiseSample(min(last.at, at), 0.0, 0.0))
        self.samples.append(NoiseSample(at, alerts, incidents))
        # Keep the newest sample at or before the horizon's start: it is the base of the longest period.
        while len(self.samples) > 1 and self.samples[1].at <= at - self.horizon_s:
            self.samples.popleft()

    def counts(self, at: float, period_s: float) -> tuple[float, float]:
        """(distinct alerts, incidents opened) between `at - period_s` and the newest sample.

        The base is the newest sample at or before the period's start, else the oldest held: a worker younger
        than the period reports what it saw since it started.
        """
        if not self.samples:
            return 0.0, 0.0
        start = at - period_s
        base = self.samples[0]
        for sample in self.samples:
            if sample.at > start:
                break
            base = sample
        newest = self.samples[-1]
        return newest.alerts - base.alerts, newest.incidents - base.incidents

    def reduction(self, at: float, period_s: float) -> float | None:
        """1 - incidents / alerts over the period, or None when no alert arrived in it."""
        alerts, incidents = self.counts(at, period_s)
        return None if alerts <= 0 else 1.0 - incidents / alerts
