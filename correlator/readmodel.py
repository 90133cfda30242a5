"""The console's read model: every incident, cause, SLA clock, ticket and silence of the cluster, folded. Pure.

The worker's own stores hold only the partitions it owns; the console and the list views must answer for all of
them on any worker. `ReadModel` is folded from what every worker can read without owning anything: the records
of `incidents` (stage-1 `IncidentEvent`s, stage-2 `ParentEvent`s and `Assignment`s), the documents of the SLA
tables (incident clocks with their acknowledgement, ticket records with their reviews) and the silences of the
notify control topic. `stream.console.feed` reads those topics and calls the `apply_*` methods; the queries
(`page_of`, `headline_of`, `series_of`, `review_queue`, `reviews_of`, `silences_of`) take the wall-clock `now` as an argument.

A record applied twice, or an older one after a newer (a re-read after a rebalance), changes nothing: incidents
and causes keep the highest `seq`, clocks and tickets the document last written (the changelog's order).
A child's cause is its latest assignment, else the cause whose event lists it (`stream.feed.parent_of`'s rule):
stage 2 publishes an assignment when a child joins and the cause's next `updated` only after its throttle
(`update_interval_s` of event time), so a cause's row also lists the children assigned to it since its event.
Finished incidents are kept up to `keep_finished` of them (the newest by last alert), open ones all.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from correlator.models import IncidentFacts
from correlator.notify.models import Subject
from correlator.notify.routes import labels_of
from correlator.notify.silences import Silence, expire, silenced_by
from correlator.stage2.models import Assignment, ParentEvent
from correlator.triage.incident_sla import IncidentClock
from correlator.triage.lifecycle import Review, TicketRecord, waiting_for_review

__all__ = [
    "Filters",
    "Headline",
    "IncidentSnapshot",
    "Page",
    "ReadModel",
    "Row",
    "TimelineEntry",
    "headline_of",
    "page_of",
    "review_queue",
    "review_queue_size",
    "reviews_of",
    "series_of",
    "silences_of",
]

RowKind = Literal["incident", "cause"]
TIMELINE_LIMIT = 100
"""Events kept per incident for its timeline (the latest ones)."""


class IncidentSnapshot(IncidentFacts, Protocol):
    """What the model keeps of a stage-1 event: an `IncidentEvent`, or the feed's one-pass decode of its record
    (`stream.incident_records.IncidentCounts`: the same fields, a third of the decoding time)."""

    @property
    def firing_count(self) -> int: ...
    @property
    def distinct_fingerprints(self) -> int: ...
    @property
    def member_sample(self) -> Sequence[str]: ...
    @property
    def entities(self) -> Mapping[str, list[str]]: ...
    @property
    def previous_id(self) -> str | None: ...
    @property
    def reason(self) -> str: ...
    @property
    def emitted_at(self) -> float: ...


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One line of an incident's timeline: when (event time or wall time), what happened, and a detail."""

    at: float
    what: str
    detail: str = ""


@dataclass(slots=True)
class Row:
    """An incident (stage 1) or a cause (stage 2) as the console shows it: the latest event's facts."""

    id: str
    kind: RowKind
    seq: int
    status: str
    severity: str
    services: list[str]
    symptom: str
    scope: str
    key: str
    first_seen: float
    last_seen: float
    alert_count: int
    firing_count: int = 0
    distinct: int = 0
    duplicates: int = 0
    member_sample: list[str] = field(default_factory=list)
    entities: dict[str, list[str]] = field(default_factory=dict)
    previous_id: str | None = None
    reason: str = ""
    children: list[str] = field(default_factory=list)
    parent_id: str | None = None
    why: str = ""
    """Why this child joined its cause (the stage-2 assignment's explanation)."""
    timeline: list[TimelineEntry] = field(default_factory=list)

    @property
    def open(self) -> bool:
        """Whether it is still firing."""
        return self.status == "firing"

    def subject(self) -> Subject:
        """The notify stage's view of it, so silences match on exactly the labels notify matches on."""
        return Subject(id=self.id, kind=self.kind, severity=self.severity, services=list(self.services),
                       symptom=self.symptom, scope=self.scope)


@dataclass(frozen=True, slots=True)
class Filters:
    """What the operator narrowed the list to; empty strings match everything."""

    status: str = ""
    service: str = ""
    scope: str = ""
    severity: str = ""

    def admits(self, row: Row, model: ReadModel) -> bool:
        """Whether a top-level row (with its children, for a cause) passes every filter."""
        if self.status and not _status_admits(self.status, row, model):
            return False
        if self.severity and row.severity != self.severity:
            return False
        if not (self.service or self.scope):
            return True
        # Children are looked up only for the filters that read them: most pages have none set.
        rows = [row, *model.children_of(row)]
        if self.service and not any(self.service in s for r in rows for s in r.services):
            return False
        return not self.scope or any(self.scope in r.scope for r in rows)


