"""Seeded generator of realistic alert streams with ground truth.

What it models: services with a skewed (Zipf) share of the trouble; storms in which many instances of one
service fail at once for one cause, spread over a few minutes (so many straddle a window boundary);
Alertmanager-style re-sends of a firing alert (same fingerprint and startsAt, arriving a repeat interval
later); resolutions of every alert some minutes after it started; flapping alerts that resolve and fire
again inside their storm; quiet background noise (single alerts); and, when `straddle_share` > 0, storms
placed across the top of the hour (cron and batch jobs start there), which crosses a boundary of every
epoch-aligned window whose size divides an hour (1, 2, 5, 10, 15, 30, 60 min); and, when `unresolved_share`
> 0, storms from a source that never sends resolutions (their alerts just stop). Every alert carries the id
of the true incident (the storm) it belongs to, returned beside it, never inside it.

The stream comes out in arrival order and is produced lazily with memory bounded by the storms in
flight, so 10^6 alerts cost no more memory than 10^4.

    python benchmarks/storms.py --alerts 100000 --out storm.ndjson --truth truth.csv
"""

from __future__ import annotations

import argparse
import bisect
import heapq
import itertools
import math
import random
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

__all__ = ["StormSpec", "generate", "generate_timed", "main"]

SYMPTOMS = ("HighErrorRate", "HighLatency", "PodCrashLooping", "DiskFull", "TargetDown", "CPUThrottling")


@dataclass(frozen=True, slots=True, kw_only=True)
class StormSpec:
    """Shape of a generated stream. Times in seconds."""

    alerts: int = 100_000
    services: int = 200
    symptoms_per_service: int = 3
    zipf_s: float = 1.1
    seed: int = 7
    start: float = 1_772_420_400.0  # 2026-03-02T03:00:00Z
    storm_rate_per_s: float = 0.05
    mean_storm_size: float = 20.0
    max_storm_size: int = 400
    storm_spread_s: float = 300.0
    min_gap_same_key_s: float = 3600.0
    resend_share: float = 0.05
    repeat_interval_s: float = 240.0
    resolve_after_s: tuple[float, float] = (300.0, 1200.0)
    flap_share: float = 0.02
    noise_share: float = 0.1
    clusters: int = 4
    straddle_share: float = 0.0
    """Share of multi-alert storms moved to straddle the next multiple of straddle_every_s. 0 (the default)
    keeps the streams earlier figures were measured on: no random draw is spent on it."""
    straddle_every_s: float = 3600.0
    unresolved_share: float = 0.0
    """Share of storms that send no resolution records (0, the default, spends no random draw on it)."""


def _zipf_cdf(n: int, s: float) -> list[float]:
    weights = [1.0 / (k ** s) for k in range(1, n + 1)]
    total = sum(weights)
    return list(itertools.accumulate(w / total for w in weights))


def _alert(fp: str, key: tuple[int, int], t: float, cluster: int, instance: int, sev: str) -> dict[str, Any]:
    service, symptom = key
    return {
        "fingerprint": fp, "starts_at": round(t, 3), "status": "firing", "severity": sev,
        "labels": {"alertname": SYMPTOMS[symptom % len(SYMPTOMS)], "service": f"svc-{service:04d}",
                   "instance": f"svc-{service:04d}-{instance}", "cluster": f"c{cluster}"},
    }


def _resolution(alert: dict[str, Any], ends_at: float) -> dict[str, Any]:
    return {**alert, "status": "resolved", "ends_at": round(ends_at, 3)}


