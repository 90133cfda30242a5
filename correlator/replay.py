"""Offline correlation of a recorded alert stream: the same engines as the live agents, fed from a list.

`replay` returns the final state of every incident with all its members, which is what `aiops replay`
prints and what accuracy scoring compares against ground truth. With a `GroupingConfig` it also runs
stage 2 on the events stage 1 emits, in the order it emits them, and reports the parent incidents.

Alerts are fed in slices of event time (at most SLICE_S of it, at most BATCH alerts), and before each slice
the engines are advanced to its first alert, as the live idle timer would have done while time passed:
so each stage-1 event carries the event time it would carry live, and stage 2 sees them in live order.
Stage-1 results do not depend on this slicing (the engine is batch-independent).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from .config import DEFAULT_CONFIG, CorrelationConfig
from .engine import AlertLike, Correlator, noise_reduction
from .keys import key_label, split_key
from .models import IncidentEvent
from .stage2 import (
    Assignment, Grouper, GroupingConfig, GroupingOutput, LateChildren, ParentEvent, Progress, decided_to, published,
)
from .topology import Topology

__all__ = ["Listener", "ReplayIncident", "ReplayParent", "ReplayReport", "replay", "render_text", "time_slices"]

Listener = Callable[[IncidentEvent | ParentEvent | Assignment | Progress], None]
"""Hears each published event of a replay, in order."""

BATCH = 10_000
SLICE_S = 1.0


@dataclass(slots=True)
class ReplayIncident:
    """An incident as it stood at the end of the replay."""

    id: str
    key: str
    alert_count: int
    first_seen: float
    last_seen: float
    status: str
    max_severity: str
    previous_id: str | None
    members: list[str] = field(default_factory=list)
    parent: Assignment | None = None
    """Where stage 2 put it (None when stage 2 did not run)."""

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form for `aiops replay --json`."""
        doc: dict[str, Any] = {
            "id": self.id, "key": self.key, "alert_count": self.alert_count, "first_seen": self.first_seen,
            "last_seen": self.last_seen, "status": self.status, "max_severity": self.max_severity,
            "previous_id": self.previous_id, "members": self.members,
        }
        if self.parent is not None:
            doc["parent_id"] = self.parent.parent_id
            doc["joined"] = {"relation": self.parent.relation.value, "via": self.parent.via,
                             "gap_s": self.parent.gap_s, "explanation": self.parent.explanation}
        return doc


@dataclass(slots=True)
class ReplayParent:
    """A stage-2 parent incident (one probable cause) as it stood at the end of the replay."""

    id: str
    alert_count: int
    first_seen: float
    last_seen: float
    status: str
    max_severity: str
    previous_id: str | None
    children: list[ReplayIncident]
    members: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form: the parent, its children's ids, and every alert fingerprint of every child."""
        return {
            "id": self.id, "alert_count": self.alert_count, "first_seen": self.first_seen,
            "last_seen": self.last_seen, "status": self.status, "max_severity": self.max_severity,
            "previous_id": self.previous_id, "services": sorted({split_key(c.key)[1] for c in self.children}),
            "children": [c.id for c in self.children], "members": self.members,
        }