def _status_admits(wanted: str, row: Row, model: ReadModel) -> bool:
    if wanted == "acknowledged":
        return model.acked(row) is not None
    if wanted == "open":
        return row.open and model.acked(row) is None
    return row.status == wanted


@dataclass(frozen=True, slots=True)
class Page:
    """One page of top-level rows (causes and incidents without a cause), newest first, and the total."""

    rows: list[Row]
    total: int
    offset: int
    limit: int


@dataclass(frozen=True, slots=True)
class Headline:
    """The noise the pipeline took away: alerts in, incidents after stage 1, groups a person looks at."""

    alerts: int
    duplicates: int
    incidents: int
    causes: int
    groups: int
    open_groups: int

    @property
    def reduction(self) -> float | None:
        """1 - groups / distinct alerts (None with no alerts yet)."""
        return 1.0 - self.groups / self.alerts if self.alerts else None


@dataclass
class ReadModel:
    """The cluster's incidents, causes, clocks, tickets and silences; see the module docstring."""

    keep_finished: int = 10_000
    rows: dict[str, Row] = field(default_factory=dict)
    clocks: dict[str, IncidentClock] = field(default_factory=dict)
    tickets: dict[str, TicketRecord] = field(default_factory=dict)
    silences: dict[str, Silence] = field(default_factory=dict)
    parent_of: dict[str, tuple[str, str]] = field(default_factory=dict)
    """child id -> (cause id, why it joined), known before or after the child's own events."""
    assigned: dict[str, list[str]] = field(default_factory=dict)
    """cause id -> the children assignments named to it, in order: the truth over an older list of the cause's."""
    version: int = 0
    """Grows with every change: the live page asks for rows again when it moves."""
    skipped: int = 0
    """Records that did not decode (their own agent dead-letters them; here they are only counted)."""
    whole: bool = False
    """Set by the feed once it has read every topic up to where it stood at start: until then a list from the
    model may lack what the cluster holds."""
    _trim_at: int = field(default=0, compare=False, repr=False)
    """Rows past which the next change trims (`_trim`); 0 until the first trim."""

    def apply_incident(self, event: IncidentSnapshot) -> bool:
        """Fold a stage-1 event; False when it is not newer than what the model holds."""
        row = self.rows.get(event.incident_id)
        if row is not None and row.seq >= event.seq:
            return False
        fresh = Row(id=event.incident_id, kind="incident", seq=event.seq, status=event.status,
                    severity=event.max_severity, services=[event.service], symptom=event.symptom, scope=event.scope,
                    key=event.key, first_seen=event.first_seen, last_seen=event.last_seen,
                    alert_count=event.alert_count, firing_count=event.firing_count,
                    distinct=event.distinct_fingerprints, duplicates=event.duplicates,
                    member_sample=list(event.member_sample), entities=dict(event.entities),
                    previous_id=event.previous_id, reason=event.reason)
        detail = f"{event.alert_count} alerts, {event.firing_count} firing" + (f": {event.reason}" if event.reason else "")
        self._replace(row, fresh, TimelineEntry(event.emitted_at, event.kind, detail))
        return True

    def apply_parent(self, event: ParentEvent) -> bool:
        """Fold a stage-2 cause's event; False when it is not newer than what the model holds."""
        row = self.rows.get(event.parent_id)
        if row is not None and row.seq >= event.seq:
            return False
        first = self.rows.get(event.first_child)
        fresh = Row(id=event.parent_id, kind="cause", seq=event.seq, status=event.status,
                    severity=event.max_severity, services=list(event.services),
                    symptom=first.symptom if first is not None else "", scope=first.scope if first else "",
                    key=event.parent_id, first_seen=event.first_seen, last_seen=event.last_seen,
                    alert_count=event.alert_count, children=list(event.children), previous_id=event.previous_id,
                    reason=event.reason)
        for child in event.children:  # a reason is kept while it holds; an assignment elsewhere is newer
            known = self.parent_of.get(child)
            if known is None or (known[0] != event.parent_id and not self._assigned_to(child, known[0])):
                self.parent_of[child] = (event.parent_id,
                                         f"opened cause {event.parent_id}" if child == event.first_child else "")
        fresh.children += [c for c in self.assigned.get(event.parent_id, ()) if c not in event.children
                           and self._assigned_to(c, event.parent_id)]
        detail = f"{len(event.children)} incidents, {event.alert_count} alerts" + (
            f", merged into {event.merged_into}" if event.merged_into else "")
        self._replace(row, fresh, TimelineEntry(event.emitted_at, event.kind, detail))
        return True

    def apply_assignment(self, assignment: Assignment) -> bool:
        """Note why a child joined its cause (shown on both)."""
        known = self.parent_of.get(assignment.child_id)
        if known == (assignment.parent_id, assignment.explanation):
            return False
        self.parent_of[assignment.child_id] = (assignment.parent_id, assignment.explanation)
        named = self.assigned.setdefault(assignment.parent_id, [])
        if assignment.child_id not in named:
            named.append(assignment.child_id)
        cause = self.rows.get(assignment.parent_id)
        if cause is not None and assignment.child_id not in cause.children:  # ahead of the cause's next event
            cause.children.append(assignment.child_id)
        for row_id in (assignment.child_id, assignment.parent_id):
            row = self.rows.get(row_id)
            if row is not None:
                _note(row, TimelineEntry(assignment.assigned_at, "joined" if row_id == assignment.parent_id
                                         else "grouped", f"{assignment.child_id}: {assignment.explanation}"))
        self.version += 1
        return True

    def apply_clock(self, incident_id: str, clock: IncidentClock | None) -> None:
        """Keep an incident's SLA clock (None: purged from its table)."""
        before = self.clocks.pop(incident_id, None)
        if clock is not None:
            self.clocks[incident_id] = clock
            row = self.rows.get(incident_id)
            if row is not None and clock.acked_by and (before is None or not before.acked_by):
                _note(row, TimelineEntry(clock.acked_at or 0.0, "acknowledged",
                                         f"by {clock.acked_by}" + (f": {clock.ack_note}" if clock.ack_note else "")))
        self.version += 1

    def apply_ticket(self, ticket_id: str, record: TicketRecord | None) -> None:
        """Keep a ticket's record (None: purged from its table)."""
        self.tickets.pop(ticket_id, None)
        if record is not None:
            self.tickets[ticket_id] = record
        self.version += 1

    def put_silence(self, silence: Silence) -> None:
        """Keep (or replace) a silence."""
        self.silences[silence.id] = silence
        self.version += 1

    def expire_silence(self, silence_id: str, at: float) -> None:
        """End a silence at `at` (one not yet started is dropped), as the notify stage does."""
        silence = self.silences.get(silence_id)
        ended = expire(silence, at) if silence is not None else silence
        if ended is silence:
            return
        if ended is None:
            del self.silences[silence_id]
        else:
            self.silences[silence_id] = ended
        self.version += 1

    # ---------------------------------------------------------------- reading

    def acked(self, row: Row) -> IncidentClock | None:
        """The acknowledged clock of an incident, or of a cause's first acknowledged child; None if nobody has."""
        for row_id in [row.id, *row.children]:
            clock = self.clocks.get(row_id)
            if clock is not None and clock.acked_by:
                return clock
        return None

    def children_of(self, row: Row) -> list[Row]:
        """A cause's children the model holds, in the order they joined."""
        return [c for c in (self.rows.get(i) for i in row.children) if c is not None]

    def why(self, row: Row) -> str:
        """Why an incident joined its cause ('' when it has none)."""
        return self.parent_of.get(row.id, ("", ""))[1]

    def parent(self, row: Row) -> str | None:
        """The cause an incident belongs to, if any."""
        known = self.parent_of.get(row.id)
        cause = self.rows.get(known[0]) if known is not None else None
        return cause.id if cause is not None and cause.status != "merged" and row.id in cause.children else None

    def silenced(self, row: Row, now: float) -> list[Silence]:
        """The active silences matching the row (or, for a cause, any of its children)."""
        ids = set(silenced_by(self.silences.values(), labels_of(row.subject()), now))
        for child in self.children_of(row):
            ids.update(silenced_by(self.silences.values(), labels_of(child.subject()), now))
        return [self.silences[i] for i in sorted(ids)]

    def top_rows(self) -> list[Row]:
        """Causes (but those merged into another) and incidents in no cause the model holds, newest first."""
        tops = [r for r in self.rows.values()
                if (r.status != "merged" if r.kind == "cause" else self.parent(r) is None)]
        tops.sort(key=lambda r: (r.last_seen, r.id), reverse=True)
        return tops

    # ---------------------------------------------------------------- internals

    def _assigned_to(self, child: str, cause_id: str) -> bool:
        """Whether the child's latest known cause is `cause_id` by an assignment."""
        return self.parent_of.get(child, ("", ""))[0] == cause_id and child in self.assigned.get(cause_id, ())

    def _replace(self, before: Row | None, fresh: Row, entry: TimelineEntry) -> None:
        fresh.timeline = before.timeline if before is not None else []
        _note(fresh, entry)
        self.rows[fresh.id] = fresh
        self.version += 1
        if len(self.rows) > max(self._trim_slack() + self.keep_finished, self._trim_at):
            self._trim()

    def _trim_slack(self) -> int:
        return self.keep_finished // 10 + 100

    def _trim(self) -> None:
        finished = sorted((r for r in self.rows.values() if not r.open), key=lambda r: (r.last_seen, r.id))
        for row in finished[:max(0, len(finished) - self.keep_finished)]:
            del self.rows[row.id]
            self.clocks.pop(row.id, None)
            self.parent_of.pop(row.id, None)
            self.assigned.pop(row.id, None)
        # Open rows all stay, so with many open the model is still past the bound after a trim: without a new mark
        # every change sorted every row again (seen: 2% of a worker in the console feed on a 400,000-alert storm).
        self._trim_at = len(self.rows) + self._trim_slack()


