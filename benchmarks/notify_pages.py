"""Pages per storm: the notify stage (stage 1 + stage 2 + the notify fold) against Alertmanager alone, same stream.

Streams: generated storm streams (`benchmarks/storms.py`, the `resolving` family of `benchmarks/accuracy.py`:
every alert resolves; the first hours of several seeds, every storm that began in them kept whole).

* Alertmanager alone: Debian's Alertmanager on loopback, `group_by: [alertname, cluster, service]`, its documented
  timers (group_wait 30s, group_interval 5m, repeat_interval 4h, resolve_timeout 5m), fed as Prometheus feeds it
  (`accuracy.feed`: time compressed by FACTOR, every timer scaled by it). A page is a notification with a
  firing alert in it (what a PagerDuty or Slack receiver behind it is sent and shows as a new message; resolved-only
  notifications are counted apart, as are repeats). Its group episodes (a groupKey until a notification in which
  all its alerts are resolved) are printed beside: what a PagerDuty integration, which dedups by groupKey, would
  open as incidents.
* The correlator: the same alerts through `correlator.replay` (stage 1, then stage 2 with its default grouping),
  and every incident and cause event through the notify fold (`correlator.notify.on_record`, ticked before each
  record, the clock being the record's event time), one PagerDuty receiver behind the route
  `{receiver: oncall}` with the file's default hold (30 s or at once for critical) and renotify (4 h). A page is
  a `trigger` or `renotify` delivery; resolves are counted apart.

Not measured here: the time from an incident's first alert to its page on the live pipeline, p50/p99 at half
load: `benchmarks/notify_latency.py`.

    python benchmarks/notify_pages.py            # 3 seeds x 2 storm hours, FACTOR 60 (about 3 wall minutes)
    python benchmarks/notify_pages.py --quick    # 1 seed x 0.5 storm hours
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.accuracy import Stream, alertmanager_run, stream_of  # noqa: E402
from correlator.models import IncidentEvent  # noqa: E402
from correlator.notify import NotifyPolicy, NotifyRecord, NotifyState, on_record, on_tick, parse_notify  # noqa: E402
from correlator.replay import replay  # noqa: E402
from correlator.stage2 import DEFAULT_GROUPING, Assignment, ParentEvent  # noqa: E402

GROUP_BY = ("alertname", "cluster", "service")
ROUTES = """
receivers:
  - {name: oncall, type: pagerduty, routing_key: "R0UTINGKEY", url: "http://127.0.0.1:9/v2/enqueue"}
routes:
  - {receiver: oncall}
"""


def _time(record: NotifyRecord) -> float:
    if isinstance(record, Assignment):
        return record.assigned_at
    assert isinstance(record, IncidentEvent | ParentEvent)
    return record.emitted_at


def correlator_pages(stream: Stream) -> Counter[str]:
    """Deliveries by action when the stream's incident and cause events go through the notify fold."""
    records: list[NotifyRecord] = []
    replay(stream.alerts, grouping=DEFAULT_GROUPING, listener=records.append)
    config, policy, state = parse_notify(ROUTES), NotifyPolicy(), NotifyState()
    made: Counter[str] = Counter()
    now = 0.0
    for record in records:
        now = max(now, _time(record))
        for step in (on_tick(state, now, config, (), policy), on_record(state, record, now, config, (), policy)):
            made.update(d.action for d in step.deliveries)
    made.update(d.action for d in on_tick(state, now + 3600, config, (), policy).deliveries)
    return made


def main() -> None:
    """Run both on the same streams and print a table, and the ratio of pages (median over streams)."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--hours", type=float, default=2.0)
    ap.add_argument("--factor", type=float, default=60.0)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    seeds, hours = (1, 0.5) if args.quick else (args.seeds, args.hours)
    streams = [stream_of(seed, "resolving", hours=hours) for seed in range(1, seeds + 1)]
    with tempfile.TemporaryDirectory() as workdir:
        runs = alertmanager_run(streams, args.factor, Path(workdir), group_by=GROUP_BY)
    print("| stream | alerts | storms | Alertmanager pages (repeats, resolved-only) | Alertmanager group episodes "
          "| correlator pages (triggers, renotify; resolves) | ratio |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    ratios = []
    for run in runs:
        if run.grouping is None or run.feed.error:
            raise SystemExit(f"{run.stream.name}: Alertmanager run failed: {run.feed.error}")
        ours = correlator_pages(run.stream)
        pages = ours["trigger"] + ours["renotify"]
        am = run.grouping.firing_notifications
        ratios.append(am / pages if pages else float("inf"))
        print(f"| {run.stream.name} | {len(run.stream.alerts)} | {len(set(run.stream.truth.values()))} | {am} "
              f"({run.grouping.repeats}, {run.grouping.resolved_only}) | {len(set(run.grouping.episode_of.values()))} | {pages} ({ours['trigger']}, "
              f"{ours['renotify']}; {ours['resolve']}) | {ratios[-1]:.1f}x |")
    print(f"\nAlertmanager (group_by {list(GROUP_BY)}) sends {statistics.median(ratios):.1f}x the pages of the "
          f"notify stage (median of {len(ratios)} streams, factor {args.factor:g})")


if __name__ == "__main__":
    main()
