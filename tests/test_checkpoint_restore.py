"""A store restored from its changelog is one checkpoint: never keys whose progress record did not land.

The `Checkpointer` writes a checkpoint's changed keys, then the progress record saying which input they cover. A
crash between the two (or a standby of a partition whose owner died mid-checkpoint) leaves keys on the changelog
that no progress covers. Each test writes checkpoints of a real store through the real `Checkpointer` (its sends
captured), cuts the changelog where a crash would, restores a table of a real app from what is left, and compares
the store that loads from it with the writer's state at its last checkpoint whose progress landed. Every stage's
store is covered: stage 1's keys, stage 2's groups, the desk's documents (tickets, SLA clocks, insight hours).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
from faust.events import Event
from faust.types import Message
from pydantic import BaseModel

import stream.checkpoint
from correlator.config import DEFAULT_CONFIG
from correlator.engine import Correlator
from correlator.models import IncidentEvent
from correlator.records import AlertRecord
from correlator.stage2 import GroupState
from correlator.state import KeyState
from stream.app import make_app
from stream.batches import PARTS_PER_OFFSET, Segment
from stream.checkpoint import ChangelogRecord, Checkpointer, CheckpointStore
from stream.docstore import DocStore
from stream.hop import HOP_SOURCE, numbered
from stream.pipeline import Pipeline
from stream.settings import Settings
from stream.stage2_state import GroupTableStore
from stream.state import TableStore

CHANGELOG = "t-restore-state-changelog"

Sent = tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]


@dataclass
class Changelog:
    """What the Checkpointer sent, record by record, in order (the broker's copy of one changelog partition)."""

    records: list[Sent] = field(default_factory=list)
    fail_after: int | None = None
    """Raise on the send after this many records (a checkpoint stopped midway)."""

    async def send(self, app: Any, topic: str, partition: int, records: Any) -> list[asyncio.Future[Any]]:
        if self.fail_after is not None and len(self.records) >= self.fail_after:
            raise RuntimeError("broker gone")
        self.records += list(records)
        return []


@pytest.fixture
def changelog(monkeypatch: pytest.MonkeyPatch) -> Iterator[Changelog]:
    log = Changelog()
    monkeypatch.setattr(stream.checkpoint, "send_batches", log.send)
    yield log


def writer_table() -> SimpleNamespace:
    return SimpleNamespace(data={}, changelog_topic=SimpleNamespace(get_topic_name=lambda: CHANGELOG))


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return make_app(Settings(app_id="t-restore", data_dir=tmp_path_factory.mktemp("app")))


def restored_table(app: Any, records: list[Sent]) -> Any:
    """A new table of a real app after Faust's recovery applied `records` (in changelog order) to it."""
    table = app.Table(f"state-{len(app.tables)}", partitions=1, key_type=bytes, value_type=bytes)
    events = [Event(app, key, value, headers, Message(CHANGELOG, 0, offset, 0.0, 0, headers, key, value, None))
              for offset, (key, value, headers) in enumerate(records)]
    half = len(events) // 2  # Faust applies a changelog in buffers; a checkpoint may straddle two
    table.apply_changelog_batch(events[:half])
    table.apply_changelog_batch(events[half:])
    return table


def checkpoint(store: CheckpointStore) -> None:
    asyncio.run(Checkpointer(SimpleNamespace()).write([store]))


class Doc(BaseModel):
    """A desk document (a ticket, an SLA clock, an insight hour: any `DocStore` model)."""

    state: str


def key_state(key: str, t: float) -> KeyState:
    return KeyState(key, max_t=t, applied_to=t)


def stage1(table: Any) -> tuple[TableStore, list[Callable[[TableStore], None]]]:
    """Stage 1's store and three checkpoints' worth of changes to it."""

    def first(s: TableStore) -> None:
        s.put("k1", key_state("k1", 100.0))
        s.put("k2", key_state("k2", 110.0))
        s.progress, s.watermark = {0: 10}, 110.0

    def second(s: TableStore) -> None:
        s.put("k1", key_state("k1", 300.0))
        s.put("k3", key_state("k3", 310.0))
        s.delete("k2")
        s.progress, s.watermark = {0: 20}, 310.0

    def third(s: TableStore) -> None:  # the next owner, from the first checkpoint's state
        s.put("k2", key_state("k2", 150.0))
        s.progress, s.watermark = {0: 12}, 150.0

    return TableStore(table, 0), [first, second, third]


def stage2(table: Any) -> tuple[GroupTableStore, list[Callable[[GroupTableStore], None]]]:
    """Stage 2's store and three checkpoints' worth of changes to it."""
    child = IncidentEvent(incident_id="c9", seq=1, kind="opened", key="svc/Down", service="svc", symptom="Down",
                          status="firing", first_seen=250.0, last_seen=250.0, window_start=250.0, alert_count=1,
                          distinct_fingerprints=1, firing_count=1, duplicates=0, max_severity="critical",
                          emitted_at=250.0)

    def first(s: GroupTableStore) -> None:
        s.put("p1", GroupState("p1", "c1", 100.0, 100.0))
        s.offset, s.watermark = 4, 100.0

    def second(s: GroupTableStore) -> None:
        s.put("p1", GroupState("p1", "c1", 100.0, 240.0))
        s.put("p2", GroupState("p2", "c5", 230.0, 230.0))
        s.hold("c9", child, 1)
        s.offset, s.watermark = 9, 240.0

    def third(s: GroupTableStore) -> None:
        s.put("p3", GroupState("p3", "c2", 120.0, 120.0))
        s.offset, s.watermark = 5, 120.0

    return GroupTableStore(table, 0), [first, second, third]


def desk(table: Any) -> tuple[DocStore[Doc, Any], list[Callable[[DocStore[Doc, Any]], None]]]:
    """The desk's store (tickets, SLA clocks, insight hours) and three checkpoints' worth of changes to it."""

    def first(s: DocStore[Doc, Any]) -> None:
        s.put("t1", Doc(state="open"))

    def second(s: DocStore[Doc, Any]) -> None:
        s.put("t1", Doc(state="escalated"))
        s.put("t2", Doc(state="open"))

    def third(s: DocStore[Doc, Any]) -> None:
        s.put("t3", Doc(state="open"))

    return DocStore(table, 0, Doc), [first, second, third]


STORES = {"stage1": stage1, "stage2": stage2, "desk": desk}


def is_commit(record: Sent) -> bool:
    """Whether the record is a store's progress (the one-record batch after a checkpoint's keys)."""
    return record[0] is not None and b"#" in record[0]


@pytest.mark.parametrize("kind", sorted(STORES))
def test_keys_without_their_progress_are_not_restored(kind: str, changelog: Changelog, app: Any) -> None:
    """A crash between a checkpoint's keys and its progress: the next owner restores the checkpoint before it,
    whole, and none of the keys the lost progress would have covered (on today's main the key states of the
    lost checkpoint came back beside the older progress, ahead of the input it says was applied)."""
    table = writer_table()
    store, (first, second, _) = STORES[kind](table)
    first(store)  # type: ignore[arg-type]
    checkpoint(store)
    saved = dict(table.data)
    landed = len(changelog.records)
    second(store)  # type: ignore[arg-type]
    checkpoint(store)
    lost = changelog.records[landed:]
    assert lost and is_commit(lost[-1]) and not any(is_commit(r) for r in lost[:-1])
    for cut in range(landed, len(changelog.records)):  # a crash after any record but the progress
        assert dict(restored_table(app, changelog.records[:cut]).data) == saved, cut


@pytest.mark.parametrize("kind", sorted(STORES))
def test_the_next_owners_checkpoint_does_not_bring_back_the_lost_keys(kind: str, changelog: Changelog,
                                                                      app: Any) -> None:
    """The keys of a checkpoint that never committed stay on the changelog after the next owner's checkpoints;
    a later restore must not apply them with the next owner's progress."""
    table = writer_table()
    store, (first, second, third) = STORES[kind](table)
    first(store)  # type: ignore[arg-type]
    checkpoint(store)
    saved, landed = dict(table.data), len(changelog.records)
    second(store)  # type: ignore[arg-type]
    checkpoint(store)
    del changelog.records[-1]  # the progress of the second checkpoint never landed
    heir_table = SimpleNamespace(data=saved, changelog_topic=table.changelog_topic)  # restored as the test above
    successor, _ = STORES[kind](heir_table)
    third(successor)  # type: ignore[arg-type]
    checkpoint(successor)
    assert len(changelog.records) > landed
    assert dict(restored_table(app, changelog.records).data) == heir_table.data


def fold(store: TableStore, engine: Correlator, offset: int, records: list[AlertRecord]) -> list[IncidentEvent]:
    """What correlate does with one `alerts` record the ingest wrote at `offset` (a batch of its own)."""
    out: list[AlertRecord] = []
    for segment in numbered([Segment(None, records)], offset):
        if not store.seen(segment.source):
            store.advance_progress(segment.source)
            out += segment.records
    return engine.ingest(out)


def test_the_next_owner_of_a_partition_whose_progress_was_lost_gets_the_uninterrupted_incidents(
        changelog: Changelog, app: Any) -> None:
    """Stage 1 end to end: a crash between a checkpoint's keys and its progress; the next owner re-reads the input
    from the progress it restored and gets the uninterrupted run's incidents, none late (what an `incidents` reader
    keeps: the first owner's events, then the next owner's)."""
    start = 1772359205.0
    inputs = [[AlertRecord("k1", "svc/Crash", "firing", "critical", start)],
              [AlertRecord("k2", "svc/Crash", "firing", "critical", start + 300)],  # a new incident: past first_gap
              [AlertRecord("l1", "svc/Other", "firing", "critical", start + 2000)]]
    table = writer_table()
    store = TableStore(table, 0)
    engine = Correlator(DEFAULT_CONFIG, store)
    whole: dict[str, int] = {}
    for offset, records in enumerate(inputs):
        whole.update((e.incident_id, e.alert_count) for e in fold(store, engine, offset, records))
        store.watermark = engine.watermark
        checkpoint(store)
    del changelog.records[-1]  # the last checkpoint's progress never landed
    pipe = Pipeline(SimpleNamespace(), DEFAULT_CONFIG, restored_table(app, changelog.records), {})
    restored, again = pipe.engine(0), pipe.store(0)
    assert (again.progress, restored.watermark) == ({HOP_SOURCE: 1 * PARTS_PER_OFFSET}, start + 300)
    assert {key for key, _ in again.items()} == {"svc/Crash"}
    seen = dict(whole)  # every event of the first owner was out before the state that made it
    for offset, records in enumerate(inputs):  # from the start: no offset was committed
        seen.update((e.incident_id, e.alert_count) for e in fold(again, restored, offset, records))
    assert engine.counters.late == restored.counters.late == 0
    whole.update((e.incident_id, e.alert_count) for e in engine.finish())
    seen.update((e.incident_id, e.alert_count) for e in restored.finish())
    assert seen == whole and len(whole) == 3


@pytest.mark.parametrize("kind", sorted(STORES))
def test_a_checkpoint_stopped_midway_leaves_its_keys_and_progress_together_in_the_table(
        kind: str, changelog: Changelog) -> None:
    """In the worker itself: a stage rebuilt from its table's local data after a failed checkpoint (or a revoked
    partition) must find one checkpoint there, never a checkpoint's keys beside the previous one's progress."""
    table = writer_table()
    store, (first, second, _) = STORES[kind](table)
    first(store)  # type: ignore[arg-type]
    checkpoint(store)
    second(store)  # type: ignore[arg-type]
    changelog.fail_after = len(changelog.records)  # the broker refuses the second checkpoint's first send
    with pytest.raises(RuntimeError):
        checkpoint(store)
    after, _ = STORES[kind](SimpleNamespace(data={}))
    second(after)  # type: ignore[arg-type]
    written: list[ChangelogRecord] = after.write_keys()
    progress = after.write_progress()
    expected = dict(table.data)
    assert expected[progress[0]] == progress[1]  # type: ignore[index]
    assert all(expected.get(k) == v for k, v in written if v is not None)


def applied_offset(store: TableStore | GroupTableStore) -> int:
    """The input offset the store's progress names (stage 1: of `alerts.raw` partition 0; stage 2: of its routing
    partition); -1 for none."""
    return store.progress.get(0, -1) if isinstance(store, TableStore) else store.offset


@pytest.mark.parametrize("kind", ["stage1", "stage2"])
def test_a_lost_partition_s_store_forgets_its_input_until_a_checkpoint_writes_it(
        kind: str, changelog: Changelog) -> None:
    """The broker lost its topics (`Checkpointer.lose`): a store held then forgets its input offsets, and so does one
    dropped and built again from the table's local data before a checkpoint wrote it (that data still holds the old
    progress); once a checkpoint has written it, a store built again loads the forgotten progress and needs no
    more forgetting. Clearing the mark when the store forgot instead (stage 2 before 563683d) fails here."""
    table = writer_table()
    store, (first, _, _) = STORES[kind](table)
    first(store)  # type: ignore[arg-type]
    checkpoints = Checkpointer(SimpleNamespace())
    asyncio.run(checkpoints.write([store]))
    assert applied_offset(store) > 0  # type: ignore[arg-type]
    checkpoints.lose(table, range(2))
    assert checkpoints.forget(store) and applied_offset(store) == -1  # type: ignore[arg-type]
    rebuilt, _ = STORES[kind](table)  # the rejoin revoked and assigned the partition again, before a checkpoint
    assert applied_offset(rebuilt) > 0  # type: ignore[arg-type]
    assert checkpoints.forget(rebuilt) and applied_offset(rebuilt) == -1  # type: ignore[arg-type]
    assert checkpoints.due(0.0)  # with no input held: the forgotten progress must reach the table soon
    asyncio.run(checkpoints.write([rebuilt]))
    assert checkpoints.lost == {(CHANGELOG, 1)}  # partition 1's store, not yet built here, still forgets when it is
    again, _ = STORES[kind](table)
    assert applied_offset(again) == -1 and not checkpoints.forget(again)  # type: ignore[arg-type]


def test_a_lost_partition_is_marked_per_table(changelog: Changelog) -> None:
    """The desk's Checkpointer writes the stores of two tables whose partitions share numbers (tickets, incident
    clocks): writing one table's store of a partition leaves the other's marked."""
    tickets = writer_table()
    clocks = SimpleNamespace(data={}, changelog_topic=SimpleNamespace(get_topic_name=lambda: "t-restore-clocks"))
    checkpoints = Checkpointer(SimpleNamespace())
    ticket_store, clock_store = DocStore(tickets, 0, Doc), DocStore(clocks, 0, Doc)
    ticket_store.put("t1", Doc(state="open"))
    asyncio.run(checkpoints.write([ticket_store]))
    assert ticket_store.write_keys() == []  # written: nothing to write again until the loss
    checkpoints.lose(tickets, [0])
    checkpoints.lose(clocks, [0])
    assert checkpoints.forget(ticket_store) and checkpoints.forget(clock_store)
    assert [k for k, _ in ticket_store.write_keys()] == [b"0|t1"]  # every document again, to the new changelog
    asyncio.run(checkpoints.write([ticket_store]))
    assert checkpoints.lost == {("t-restore-clocks", 0)}
    assert checkpoints.forget(DocStore(clocks, 0, Doc)) and not checkpoints.forget(DocStore(tickets, 0, Doc))