def _note(row: Row, entry: TimelineEntry) -> None:
    row.timeline.append(entry)
    del row.timeline[:-TIMELINE_LIMIT]


def page_of(model: ReadModel, filters: Filters, offset: int = 0, limit: int = 50,
            tops: list[Row] | None = None) -> Page:
    """One page of the filtered top-level rows (filtering and paging happen here, on the server).

    `tops` is `model.top_rows()` when the caller already has it (a page that also shows the headline).
    """
    matching = [r for r in (model.top_rows() if tops is None else tops) if filters.admits(r, model)]
    offset = max(0, min(offset, max(0, len(matching) - 1)))
    return Page(matching[offset:offset + limit], len(matching), offset, limit)


def headline_of(model: ReadModel, tops: list[Row] | None = None) -> Headline:
    """Alerts, duplicates, incidents and the groups left for a person (causes plus ungrouped incidents).

    `tops` is `model.top_rows()` when the caller already has it.
    """
    incidents = [r for r in model.rows.values() if r.kind == "incident"]
    tops = model.top_rows() if tops is None else tops
    return Headline(alerts=sum(r.alert_count for r in incidents), duplicates=sum(r.duplicates for r in incidents),
                    incidents=len(incidents), causes=sum(r.kind == "cause" for r in model.rows.values()),
                    groups=len(tops), open_groups=sum(r.open for r in tops))


