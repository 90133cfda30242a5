"""DocStore's write order, on fakes: a decision is stored before its events; a crash at each step, then a restore."""

from __future__ import annotations

import asyncio
import tracemalloc
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from pydantic import BaseModel

from stream.checkpoint import Checkpointer
from stream.docstore import DocStore, Outbound, unsent
from stream.runtime import right_sized


class Doc(BaseModel):
    value: int


class Log:
    """Everything written, in order: changelog records and topic sends."""

    def __init__(self) -> None:
        self.ops: list[tuple[str, Any, Any]] = []


_TABLES: dict[str, FakeTable] = {}


class FakeTable:
    def __init__(self, log: Log) -> None:
        self.data: dict[bytes, bytes] = {}
        self.log = log
        name = f"changelog-{len(_TABLES)}"
        _TABLES[name] = self
        self.changelog_topic = SimpleNamespace(get_topic_name=lambda: name)

    def send_changelog(self, partition: int, key: bytes, value: bytes | None, **_: Any) -> None:
        self.log.ops.append(("changelog", key, value))


def done() -> asyncio.Future[Any]:
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    future.set_result(None)
    return future


class FakeTopic:
    def __init__(self, log: Log, fail: bool = False) -> None:
        self.log, self.fail = log, fail

    async def send(self, *, key: bytes, value: bytes) -> asyncio.Future[Any]:
        if self.fail:
            raise ConnectionError("broker gone")
        self.log.ops.append(("send", key, value))
        return done()


class FakeBatch:
    def __init__(self) -> None:
        self.records: list[tuple[bytes | None, bytes | None]] = []

    def append(self, *, timestamp: Any, key: bytes | None, value: bytes | None, headers: Any) -> object:
        self.records.append((key, value))
        return self

    def close(self) -> None:
        pass


