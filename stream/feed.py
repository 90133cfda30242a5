"""Reading the project's topics from outside the app: for `aiops tail`, the demo and the tests."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord

from correlator.keys import key_label
from correlator.models import Census, IncidentEvent
from correlator.replay import ReplayIncident, ReplayReport
from correlator.stage2 import Assignment, ParentEvent, Progress
from stream.broker import subscribe_without_creating
from stream.incident_records import IncidentRecord, decode_incident_record, is_incident_event

__all__ = ["topic_records", "incident_events", "follow_until", "parent_of", "report_of", "format_event"]

TOPIC_APPEARS_MS = 1_000
"""How soon a reader started before its topic existed notices it (the readers subscribe without creating it)."""


async def topic_records(
    bootstrap: str, topic: str, *, from_beginning: bool = True, idle_timeout: float | None = None,
    client_options: dict[str, Any] | None = None,
) -> AsyncIterator[ConsumerRecord[bytes, bytes]]:
    """Every record of one topic as it arrives, any value, with its headers (no consumer group: every reader
    sees everything, and reading never moves the workers' offsets).

    With `idle_timeout`, the iteration ends after that many seconds without a new record.
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
        auto_offset_reset="earliest" if from_beginning else "latest", fetch_max_wait_ms=100,
        metadata_max_age_ms=TOPIC_APPEARS_MS, **(client_options or {}),
    )
    subscribe_without_creating(consumer, [topic])  # `aiops tail` before the workers must not create `incidents`
    await consumer.start()
    try:
        last = time.monotonic()
        while idle_timeout is None or time.monotonic() - last < idle_timeout:
            batches = await consumer.getmany(timeout_ms=200)
            for records in batches.values():
                for record in records:
                    last = time.monotonic()
                    yield record
    finally:
        await consumer.stop()


async def incident_events(
    bootstrap: str, topic: str = "incidents", *, from_beginning: bool = True, idle_timeout: float | None = None
) -> AsyncIterator[IncidentRecord]:
    """Incident events, and stage 2's parents and assignments, as they arrive (see `topic_records`)."""
    async for record in topic_records(bootstrap, topic, from_beginning=from_beginning, idle_timeout=idle_timeout):
        yield decode_incident_record(record.value or b"", record.headers)


async def follow_until(
    bootstrap: str,
    done: Callable[[dict[str, IncidentEvent]], bool],
    *,
    topic: str = "incidents",
    timeout: float = 60.0,
    quiet_s: float = 2.0,
    on_event: Callable[[IncidentEvent], object] | None = None,
) -> dict[str, IncidentEvent]:
    """The latest event of each stage-1 incident, read until `done(latest)` holds and `quiet_s` pass without news.

    A redelivered event (same id, seq not above the last seen) is dropped, as any consumer should; stage 2's
    records (parents, assignments) are skipped by their header.
    Returns what it has when `timeout` runs out.
    """
    latest: dict[str, IncidentEvent] = {}
    deadline = time.monotonic() + timeout
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                auto_offset_reset="earliest", fetch_max_wait_ms=100,
                                metadata_max_age_ms=TOPIC_APPEARS_MS)
    subscribe_without_creating(consumer, [topic])
    await consumer.start()
    try:
        last_news = time.monotonic()
        while time.monotonic() < deadline:
            if done(latest) and time.monotonic() - last_news >= quiet_s:
                break
            batches = await consumer.getmany(timeout_ms=200)
            for record in (r for records in batches.values() for r in records):
                if not is_incident_event(record.headers):
                    continue
                ev = IncidentEvent.model_validate_json(record.value or b"")
                seen = latest.get(ev.incident_id)
                if seen is not None and seen.seq >= ev.seq:
                    continue
                latest[ev.incident_id] = ev
                last_news = time.monotonic()
                if on_event is not None:
                    on_event(ev)
    finally:
        await consumer.stop()
    return latest


def parent_of(parents: Iterable[ParentEvent], assignments: Iterable[Assignment]) -> dict[str, str]:
    """Child incident id -> parent id, from the latest event of each parent and the latest assignment of
    each child: a parent's `opened` names its first child, every other child (or a move) has an assignment."""
    found = {p.first_child: p.parent_id for p in parents}
    found.update({a.child_id: a.parent_id for a in assignments})
    return found


def format_event(ev: IncidentRecord) -> str:
    """One line per event for a terminal: a stage-1 event, a stage-2 parent (a cause) or an assignment."""
    if isinstance(ev, ParentEvent):
        merged = f" (merged into {ev.merged_into})" if ev.merged_into else ""
        return (f"cause {ev.kind:<8} {ev.parent_id} #{ev.seq}: {len(ev.children)} incidents, {ev.alert_count} "
                f"alerts, {ev.max_severity}, status {ev.status}, services {', '.join(ev.services)}{merged}")
    if isinstance(ev, Assignment):
        return f"joined   {ev.child_id} -> {ev.parent_id}: {ev.explanation}"
    if isinstance(ev, Census):
        return f"census   stage-1 partition {ev.source} at {ev.at:.3f}: {len(ev.open)} open"
    if isinstance(ev, Progress):
        return "decided  " + ", ".join(f"partition {p} up to {at:.3f}" for p, at in sorted(ev.decided.items()))
    prev = f" (after {ev.previous_id})" if ev.previous_id else ""
    return (f"{ev.kind:<8} {ev.incident_id} #{ev.seq} {key_label(ev.key)}: {ev.alert_count} alerts, "
            f"{ev.firing_count} firing, {ev.max_severity}, status {ev.status}{prev}")


def report_of(latest: dict[str, IncidentEvent], alerts: int, records: int, duplicates: int = 0) -> ReplayReport:
    """The replay-style report from the latest event of each incident, so live and offline print alike."""
    incidents = sorted(
        (ReplayIncident(id=e.incident_id, key=e.key, alert_count=e.alert_count, first_seen=e.first_seen,
                        last_seen=e.last_seen, status=e.status, max_severity=e.max_severity,
                        previous_id=e.previous_id, members=list(e.member_sample))
         for e in latest.values()),
        key=lambda i: (i.first_seen, i.key, i.id),
    )
    start = incidents[0].first_seen if incidents else 0.0
    return ReplayReport(incidents, records, duplicates, alerts, 0, start)