def series_of(model: ReadModel, buckets: int = 24) -> tuple[float, float, list[tuple[int, int]]]:
    """(start, bucket width s, [(alerts, incidents)] per bucket) over the incidents' first-alert times.

    An incident's alerts are counted in the bucket of its first alert: the read model keeps counts, not every
    alert's time, and a storm is short against a bucket.
    """
    incidents = [r for r in model.rows.values() if r.kind == "incident"]
    if not incidents:
        return 0.0, 1.0, [(0, 0)] * buckets
    start = min(r.first_seen for r in incidents)
    width = max((max(r.first_seen for r in incidents) - start) / buckets, 1.0) * (1 + 1e-9)
    counts = [[0, 0] for _ in range(buckets)]
    for row in incidents:
        slot = counts[min(buckets - 1, int((row.first_seen - start) / width))]
        slot[0] += row.alert_count
        slot[1] += 1
    return start, width, [(a, i) for a, i in counts]


def review_queue(model: ReadModel) -> list[TicketRecord]:
    """Tickets waiting for a person, oldest first."""
    return waiting_for_review(model.tickets.values())


def review_queue_size(model: ReadModel) -> int:
    """How many tickets wait for a person (the badge on every page and live event: a count, not a sort)."""
    return sum(r.latest.status == "human_review" for r in model.tickets.values())


def reviews_of(model: ReadModel, limit: int = 50) -> list[tuple[str, Review]]:
    """The audit trail: (ticket id, decision) of every review the model holds, newest first."""
    made = [(r.ticket_id, review) for r in model.tickets.values() for review in r.reviews]
    made.sort(key=lambda pair: (pair[1].at, pair[0]), reverse=True)
    return made[:limit]


def silences_of(model: ReadModel, now: float, keep_s: float) -> list[Silence]:
    """Every silence not ended more than `keep_s` before `now`, by start."""
    kept: Iterable[Silence] = (s for s in model.silences.values() if s.ends_at + keep_s > now)
    return sorted(kept, key=lambda s: (s.starts_at, s.id))