class FakeProducer:
    """The producer and its aiokafka side: record batches go to the fake table of their changelog. Every
    batch sent and every flush is a step; the `fail_at`-th step raises (the process dies there)."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.calls, self.fail_at, self.flushes = 0, fail_at, 0

    def _step(self) -> None:
        self.calls += 1
        if self.calls == self.fail_at:
            raise SystemExit("killed")

    def _ensure_producer(self) -> FakeProducer:
        return self

    def create_batch(self) -> FakeBatch:
        return FakeBatch()

    async def send_batch(self, batch: FakeBatch, topic: str, *, partition: int) -> asyncio.Future[Any]:
        self._step()
        for key, value in batch.records:
            _TABLES[topic].send_changelog(partition, key, value)
        return done()

    async def flush(self) -> None:
        self.flushes += 1
        self._step()


async def commit(stores: Sequence[DocStore[Any, Any]], producer: FakeProducer, topics: Any) -> int:
    """What `Desk.commit` does: the stores written by one `Checkpointer` commit."""
    return await Checkpointer(SimpleNamespace(producer=producer), outputs=topics).commit(stores)


def sends(log: Log) -> list[bytes]:
    return [value for op, _, value in log.ops if op == "send"]


async def decide(store: DocStore[Doc, Any], producer: FakeProducer, topic: FakeTopic) -> None:
    store.put("a", Doc(value=1), [Outbound("out", "a", {"escalated": 1})])
    await commit([store], producer, {"out": topic})


def test_documents_are_written_before_their_events_and_the_marker_after() -> None:
    log = Log()
    table = FakeTable(log)
    store: DocStore[Doc, Any] = DocStore(table, 2, Doc)
    asyncio.run(decide(store, FakeProducer(), FakeTopic(log)))
    kinds = [(op, key) for op, key, _ in log.ops]
    assert kinds == [("changelog", b"2|a"), ("changelog", b"2#outbox"), ("send", b"a"), ("changelog", b"2#outbox")]
    assert DocStore(table, 2, Doc).pending() == []


@pytest.mark.parametrize(("fail_at", "topic_fails", "sent_before", "sent_after"), [
    (2, False, 0, 1),     # died after writing the document, before the marker: sent on restore
    (None, True, 0, 1),   # the send failed: the restored owner sends it
    (3, False, 1, 2),     # died in the events' flush, before the marker: sent once more, byte for byte
])
def test_a_crash_at_each_step_loses_no_decision_and_repeats_at_most_one_identical_event(
        fail_at: int | None, topic_fails: bool, sent_before: int, sent_after: int) -> None:
    log = Log()
    table = FakeTable(log)
    store: DocStore[Doc, Any] = DocStore(table, 0, Doc)
    with pytest.raises((SystemExit, ConnectionError)):
        asyncio.run(decide(store, FakeProducer(fail_at), FakeTopic(log, fail=topic_fails)))
    assert len(sends(log)) == sent_before
    restored: DocStore[Doc, Any] = DocStore(table, 0, Doc)
    assert restored.get("a") == Doc(value=1)  # the decision survived
    assert restored.resent_on_load == 1
    asyncio.run(commit([restored], FakeProducer(), {"out": FakeTopic(log)}))
    assert len(sends(log)) == sent_after
    assert len(set(sends(log))) == 1  # every copy identical
    again: DocStore[Doc, Any] = DocStore(table, 0, Doc)
    assert again.pending() == [] and again.resent_on_load == 0


def test_numbers_grow_across_restores_and_delete_waits_for_unsent_events() -> None:
    log = Log()
    table = FakeTable(log)
    store: DocStore[Doc, Any] = DocStore(table, 1, Doc)
    store.put("a", Doc(value=1), [Outbound("out", "a", {"n": 1})])
    assert store.delete("a") is False  # its event is not out yet
    asyncio.run(commit([store], FakeProducer(), {"out": FakeTopic(log)}))
    restored: DocStore[Doc, Any] = DocStore(table, 1, Doc)
    assert restored.next_n == 2 and restored.sent == 1
    restored.put("b", Doc(value=2), [Outbound("out", "b", {"n": 2})])
    assert restored.pending()[0].n == 2
    assert restored.delete("a") is True
    asyncio.run(commit([restored], FakeProducer(), {"out": FakeTopic(log)}))
    assert ("changelog", b"1|a", None) in log.ops
    final: DocStore[Doc, Any] = DocStore(table, 1, Doc)
    assert final.get("a") is None and final.get("b") == Doc(value=2) and final.pending() == []


def ev(n: int) -> Outbound:
    return Outbound("out", "k", {"n": n}, n)


@pytest.mark.parametrize(("outbox", "sent", "left"), [
    ({}, 0, {}),
    ({"a": []}, 0, {}),                                # an id with no events is not kept
    ({"a": [ev(1)], "b": [ev(2)]}, 0, {"a": [1], "b": [2]}),
    ({"a": [ev(1)], "b": [ev(2)]}, 1, {"b": [2]}),     # a's only event is out: a leaves
    ({"a": [ev(1), ev(3)], "b": [ev(2)]}, 2, {"a": [3]}),
    ({"a": [ev(1), ev(3)], "b": [ev(2)]}, 3, {}),
])
def test_unsent_keeps_only_ids_with_events_past_the_marker(
        outbox: dict[str, list[Outbound]], sent: int, left: dict[str, list[int]]) -> None:
    assert {i: [e.n for e in entries] for i, entries in unsent(outbox, sent).items()} == left


def test_the_outbox_holds_unsent_events_only_not_an_entry_per_document() -> None:
    log = Log()
    store: DocStore[Doc, Any] = DocStore(FakeTable(log), 0, Doc)
    topics = {"out": FakeTopic(log)}
    for i in range(1000):  # clocks opened, moved and purged without ever escalating
        store.put(f"inc-{i}", Doc(value=i))
        store.put(f"inc-{i}", Doc(value=i + 1))
        asyncio.run(commit([store], FakeProducer(), topics))
        assert store.delete(f"inc-{i}") is True
    assert len(store) == 0 and store.outbox_ids == 0
    store.put("late", Doc(value=1), [Outbound("out", "late", {"n": 1})])
    store.put("late", Doc(value=2))  # a later change without events keeps the unsent one
    assert store.outbox_ids == 1 and store.delete("late") is False
    asyncio.run(commit([store], FakeProducer(), topics))
    assert store.outbox_ids == 0 and store.delete("late") is True


def traced_bytes(make: Any, count: int) -> float:
    """Bytes of traced allocation per object, for `count` objects made by `make()` and kept."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        kept = [make() for _ in range(count)]
        return (tracemalloc.get_traced_memory()[0] - before) / len(kept)
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("length", [1, 100, 450, 1_000, 5_000, 20_000])
def test_right_sized_bytes_take_about_their_length(length: int) -> None:
    doc = {"a": "x" * length}
    assert right_sized(orjson.dumps(doc)) == orjson.dumps(doc)
    # the list's slot and the bytes header beside the payload; orjson's own buffer keeps >= 4 KiB (3.12+)
    assert traced_bytes(lambda: right_sized(orjson.dumps(doc)), 200) < length + 128


class QuietTable(FakeTable):
    """A table whose changelog keeps nothing, so the values live in `data` only."""

    def send_changelog(self, partition: int, key: bytes, value: bytes | None, **_: Any) -> None:
        pass


def test_table_values_are_right_sized() -> None:
    table = QuietTable(Log())
    store: DocStore[Doc, Any] = DocStore(table, 0, Doc)
    tracemalloc.start()
    try:
        for i in range(500):
            store.put(f"inc-{i}", Doc(value=i))
        asyncio.run(commit([store], FakeProducer(), {}))
        held = tracemalloc.get_traced_memory()[0]
        table.data.clear()
        freed = held - tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    # 500 values of ~30 bytes and their keys; orjson's untrimmed buffers alone would be 500 x 4 KiB
    assert freed < 500 * 300


