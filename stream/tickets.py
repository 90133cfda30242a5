"""The ticket agents: triage (`tickets.raw` -> `tickets.triaged`), incident SLA clocks (`incidents`), the SLA timer.

The incident SLA agent is the worker's one Faust reader of `incidents` for the folds of stage-1 events: it decodes
each event once and hands the batch to the SLA clocks and then to every `IncidentReader` attached to it (the
analytics store's hours, `stream.insight.IncidentHours`). Each fold commits its own stores (its own crash-safe
checkpoint) before the batch is acknowledged, and each skips what it already applied when a batch is folded
again, so a crash or a failed commit between two folds repeats the batch and counts nothing twice. One agent
instead of one per fold: every record Faust hands to an agent costs its per-message path (conductor, queue,
stream iteration) once per agent.

Only wiring lives here; every decision is a pure function of `correlator.triage` called with wall-clock `now`.

Keys and partitions. A ticket's record lives in the partition of `tickets.raw` its id hashes to (tickets are
keyed by id; a record that arrives elsewhere is forwarded there once), an incident's clock in the partition of
`incidents` its event came from (the correlate agent keys by incident id). Each lives in a changelog-backed
table whose changelog partition is that same partition, so Faust hands a partition's records to the worker
that owns the partition, and restores them from the changelog after a restart or a takeover. The SLA timer
scans only the partitions this worker owns, and only once recovery is done, so one breach is seen by one
worker. See `stream.docstore` for the order in which a decision, its events and the outbox marker are
written, which is what makes a restart send an escalation at most once more and never decide it twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson
from faust.types import EventT, TopicT
from pydantic import ValidationError

from correlator import metrics
from correlator.models import IncidentEvent, IncidentFacts, Ticket
from correlator.triage import (
    Classification,
    Classifier,
    PluginTimedOut,
    RoutingPolicy,
    RuleClassifier,
    TriageConfig,
    load_plugin,
    settle,
)
from correlator.triage.incident_sla import (
    ClosedClock,
    IncidentClock,
    check_incident,
    clock_purgeable,
    closed_clock,
    closed_purgeable,
    incident_event_value,
    on_incident_events,
)
from correlator.triage.lifecycle import (
    InputError,
    TicketRecord,
    TicketResolution,
    check_ticket,
    event_of,
    open_ticket,
    parse_ticket_input,
    purgeable,
    resolve,
)
from correlator.validation import first_error
from stream import tally
from stream.app import App
from stream.checkpoint import Checkpointer
from stream.docstore import DocStore, Outbound, locked
from stream.incident_records import IncidentCounts, decode_incident_fast, is_incident_event
from stream.pipeline import Pipeline
from stream.sends import key_partition
from stream.settings import Settings
from stream.stages import PerBatch, StageSpec
from stream.topics import changelog_name
from stream.triage_model import ModelWatch

__all__ = ["Desk", "IncidentReader", "IncidentSlaStage", "ReadIncident", "doc_table", "NotHere", "NotReady", "TriageStage",
           "install_desk", "routing_policy", "triage_batch", "read_incidents", "clock_incidents",
           "sla_tick", "open_incident_clocks"]

log = logging.getLogger(__name__)

TRIAGE_BATCH, INCIDENT_BATCH, BATCH_WITHIN_S = 200, 5000, 0.05
INCIDENT_SLA = "incident_sla"
"""The incident agent's name: its metrics' label, and the agent its dead letters name."""


class NotReady(RuntimeError):
    """The worker is still recovering its tables: its records are not there yet (HTTP 503)."""


class NotHere(RuntimeError):
    """The record's partition belongs to another worker (HTTP 421)."""

    def __init__(self, partition: int) -> None:
        super().__init__(f"partition {partition} is owned by another worker")
        self.partition = partition


def routing_policy(settings: Settings) -> RoutingPolicy:
    """The gate threshold and per-tier SLAs from the worker's settings."""
    return RoutingPolicy(threshold=settings.triage_threshold,
                         sla_minutes_of_tier=tuple((t, s / 60.0) for t, s in sorted(settings.tier_sla.items())))


