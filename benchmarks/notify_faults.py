"""Pages per fault from the notify stage as the stream runs it now (causes of one incident not published: stage 2's
progress and the handover), with session 33's rules and without them (issue 17 session 33, branch pages33).

Each set's alerts go through `correlator.replay` with `lone_causes` off (what a reader of `incidents` hears: stage-1
events, announced causes, assignments, progress naming late children), then through the notify fold
(`correlator.notify.on_record`, ticked before each record, the clock being the record's event time; a handover is
folded right after the step that made it, as the control topic brings it back), one PagerDuty receiver behind the
route `{receiver: oncall}` with the file's default hold (30 s, or at once for critical) and renotify (4 h).

A page is a `trigger` (an `update` of a page that carries its cause is not one: the same dedup key, no new page).
Each page is put down to the fault most of its subject's alerts belong to (truth); a fault paged more than once is a
double page. `old` is `NotifyPolicy` with `every_child_answers`, `late_waits` and `update_carried` off.

    python benchmarks/notify_faults.py            # rca-micross and the lab storm
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import rca_sets  # noqa: E402

from correlator.models import IncidentEvent  # noqa: E402
from correlator.notify import Delivery, NotifyPolicy, NotifyRecord, NotifyState, on_record, on_tick, parse_notify  # noqa: E402
from correlator.replay import replay  # noqa: E402
from correlator.sources.generic import parse  # noqa: E402
from correlator.stage2 import DEFAULT_GROUPING, Assignment, ParentEvent, Progress  # noqa: E402

ROUTES = """
receivers:
  - {name: oncall, type: pagerduty, routing_key: "R0UTINGKEY", url: "http://127.0.0.1:9/v2/enqueue"}
routes:
  - {receiver: oncall}
"""
NEW = NotifyPolicy(lone_causes=False, stage2_partitions=1)
OLD = replace(NEW, every_child_answers=False, late_waits=False, update_carried=False)
LAB = ROOT / "benchmarks" / "storms" / "lab-m32.ndjson"


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one policy paged on one set."""

    pages: int
    faults: int
    paged_faults: int
    doubled: int
    """Faults paged more than once."""
    extra: int
    """Pages beyond the first of each fault."""
    updates: int
    fold_s: float


def _time(record: NotifyRecord) -> float:
    if isinstance(record, Assignment):
        return record.assigned_at
    assert isinstance(record, IncidentEvent | ParentEvent | Progress)
    return record.emitted_at


def _fold(records: list[NotifyRecord], policy: NotifyPolicy) -> tuple[list[Delivery], float]:
    config, state = parse_notify(ROUTES), NotifyState()
    made: list[Delivery] = []
    now = 0.0
    started = time.perf_counter()
    for record in records:
        now = max(now, _time(record))
        made += on_tick(state, now, config, (), policy).deliveries
        pending: list[NotifyRecord] = [record]
        while pending:
            step = on_record(state, pending.pop(0), now, config, (), policy)
            made += step.deliveries
            pending += step.forward
    made += on_tick(state, now + 3600, config, (), policy).deliveries
    return made, time.perf_counter() - started


def measure(name: str, alerts: list, truth: dict[str, str]) -> dict[str, Outcome]:  # type: ignore[type-arg]
    """Replay once, fold the records with each policy, and put each page down to its fault."""
    records: list[NotifyRecord] = []
    report = replay(alerts, grouping=DEFAULT_GROUPING, lone_causes=False, listener=records.append)
    members = {i.id: i.members for i in report.incidents}
    children: dict[str, list[str]] = {}
    for r in records:
        if isinstance(r, ParentEvent):
            children[r.parent_id] = list(r.children)

    def fault_of(subject_id: str) -> str:
        fps = members.get(subject_id) or [fp for c in children.get(subject_id, []) for fp in members.get(c, [])]
        votes = Counter(truth[fp] for fp in fps if fp in truth)
        return votes.most_common(1)[0][0] if votes else f"?{subject_id}"

    out: dict[str, Outcome] = {}
    for label, policy in (("old", OLD), ("new", NEW)):
        made, took = _fold(records, policy)
        triggers = [d for d in made if d.action == "trigger"]
        per_fault = Counter(fault_of(d.subject_id) for d in triggers)
        out[label] = Outcome(pages=len(triggers), faults=len(set(truth.values())), paged_faults=len(per_fault),
                             doubled=sum(1 for n in per_fault.values() if n > 1),
                             extra=sum(n - 1 for n in per_fault.values()),
                             updates=sum(1 for d in made if d.action == "update"), fold_s=took)
    return out


def lab() -> tuple[list, dict[str, str]]:  # type: ignore[type-arg]
    """The lab storm; its fingerprints are `lab-<fault>-<n>`."""
    alerts = parse(LAB.read_bytes(), max_bytes=None)
    return alerts, {a.fingerprint: a.fingerprint.rsplit("-", 1)[0] for a in alerts}


def main() -> None:
    """A table per set: old and new."""
    micross = rca_sets.micross()
    sets = [("rca-micross", list(micross.alerts), micross.truth), ("lab storm lab-m32", *lab())]
    print("| set | faults | policy | pages (triggers) | faults paged | faults paged twice or more | pages beyond "
          "the first per fault | updates of carrying pages | fold s |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|")
    for name, alerts, truth in sets:
        for label, o in measure(name, alerts, truth).items():
            print(f"| {name} | {o.faults} | {label} | {o.pages} | {o.paged_faults} | {o.doubled} | {o.extra} | "
                  f"{o.updates} | {o.fold_s:.2f} |")


if __name__ == "__main__":
    main()
