"""The read model's feed: every partition of the topics it folds, read by each worker on its own.

A plain aiokafka consumer without a group (`group_id=None`): it is assigned every partition of every topic
below, starts at the beginning, commits nothing and moves no worker's offsets, so every worker folds the same
records into its own `correlator.readmodel.ReadModel` and answers for the whole cluster. Topics read:

- `incidents`: stage-1 events, stage-2 causes and assignments (the list, the detail, the timeline, why a child
  joined);
- the `incident-sla` table's changelog: each incident's SLA clock with who acknowledged it and when (an ack is
  a write to that table on the owner; the changelog is where every other worker sees it);
- the `ticket-sla` table's changelog: each ticket's record, with its text, latest decision (route, tier, SLA)
  and every review (the audit trail); `tickets.triaged` carries the decisions too, but not the text and not
  the reviews before the latest, so the record is what the console folds;
- the notify control topic, when the notify stage runs: silences and their ends (every partition carries each
  silence; the model keeps one copy by id).

Every worker decodes every record of `incidents` here, so a stage-1 event takes one msgspec pass
(`stream.incident_records.read_incident_record`) rather than the pydantic model: `benchmarks/feed_cost.py`.

The feed subscribes with `stream.broker.subscribe_without_creating`: subscribed by name, a console started before the
workers on a fresh broker, or back first after a broker loss, made `incidents` exist with Tansu's 4 partitions and
the workers refuse to start ("exists with 4 partitions, expected 1").

A record that does not decode is counted (`ReadModel.skipped`) and logged, never fatal: the agent that owns the
topic dead-letters it already, and a second dead letter from every worker would only repeat it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaConnectionError
from aiokafka.structs import ConsumerRecord

from correlator.models import IncidentEvent
from correlator.readmodel import ReadModel
from correlator.stage2 import Assignment, ParentEvent
from correlator.triage.incident_sla import IncidentClock
from correlator.triage.lifecycle import TicketRecord
from stream.broker import subscribe_without_creating
from stream.docstore import document_id, stored_document
from stream.incident_records import IncidentCounts, IncidentRecord, Headers, read_incident_record
from stream.notify.stage import decode_control

__all__ = ["Decode", "FeedState", "FeedTopics", "apply_record", "run_feed"]

log = logging.getLogger(__name__)

Decode = Callable[[bytes | None, Headers], IncidentCounts | IncidentRecord]
"""How the feed decodes a record of `incidents` (the benchmark's baseline passes the models' decoder)."""

POLL_MS = 200
METADATA_MAX_AGE_MS = 5_000
"""How soon a topic created after the worker started (the notify control topic) joins the feed."""
START_RETRY_S = 1.0
"""How often the feed tries to start its consumer again while the broker cannot be reached."""


@dataclass(frozen=True)
class FeedTopics:
    """Kafka names of the topics the feed reads (control: None when the notify stage does not run)."""

    incidents: str
    incident_clocks: str
    tickets: str
    control: str | None = None

    def names(self) -> list[str]:
        """Every topic to subscribe to."""
        return [t for t in (self.incidents, self.incident_clocks, self.tickets, self.control) if t is not None]

@dataclass
class FeedState:
    """An event for those who wait for the feed to reach the end offsets it found at start; the fact itself is
    `ReadModel.whole`, which every synchronous reader (the console's pages, notify's silences) checks."""

    caught_up: asyncio.Event = field(default_factory=asyncio.Event)


def apply_record(model: ReadModel, topics: FeedTopics, record: ConsumerRecord[bytes, bytes],
                 decode: Decode = read_incident_record) -> None:
    """Fold one record of one of `topics` into `model`; raises what a bad value raises (the caller counts it)."""
    if record.topic == topics.incidents:
        decoded = decode(record.value, list(record.headers or ()))
        if isinstance(decoded, (IncidentCounts, IncidentEvent)):
            model.apply_incident(decoded)
        elif isinstance(decoded, ParentEvent):
            model.apply_parent(decoded)
        elif isinstance(decoded, Assignment):
            model.apply_assignment(decoded)
        return
    if record.topic in (topics.incident_clocks, topics.tickets):
        item_id = document_id(record.key)
        if item_id is None:
            return
        doc = stored_document(record.value) if record.value is not None else None
        if record.topic == topics.incident_clocks:
            model.apply_clock(item_id, IncidentClock.model_validate(doc) if doc is not None else None)
        else:
            model.apply_ticket(item_id, TicketRecord.model_validate(doc) if doc is not None else None)
        return
    if record.topic == topics.control:
        control = decode_control(record.value)
        if control.kind == "silence" and control.silence is not None:
            model.put_silence(control.silence)
        elif control.kind == "expire" and control.silence_id is not None and control.at is not None:
            model.expire_silence(control.silence_id, control.at)


async def run_feed(model: ReadModel, topics: FeedTopics, bootstrap: str, client_options: dict[str, Any],
                   state: FeedState, on_change: Callable[[], Awaitable[None]] | None = None,
                   decode: Decode = read_incident_record) -> None:
    """Fold the topics into `model` until cancelled; `on_change` after each batch that changed it."""
    consumer = await _started(lambda: _subscribed(topics, AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
        auto_offset_reset="earliest", fetch_max_wait_ms=POLL_MS, metadata_max_age_ms=METADATA_MAX_AGE_MS,
        **client_options)))
    try:
        ends: dict[Any, int] | None = None
        while True:
            batches = await consumer.getmany(timeout_ms=POLL_MS)
            before = model.version
            for records in batches.values():
                for record in records:
                    _apply_guarded(model, topics, record, decode)
            if model.version != before and on_change is not None:
                await on_change()
            if not state.caught_up.is_set():
                ends = ends or (await consumer.end_offsets(list(consumer.assignment())) if consumer.assignment()
                                else None)
                if ends is not None and all([await consumer.position(tp) >= end for tp, end in ends.items()]):
                    state.caught_up.set()
                    model.whole = True
    finally:
        await consumer.stop()


def _subscribed(topics: FeedTopics, consumer: AIOKafkaConsumer) -> AIOKafkaConsumer:
    subscribe_without_creating(consumer, topics.names())
    return consumer


async def _started(make: Callable[[], AIOKafkaConsumer]) -> AIOKafkaConsumer:
    """The feed's consumer, started; while the broker cannot be reached, a new one every `START_RETRY_S`.

    The feed is a task of the worker, and a task's exception ends the worker: a feed starting while the broker is
    down (a broker restart just as a worker came up) stopped the worker, where the agents wait for the broker."""
    while True:
        consumer = make()
        try:
            await consumer.start()
            return consumer
        except KafkaConnectionError as exc:
            log.warning("console feed: broker unreachable at start (%s); trying again in %.0f s", exc, START_RETRY_S)
        with contextlib.suppress(Exception):
            await consumer.stop()
        await asyncio.sleep(START_RETRY_S)


def _apply_guarded(model: ReadModel, topics: FeedTopics, record: ConsumerRecord[bytes, bytes],
                   decode: Decode) -> None:
    try:
        apply_record(model, topics, record, decode)
    except Exception as exc:  # noqa: BLE001 - one bad record is skipped and counted; the feed goes on
        model.skipped += 1
        log.warning("console feed skipped %s[%d]@%d: %r", record.topic, record.partition, record.offset, exc)