def partition_of(key: str, partitions: int) -> int:
    """The partition a keyed Kafka producer (murmur2, as aiokafka and the Java client) picks for `key`."""
    return key_partition(key.encode(), partitions)


@dataclass
class Desk:
    """The ticket side of one worker: classifier, policy, topics, and the SLA stores of its owned partitions."""

    app: App
    pipe: Pipeline
    policy: RoutingPolicy
    config: TriageConfig
    topics: dict[str, TopicT]
    ticket_table: Any
    incident_table: Any
    ticket_partitions: int
    incident_partitions: int
    retention_s: float
    models: ModelWatch
    """The learned model beside the rules (its `classifier` is None while none is configured and loaded)."""
    sync_marker: bool = True
    rules: Classifier = field(default_factory=RuleClassifier)
    plugin: Classifier | None = None
    tickets: dict[int, DocStore[TicketRecord, None]] = field(default_factory=dict)
    incidents: dict[int, DocStore[IncidentClock, ClosedClock]] = field(default_factory=dict)
    # Newest incident event time seen per partition of `incidents` since this worker took it (not kept: after a
    # restart nothing is purged by event time until events arrive again, only by wall-clock retention).
    incident_seen: dict[int, float] = field(default_factory=dict)
    checkpoints: Checkpointer = field(init=False)
    """Writes the stores in the crash-safe order (`stream.checkpoint`), each commit on its own."""
    acknowledged: Callable[[str, str, float, str], Awaitable[None]] | None = None
    """Told of each new acknowledgement (incident id, who, when, note): the notify stage, when it runs."""

    def __post_init__(self) -> None:
        self.checkpoints = Checkpointer(self.app, outputs=self.topics, on_sent=_count_sent)

    def incident_horizon(self, partition: int) -> float:
        """Event time before which closed incident clocks of a partition are past their retention."""
        return self.incident_seen.get(partition, float("-inf")) - self.retention_s

    def topic_name(self, topic_field: str) -> str:
        """Kafka name of one of the desk's topics."""
        return str(self.topics[topic_field].get_topic_name())

    def ready(self) -> bool:
        """Whether the tables are recovered and no rebalance is under way: only then are the stores whole."""
        app: Any = self.app
        recovered = app.tables.recovery.completed.is_set()
        return bool(recovered and not app.rebalancing and not getattr(app, "in_recovery", False))

    def owned(self, topic_field: str) -> set[int]:
        """Partitions of a topic this worker actively owns."""
        name = self.topic_name(topic_field)
        return {tp.partition for tp in self.app.assignor.assigned_actives() if tp.topic == name}

    def ticket_store(self, partition: int) -> DocStore[TicketRecord, None]:
        """The ticket records of a partition, loaded from the table on first use."""
        store = self.tickets.get(partition)
        if store is None:
            store = self.tickets[partition] = DocStore(self.ticket_table, partition, TicketRecord,
                                                       sync_marker=self.sync_marker)
            _loaded("ticket", store)
            self.checkpoints.forget(store)  # if its partition is lost (`broker_lost`)
        return store

    def incident_store(self, partition: int) -> DocStore[IncidentClock, ClosedClock]:
        """The incident clocks of a partition, loaded from the table on first use."""
        store = self.incidents.get(partition)
        if store is None:
            store = self.incidents[partition] = DocStore(self.incident_table, partition, IncidentClock,
                                                         sync_marker=self.sync_marker, settle=closed_clock)
            _loaded("incident", store)
            self.checkpoints.forget(store)  # if its partition is lost (`broker_lost`)
        return store

    def broker_lost(self) -> None:
        """The broker lost its topics (stream/recovery.py): every store, held now or built later from the tables'
        local data, writes all its documents to the re-created changelogs at its next commit, which the SLA timer
        makes within a tick (it commits every owned store). Before, none was written again: a worker that took a
        partition next restored only the documents changed since the loss."""
        for table, partitions, stores in ((self.ticket_table, self.ticket_partitions, self.tickets),
                                          (self.incident_table, self.incident_partitions, self.incidents)):
            self.checkpoints.lose(table, range(partitions), stores.values())

    def keep_only(self, tickets: set[int], incidents: set[int]) -> None:
        """Forget the stores of every partition not in the owned sets (a revocation the signal did not tell)."""
        for partition in set(self.tickets) - tickets:
            del self.tickets[partition]
        for partition in set(self.incidents) - incidents:
            del self.incidents[partition]
            self.incident_seen.pop(partition, None)

    def locate_ticket(self, ticket_id: str) -> DocStore[TicketRecord, None]:
        """The store that holds (or would hold) a ticket, if this worker owns its partition."""
        if not self.ready():
            raise NotReady("recovering")
        partition = partition_of(ticket_id, self.ticket_partitions)
        if partition not in self.owned("tickets_raw"):
            raise NotHere(partition)
        return self.ticket_store(partition)

    def locate_incident(self, incident_id: str) -> DocStore[IncidentClock, ClosedClock]:
        """The store that holds an incident's clock; by search, as its partition is the producer's choice."""
        if not self.ready():
            raise NotReady("recovering")
        owned = self.owned("incidents")
        for partition in sorted(owned):
            store = self.incident_store(partition)
            if store.get(incident_id) is not None:
                return store
        partition = partition_of(incident_id, self.incident_partitions)
        if partition not in owned:
            raise NotHere(partition)
        return self.incident_store(partition)

    async def classify(self, text: str) -> Classification:
        """The rules' answer, or the plug-in's within its timeout (run in a thread), the rules answering for it."""
        if self.plugin is None:
            learned = self.models.classifier
            # The model's vote takes milliseconds of CPU: off the event loop, so a batch never stalls the worker.
            return self.rules.classify(text) if learned is None else await asyncio.to_thread(learned.classify, text)
        outcome: object
        try:
            outcome = await asyncio.wait_for(asyncio.to_thread(self.plugin.classify, text),
                                             self.config.plugin_timeout_s)
        except TimeoutError:
            outcome = PluginTimedOut(self.config.plugin_timeout_s)
        except Exception as exc:  # noqa: BLE001 - any plug-in failure means: the rules answer
            outcome = exc
        return settle(text, outcome, self.rules, self.config.taxonomy)

    async def commit(self, *stores: DocStore[Any, Any]) -> None:
        """Write the stores' changes, then send their events (caller holds every store's lock)."""
        await self.checkpoints.commit(stores)

    def rewrite(self, stores: Iterable[DocStore[Any, Any]]) -> None:
        """After a failed commit: every document of `stores` is written again by the next one (the changelog may
        lack what the table holds); their unsent events stay in the outbox and go out then."""
        for store in stores:
            store.rewrite()


