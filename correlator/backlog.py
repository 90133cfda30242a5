"""Admission control for the ingest: from samples of the consumer group's backlog, shed or accept.

Pure: the stream layer measures, per topic that feeds correlation (`alerts.raw`, `alerts`), the records the
group has not consumed yet (end offsets minus committed offsets, summed over partitions) and the committed
offsets themselves (their growth is the rate the pipeline drains at), and hands both in with the time.
`BacklogMeter.observe` returns the verdict the ingest acts on.

The rule (documented in README, "Admission control"):
- the backlog in records is the sum of both topics' lag; past `records` the ingest sheds;
- the backlog in seconds is, per topic, its lag divided by the rate its committed offsets grew over the last
  `rate_window` seconds, and the largest of them; a topic with lag whose offsets did not move in that window
  is "stalled" and counts the time since they last moved or since its backlog appeared, whichever is later,
  so a pipeline that stopped draining sheds too, and one record after a quiet hour does not;
  past `seconds` the ingest sheds;
- once shedding, it sheds until both figures are back under `resume` times their limits (hysteresis: a
  backlog hovering at the limit does not flip the answer every sample);
- a limit of 0 is off; an unknown backlog (no sample yet, or the last one too old) never sheds, because
  refusing alerts on a guess hides outages (the broker-down path answers 503 by itself).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["Backlog", "BacklogLimits", "BacklogMeter", "BacklogSample"]

RETRY_MIN_S = 1
RETRY_MAX_S = 60
RETRY_UNKNOWN_S = 5


@dataclass(frozen=True)
class BacklogLimits:
    """When to shed: `records` and `seconds` (0 = that limit is off), the rate window and the resume ratio."""

    records: int = 20_000
    seconds: float = 60.0
    rate_window: float = 10.0
    resume: float = 0.8
    max_age: float = 10.0
    """A sample older than this is no longer a backlog we know."""

    @property
    def enabled(self) -> bool:
        """True when at least one limit is set."""
        return self.records > 0 or self.seconds > 0


@dataclass(frozen=True)
class BacklogSample:
    """One measurement at `at` (epoch or monotonic seconds, the caller's choice, used consistently)."""

    at: float
    lag: Mapping[str, int]
    """Per topic: records not consumed yet (end offset - committed offset, summed over partitions)."""
    consumed: Mapping[str, int]
    """Per topic: committed offsets summed over partitions; their growth is the drain rate."""


@dataclass(frozen=True)
class Backlog:
    """The verdict: shed or not, the figures behind it, why, and how long a refused sender should wait."""

    shed: bool
    records: int
    seconds: float
    rates: Mapping[str, float]
    reasons: tuple[str, ...] = ()
    retry_after: int = RETRY_UNKNOWN_S
    known: bool = True

    def as_dict(self) -> dict[str, object]:
        """The JSON form for /readyz and the 503 body."""
        return {"shedding": self.shed, "records": self.records,
                "seconds": None if math.isinf(self.seconds) else round(self.seconds, 1),
                "drain_rate_per_s": {t: round(r, 1) for t, r in self.rates.items()}, "known": self.known}


UNKNOWN = Backlog(shed=False, records=0, seconds=0.0, rates={}, known=False)
"""No usable measurement: never shed on it."""


@dataclass
class BacklogMeter:
    """Keeps the recent samples and turns the newest into a verdict (see the module docstring)."""

    limits: BacklogLimits
    _samples: deque[BacklogSample] = field(default_factory=deque)
    _moved_at: dict[str, float] = field(default_factory=dict)
    _shedding: bool = False
    last: Backlog = UNKNOWN

    def observe(self, sample: BacklogSample) -> Backlog:
        """Add a sample and return the verdict it gives (also kept as `last`)."""
        previous = self._samples[-1] if self._samples else None
        if previous is not None and any(sample.consumed.get(t, 0) < n for t, n in previous.consumed.items()):
            # offsets went back (group reset, an emptied in-memory broker): the old samples measure nothing now
            self._samples.clear()
            self._moved_at.clear()
        for topic, consumed in sample.consumed.items():
            # a topic with nothing waiting is not stalled: a stall counts from the later of the last move and
            # the moment a backlog appeared, never from a quiet spell before it
            if (previous is None or topic not in self._moved_at or consumed != previous.consumed.get(topic)
                    or sample.lag.get(topic, 0) <= 0 or previous.lag.get(topic, 0) <= 0):
                self._moved_at[topic] = sample.at
        self._samples.append(sample)
        while len(self._samples) > 2 and sample.at - self._samples[1].at >= self.limits.rate_window:
            self._samples.popleft()
        self.last = self._verdict(sample)
        return self.last

    def current(self, now: float) -> Backlog:
        """The last verdict, or UNKNOWN when no sample is younger than `max_age`."""
        if not self._samples or now - self._samples[-1].at > self.limits.max_age:
            self._shedding = False
            return UNKNOWN
        return self.last

    def _rates(self, newest: BacklogSample) -> dict[str, float]:
        oldest = self._samples[0]
        span = newest.at - oldest.at
        if span <= 0:
            return {}
        return {t: max(0.0, (n - oldest.consumed.get(t, n)) / span) for t, n in newest.consumed.items()}

    def _seconds(self, newest: BacklogSample, rates: Mapping[str, float]) -> tuple[float, str | None]:
        """The largest drain time over the topics, and the topic when that figure is a stall (no rate)."""
        worst, stalled = 0.0, None
        for topic, lag in newest.lag.items():
            if lag <= 0:
                continue
            rate = rates.get(topic, 0.0)
            # no measured rate: how long the topic has had a backlog that did not move
            drain = lag / rate if rate > 0 else newest.at - self._moved_at.get(topic, newest.at)
            if drain > worst:
                worst, stalled = drain, (None if rate > 0 else topic)
        return worst, stalled

    def _verdict(self, newest: BacklogSample) -> Backlog:
        limits = self.limits
        rates = self._rates(newest)
        records = sum(max(0, n) for n in newest.lag.values())
        seconds, stalled = self._seconds(newest, rates)
        ratio = limits.resume if self._shedding else 1.0
        reasons: list[str] = []
        if limits.records > 0 and records > limits.records * ratio:
            reasons.append(f"backlog of {records} records above the limit of {limits.records}")
        if limits.seconds > 0 and seconds > limits.seconds * ratio:
            # a stall says where: a stuck partition is a different page than a busy pipeline
            how = f"on {stalled} has not moved for {seconds:.0f} s" if stalled else \
                f"of {seconds:.0f} s (at the measured drain rate)"
            reasons.append(f"backlog {how}, above the limit of {limits.seconds:.0f} s")
        self._shedding = bool(reasons)
        return Backlog(shed=self._shedding, records=records, seconds=seconds, rates=rates,
                       reasons=tuple(reasons), retry_after=self._retry_after(records, seconds, rates))

    def _retry_after(self, records: int, seconds: float, rates: Mapping[str, float]) -> int:
        """Seconds until the backlog is likely back under its limits, within [1, 60]."""
        limits = self.limits
        total_rate = sum(rates.values())
        waits = []
        if limits.seconds > 0 and seconds > limits.seconds:
            waits.append(seconds - limits.seconds * limits.resume)
        if limits.records > 0 and records > limits.records and total_rate > 0:
            waits.append((records - limits.records * limits.resume) / total_rate)
        if not waits:
            return RETRY_UNKNOWN_S if total_rate <= 0 else RETRY_MIN_S
        return int(min(RETRY_MAX_S, max(RETRY_MIN_S, math.ceil(max(waits)))))