class _Generator:
    def __init__(self, spec: StormSpec) -> None:
        self.spec = spec
        self.rng = random.Random(spec.seed)
        self.keys = [(s, k) for s in range(spec.services) for k in range(spec.symptoms_per_service)]
        self.rng.shuffle(self.keys)
        self.cdf = _zipf_cdf(len(self.keys), spec.zipf_s)
        self.busy_until: dict[tuple[int, int], float] = {}
        self.queue: list[tuple[float, int, dict[str, Any], str]] = []
        self.seq = itertools.count()
        self.made = 0

    def pick_key(self, now: float) -> tuple[int, int] | None:
        for _ in range(20):
            key = self.keys[min(bisect.bisect_left(self.cdf, self.rng.random()), len(self.keys) - 1)]
            if self.busy_until.get(key, -1.0) <= now:
                return key
        return None

    def push(self, arrival: float, record: dict[str, Any], truth: str) -> None:
        heapq.heappush(self.queue, (arrival, next(self.seq), record, truth))

    def storm(self, storm_id: int, now: float) -> None:
        spec, rng = self.spec, self.rng
        noise = rng.random() < spec.noise_share
        key = self.pick_key(now)
        if key is None:
            return
        size = 1 if noise else min(spec.max_storm_size, 1 + int(rng.expovariate(1.0 / spec.mean_storm_size)))
        size = min(size, spec.alerts - self.made)
        spread = 0.0 if size == 1 else rng.uniform(0.2, 1.0) * spec.storm_spread_s
        if spread and spec.straddle_share and rng.random() < spec.straddle_share:
            # later, never earlier (alerts before `now` were already released): the storm's first alert at a
            # random 20-80% of its spread before the boundary, so it fires on both sides of it
            every = spec.straddle_every_s
            boundary = math.ceil((now + spread) / every) * every
            now = boundary - rng.uniform(0.2, 0.8) * spread
        cluster, truth = rng.randrange(spec.clusters), f"s{storm_id}"
        sev = "critical" if rng.random() < 0.3 else "warning"
        silent = bool(spec.unresolved_share) and rng.random() < spec.unresolved_share
        last_end = now
        for i in range(size):
            t = now + spread * i / max(size - 1, 1)
            alert = _alert(f"{truth}-{i}", key, t, cluster, i, sev)
            self.made += 1
            self.push(t, alert, truth)
            end = t + rng.uniform(*spec.resolve_after_s)
            if rng.random() < spec.resend_share:
                self.push(t + spec.repeat_interval_s, alert, truth)
            if rng.random() < spec.flap_share and self.made < spec.alerts:
                mid = t + (end - t) / 3
                if not silent:
                    self.push(mid, _resolution(alert, mid), truth)
                alert = {**alert, "starts_at": round(mid + 30.0, 3)}
                self.made += 1
                self.push(mid + 30.0, alert, truth)
            if not silent:
                self.push(end, _resolution(alert, end), truth)
            last_end = max(last_end, end)
        self.busy_until[key] = last_end + spec.min_gap_same_key_s

    def run(self) -> Iterator[tuple[float, dict[str, Any], str]]:
        now, storm_id = self.spec.start, 0
        while self.made < self.spec.alerts:
            self.storm(storm_id, now)
            storm_id += 1
            now += self.rng.expovariate(self.spec.storm_rate_per_s)
            while self.queue and self.queue[0][0] <= now:
                arrival, _, record, truth = heapq.heappop(self.queue)
                yield arrival, record, truth
        while self.queue:
            arrival, _, record, truth = heapq.heappop(self.queue)
            yield arrival, record, truth


def generate_timed(spec: StormSpec) -> Iterator[tuple[float, dict[str, Any], str]]:
    """(arrival time, generic alert JSON, true incident id) in arrival order: a re-send arrives a repeat
    interval after its startsAt, so replaying in real time (Alertmanager does) needs the arrival beside it."""
    return _Generator(spec).run()


def generate(spec: StormSpec) -> Iterator[tuple[dict[str, Any], str]]:
    """(generic alert JSON, true incident id) pairs in arrival order; `spec.alerts` distinct firings."""
    return ((record, truth) for _, record, truth in _Generator(spec).run())


def main(argv: list[str] | None = None) -> int:
    """Write a generated stream as NDJSON (usable by `aiops replay` and the pipeline) and its truth as CSV."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--alerts", type=int, default=100_000)
    p.add_argument("--services", type=int, default=200)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--straddle", type=float, default=0.0,
                   help="share of storms placed across the top of the hour (default 0: the original streams)")
    p.add_argument("--unresolved", type=float, default=0.0,
                   help="share of storms that never send resolutions (default 0)")
    p.add_argument("--same-key-gap", type=float, default=3600.0,
                   help="seconds a service+symptom stays quiet after a storm ends (default 3600)")
    p.add_argument("--out", default="-")
    p.add_argument("--truth", default=None, help="CSV of fingerprint,incident (firing records only)")
    args = p.parse_args(argv)
    spec = StormSpec(alerts=args.alerts, services=args.services, seed=args.seed, straddle_share=args.straddle,
                     unresolved_share=args.unresolved, min_gap_same_key_s=args.same_key_gap)
    out = sys.stdout.buffer if args.out == "-" else open(args.out, "wb")
    truth = open(args.truth, "w") if args.truth else None
    if truth:
        truth.write("fingerprint,incident\n")
    for record, incident in generate(spec):
        out.write(orjson.dumps(record) + b"\n")
        if truth and record["status"] == "firing":
            truth.write(f"{record['fingerprint']},{incident}\n")
    if truth:
        truth.close()
    if out is not sys.stdout.buffer:
        out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