def _loaded(subject: str, store: DocStore[Any, Any]) -> None:
    log.info("%s SLA store for partition %d: %d records restored, %d events to send again",
             subject, store.partition, len(store), store.resent_on_load)
    metrics.OUTBOX_RESENT.inc(store.resent_on_load)


def _count_sent(event: Outbound) -> None:
    if event.topic == "tickets_triaged":
        metrics.TRIAGED_EVENTS.labels(event.value.get("subject", "ticket"), event.value.get("status", "")).inc()


def ticket_event(record: TicketRecord) -> Outbound:
    """The outbox entry of the record's latest event on `tickets.triaged`, keyed by ticket id."""
    return Outbound("tickets_triaged", record.ticket_id, event_of(record))


async def triage_batch(desk: Desk, events: Sequence[EventT[Any]]) -> None:
    """Decode, classify and gate a batch of `tickets.raw` records; apply resolutions; dead-letter the rest."""
    now = time.time()
    by_partition: dict[int, list[tuple[EventT[Any], Ticket | TicketResolution, Classification | None]]] = {}
    for event in events:
        msg = event.message
        try:
            item = parse_ticket_input(msg.value)
        except Exception as exc:  # noqa: BLE001 - whatever one record raises is that record's dead letter
            await desk.pipe.refuse("triage", event, exc)
            continue
        partition = partition_of(item.ticket_id, desk.ticket_partitions)
        if partition != msg.partition:
            await _forward(desk, item.ticket_id, msg.value, partition)
            continue
        result = await desk.classify(item.text) if isinstance(item, Ticket) else None
        by_partition.setdefault(partition, []).append((event, item, result))
    for partition, items in by_partition.items():
        store = desk.ticket_store(partition)
        async with store.lock:
            for event, item, result in items:
                await _apply_input(desk, store, event, item, result, now)
            await desk.commit(store)


