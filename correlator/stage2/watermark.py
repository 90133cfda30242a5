"""Stage 2's event time in the stream: a low watermark across the stage-1 partitions that feed it.

Why. Stage 2 releases a held child once its event time has passed the child's first alert by `lateness_s`,
and closes a group once it has passed the group's last alert by `gap_s`. Offline (`replay`) one stage-1
engine feeds it, so its event time is stage 1's. In the stream several stage-1 partitions feed one Grouper,
each at its own pace: in a catch-up (a backlog, or a file posted at once) one partition folds minutes of
alerts in a step while another has not started, and an event time taken from the latest event runs ahead of
the slow partition by minutes. Its children then arrive behind groups that have already closed (on MicroSS
posted at once: 773 late children, 300 parents where the replay names 241).

The rule. Every stage-1 partition (a source) reports a `SourceMark` with its events: the event time up to
which it has published everything it will publish (its engine's release point; its watermark once it has
flushed), and whether it is idle (quiet since its last flush: it publishes nothing more until new input).
Stage 2's event time is the lowest mark of the sources that are neither idle nor silent (no report for
`silent_s`: an owner that died or a worker without stage 2; its successor reports again), so a decision is
taken only when every source that could still send something older has gone past it. When every source is
idle or silent, stage 2 is drained: nothing is on its way, its time is the highest mark, and the idle steps
(`idle_release`) release what it holds and let time follow the wall clock as before.

Why marks on the routing records rather than stage 2 reading stage 1's progress: the marks then travel in
order behind the very events they cover, on the same partition, so no mark can overtake an event it
promises (a mark rides on the last routing record of the commit that produced it, and goes to partitions
that got no events in a later heartbeat). Sources that are idle stop reporting (`report_due`), so a quiet
deployment writes nothing; an active one refreshes its mark at least every `refresh_s`.

Known limit: a source reported idle that then receives a backlog is late against sources that went on (the
same as a late alert: its children are still assigned, and counted `late`). A stage-1 partition that has
had no input since it was assigned counts as idle after the idle flush. No mark can say that an idle source's input
is still to come (its backlog may be upstream, in another stage's partition: session 39's chaos soak, bodies refused
across the broker restart and posted again), so the Grouper places such children by their first alert among the
groups still open instead (`GroupingConfig.late_placed`); a group that has resolved meanwhile is not reopened.
`GroupingConfig.idle_placed` does so only for the children the marks show on time for their own partition
(`on_own_time`): late for stage 2 only because the low watermark moved on while their source was not waited for.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from ..models import IncidentEvent

__all__ = ["MARKS_HEADER", "RESTATED_HEADER", "Low", "LowWatermark", "SourceMark", "decode_marks", "dump_marks",
           "encode_marks", "idle_release", "load_marks", "on_own_time", "report_due", "source_mark"]

MARKS_HEADER = "aiops-marks"
"""Header of a routing record that carries the marks of the sending worker's stage-1 partitions."""
RESTATED_HEADER = "aiops-restated"
"""Header of a routing record of stage-1 incidents said again after a broker loss (`Correlator.restate`): each was on
time when first routed, and is late only because the broker took that record, so stage 2 places it by event time as
it does a child on time for its own partition (`on_own_time`, `GroupingConfig.idle_placed`)."""

_INF = float("inf")


@dataclass(frozen=True, slots=True)
class SourceMark:
    """How far one stage-1 partition has published: every event it has for alerts up to `at` is out."""

    at: float
    idle: bool = False
    """Quiet since its last flush: it sends nothing more until new input arrives."""


def source_mark(release_point: float, watermark: float, flushed: bool) -> SourceMark:
    """A stage-1 engine's mark: its release point while it holds alerts, its watermark once flushed (idle)."""
    return SourceMark(watermark if flushed else release_point, flushed)


@dataclass(frozen=True, slots=True)
class Low:
    """Stage 2's event time from its sources: `at`, and whether every source is idle or silent (`drained`)."""

    at: float
    drained: bool


@dataclass
class LowWatermark:
    """The marks of the sources of one stage-2 partition, and the low watermark they allow.

    `marks` is what a checkpoint saves (with the routing offset it covers); when each source was last heard
    is wall-clock (monotonic) time, kept in memory only: after a restart every source counts as heard then.
    """

    sources: int
    """Stage-1 partitions expected to report (the `alerts` topic's partitions)."""
    silent_s: float
    """A source not heard from for this long (and not idle) is no longer waited for."""
    since: float
    """When tracking began: a source never heard of counts as heard then."""
    marks: dict[int, SourceMark] = field(default_factory=dict)
    _heard: dict[int, float] = field(default_factory=dict)

    def note(self, marks: Mapping[int, SourceMark], now: float) -> None:
        """Take reported marks: a source's time never goes back (a restarted owner re-reports an older one)."""
        for source, mark in marks.items():
            old = self.marks.get(source)
            self.marks[source] = mark if old is None or mark.at >= old.at else SourceMark(old.at, mark.idle)
            self._heard[source] = now

    def low(self, now: float) -> Low:
        """The lowest mark of the sources still to be waited for, or the highest of all when none is."""
        waiting: list[float] = []
        for source in set(range(self.sources)) | set(self.marks):
            mark = self.marks.get(source)
            if mark is not None and mark.idle:
                continue
            if now - self._heard.get(source, self.since) >= self.silent_s:
                continue
            waiting.append(mark.at if mark is not None else -_INF)
        if waiting:
            return Low(min(waiting), drained=False)
        return Low(max((m.at for m in self.marks.values()), default=-_INF), drained=True)


