"""The analytics store: `incidents` and `tickets.triaged` folded into hourly aggregates (`correlator.insight`),
kept in changelog-backed tables with a retention; and the views that read them.

    GET /insight/hours?since=&until=      the hourly aggregates of this worker's partitions, added per hour
    GET /trends?by=tag&since=30d&top=10   recurring blockers: top items, counts per week, rising or not
    GET /summary?week=2026-W49            the weekly summary (default: the last whole week)

`tickets.triaged` has a stage of its own (`InsightStage`); `incidents` is folded by the incident agent, which
decodes each event once for the SLA clocks and these hours (`IncidentHours`, a `stream.tickets.IncidentReader`).
Both are per batch (`stream.stages.PerBatch`): a batch's changed hours are written, each with the offset of
the last record folded into it (`HourAggregate.through`), before the batch is acknowledged; a record read again
after a crash is recognised by that offset and not counted twice. Documents are one per hour and partition of
the source topic (`stream.docstore.DocStore`, key `<partition>|<hour>`), so the partition's owner holds them and
a restarted or new owner restores them from the changelog. Hours older than `insight_retention` behind the
newest time seen on the partition (never later than the wall clock) are deleted (tombstones: the changelog
stays bounded too).

Acknowledgements are not on a topic: the desk tells this store of each (`Insight.acknowledged`), and the time
from the incident's clock start to it counts in the hour the incident opened.

A worker answers for its own partitions; with several workers, `aiops summary` and `aiops trends` take one
`--url` per worker and add the hours (aggregates add up).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import msgspec
import orjson
from faust.types import EventT, TopicT
from pydantic import ValidationError

from correlator.config import parse_duration
from correlator.insight import (
    HourAggregate,
    TicketFact,
    build_summary,
    expired,
    fold_ack,
    fold_incidents,
    fold_ticket,
    hour_of,
    merge,
    parse_week,
    read_hours,
    recurring,
    ticket_fact,
    week_containing,
)
from correlator.insight.trends import DAY_S, WEEK_S
from correlator.models import IncidentEvent
from correlator.triage.lifecycle import InputError
from correlator.validation import first_error
from stream.app import App
from stream.checkpoint import Checkpointer, changelog_of
from stream.docstore import DocStore, locked
from stream.incident_records import IncidentCounts, decode_incident_fast
from stream.ingest import RETRY_AFTER_S
from stream.problems import problem_response
from stream.settings import Settings
from stream.stages import PerBatch, StageSpec
from stream.tickets import Desk, NotHere, NotReady, ReadIncident, doc_table, parse_incident
from stream.topics import INSIGHT_CHANGELOGS

__all__ = ["INSIGHT_INCIDENTS", "INSIGHT_TICKETS", "IncidentCounts", "IncidentHours", "Insight", "InsightStage",
           "counts_of", "hours_of", "incident_counts", "install_insight", "read_hours"]

log = logging.getLogger(__name__)

INSIGHT_INCIDENTS, INSIGHT_TICKETS = INSIGHT_CHANGELOGS  # table names; their changelogs in stream.topics
BATCH, WITHIN_S = 5000, 1.0  # analytics wait a second gladly: fewer, larger commits (each waits for the broker)
Ack = Callable[[str, str, float, str], Awaitable[None]]
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Fold(Generic[T]):
    """One decoded record to fold: where it came from, the hour it counts in, the newest time it shows, and what
    it holds (an incident event, a ticket fact), which its side folds into the hour with the others of the batch."""

    partition: int
    offset: int
    hour: int
    newest: float
    item: T


class HourStore(DocStore[HourAggregate, None]):
    """The hours of one partition. Their progress is the input offsets they name (`HourAggregate.through`), which a
    broker loss makes stale: the re-created topic starts again at offset 0, below them."""

    def forget_input(self) -> None:
        """Forget each hour's `through` (new records below it would be taken as counted, and skipped), and write
        every hour to the re-created changelog at the next checkpoint."""
        for hour, agg in self.items():
            if agg.through >= 0:
                again = agg.copied()
                again.through = -1
                self.put(hour, again)
        super().forget_input()


@dataclass
class Side:
    """The aggregates of one source topic: its table, and a store per owned partition."""

    table: Any
    sync_marker: bool
    stores: dict[int, DocStore[HourAggregate, None]] = field(default_factory=dict)
    horizon: dict[int, int] = field(default_factory=dict)
    """Per partition, the hour below which aggregates were last purged (purge again only when it moves)."""
    checkpoints: Checkpointer | None = None
    """The `Insight`'s, which forgets the input of a store built while its partition is lost (`broker_lost`)."""

    def store(self, partition: int) -> DocStore[HourAggregate, None]:
        """The hours of a partition, loaded from the table on first use."""
        store = self.stores.get(partition)
        if store is None:
            store = self.stores[partition] = HourStore(self.table, partition, HourAggregate,
                                                       sync_marker=self.sync_marker)
            if self.checkpoints is not None:
                self.checkpoints.forget(store)
        return store

    @property
    def changelog(self) -> str:
        """Kafka name of the table's changelog."""
        return changelog_of(self.table)

    def hour(self, store: DocStore[HourAggregate, None], hour: int) -> HourAggregate:
        """A partition's aggregate of one hour, a copy to change and `put` back (a new one if none)."""
        held = store.get(str(hour))
        return held.copied() if held is not None else HourAggregate(hour=hour)

    def rewrite(self) -> None:
        """Write every hour held again at the next commit (after a failed one, the changelog may lack them)."""
        for store in self.stores.values():
            store.rewrite()

    def purge(self, store: DocStore[HourAggregate, None], horizon: float) -> None:
        """Delete the partition's hours past retention (`correlator.insight.expired`)."""
        if hour_of(horizon) <= self.horizon.get(store.partition, -1):
            return
        self.horizon[store.partition] = hour_of(horizon)
        for hour, _ in store.items():
            if expired(int(hour), horizon):
                store.delete(hour)