async def _forward(desk: Desk, ticket_id: str, value: bytes | None, partition: int) -> None:
    """Re-send a record to its ticket's partition, so one partition (one worker) holds the whole ticket."""
    await desk.topics["tickets_raw"].send(key=ticket_id.encode(), value=value, partition=partition)
    metrics.TICKETS_FORWARDED.inc()


async def _apply_input(desk: Desk, store: DocStore[TicketRecord, None], event: EventT[Any],
                       item: Ticket | TicketResolution, result: Classification | None, now: float) -> None:
    held = store.get(item.ticket_id)
    if isinstance(item, TicketResolution):
        if held is None:
            await desk.pipe.deadletter("triage", event, f"resolution of unknown ticket {item.ticket_id}",
                                       "unknown_ticket")
            return
        after = resolve(held, item.who, now, item.note)
        if after is None:
            tally.inc(metrics.TICKET_DUPLICATES)
            return
        store.put(item.ticket_id, after, [ticket_event(after)])
        return
    if held is not None:  # a re-send, or a redelivery after a crash: triaged once
        tally.inc(metrics.TICKET_DUPLICATES)
        return
    assert result is not None
    record = open_ticket(item, result, now, desk.policy)
    tally.inc(metrics.TICKETS_TRIAGED.labels(record.latest.status, record.latest.tier or metrics.NO_TIER))
    store.put(item.ticket_id, record, [ticket_event(record)])


def parse_incident(raw: bytes | None) -> IncidentEvent | None:
    """A stage-1 `IncidentEvent`, or None for a stage-2 parent event (same topic, not clocked here).

    Stage 2's own records are skipped by their header before this (`read_incidents`); this tells apart those
    another producer wrote without it. A stage-1 event, nearly every record, is decoded in one pass.
    """
    try:
        return IncidentEvent.model_validate_json(raw or b"")
    except ValidationError:
        pass  # malformed, a stage-2 record, or not an event: the slower path below says which
    try:
        doc = orjson.loads(raw or b"")
    except orjson.JSONDecodeError as exc:
        raise InputError(f"malformed JSON: {exc}", "malformed_json") from None
    if isinstance(doc, dict) and "parent_id" in doc and "incident_id" not in doc:
        return None
    try:
        return IncidentEvent.model_validate(doc)
    except ValidationError as exc:
        first = first_error(exc)
        raise InputError(f"not an IncidentEvent: {first.field}: {first.reason}", "invalid_incident_event") from None


@dataclass(frozen=True, slots=True)
class ReadIncident:
    """A stage-1 event of a batch of `incidents`, decoded once for every fold of the incident agent: the Faust event
    it came from (partition, offset, and what a dead letter sends) and its facts (msgspec's `IncidentCounts`, or the
    model for what that pass refused and the model accepted)."""

    event: EventT[Any]
    incident: IncidentCounts | IncidentEvent


class IncidentReader(Protocol):
    """A fold of stage-1 incident events run by the incident agent after the SLA clocks, on the same decoded batch
    (`IncidentSlaStage.readers`). Its stores live per partition of `incidents`; it commits them itself before it
    returns, and folding a batch again must count nothing twice."""

    async def fold_incidents(self, incidents: Sequence[ReadIncident]) -> None:
        """Fold the decoded events (refusing what this fold cannot take to the dead-letter topic), then commit."""
        ...

    def rewrite(self) -> None:
        """After a failed batch: write every document again at the next commit (the changelog may lack them)."""
        ...

    def drop(self, partitions: set[int]) -> None:
        """Forget the stores of revoked partitions of `incidents`."""
        ...


