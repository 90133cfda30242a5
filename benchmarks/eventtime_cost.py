"""What the event-time rule (correlator/eventtime.py) costs the agents' code, as same-run ratios.

Two pairs, each timed alternately in one process over the same generated storm, medians of `--runs`:
normalize's parse of 100-alert generic bodies without the rule (`parse`) and with it (`parse_arrived`, each
body arriving when its newest record did: nothing to clamp, the cost every body pays), and the engine folding
the records without an arrival and with one (its last-line guard). A ratio of 1.00 means free.

    python benchmarks/eventtime_cost.py            # 20,000 alerts (about 41,000 records), 7 runs
    python benchmarks/eventtime_cost.py --quick    # small, proves it works, not speed
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from storms import StormSpec, generate_timed  # noqa: E402

from correlator.engine import Correlator  # noqa: E402
from correlator.records import AlertRecord, record_of  # noqa: E402
from correlator.sources import parse, parse_arrived  # noqa: E402

PER_BODY = 100
BATCH = 2_000


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    """Print both ratios with their medians."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--alerts", type=int, default=20_000)
    p.add_argument("--runs", type=int, default=7)
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(argv)
    alerts, runs = (500, 1) if args.quick else (args.alerts, args.runs)
    timed = list(generate_timed(StormSpec(alerts=alerts, services=200, seed=7)))
    bodies = [(b"\n".join(orjson.dumps(r) for _, r, _ in timed[i:i + PER_BODY]),
               max(a for a, _, _ in timed[i:i + PER_BODY])) for i in range(0, len(timed), PER_BODY)]
    records: list[AlertRecord] = [record_of(a) for body, _ in bodies for a in parse("generic", body)]
    batches = [records[i:i + BATCH] for i in range(0, len(records), BATCH)]

    def parse_plain() -> None:
        for body, _ in bodies:
            parse("generic", body)

    def parse_guarded() -> None:
        for body, arrival in bodies:
            parse_arrived("generic", body, arrival)

    def fold(guarded: bool) -> Callable[[], None]:
        def run() -> None:
            engine = Correlator()
            for batch in batches:
                newest = max(r.ends_at or r.starts_at for r in batch)
                engine.ingest(batch, arrival=newest if guarded else None)
        return run

    pairs = {"parse: parse_arrived / parse": (parse_plain, parse_guarded),
             "engine: ingest(arrival) / ingest": (fold(False), fold(True))}
    print(f"{len(records):,} records in {len(bodies):,} bodies, {runs} runs, medians; "
          f"{platform.processor() or platform.machine()}, Python {platform.python_version()}")
    for name, (base, guarded) in pairs.items():
        plain_s, guard_s = [], []
        for i in range(runs):  # alternating, and each first in turn, so drift and warm-up hit both alike
            if i % 2:
                guard_s.append(_timed(guarded))
                plain_s.append(_timed(base))
            else:
                plain_s.append(_timed(base))
                guard_s.append(_timed(guarded))
        b, g = statistics.median(plain_s), statistics.median(guard_s)
        print(f"{name:36s} {g:.3f} s / {b:.3f} s = {g / b:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
