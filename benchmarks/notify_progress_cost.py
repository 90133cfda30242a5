"""What one move of stage 2's progress costs the notify fold, by how many subjects it holds (issue 17 session 33,
branch pages33): the index by first alert (`NotifyPolicy.progress_index`, on) against the old scan of every subject.

A partition of notify holding N subjects (incidents paged or grouped long ago, as in a busy hour: retention keeps
them an hour after they close) and a steady trickle: per round, 10 new incidents arrive and one progress record
covers them. The figure is the fold's CPU time per progress record (`time.process_time`, median of 5 interleaved
rounds of 200 records each), and the pages made, which must be equal.

    python benchmarks/notify_progress_cost.py
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import TypeVar

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from correlator.models import IncidentEvent  # noqa: E402
from correlator.notify import NotifyPolicy, NotifyState, on_record, parse_notify  # noqa: E402
from correlator.stage2 import Progress  # noqa: E402

ROUTES = """
receivers:
  - {name: oncall, type: pagerduty, routing_key: "K", url: "http://127.0.0.1:9/v2/enqueue"}
routes:
  - {receiver: oncall}
"""
INDEXED = NotifyPolicy(lone_causes=False, stage2_partitions=1)
SCANNED = replace(INDEXED, progress_index=False)
T0 = 1_780_000_000.0
T = TypeVar("T")


def _incident(incident_id: str, at: float) -> IncidentEvent:
    return IncidentEvent(kind="opened", incident_id=incident_id, seq=1, key=f"c/{incident_id}/x", service=incident_id,
                         symptom="x", scope="c", status="firing", first_seen=at, last_seen=at, window_start=at,
                         alert_count=1, distinct_fingerprints=1, firing_count=1, duplicates=0,
                         max_severity="critical", member_sample=[], emitted_at=at)


def run(held: int, policy: NotifyPolicy, records: int = 200) -> tuple[float, int]:
    """CPU seconds per progress record with `held` subjects already paged, and the pages the records made."""
    config, state = parse_notify(ROUTES), NotifyState()
    for i in range(held):
        on_record(state, _incident(f"old-{i}", T0), T0, config, (), policy)
    on_record(state, Progress(decided={0: T0}, emitted_at=T0), T0, config, (), policy)
    pages, spent = 0, 0.0
    for r in range(records):
        at = T0 + 1 + r
        for j in range(10):
            pages += len(on_record(state, _incident(f"new-{r}-{j}", at), at, config, (), policy).deliveries)
        started = time.process_time()
        step = on_record(state, Progress(decided={0: at}, emitted_at=at), at + 0.5, config, (), policy)
        spent += time.process_time() - started
        pages += len(step.deliveries)
    return spent / records, pages


def interleaved(rounds: int, a: Callable[[], tuple[float, T]], b: Callable[[], tuple[float, T]]) -> tuple[float, float, bool]:
    """Interleaved A/B rounds of two runs giving (seconds, answer): each arm's median in µs, and whether every
    round's answers were equal."""
    times_a, times_b, same = [], [], True
    for _ in range(rounds):
        ta, answer_a = a()
        tb, answer_b = b()
        times_a.append(ta)
        times_b.append(tb)
        same &= answer_a == answer_b
    return statistics.median(times_a) * 1e6, statistics.median(times_b) * 1e6, same


def main() -> None:
    """A table: subjects held, µs per progress record with the scan and the index, ratio, pages equal."""
    print("| subjects held | scan µs/progress | index µs/progress | scan/index | pages equal |")
    print("|---:|---:|---:|---:|---|")
    for held in (100, 1_000, 10_000, 50_000):
        ms, mi, same = interleaved(5, partial(run, held, SCANNED), partial(run, held, INDEXED))
        print(f"| {held:,} | {ms:,.0f} | {mi:,.0f} | {ms / mi:.1f}x | {'yes' if same else 'NO'} |")


if __name__ == "__main__":
    main()