@dataclass(slots=True)
class ReplayReport:
    """Incidents in order of first alert, and the counts that noise reduction is computed from."""

    incidents: list[ReplayIncident]
    records: int
    duplicates: int
    alerts: int
    late: int
    start: float
    parents: list[ReplayParent] | None = None
    """Stage-2 parents in order of first alert; None when stage 2 did not run."""
    topology: str | None = None
    """Version of the topology stage 2 used; None for labels only."""

    @property
    def noise_reduction(self) -> float:
        """1 - incidents / distinct alerts."""
        return noise_reduction(len(self.incidents), self.alerts)

    @property
    def stage2_noise_reduction(self) -> float:
        """1 - parents / distinct alerts (0 when stage 2 did not run)."""
        return noise_reduction(len(self.parents), self.alerts) if self.parents is not None else 0.0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form for `aiops replay --json`: stage-1 `incidents`, and stage-2 `parents` when it ran."""
        doc: dict[str, Any] = {
            "alerts": self.alerts, "records": self.records, "duplicates": self.duplicates, "late": self.late,
            "incidents": [i.as_dict() for i in self.incidents], "noise_reduction": self.noise_reduction,
        }
        if self.parents is not None:
            doc["parents"] = [p.as_dict() for p in self.parents]
            doc["stage2"] = {"parents": len(self.parents), "noise_reduction": self.stage2_noise_reduction,
                             "topology": self.topology}
        return doc


class _Run:
    """One replay in progress: the engines, and the latest event of every incident and parent."""

    def __init__(self, config: CorrelationConfig, grouper: Grouper | None, listener: Listener | None = None,
                 lone_causes: bool = True) -> None:
        self.engine = Correlator(config, record_assignments=True)
        self.grouper = grouper
        self.listener = listener
        self.lone_causes = lone_causes
        self.latest: dict[str, IncidentEvent] = {}
        self.parents: dict[str, ParentEvent] = {}
        self.assigned: dict[str, Assignment] = {}
        self._decided = float("-inf")
        """Without lone causes: the stage-2 progress last heard (`stage2.Progress`, one routing partition here)."""
        self._late = LateChildren()

    def feed(self, batch: list[AlertLike]) -> None:
        """Advance to the slice's first alert as an idle timer would, then ingest the slice."""
        engine, t = self.engine, batch[0].starts_at
        self._stage1(engine.advance(t))
        if self.grouper is not None:
            self._stage2(self.grouper.advance(t - engine.config.allowed_lateness_s))
        self._stage1(engine.ingest(batch))

    def finish(self) -> None:
        """End of input: both stages publish what they hold."""
        self._stage1(self.engine.finish())
        if self.grouper is not None:
            self._stage2(self.grouper.finish())

    def _stage1(self, events: Sequence[IncidentEvent]) -> None:
        for ev in events:
            self.latest[ev.incident_id] = ev
            if self.listener is not None:
                self.listener(ev)
        if self.grouper is not None and events:
            if not self.lone_causes and self.listener is not None:
                self._late.note(0, self.grouper, events, self._decided if self._decided > float("-inf") else None)
            self._stage2(self.grouper.ingest(events))

    def _stage2(self, out: GroupingOutput) -> None:
        for p in out.parents:
            self.parents[p.parent_id] = p
        for a in out.assignments:
            self.assigned[a.child_id] = a
        if self.listener is None:
            return
        if not self.lone_causes:
            self._announce(out)
            return
        for assignment in out.assignments:  # assignments first: a cause's page can then list its children's reasons
            self.listener(assignment)
        for parent in out.parents:
            self.listener(parent)

    def _announce(self, out: GroupingOutput) -> None:
        """What a reader of the stream hears when causes of one incident are not published
        (`stage2.publishing`): the published records (assignments, a `first` one for each announced parent's
        first child among them, then parents), then stage 2's progress when it moved or names children placed late
        (its `emitted_at` here is event time, the stream's is the wall clock)."""
        assert self.listener is not None and self.grouper is not None
        shown = published(out, lone_causes=False)
        for assignment in shown.assignments:
            self.listener(assignment)
        for parent in shown.parents:
            self.listener(parent)
        g = self.grouper
        decided = decided_to(g.released_to, g.watermark, (g.oldest_held(),))
        late = self._late.placed({0: g})
        if decided > self._decided or late:
            self._decided = max(decided, self._decided)
            self.listener(Progress(decided={0: self._decided}, emitted_at=g.watermark, late=late))


def time_slices(alerts: Iterable[AlertLike]) -> Iterator[list[AlertLike]]:
    """Consecutive alerts cut into batches spanning at most SLICE_S of event time and BATCH alerts."""
    batch: list[AlertLike] = []
    start = 0.0
    for a in alerts:
        if batch and (a.starts_at > start + SLICE_S or len(batch) >= BATCH):
            yield batch
            batch = []
        if not batch:
            start = a.starts_at
        batch.append(a)
    if batch:
        yield batch


def replay(
    alerts: Iterable[AlertLike],
    config: CorrelationConfig = DEFAULT_CONFIG,
    *,
    grouping: GroupingConfig | None = None,
    topology: Topology | None = None,
    listener: Listener | None = None,
    lone_causes: bool = True,
) -> ReplayReport:
    """Correlate a recorded stream in arrival order, as the live engines would, and report the end state.

    Stage 2 runs when `grouping` is given, with `topology` or (None) the label fallback. `listener` hears every
    event both stages publish, in the order they publish them (what a reader of `incidents` would see); with
    `lone_causes` off, only what the stream publishes so (`stage2.publishing`, and `GroupingConfig.prompt_pairs` as
    the stream sets it). The report's parents are the grouping either way, causes of one incident included.
    """
    if grouping is not None and not lone_causes:
        grouping = replace(grouping, prompt_pairs=True)  # as the stream groups without causes of one incident
    run = _Run(config, Grouper(grouping, topology) if grouping is not None else None, listener, lone_causes)
    start = float("inf")
    for batch in time_slices(alerts):
        start = min(start, min(a.starts_at for a in batch))
        run.feed(batch)
    run.finish()
    members: dict[str, list[str]] = {}
    assert run.engine.assignments is not None
    for (fp, _), inc_id in run.engine.assignments.items():
        members.setdefault(inc_id, []).append(fp)
    incidents = sorted((_final(ev, members.get(ev.incident_id, []), run.assigned.get(ev.incident_id))
                        for ev in run.latest.values()), key=lambda i: (i.first_seen, i.key, i.id))
    c = run.engine.counters
    report = ReplayReport(incidents, c.records, c.duplicates, c.alerts, c.late, start if incidents else 0.0)
    if grouping is not None:
        report.parents = _parents(run.parents, incidents)
        report.topology = topology.version if topology is not None else None
    return report