def idle_release(
    watermark: float, held: Iterable[float], lateness_s: float, low: Low, flush: bool, step: float | None,
) -> float | None:
    """The event time a stage-2 partition's idle timer moves it to, or None when it stays.

    Up to the low watermark always (a source may have gone silent since the last input). Beyond it only when
    drained: after the idle flush (`flush`), far enough to release every held child (`held`: their first
    alerts), the latest plus the lateness, so that repeated pauses never push event time past what stage 1
    reported by more than the lateness; after the idle advance (`step`), by the silence, as the wall clock.
    """
    target = low.at
    if low.drained:
        if flush:
            target = max([target, *(t + lateness_s for t in held)])
        if step is not None:
            target = max(target, watermark) + step
    return target if target > watermark else None


def on_own_time(
    events: Iterable[IncidentEvent], previous: Mapping[int, SourceMark], reported: Mapping[int, SourceMark],
    lateness_s: float,
) -> list[str]:
    """Ids of a routing record's children that were on time for their own stage-1 partition: a first alert no earlier
    than the previous mark of the record's sources (`previous`: what stage 2 held before this record's `reported`
    marks), less stage 2's lateness.

    A mark promises that every event of alerts up to it is out, so a child beyond its source's previous mark was not
    late there; one stage 2 still finds behind its release point is late only because the low watermark moved on
    while that source was not waited for (idle, then a backlog: session 39's chaos soak, across39). Such children are
    what `GroupingConfig.idle_placed` places by event time. Less the lateness, as stage 2 allows: a child of a source
    it waited for is never both at or beyond that bound and behind its release point, so only a source not waited for
    yields any. A record's children are not tagged with their source, so the lowest previous mark of the record's
    sources decides (a sibling's lower mark may admit a child late for its own partition too; it is then placed as
    `late_placed` would place it). Empty for a record without marks (not the last of its commit), or with a source stage
    2 has no previous mark of (it promised nothing yet): today's rule for all of its children."""
    if not reported or any(s not in previous for s in reported):
        return []
    bound = min(previous[s].at for s in reported) - lateness_s
    return [ev.incident_id for ev in events if ev.first_seen >= bound]


def report_due(
    reported: Mapping[int, SourceMark] | None, current: Mapping[int, SourceMark], reported_at: float, now: float,
    refresh_s: float,
) -> bool:
    """Whether a stage-2 partition needs a heartbeat: what it was last told differs from `current`, or a
    source it waits for (not idle) was last reported `refresh_s` ago. An idle source's time is no news: stage 2
    does not wait for it, and a quiet deployment then sends nothing."""
    if reported is None:
        return bool(current)
    if {s: _news(m) for s, m in reported.items()} != {s: _news(m) for s, m in current.items()}:
        return True
    return now - reported_at >= refresh_s and any(not m.idle for m in current.values())


def _news(mark: SourceMark) -> tuple[bool, float]:
    return (True, -_INF) if mark.idle else (False, mark.at)


def dump_marks(marks: Mapping[int, SourceMark]) -> dict[str, list[Any]]:
    """JSON-ready marks: partition -> [at or null for none yet, idle]."""
    return {str(s): [None if m.at == -_INF else m.at, m.idle] for s, m in marks.items()}


def load_marks(doc: object) -> dict[int, SourceMark]:
    """Marks from `dump_marks`' form; ValueError naming what is wrong otherwise."""
    items = doc.items() if isinstance(doc, dict) else None
    if items is None:
        raise ValueError("marks: not an object")
    out: dict[int, SourceMark] = {}
    for source, value in items:
        if not (isinstance(source, str) and source.isdigit()):
            raise ValueError(f"marks: partition {source!r} is not a number")
        if not (isinstance(value, list) and len(value) == 2 and isinstance(value[1], bool)
                and (value[0] is None or isinstance(value[0], int | float) and not isinstance(value[0], bool))):
            raise ValueError(f"marks: {source}: not [event time or null, idle]")
        out[int(source)] = SourceMark(-_INF if value[0] is None else float(value[0]), value[1])
    return out


def encode_marks(marks: Mapping[int, SourceMark]) -> bytes:
    """The `MARKS_HEADER` value."""
    return orjson.dumps(dump_marks(marks))


def decode_marks(raw: bytes) -> dict[int, SourceMark]:
    """A `MARKS_HEADER` value; ValueError when it is not one."""
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"marks: not JSON: {exc}") from None
    return load_marks(doc)