@dataclass
class Insight:
    """The analytics store of one worker: both sides, the retention, the commit order, the sources."""

    app: App
    incidents: Side
    tickets: Side
    topics: dict[str, TopicT]
    retention_s: float
    refuse: Callable[[str, EventT[Any], Exception], Awaitable[None]]
    desk: Desk
    checkpoints: Checkpointer = field(init=False)

    def __post_init__(self) -> None:
        self.checkpoints = Checkpointer(self.app)
        self.incidents.checkpoints = self.tickets.checkpoints = self.checkpoints

    def broker_lost(self) -> None:
        """The broker lost its topics (stream/recovery.py): every store of both sides, held now or built later from
        the tables' local data, forgets the offsets its hours name and writes every hour to the re-created
        changelogs, at the next commit, which `tick` makes within a second. Before, none was written again, and the
        hours skipped the new records below their old offsets."""
        for side in (self.incidents, self.tickets):
            self.checkpoints.lose(side.table, range(side.table.partitions), side.stores.values())

    async def tick(self) -> None:
        """Commit the owned stores a broker loss left unwritten (`broker_lost`); nothing otherwise.

        The marks of partitions other workers own stay until this worker writes them (it may take them later): its
        copy of them (a standby, or what it held before) keeps the old offsets. Clearing a mark once the table had
        applied a checkpoint of it since the loss was tried (session 35) and let an engine restore its old progress
        and skip new alerts (`tests/test_group_recovery.py`, a worker that never saw the topics missing: 41 and 43
        of 48 correlated)."""
        if not self.checkpoints.lost or not self.desk.ready():
            return
        for side, topic in ((self.incidents, "incidents"), (self.tickets, "tickets_triaged")):
            owned = sorted(self.desk.owned(topic))
            lost = [side.store(p) for p in owned if (side.changelog, p) in self.checkpoints.lost]
            if lost:
                async with locked(lost):
                    await self.checkpoints.commit(lost)

    def aggregates(self) -> list[HourAggregate]:
        """Every hour of the partitions this worker owns, of both sides (not added up: `merge` does that).

        Raises `NotReady` while the tables recover: a store loaded then would miss what is still to come."""
        if not self.desk.ready():
            raise NotReady("recovering")
        # Loaded from the table on first use: after a restart the hours are there before any new input is.
        return [agg for side, topic in ((self.incidents, "incidents"), (self.tickets, "tickets_triaged"))
                for partition in sorted(self.desk.owned(topic)) for _, agg in side.store(partition).items()]

    async def fold_incidents(self, incidents: Sequence[ReadIncident]) -> None:
        """Fold decoded stage-1 events (the incident agent's batch) into the hours their incidents opened in; an
        event whose counts the store cannot hold is dead-lettered (agent `insight_incidents`)."""
        folds: list[Fold[IncidentCounts]] = []
        for read in incidents:
            try:
                incident = counts_of(read.incident)
            except InputError as exc:
                await self.refuse("insight_incidents", read.event, exc)
                continue
            msg = read.event.message
            folds.append(Fold(msg.partition, msg.offset, hour_of(incident.first_seen), incident.last_seen, incident))
        await self._fold(self.incidents, folds, fold_incidents)

    async def fold_tickets(self, events: Sequence[EventT[Any]]) -> None:
        """Fold a batch of `tickets.triaged` records into the hours they were decided in."""
        folds: list[Fold[TicketFact]] = []
        for event in events:
            msg = event.message
            try:
                fact = ticket_fact(_decoded(msg.value))
            except Exception as exc:  # noqa: BLE001 - whatever one record raises is that record's dead letter
                await self.refuse("insight_tickets", event, _problem(exc))
                continue
            folds.append(Fold(msg.partition, msg.offset, hour_of(fact.decided_at), fact.decided_at, fact))
        await self._fold(self.tickets, folds, _fold_tickets)

    async def _fold(self, side: Side, folds: Sequence[Fold[T]],
                    fold_all: Callable[[HourAggregate, list[T]], object]) -> None:
        """Apply decoded records to their hours (`fold_all`: each hour's items of the batch, in order), purge what
        is past retention, and commit, under the stores' locks (an acknowledgement, from a web view, writes the
        same hours)."""
        stores = {p: side.store(p) for p in sorted({f.partition for f in folds})}
        now = time.time()  # a record dated in the future never moves the retention's edge past the present
        async with locked(stores.values()):
            changed: dict[tuple[int, int], HourAggregate] = {}
            items: dict[tuple[int, int], list[T]] = {}
            for f in folds:
                store, at = stores[f.partition], (f.partition, f.hour)
                agg = changed.get(at) or side.hour(store, f.hour)
                if f.offset <= agg.through:
                    continue  # read again after a crash: already counted in this hour
                # Folded below, after the loop: an hour's changes touch only its own copy, never the store the
                # purge deletes from, so folding each hour's items at once gives what folding each in turn did.
                items.setdefault(at, []).append(f.item)
                agg.through = f.offset
                changed[at] = agg
                side.purge(store, min(f.newest, now) - self.retention_s)
            for (partition, hour), agg in changed.items():
                fold_all(agg, items[(partition, hour)])
                stores[partition].put(str(hour), agg)
            await self.checkpoints.commit(list(stores.values()))

    async def acknowledged(self, incident_id: str, who: str, when: float, note: str) -> None:
        """An incident was acknowledged (the desk's hook): time to acknowledge, in the hour it opened."""
        try:
            clocks = self.desk.locate_incident(incident_id)
        except (NotReady, NotHere):
            return  # the desk answered for it a moment ago; a rebalance since: the next owner never saw it
        clock = clocks.get(incident_id)
        if clock is None or clock.acked_at is None:
            return
        store = self.incidents.store(clocks.partition)  # the same partition of `incidents` as the desk's clock
        async with store.lock:
            # The hour it opened in holds it open; else (opened before this store began) the hour its clock began.
            hour = next((h for h, agg in store.items() if incident_id in agg.open), str(hour_of(clock.opened_at)))
            agg = self.incidents.hour(store, int(hour))
            fold_ack(agg, clock.acked_at - clock.opened_at, clock.service)
            store.put(hour, agg)
            await self.checkpoints.commit([store])

    def drop(self, side: Side, partitions: Iterable[int]) -> None:
        """Forget the stores of revoked partitions (they live on in the changelog)."""
        for partition in partitions:
            side.stores.pop(partition, None)
            side.horizon.pop(partition, None)