def _parents(latest: dict[str, ParentEvent], incidents: list[ReplayIncident]) -> list[ReplayParent]:
    """Final parents (merged-away ones dropped), each with its children in stage-1 order and all members."""
    children: dict[str, list[ReplayIncident]] = {}
    for inc in incidents:
        if inc.parent is not None:
            children.setdefault(inc.parent.parent_id, []).append(inc)
    out = []
    for ev in latest.values():
        if ev.status == "merged":
            continue
        kids = children.get(ev.parent_id, [])
        # figures from the children's final state: a parent republishes on membership, not on every count
        out.append(ReplayParent(
            id=ev.parent_id, alert_count=sum(k.alert_count for k in kids),
            first_seen=min((k.first_seen for k in kids), default=ev.first_seen),
            last_seen=max((k.last_seen for k in kids), default=ev.last_seen), status=ev.status,
            max_severity=ev.max_severity, previous_id=ev.previous_id, children=kids,
            members=[fp for k in kids for fp in k.members]))
    return sorted(out, key=lambda p: (p.first_seen, p.id))


def _final(ev: IncidentEvent, members: list[str], parent: Assignment | None) -> ReplayIncident:
    return ReplayIncident(
        id=ev.incident_id, key=ev.key, alert_count=ev.alert_count, first_seen=ev.first_seen,
        last_seen=ev.last_seen, status=ev.status, max_severity=ev.max_severity, previous_id=ev.previous_id,
        members=members, parent=parent,
    )


def _minutes(seconds: float) -> str:
    m = seconds / 60.0
    return f"{m:.0f}" if abs(m - round(m)) < 0.05 else f"{m:.1f}"


def _span(first: float, last: float, start: float) -> str:
    return f"t={_minutes(first - start)}-{_minutes(last - start)}m"


def render_text(report: ReplayReport, config: CorrelationConfig = DEFAULT_CONFIG) -> str:
    """The human form: one line per incident, the noise-reduction line and the raw counts; then stage 2."""
    lines = []
    for n, inc in enumerate(report.incidents, start=1):
        flag = "" if inc.status == "firing" else f" [{inc.status}]"
        lines.append(f"INC#{n} {key_label(inc.key)}: {inc.alert_count} alerts over "
                     f"{_span(inc.first_seen, inc.last_seen, report.start)}{flag}")
    lines.append(
        f"{report.alerts} alerts -> {len(report.incidents)} incidents | "
        f"noise reduction: {report.noise_reduction:.0%}"
    )
    lines.append(
        f"records in: {report.records}, duplicates: {report.duplicates}, late: {report.late}, "
        f"window: {_minutes(config.window_s)}m ({config.mode})"
    )
    if report.parents is not None:
        lines.extend(_stage2_lines(report))
    return "\n".join(lines)


def _stage2_lines(report: ReplayReport) -> list[str]:
    """Each parent (cause) with its children, named by their stage-1 numbers, and why each joined."""
    assert report.parents is not None
    number = {inc.id: n for n, inc in enumerate(report.incidents, start=1)}
    basis = f"topology {report.topology}" if report.topology else "labels only"
    lines = [f"stage 2 ({basis}): {len(report.incidents)} incidents -> {len(report.parents)} causes | "
             f"noise reduction: {report.stage2_noise_reduction:.0%}"]
    for n, p in enumerate(report.parents, start=1):
        flag = "" if p.status == "firing" else f" [{p.status}]"
        kids = len(p.children)
        lines.append(f"CAUSE#{n} {p.id}: {kids} incident{'s' if kids != 1 else ''}, {p.alert_count} alerts over "
                     f"{_span(p.first_seen, p.last_seen, report.start)}{flag}")
        for inc in p.children:
            why = inc.parent.explanation if inc.parent is not None else ""
            lines.append(f"  INC#{number[inc.id]} {key_label(inc.key)}: {why}")
    return lines
