"""Offline correlation of a recorded alert stream: the same engine as the live agent, fed from a list.

`replay` returns the final state of every incident with all its members, which is what `aiops replay`
prints and what accuracy scoring compares against ground truth.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .config import DEFAULT_CONFIG, CorrelationConfig
from .engine import AlertLike, Correlator, noise_reduction
from .models import IncidentEvent

__all__ = ["ReplayIncident", "ReplayReport", "replay", "render_text"]

BATCH = 10_000


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

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form for `aiops replay --json`."""
        return {
            "id": self.id, "key": self.key, "alert_count": self.alert_count, "first_seen": self.first_seen,
            "last_seen": self.last_seen, "status": self.status, "max_severity": self.max_severity,
            "previous_id": self.previous_id, "members": self.members,
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

    @property
    def noise_reduction(self) -> float:
        """1 - incidents / distinct alerts."""
        return noise_reduction(len(self.incidents), self.alerts)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form for `aiops replay --json`."""
        return {
            "alerts": self.alerts, "records": self.records, "duplicates": self.duplicates, "late": self.late,
            "incidents": [i.as_dict() for i in self.incidents], "noise_reduction": self.noise_reduction,
        }


def replay(alerts: Iterable[AlertLike], config: CorrelationConfig = DEFAULT_CONFIG) -> ReplayReport:
    """Correlate a recorded stream in arrival order, as the live engine would, and report the end state."""
    engine = Correlator(config, record_assignments=True)
    latest: dict[str, IncidentEvent] = {}
    start = float("inf")
    batch: list[AlertLike] = []
    for a in alerts:
        start = min(start, a.starts_at)
        batch.append(a)
        if len(batch) >= BATCH:
            _keep_latest(latest, engine.ingest(batch))
            batch = []
    _keep_latest(latest, engine.ingest(batch))
    _keep_latest(latest, engine.finish())
    members: dict[str, list[str]] = {}
    assert engine.assignments is not None
    for (fp, _), inc_id in engine.assignments.items():
        members.setdefault(inc_id, []).append(fp)
    incidents = sorted((_final(ev, members.get(ev.incident_id, [])) for ev in latest.values()),
                       key=lambda i: (i.first_seen, i.key, i.id))
    c = engine.counters
    return ReplayReport(incidents, c.records, c.duplicates, c.alerts, c.late, start if incidents else 0.0)


def _keep_latest(latest: dict[str, IncidentEvent], events: Sequence[IncidentEvent]) -> None:
    for ev in events:
        latest[ev.incident_id] = ev


def _final(ev: IncidentEvent, members: list[str]) -> ReplayIncident:
    return ReplayIncident(
        id=ev.incident_id, key=ev.key, alert_count=ev.alert_count, first_seen=ev.first_seen,
        last_seen=ev.last_seen, status=ev.status, max_severity=ev.max_severity, previous_id=ev.previous_id,
        members=members,
    )


def _minutes(seconds: float) -> str:
    m = seconds / 60.0
    return f"{m:.0f}" if abs(m - round(m)) < 0.05 else f"{m:.1f}"


def render_text(report: ReplayReport, config: CorrelationConfig = DEFAULT_CONFIG) -> str:
    """The human form: one line per incident, then the noise-reduction line and the raw counts."""
    lines = []
    for n, inc in enumerate(report.incidents, start=1):
        span = f"t={_minutes(inc.first_seen - report.start)}-{_minutes(inc.last_seen - report.start)}m"
        flag = "" if inc.status == "firing" else f" [{inc.status}]"
        lines.append(f"INC#{n} {inc.key}: {inc.alert_count} alerts over {span}{flag}")
    lines.append(
        f"{report.alerts} alerts -> {len(report.incidents)} incidents | "
        f"noise reduction: {report.noise_reduction:.0%}"
    )
    lines.append(
        f"records in: {report.records}, duplicates: {report.duplicates}, late: {report.late}, "
        f"window: {_minutes(config.window_s)}m ({config.mode})"
    )
    return "\n".join(lines)