def _fold_tickets(agg: HourAggregate, facts: list[TicketFact]) -> None:
    for fact in facts:
        fold_ticket(agg, fact)


def incident_counts(raw: bytes | None) -> IncidentCounts | None:
    """The counts of a stage-1 event; None for a stage-2 record written without its header. A value that is
    neither is refused by `stream.tickets.parse_incident`, with the same reason the SLA agent gives."""
    fast = decode_incident_fast(raw)
    if fast is not None:
        return fast
    event = parse_incident(raw)  # the slow path, only for what the fast one refused: raises, or a cause
    return None if event is None else counts_of(event)


def counts_of(incident: IncidentCounts | IncidentEvent) -> IncidentCounts:
    """A decoded stage-1 event as counts the store can hold; `InputError` for a valid event with a count or time
    beyond them (only the model's slow path, for what msgspec refused, can give one)."""
    if isinstance(incident, IncidentCounts):
        return incident
    try:
        return msgspec.convert(incident.model_dump(), IncidentCounts)
    except msgspec.ValidationError as exc:
        raise InputError(f"an incident event the analytics store cannot count: {exc}", "invalid_incident_event") \
            from None


def _decoded(raw: bytes | None) -> dict[str, Any]:
    try:
        value = orjson.loads(raw or b"")
    except orjson.JSONDecodeError as exc:
        raise InputError(f"malformed JSON: {exc}", "malformed_json") from None
    if not isinstance(value, dict):
        raise InputError(f"expected a JSON object, got {type(value).__name__}", "invalid_triaged_ticket")
    return value