async def read_incidents(desk: Desk, events: Sequence[EventT[Any]]) -> list[ReadIncident]:
    """The stage-1 events of a batch of `incidents`, each decoded once; stage 2's records skipped by their header;
    what neither msgspec nor the model accepts dead-lettered (agent `incident_sla`)."""
    read: list[ReadIncident] = []
    for event in events:
        if not is_incident_event(event.message.headers):
            continue  # a parent, an assignment, a census: not clocked here, and not worth decoding to find out
        try:  # one msgspec pass; what it refuses, the model decides and names the reason for
            decoded = decode_incident_fast(event.message.value) or parse_incident(event.message.value)
        except Exception as exc:  # noqa: BLE001 - whatever one record raises is that record's dead letter
            await desk.pipe.refuse(INCIDENT_SLA, event, exc)
            continue
        if decoded is not None:
            read.append(ReadIncident(event, decoded))
    return read


async def clock_incidents(desk: Desk, incidents: Sequence[ReadIncident]) -> None:
    """Start, move or stop the SLA clocks of decoded incident events, and commit the clocks."""
    now = time.time()
    # Per partition, each incident's events in order: its clock moves once per batch (`on_incident_events`).
    by_partition: dict[int, dict[str, list[IncidentFacts]]] = {}
    for read in incidents:
        incident = read.incident
        by_partition.setdefault(read.event.message.partition, {}).setdefault(incident.incident_id, []).append(incident)
    stores = {partition: desk.incident_store(partition) for partition in sorted(by_partition)}
    async with locked(stores.values()):  # in partition order, as every holder of several takes them
        for partition, by_incident in by_partition.items():
            store = stores[partition]
            newest = max(incident.last_seen for facts in by_incident.values() for incident in facts)
            desk.incident_seen[partition] = max(desk.incident_seen.get(partition, newest), newest)
            horizon = desk.incident_horizon(partition)
            for incident_id, facts in by_incident.items():
                after = on_incident_events(store.get(incident_id), facts, now, desk.policy, horizon=horizon)
                if after is not None:
                    store.put(incident_id, after)
        await desk.commit(*stores.values())  # one pair of flushes for the batch, not one per partition


async def sla_tick(desk: Desk, now: float) -> None:
    """Escalate what is past due, and purge what is closed and old, on the partitions this worker owns.

    Also where a restarted worker sends the events its restored state holds unsent (`DocStore.commit`).
    """
    if not desk.ready():
        return
    owned_tickets, owned_incidents = desk.owned("tickets_raw"), desk.owned("incidents")
    desk.keep_only(owned_tickets, owned_incidents)
    for partition in sorted(owned_tickets):
        tickets = desk.ticket_store(partition)
        async with tickets.lock:
            _check_tickets(desk, tickets, now)
            await desk.commit(tickets)
    stores = [(partition, desk.incident_store(partition)) for partition in sorted(owned_incidents)]
    async with locked(clocks for _, clocks in stores):
        for partition, clocks in stores:
            _check_incidents(desk, clocks, partition, now)
        await desk.commit(*(clocks for _, clocks in stores))
    _census(desk)


def _check_tickets(desk: Desk, store: DocStore[TicketRecord, None], now: float) -> None:
    for ticket_id, record in store.items():
        checked = check_ticket(record, now, desk.policy)
        if checked is not None:
            after, reason = checked
            metrics.SLA_ESCALATIONS.labels("ticket", reason).inc()
            metrics.SLA_BREACHES.labels("ticket", record.latest.severity, record.latest.tier or metrics.NO_TIER,
                                        reason).inc()
            log.info("ticket %s: %s", ticket_id, after.latest.reason)
            store.put(ticket_id, after, [ticket_event(after)])
        elif purgeable(record.closed_at, now, desk.retention_s):
            store.delete(ticket_id)