def test_one_commit_keeps_each_stores_order_and_shares_the_waits() -> None:
    log = Log()
    first: DocStore[Doc, Any] = DocStore(FakeTable(log), 0, Doc)
    second: DocStore[Doc, Any] = DocStore(FakeTable(log), 1, Doc)
    first.put("x", Doc(value=1), [Outbound("out", "x", {"escalated": 1})])
    second.put("y", Doc(value=2))
    producer = FakeProducer()
    sent = asyncio.run(commit([first, second], producer, {"out": FakeTopic(log)}))
    assert sent == 1
    assert [(op, key) for op, key, _ in log.ops] == [
        ("changelog", b"0|x"), ("changelog", b"1|y"),             # both stores' documents
        ("changelog", b"0#outbox"), ("changelog", b"1#outbox"),   # their markers, each a batch of its own
        ("send", b"x"),                                           # then the events, once the state is out
        ("changelog", b"0#outbox"),                               # and the marker that says they are out
    ]
    assert producer.flushes == 1  # one flush for the events of every store
    assert first.pending() == [] and second.pending() == []


def test_a_failed_commit_is_written_whole_again_after_rewrite() -> None:
    log = Log()
    table = FakeTable(log)
    store: DocStore[Doc, Any] = DocStore(table, 0, Doc)
    store.put("a", Doc(value=1), [Outbound("out", "a", {"n": 1})])
    store.put("b", Doc(value=2))
    with pytest.raises(SystemExit):
        asyncio.run(commit([store], FakeProducer(fail_at=1), {"out": FakeTopic(log)}))  # the documents' batch
    assert log.ops == [] and store.pending()  # nothing reached the changelog; the event waits in the outbox
    store.rewrite()
    asyncio.run(commit([store], FakeProducer(), {"out": FakeTopic(log)}))
    assert sorted(key for op, key, _ in log.ops if op == "changelog" and b"|" in key) == [b"0|a", b"0|b"]
    assert sends(log) == [b'{"n":1}'] and store.pending() == []


def closed_summary(doc: Doc) -> int | None:
    """The test's settle rule: a negative value is a closed document, summarised by its value."""
    return doc.value if doc.value < 0 else None


def test_a_settled_document_keeps_only_its_summary_and_reads_back_from_the_table() -> None:
    log = Log()
    table = FakeTable(log)
    store: DocStore[Doc, int] = DocStore(table, 0, Doc, settle=closed_summary)
    store.put("open", Doc(value=1))
    store.put("closed", Doc(value=-5))
    assert [i for i, _ in store.live_items()] == ["open", "closed"]  # not settled before it is written
    asyncio.run(commit([store], FakeProducer(), {}))
    assert [i for i, _ in store.live_items()] == ["open"]
    assert list(store.settled_items()) == [("closed", -5)]
    assert store.get("closed") == Doc(value=-5) and len(store) == 2
    assert sorted(i for i, _ in store.items()) == ["closed", "open"]
    restored: DocStore[Doc, int] = DocStore(table, 0, Doc, settle=closed_summary)
    assert [i for i, _ in restored.live_items()] == ["open"] and list(restored.settled_items()) == [("closed", -5)]
    restored.put("closed", Doc(value=7))  # changed after all: live again, with the new document
    assert restored.get("closed") == Doc(value=7) and list(restored.settled_items()) == []
    assert restored.delete("open") is True and restored.delete("closed") is True
    asyncio.run(commit([restored], FakeProducer(), {}))
    assert restored.get("closed") is None and len(restored) == 0
    assert ("changelog", b"0|closed", None) in log.ops


def test_a_settled_document_can_be_deleted_without_being_decoded() -> None:
    log = Log()
    store: DocStore[Doc, int] = DocStore(FakeTable(log), 3, Doc, settle=closed_summary)
    store.put("gone", Doc(value=-1))
    asyncio.run(commit([store], FakeProducer(), {}))
    assert store.delete("gone") is True and len(store) == 0
    asyncio.run(commit([store], FakeProducer(), {}))
    assert ("changelog", b"3|gone", None) in log.ops and store.get("gone") is None


def test_a_document_with_unsent_events_settles_only_once_they_are_out() -> None:
    log = Log()
    store: DocStore[Doc, int] = DocStore(FakeTable(log), 0, Doc, settle=closed_summary)
    store.put("a", Doc(value=-1), [Outbound("out", "a", {"closed": 1})])
    with pytest.raises(ConnectionError):
        asyncio.run(commit([store], FakeProducer(), {"out": FakeTopic(log, fail=True)}))
    assert [i for i, _ in store.live_items()] == ["a"] and store.delete("a") is False
    asyncio.run(commit([store], FakeProducer(), {"out": FakeTopic(log)}))
    assert list(store.settled_items()) == [("a", -1)] and store.pending() == []


def test_settled_documents_take_a_fraction_of_the_memory_of_models() -> None:
    def held(settle: Any) -> float:
        table = QuietTable(Log())
        store: DocStore[Doc, int] = DocStore(table, 0, Doc, settle=settle)
        tracemalloc.start()
        try:
            for i in range(2000):
                store.put(f"inc-{i:06d}", Doc(value=-1 - i))
            asyncio.run(commit([store], FakeProducer(), {}))
            return tracemalloc.get_traced_memory()[0] / 2000
        finally:
            tracemalloc.stop()

    models, summaries = held(None), held(closed_summary)
    assert summaries < 0.6 * models, (summaries, models)