def _problem(exc: Exception) -> Exception:
    if isinstance(exc, ValidationError):
        first = first_error(exc)
        return InputError(f"not a TriagedTicket: {first.field}: {first.reason}", "invalid_triaged_ticket")
    return exc


@dataclass
class InsightStage(PerBatch):
    """`tickets.triaged` -> its hourly aggregates (tickets, reviews, SLA breaches)."""

    insight: Insight
    spec: StageSpec = StageSpec("insight_tickets", BATCH, WITHIN_S, tick_s=1.0)

    @property
    def source(self) -> TopicT:
        """`tickets.triaged`."""
        return self.insight.topics["tickets_triaged"]

    async def fold(self, events: Sequence[EventT[Any]]) -> None:
        """`Insight.fold_tickets`."""
        await self.insight.fold_tickets(events)

    async def tick(self) -> None:
        """`Insight.tick` (both sides: the incident agent that folds the other has no timer for it)."""
        await self.insight.tick()

    def rollback(self, failed: Sequence[EventT[Any]]) -> list[EventT[Any]]:
        """Every batch is its own commit: written whole again next time; the batch folded again (what made it
        into an hour's `through` is skipped)."""
        self.insight.tickets.rewrite()
        return list(failed)

    def drop(self, partitions: set[int]) -> None:
        """Forget revoked partitions."""
        self.insight.drop(self.insight.tickets, partitions)


@dataclass
class IncidentHours:
    """`incidents` -> its hourly aggregates (incident counts and times): a `stream.tickets.IncidentReader`, run by
    the incident agent on the events it decoded for the SLA clocks."""

    insight: Insight

    async def fold_incidents(self, incidents: Sequence[ReadIncident]) -> None:
        """`Insight.fold_incidents`."""
        await self.insight.fold_incidents(incidents)

    def rewrite(self) -> None:
        """Every batch is its own commit: written whole again next time (the batch is folded again, and what made
        it into an hour's `through` is skipped)."""
        self.insight.incidents.rewrite()

    def drop(self, partitions: set[int]) -> None:
        """Forget revoked partitions."""
        self.insight.drop(self.insight.incidents, partitions)