def _check_incidents(desk: Desk, store: DocStore[IncidentClock, ClosedClock], partition: int, now: float) -> None:
    horizon = desk.incident_horizon(partition)
    for incident_id, closed in store.settled_items():
        if closed_purgeable(closed, now, horizon, desk.retention_s):
            store.delete(incident_id)
    for incident_id, clock in store.live_items():
        checked = check_incident(clock, now, desk.policy)
        if checked is not None:
            after, event, reason = checked
            metrics.SLA_ESCALATIONS.labels("incident", reason).inc()
            metrics.SLA_BREACHES.labels("incident", clock.severity, clock.tier, reason).inc()
            log.info("incident %s: %s", incident_id, event.reason)
            store.put(incident_id, after, [Outbound("tickets_triaged", event.ticket_id,
                                                    incident_event_value(after, event))])
        elif clock_purgeable(clock, now, horizon, desk.retention_s):
            store.delete(incident_id)


def _census(desk: Desk) -> None:
    records = [r for store in desk.tickets.values() for _, r in store.items()]
    metrics.REVIEW_QUEUE.set(sum(r.latest.status == "human_review" for r in records))
    metrics.SLA_CLOCKS_OPEN.labels("ticket").set(sum(r.latest.status in ("routed", "escalated") for r in records))
    metrics.SLA_CLOCKS_OPEN.labels("incident").set(open_incident_clocks(desk))


def open_incident_clocks(desk: Desk) -> int:
    """Incident clocks running on this worker (settled ones are closed: only the live are walked)."""
    return sum(c.phase == "open" for store in desk.incidents.values() for _, c in store.live_items())


def _bytes_topic(app: App, name: str, partitions: int, **options: Any) -> TopicT:
    return app.topic(name, partitions=partitions, key_type=bytes, value_type=bytes, key_serializer="raw",
                     value_serializer="raw", **options)


def doc_table(app: App, settings: Settings, name: str, partitions: int) -> Any:
    """A bytes-keyed, bytes-valued table with an explicit compacted changelog, for `stream.docstore.DocStore`s
    (the desk's SLA tables, the analytics store's hours)."""
    # Bytes keys and values with an explicit changelog: DocStore encodes both, so neither writing nor
    # recovery depends on Faust's table codecs (unreliable on Tansu 0.6.0).
    changelog = _bytes_topic(app, changelog_name(settings, name), partitions, compacting=True,
                             acks=False, internal=True)
    return app.Table(name, partitions=partitions, key_type=bytes, value_type=bytes, changelog_topic=changelog)


def _desk(app: App, settings: Settings, pipe: Pipeline) -> Desk:
    names = settings.topics
    fields = ("tickets_raw", "tickets_triaged", "tickets_labels")
    topics = {f: _bytes_topic(app, getattr(names, f), settings.partitions_for(f)) for f in fields}
    topics["incidents"] = pipe.topics["incidents"]
    llm = {"url": settings.triage_llm_url, "model": settings.triage_llm_model, "key": settings.triage_llm_key}
    config = TriageConfig(plugin=settings.triage_plugin,
                          plugin_options=tuple((k, v) for k, v in llm.items() if v is not None))
    ticket_parts, incident_parts = settings.partitions_for("tickets_raw"), settings.partitions_for("incidents")
    rules = RuleClassifier(config)  # compiles every rule's patterns: once, shared by the model watch
    return Desk(
        app, pipe, routing_policy(settings), config, topics,
        ticket_table=doc_table(app, settings, "ticket-sla", ticket_parts),
        incident_table=doc_table(app, settings, "incident-sla", incident_parts),
        ticket_partitions=ticket_parts, incident_partitions=incident_parts,
        retention_s=settings.sla_retention, models=ModelWatch(settings.triage_model_dir, rules),
        sync_marker=settings.changelog_sync_marker, rules=rules,
        plugin=load_plugin(config.plugin, config) if config.plugin else None,
    )


