"""The notify stage: incident events, acknowledgements, escalations and silences in; pages out (issue 18).

Installed only when `Settings.notify_file` is set (no agent, table or topic otherwise). Three stages of the
`stream.stages.Stage` contract share one `Notify`, whose state lives per partition of `incidents`:

* `NotifyStage` reads `incidents` (stage-1 events, stage-2 parents and assignments, told apart by headers);
* `ControlStage` reads the internal topic `<app id>-notify-control`, which has the partitions of `incidents`
  (Faust assigns topics of equal partition counts together, so partition p of both is on one worker): the
  acknowledgements `POST /incidents/{id}/ack` publishes, escalations re-keyed by incident id, records a fold
  re-addressed to a cause held on another partition (`Step.forward`), and silences (`POST/DELETE /silences`,
  sent to every partition, so each partition's fold sees all of them);
* `RelayStage` reads `tickets.triaged` and re-sends each incident escalation (keyed `incident:<id>` there) to
  the control topic keyed by the incident's id.

Each batch is folded by `correlator.notify.on_record` into its partition's `NotifyStore`; the changed subjects,
rate limits, silences and the new deliveries (the outbox) are written to the changelog and waited for
(`Checkpointer.commit`) before anything is sent and before the batch is acknowledged. Then the deliveries go to
the `Deliverer`; each outcome removes its delivery from the outbox (written at the next checkpoint) and an
undeliverable one goes to `deadletter` with its reason (agent `notify`, category `undeliverable`). So a crash
repeats only deliveries identical to ones made (same lane and order, same body): PagerDuty's `dedup_key` and
Alertmanager's labels absorb them. The timer (`notify_tick`) re-reads the notify file, purges ended silences,
runs `on_tick` (holds, silences ending, re-notify, rate-limit queues) and checkpoints the same way.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
from faust.types import EventT, TopicT
from pydantic import BaseModel, ConfigDict

from correlator import metrics
from correlator.notify import (
    Acknowledgement,
    Escalation,
    Handover,
    NotifyConfig,
    NotifyPolicy,
    NotifyRecord,
    Silence,
    Step,
    on_record,
    on_tick,
)
from correlator.notify.silences import expire, expired
from correlator.stage2 import Assignment, ParentEvent, Relation
from stream.app import App
from stream.checkpoint import Checkpointer
from stream.incident_records import decode_incident_record
from stream.notify.delivery import Deliverer, Outcome, count_step
from stream.notify.files import NotifyFileWatcher
from stream.notify.store import NotifyStore
from stream.pipeline import Pipeline
from stream.sends import cached_partition, key_partition, raise_failed, send_batches
from stream.settings import Settings
from stream.stages import PerBatch, Stage, StageSpec
from stream.tickets import Desk
from stream.topics import NOTIFY_CHANGELOG, NOTIFY_CONTROL, changelog_name, internal_topic_name

__all__ = ["ControlRecord", "ControlStage", "Notify", "NotifyStage", "RelayStage", "install_notify"]

log = logging.getLogger(__name__)

AGENT = "notify"
BATCH, BATCH_WITHIN_S = 500, 0.05


class ControlRecord(BaseModel):
    """A record on the control topic: an acknowledgement, an escalation, a silence, a silence's end, the
    assignment of the child that opened a cause (stage 2 names it only in the cause's `opened` event, keyed by
    the cause's id: it is re-sent here to the child's partition, so the child is known as grouped there), or a
    handover between a cause and its first child (`correlator.notify.state`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["ack", "escalation", "assignment", "silence", "expire", "handover"]
    ack: Acknowledgement | None = None
    assignment: Assignment | None = None
    escalation: Escalation | None = None
    handover: Handover | None = None
    silence: Silence | None = None
    silence_id: str | None = None
    at: float | None = None

    @classmethod
    def of(cls, record: Acknowledgement | Escalation | Handover) -> ControlRecord:
        """The control record carrying a fold input."""
        if isinstance(record, Acknowledgement):
            return cls(kind="ack", ack=record)
        if isinstance(record, Handover):
            return cls(kind="handover", handover=record)
        return cls(kind="escalation", escalation=record)

    @classmethod
    def first_child(cls, ev: ParentEvent) -> ControlRecord:
        """The assignment of the child that opened the cause `ev`."""
        return cls(kind="assignment", assignment=Assignment(
            child_id=ev.first_child, child_key="", parent_id=ev.parent_id, relation=Relation.FIRST, gap_s=0.0,
            explanation=f"opened cause {ev.parent_id}", assigned_at=ev.emitted_at))

    def dump(self) -> bytes:
        """Its value on the topic."""
        return orjson.dumps(self.model_dump(mode="json", by_alias=True, exclude_none=True))


@dataclass
class Notify:
    """The notify side of one worker: routes, deliverer, topics, and the state of its owned partitions."""

    app: App
    pipe: Pipeline
    desk: Desk
    watcher: NotifyFileWatcher
    policy: NotifyPolicy
    topics: dict[str, TopicT]
    table: Any
    partitions: int
    sync_marker: bool = True
    stores: dict[int, NotifyStore] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    """Held from a fold to the end of its checkpoint: the agents, the timer and the views never interleave."""
    checkpoints: Checkpointer = field(init=False)
    deliverer: Deliverer = field(init=False)

    def __post_init__(self) -> None:
        self.checkpoints = Checkpointer(self.app)
        self.deliverer = Deliverer(on_outcome=self.on_outcome)

    @property
    def config(self) -> NotifyConfig:
        """The routes in force (the file is read at start: a worker never runs without them)."""
        config = self.watcher.config
        assert config is not None, "install_notify loads the file"
        return config

    def topic_name(self, name: str) -> str:
        """Kafka name of one of the stage's topics."""
        return str(self.topics[name].get_topic_name())

    def store(self, partition: int) -> NotifyStore:
        """A partition's state, loaded from the table on first use; what its outbox holds is sent again."""
        store = self.stores.get(partition)
        if store is None:
            store = self.stores[partition] = NotifyStore(self.table, partition, sync_marker=self.sync_marker)
            self.checkpoints.forget(store)  # if its partition is lost (`broker_lost`)
            again = sum(self.deliverer.submit(d) for d in sorted(store.outbox.values(), key=lambda d: d.order))
            log.info("notify state for partition %d: %d subjects, %d silences, %d deliveries sent again",
                     partition, len(store.state.subjects), len(store.silences), again)
        return store

    def broker_lost(self) -> None:
        """The broker lost its topics (stream/recovery.py): every store, held now or built later from the table's local
        data, writes its whole state to the re-created changelog at its next commit, which the timer makes within a
        tick (it commits every owned store that changed). Before, none was written again: a worker that took a
        partition next restored no subject, so an open page's resolve never went out, or it paged again."""
        self.checkpoints.lose(self.table, range(self.partitions), self.stores.values())

    def drop(self, partitions: set[int]) -> None:
        """Forget revoked partitions (their state lives on in the changelog)."""
        for partition in partitions:
            self.stores.pop(partition, None)

    async def fold(self, by_partition: dict[int, list[NotifyRecord | ControlRecord]]) -> None:
        """Fold records per partition, write the state, then send what it decided (module docstring)."""
        now = time.time()
        async with self.lock:
            steps: list[Step] = []
            new_causes: list[ParentEvent] = []
            stores = [self.store(p) for p in sorted(by_partition)]
            for store in stores:
                for record in by_partition[store.partition]:
                    # A cause's first event here names its first child, whose partition learns it is grouped from
                    # the control topic: its `opened`, or a later one when causes of one incident are not published
                    # (`correlator.stage2.publishing`: then a cause is first seen when it groups two).
                    if isinstance(record, ParentEvent) and (
                            record.kind == "opened" or record.parent_id not in store.state.subjects):
                        new_causes.append(record)
                    step = self._apply(store, record, now)
                    if step is not None:
                        store.took(step)
                        steps.append(step)
            await self._commit(stores, steps)
            for cause in new_causes:
                await self.send_control(cause.first_child, ControlRecord.first_child(cause))

    def _apply(self, store: NotifyStore, record: NotifyRecord | ControlRecord, now: float) -> Step | None:
        if isinstance(record, ControlRecord):
            if record.silence is not None:
                store.put_silence(record.silence)
                return None
            if record.kind == "expire" and record.silence_id is not None:
                _expire(store, record.silence_id, record.at if record.at is not None else now)
                return None
            inner = record.ack or record.escalation or record.assignment or record.handover
            if inner is None:
                return None
            record = inner
        return on_record(store.state, record, now, self.config, list(store.silences.values()), self.policy)

    async def tick(self) -> None:
        """The timer: re-read the notify file, purge ended silences, `on_tick` each owned partition, send."""
        if not self.desk.ready():
            return
        if self.watcher.poll():
            log.warning("notify: routes re-read from %s", self.watcher.path)
        owned = self.desk.owned("incidents")
        self.drop(set(self.stores) - owned)
        now = time.time()
        async with self.lock:
            steps: list[Step] = []
            stores = [self.store(p) for p in sorted(owned)]
            for store in stores:
                for silence_id in expired(store.silences.values(), now, self.policy.retention_s):
                    store.drop_silence(silence_id)
                step = on_tick(store.state, now, self.config, list(store.silences.values()), self.policy)
                if step.changed or step.deliveries:
                    store.took(step)
                    steps.append(step)
            await self._commit(stores, steps)

    async def _commit(self, stores: Sequence[NotifyStore], steps: Sequence[Step]) -> None:
        changed = [s for s in stores if s.changed]
        if changed:
            await self.checkpoints.commit(changed)
        for step in steps:
            count_step(step)
        reconciled = [r for step in steps for r in step.reconciled]
        if reconciled:
            log.info("notify: %d incidents closed by reconciliation after broker loss (%d pages resolved, %d never "
                     "paged dropped): %s", len(reconciled), sum(o == "resolved" for _, o in reconciled),
                     sum(o == "dropped" for _, o in reconciled), ", ".join(sorted(i for i, _ in reconciled)[:10]))
        self._send_decided(changed, {id(d) for step in steps for d in step.deliveries})
        for store in changed:
            while store.forward:
                record = store.forward[0]
                await self.send_control(record.incident_id, ControlRecord.of(record))
                store.forward.pop(0)

    def _send_decided(self, written: Sequence[NotifyStore], current: set[int]) -> None:
        """Send what folds decided since these stores' last written checkpoint, now that one wrote them: this
        call's steps (`current`, by id) and what was decided before a refused checkpoint, which is logged.

        A refused checkpoint rolls no state back (`_Folding.rollback` writes it whole again): its subjects say
        their pages were made, so no later fold or tick decides them again, and only a store built anew would
        have sent its outbox. Seen in the chaos soak: the first tick after a broker restart decided the pages held
        over the restart, the new broker refused its checkpoint, and those faults were never paged."""
        sent = [d for store in written for d in store.decided() if self.deliverer.submit(d)]
        late = [d for d in sent if id(d) not in current]
        if late:
            log.warning("notify: %d deliveries decided while their checkpoint was refused sent now that one was "
                        "written (%s)", len(late), ", ".join(sorted({f"{d.action} {d.subject_id}" for d in late})[:10]))

    async def send_control(self, key: str, record: ControlRecord, *, everywhere: bool = False) -> None:
        """Send a control record to the partition of `key` (or to every partition) and wait until it is out."""
        targets = range(self.partitions) if everywhere else [key_partition(key.encode(), self.partitions)]
        value = record.dump()
        futures = [f for p in targets
                   for f in await send_batches(self.app, self.topic_name("control"), p, [(key.encode(), value, [])])]
        await self.app.producer.flush()
        await asyncio.gather(*futures, return_exceptions=True)
        raise_failed(futures)

    async def acknowledged(self, incident_id: str, who: str, at: float, note: str = "") -> None:
        """`POST /incidents/{id}/ack` succeeded: PagerDuty is told, re-notifying stops (via the control topic)."""
        ack = Acknowledgement(incident_id=incident_id, who=who, at=at, note=note)
        await self.send_control(incident_id, ControlRecord.of(ack))

    async def on_outcome(self, outcome: Outcome) -> None:
        """A delivery ended: out of the outbox; dead-lettered with its reason when it could not be delivered."""
        delivery = outcome.delivery
        store = next((s for s in self.stores.values() if _outbox_holds(s, outcome)), None)
        if store is not None:
            store.finished(delivery)
        if outcome.delivered:
            return
        letters = self.pipe.letters
        assert letters is not None
        origin = (f"notify:{delivery.receiver}", store.partition if store is not None else 0, delivery.order)
        await letters.send_record(AGENT, delivery.subject_id.encode(), delivery.model_dump_json().encode(), origin,
                                  f"{delivery.action} to {delivery.receiver}: {outcome.reason}", "undeliverable")
        await letters.settle(AGENT)

    def silences(self) -> dict[str, Silence]:
        """Every silence the owned partitions hold, by id (each partition holds all of them)."""
        return {s.id: s for store in self.stores.values() for s in store.silences.values()}

    def status(self) -> dict[str, Any]:
        """What the notify side of this worker holds, for `GET /notify`."""
        return {"partitions": sorted(self.stores), "file": str(self.watcher.path),
                "receivers": [r.name for r in self.config.receivers],
                "subjects": sum(len(s.state.subjects) for s in self.stores.values()),
                "outbox": sum(len(s.outbox) for s in self.stores.values()),
                "in_flight": len(self.deliverer.pending()), "silences": len(self.silences())}


def _outbox_holds(store: NotifyStore, outcome: Outcome) -> bool:
    return any(d == outcome.delivery for d in store.outbox.values())


def _expire(store: NotifyStore, silence_id: str, at: float) -> None:
    """End a silence at `at` (Alertmanager's DELETE): one that has not started yet is dropped."""
    silence = store.silences.get(silence_id)
    if silence is None:
        return
    ended = expire(silence, at)
    if ended is None:
        store.drop_silence(silence_id)
    elif ended is not silence:
        store.put_silence(ended)


def decode_control(value: bytes | None) -> ControlRecord:
    """A control record; pydantic's ValidationError when the value does not fit."""
    return ControlRecord.model_validate_json(value or b"")


@dataclass
class _Folding(PerBatch):
    """Defaults of the stages that fold into `Notify`: each batch is its own checkpoint."""

    notify: Notify

    def rollback(self, failed: Sequence[EventT[Any]]) -> list[EventT[Any]]:
        """Every commit is its own checkpoint: a failed one is written whole again, the batch folded again (a
        record already folded is skipped by its `seq`; an ack or escalation at most re-sends identical pages)."""
        for store in self.notify.stores.values():
            store.rewrite()
        return list(failed)

    def drop(self, partitions: set[int]) -> None:
        """Forget the state of revoked partitions."""
        self.notify.drop(partitions)

    async def stop(self) -> None:
        """Let deliveries in flight finish briefly; what is left stays in the outbox for the next owner."""
        try:
            await asyncio.wait_for(self.notify.deliverer.drain(), 2.0)
        except TimeoutError:
            pass
        await self.notify.deliverer.close()

    async def _decoded(self, events: Sequence[EventT[Any]], decode: Any) -> None:
        by_partition: dict[int, list[NotifyRecord | ControlRecord]] = {}
        for event in events:
            msg = event.message
            try:
                record = decode(msg.value, msg.headers)
            except Exception as exc:  # noqa: BLE001 - whatever one record raises is that record's dead letter
                await self.notify.pipe.refuse(AGENT, event, exc)
                continue
            by_partition.setdefault(msg.partition, []).append(record)
        metrics.RECORDS_CONSUMED.labels(AGENT).inc(len(events))
        await self.notify.fold(by_partition)


@dataclass
class NotifyStage(_Folding):
    """`incidents` -> the notify fold -> pages; its timer is the notify tick."""

    tick_s: float = 1.0

    @property
    def spec(self) -> StageSpec:
        """Notify's batches and its timer; held while the worker may not page (`StageSpec.pages`)."""
        return StageSpec(AGENT, BATCH, BATCH_WITHIN_S, tick_s=self.tick_s, pages=True)

    @property
    def source(self) -> TopicT:
        """`incidents`."""
        return self.notify.topics["incidents"]

    async def fold(self, events: Sequence[EventT[Any]]) -> None:
        """Incident events, parents and assignments, by their headers."""
        await self._decoded(events, decode_incident_record)

    async def tick(self) -> None:
        """`Notify.tick`."""
        await self.notify.tick()


@dataclass
class ControlStage(_Folding):
    """The control topic -> the notify fold: acknowledgements, escalations, forwarded records, silences."""

    @property
    def spec(self) -> StageSpec:
        """Control batches, no timer (the notify tick covers the state); held as notify's."""
        return StageSpec(f"{AGENT}_control", BATCH, BATCH_WITHIN_S, pages=True)

    @property
    def source(self) -> TopicT:
        """`<app id>-notify-control`."""
        return self.notify.topics["control"]

    async def fold(self, events: Sequence[EventT[Any]]) -> None:
        """Control records."""
        await self._decoded(events, lambda value, _headers: decode_control(value))

    async def stop(self) -> None:
        """`NotifyStage.stop` closes the deliverer."""


@dataclass
class RelayStage(PerBatch):
    """`tickets.triaged` -> the incident escalations, re-keyed by incident id onto the control topic."""

    notify: Notify
    spec: StageSpec = StageSpec(f"{AGENT}_relay", BATCH, BATCH_WITHIN_S)

    @property
    def source(self) -> TopicT:
        """`tickets.triaged`."""
        return self.notify.desk.topics["tickets_triaged"]

    async def fold(self, events: Sequence[EventT[Any]]) -> None:
        """Escalations relayed; ticket events skipped; what is not JSON dead-lettered."""
        for event in events:
            try:
                value = orjson.loads(event.message.value or b"")
                escalation = Escalation.from_value(value) if isinstance(value, dict) else None
            except Exception as exc:  # noqa: BLE001 - whatever one record raises is that record's dead letter
                await self.notify.pipe.refuse(self.spec.name, event, exc)
                continue
            if escalation is not None:
                await self.notify.send_control(escalation.incident_id, ControlRecord.of(escalation))
        metrics.RECORDS_CONSUMED.labels(self.spec.name).inc(len(events))


def _bytes_topic(app: App, name: str, partitions: int, **options: Any) -> TopicT:
    return app.topic(name, partitions=partitions, key_type=bytes, value_type=bytes, key_serializer="raw",
                     value_serializer="raw", **options)


def declare_notifications(config: NotifyConfig) -> None:
    """`aiops_notifications_total` at 0 for each receiver's pages and resolves, delivered or dead-lettered, so the
    failing-delivery alert (CorrelatorNotificationsFailing) sees its first dead letter (`increase` needs a start)."""
    for receiver in config.receivers:
        for kind in ("trigger", "resolve"):
            for outcome in ("delivered", "dead_letter"):
                metrics.NOTIFICATIONS.labels(receiver.name, kind, outcome)


def notify_policy(settings: Settings) -> NotifyPolicy:
    """How the fold treats stage 2 (causes page when it runs; without causes of one incident, its progress says
    when an incident no cause names pages) and how long it remembers, from the settings; its rule switches are
    `Settings.notify_policy`."""
    progress = settings.stage2 and not settings.stage2_lone_causes and settings.stage2_progress_interval > 0
    alerts, cache = settings.partitions_for("alerts"), dict[str, int]()

    def source_of(key: str) -> int:  # the partition of `alerts` a key's alerts go to, so its engine's
        return cached_partition(cache, key, alerts)

    return NotifyPolicy(**settings.notify_policy.values(), page_causes=settings.stage2,
                        source_of=source_of if settings.reconcile_after_loss else None,
                        cause_wait_s=settings.notify_cause_wait,
                        retention_s=settings.notify_retention, lone_causes=settings.stage2_lone_causes,
                        stage2_partitions=settings.partitions_for("incidents") if progress else 0)


def install_notify(app: App, settings: Settings, pipe: Pipeline, desk: Desk) -> tuple[Notify, list[Stage]] | None:
    """The notify stage's topics, table and stages when `notify_file` is set; None (nothing installed) otherwise.

    The acknowledgement view reaches it through `desk.acknowledged`."""
    if settings.notify_file is None:
        return None
    watcher = NotifyFileWatcher(settings.notify_file)
    watcher.load()  # the settings validated it: a file that went bad since stops the worker here, by name
    partitions = settings.partitions_for("incidents")
    control = _bytes_topic(app, internal_topic_name(settings, NOTIFY_CONTROL), partitions, internal=True)
    changelog = _bytes_topic(app, changelog_name(settings, NOTIFY_CHANGELOG), partitions, compacting=True,
                             acks=False, internal=True)
    table = app.Table(NOTIFY_CHANGELOG, partitions=partitions, key_type=bytes, value_type=bytes,
                      changelog_topic=changelog)
    notify = Notify(app, pipe, desk, watcher, notify_policy(settings),
                    {"incidents": pipe.topics["incidents"], "control": control}, table, partitions,
                    sync_marker=settings.changelog_sync_marker)
    desk.acknowledged = notify.acknowledged
    declare_notifications(notify.config)
    stages: list[Stage] = [NotifyStage(notify, settings.notify_tick), ControlStage(notify), RelayStage(notify)]
    return notify, stages