def hours_of(aggs: Iterable[HourAggregate], since: float, until: float) -> list[HourAggregate]:
    """The aggregates in [since, until) added up per hour, oldest first, without their bookkeeping."""
    merged = merge(a for a in aggs if since <= a.hour < until)
    return [merged[h] for h in sorted(merged)]


def _time_arg(request: Any, name: str, default: float) -> float:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"{name}: expected epoch seconds, got {raw!r}") from None


def _bad(request: Any, exc: Exception) -> Any:
    if isinstance(exc, NotReady):
        return problem_response(request, 503, "recovering", "recovering state, try again shortly",
                                headers={"Retry-After": str(RETRY_AFTER_S)})
    return problem_response(request, 400, "invalid_query", str(exc))


def install_views(insight: Insight) -> None:
    """`/insight/hours`, `/trends` and `/summary` on the app's web server."""
    app = insight.app

    @app.page("/insight/hours")
    async def hours(web: Any, request: Any) -> Any:
        try:
            until = _time_arg(request, "until", time.time() + DAY_S)
            since = _time_arg(request, "since", until - 35 * DAY_S)
        except ValueError as exc:
            return _bad(request, exc)
        try:
            found = hours_of(insight.aggregates(), since, until)
        except NotReady as exc:
            return _bad(request, exc)
        return web.json({"hours": [h.model_dump(mode="json", exclude={"open", "through"}) for h in found]})

    @app.page("/trends")
    async def trends(web: Any, request: Any) -> Any:
        try:
            until = _time_arg(request, "until", time.time())
            since_s = parse_duration(request.query.get("since", "30d"))
            top = int(request.query.get("top", "10"))
            found = recurring(insight.aggregates(), request.query.get("by", "tag"), until, since_s, top)
        except (ValueError, NotReady) as exc:
            return _bad(request, exc)
        return web.json(found.model_dump(mode="json"))

    @app.page("/summary")
    async def summary(web: Any, request: Any) -> Any:
        week = request.query.get("week")
        try:
            start = parse_week(week) if week else week_containing(time.time()) - WEEK_S
            found = build_summary(insight.aggregates(), start)
        except (ValueError, NotReady) as exc:
            return _bad(request, exc)
        return web.json(found.model_dump(mode="json"))


def install_insight(app: App, settings: Settings, desk: Desk) -> tuple[Insight, InsightStage, IncidentHours]:
    """The analytics store's tables and views; its stage of `tickets.triaged` (for `stream.stages.StageRunner`) and
    its fold of `incidents` (for the incident agent, `stream.tickets.IncidentSlaStage.readers`).

    Called after the notify stage is installed: the desk's acknowledgement hook then tells both.
    """
    sync = settings.changelog_sync_marker
    incidents, tickets = settings.partitions_for("incidents"), settings.partitions_for("tickets_triaged")
    insight = Insight(
        app,
        incidents=Side(doc_table(app, settings, INSIGHT_INCIDENTS, incidents), sync),
        tickets=Side(doc_table(app, settings, INSIGHT_TICKETS, tickets), sync),
        topics={"incidents": desk.topics["incidents"], "tickets_triaged": desk.topics["tickets_triaged"]},
        retention_s=settings.insight_retention, refuse=desk.pipe.refuse, desk=desk,
    )
    before: Ack | None = desk.acknowledged

    async def acknowledged(incident_id: str, who: str, when: float, note: str) -> None:
        if before is not None:
            await before(incident_id, who, when, note)
        await insight.acknowledged(incident_id, who, when, note)

    desk.acknowledged = acknowledged
    install_views(insight)
    return insight, InsightStage(insight), IncidentHours(insight)