def install_desk(app: App, settings: Settings, pipe: Pipeline) -> Desk:
    """The ticket desk's topics, tables and triage model watch on `app` (its timer only with a model directory);
    its stages are `TriageStage` (with the SLA timer) and `IncidentSlaStage` (run by `stream.stages.StageRunner`)."""
    desk = _desk(app, settings, pipe)
    models = desk.models
    models.poll()
    log.warning("%s", models.status())  # said at start, loudly: which model decides, or why the rules alone
    if models.directory is None:
        return desk  # no --triage-model-dir: nothing to watch

    @app.timer(interval=settings.triage_model_check)
    async def model_watch() -> None:
        changed = await asyncio.to_thread(models.poll)
        if changed:
            log.warning("%s", changed)

    return desk


@dataclass
class TriageStage(PerBatch):
    """`tickets.raw` -> ticket records and `tickets.triaged` (`correlator.triage`); its timer is the SLA check of
    every store of the desk."""

    desk: Desk
    sla_check_s: float

    @property
    def spec(self) -> StageSpec:
        """Triage's batches; its timer runs the SLA check every `sla_check_s`."""
        return StageSpec("triage", TRIAGE_BATCH, BATCH_WITHIN_S, tick_s=self.sla_check_s)

    @property
    def source(self) -> TopicT:
        """`tickets.raw`."""
        return self.desk.topics["tickets_raw"]

    async def fold(self, events: Sequence[EventT[Any]]) -> None:
        """`triage_batch`."""
        await triage_batch(self.desk, events)

    def rollback(self, failed: Sequence[EventT[Any]]) -> list[EventT[Any]]:
        """Every commit is its own checkpoint: a failed one is written whole again, the batch folded again (a
        ticket already triaged is a duplicate; an unsent event stays in the outbox)."""
        self.desk.rewrite([*self.desk.tickets.values(), *self.desk.incidents.values()])
        return list(failed)

    async def tick(self) -> None:
        """The SLA check (`sla_tick`)."""
        await sla_tick(self.desk, time.time())

    def drop(self, partitions: set[int]) -> None:
        """Forget the ticket stores of revoked partitions."""
        for partition in partitions:
            self.desk.tickets.pop(partition, None)


@dataclass
class IncidentSlaStage(PerBatch):
    """`incidents` -> incident SLA clocks (`correlator.triage.incident_sla`), then each of `readers` on the same
    decoded batch (module docstring); the clocks are escalated by `TriageStage`'s timer."""

    desk: Desk
    readers: list[IncidentReader] = field(default_factory=list)
    """The other folds of stage-1 events (the analytics store's hours), in the order they run."""
    within_s: float = BATCH_WITHIN_S
    """How long a batch gathers records (`Settings.incident_batch_within`)."""

    @property
    def spec(self) -> StageSpec:
        """Up to `INCIDENT_BATCH` records, or what arrived within `within_s`."""
        return StageSpec(INCIDENT_SLA, INCIDENT_BATCH, self.within_s)

    @property
    def source(self) -> TopicT:
        """`incidents`."""
        return self.desk.topics["incidents"]

    async def fold(self, events: Sequence[EventT[Any]]) -> None:
        """Decode once (`read_incidents`), then the clocks (`clock_incidents`), then each reader; each commits."""
        incidents = await read_incidents(self.desk, events)
        await clock_incidents(self.desk, incidents)
        for reader in self.readers:
            await reader.fold_incidents(incidents)

    def rollback(self, failed: Sequence[EventT[Any]]) -> list[EventT[Any]]:
        """As `TriageStage.rollback`, for the incident clocks and every reader's stores (folding an event again
        changes no clock, and each reader skips what it counted)."""
        self.desk.rewrite(self.desk.incidents.values())
        for reader in self.readers:
            reader.rewrite()
        return list(failed)

    def drop(self, partitions: set[int]) -> None:
        """Forget the incident stores of revoked partitions, the readers' too."""
        for partition in partitions:
            self.desk.incidents.pop(partition, None)
            self.desk.incident_seen.pop(partition, None)
        for reader in self.readers:
            reader.drop(partitions)

