"""One partition's documents (ticket records, incident clocks) on a changelog-backed table, with an outbox.

Table keys are the UTF-8 bytes of `"<partition>|<id>"`, values orjson bytes, written with an explicit changelog
partition (the partition of the input topic that owns the id), as `stream.state.TableStore` does: so the SLA
timer and the web views, which run outside any stream iteration, can write too, and a restarted worker finds
a partition's documents by prefix.

Exactly-once-ish events. A decision is written to its document together with the events it causes (an outbox
entry, numbered per partition), and only then sent; after sending, one small record (`"<partition>#outbox"`)
says up to which number the events are out. So:

- a crash before the documents are written loses the decision and its events together (the input is
  redelivered, or the timer decides again from the old state);
- a crash after the documents, before the events, keeps the decision; the restarted owner sends the
  outbox entries the marker does not cover, byte for byte the same (same `seq`, same `decided_at`);
- a crash after the events, before the marker, re-sends those identical events once: a consumer that keeps
  the highest `seq` per key sees a duplicate, never a second decision.

A breach is therefore decided once (the state says so before anyone hears of it), and published at least once.
The store is a `stream.checkpoint.CheckpointStore`: the `Checkpointer` writes it in that order (documents,
marker, events, marker), as it writes every other store of the worker. The marker after the documents is the
one-record batch Tansu 0.6.0 needs to report the changelog's true end offset (`sync_marker`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import replace
from typing import Any, Generic, TypeVar

import orjson
from pydantic import BaseModel

from stream.checkpoint import ChangelogRecord, Outbound, changelog_of
from stream.runtime import set_local

__all__ = ["DocStore", "Outbound", "locked", "unsent"]

M = TypeVar("M", bound=BaseModel)
S = TypeVar("S")


def document_id(table_key: bytes | None) -> str | None:
    """The id a table key (`"<partition>|<id>"`) names; None for a partition's outbox marker (`"<partition>#outbox"`).

    What a reader of the changelog (the console feed) needs to fold the documents without a store of its own.
    """
    partition, sep, item_id = (table_key or b"").decode().partition("|")
    return item_id if sep and partition.isdigit() else None


def stored_document(value: bytes) -> Any:
    """The document a table value holds, as JSON data (the value also carries the document's outbox entries)."""
    return orjson.loads(value)["doc"]


def unsent(outbox: Mapping[str, Sequence[Outbound]], sent: int) -> dict[str, list[Outbound]]:
    """The outbox without the events numbered up to `sent`, and without ids left with none.

    An id stays in the outbox only while it has an event not known to be out: the outbox is bounded by the
    unsent events, never by the documents ever written (an entry per document was a leak of one key and one
    empty list per incident clock, 49,000 of them after 10^6 alerts).
    """
    return {i: rest for i, entries in outbox.items() if (rest := [e for e in entries if e.n > sent])}


class DocStore(Generic[M, S]):
    """The documents of one partition of a bytes-keyed Faust table, and their unsent events.

    A document that will change no more (a closed incident clock, kept only until its retention passes) is
    *settled* once written and its events are out: the store then keeps `settle(doc)`, a small summary, in
    place of the model, and `get` decodes the model from the table's bytes again. Settled documents are most
    of an SLA table (a day of closed clocks against a few open ones), and as models they took ~1.6 KB each
    beside their ~400 bytes in the table, and were walked by every SLA tick.

    Callers hold `lock` from a change to the end of its `commit`, so that a commit's order (documents, events,
    marker) is never interleaved with another writer's on the same event loop (agent, timer, web view).
    """

    def __init__(self, table: Any, partition: int, model: type[M], *, sync_marker: bool = True,
                 settle: Callable[[M], S | None] | None = None) -> None:
        self.partition = partition
        self.lock = asyncio.Lock()
        self._table = table
        self._model = model
        self._sync_marker = sync_marker
        self._prefix = f"{partition}|"
        self._marker_key = f"{partition}#outbox".encode()
        self._settle = settle
        self._rewrite = False
        self._wrote = False
        self._docs: dict[str, M] = {}
        self._settled: dict[str, S] = {}
        self._written: set[str] = set()
        """Documents written whose events are not yet out: they settle once `mark_sent` says so."""
        self._outbox: dict[str, list[Outbound]] = {}
        self._dirty: set[str] = set()
        self._deleted: set[str] = set()
        self.sent = 0
        self.next_n = 1
        self.resent_on_load = 0
        self._load()

    def _load(self) -> None:
        """Take this partition's documents from the table (restored from the changelog) and its unsent events."""
        marker = self._table.data.get(self._marker_key)
        if marker is not None:
            doc = orjson.loads(marker)
            self.sent, self.next_n = int(doc["sent"]), int(doc["next"])
        for table_key, raw in list(self._table.data.items()):
            key = table_key.decode() if isinstance(table_key, bytes) else str(table_key)
            if not key.startswith(self._prefix) or raw is None:
                continue
            stored = orjson.loads(raw)
            item_id = key[len(self._prefix):]
            self._docs[item_id] = self._model.model_validate(stored["doc"])
            entries = [Outbound.from_list(e) for e in stored.get("outbox", ())]
            self.next_n = max([self.next_n, *(e.n + 1 for e in entries)])
            self._outbox.update(unsent({item_id: entries}, self.sent))
        self.resent_on_load = sum(len(v) for v in self._outbox.values())
        self._settle_docs(list(self._docs))

    def _settle_docs(self, item_ids: Iterable[str]) -> None:
        """Keep only the summary of those documents that are settled and have no unsent events."""
        if self._settle is None:
            return
        for item_id in item_ids:
            doc = self._docs.get(item_id)
            if doc is None or self._outbox.get(item_id):
                continue
            summary = self._settle(doc)
            if summary is not None:
                del self._docs[item_id]
                self._settled[item_id] = summary

    def get(self, item_id: str) -> M | None:
        """The document of `item_id`, or None (a settled one is decoded from the table)."""
        doc = self._docs.get(item_id)
        if doc is None and item_id in self._settled:
            raw = self._table.data.get((self._prefix + item_id).encode())
            doc = None if raw is None else self._model.model_validate(stored_document(raw))
        return doc

    def items(self) -> Iterator[tuple[str, M]]:
        """Every (id, document) of this partition, settled ones decoded (a snapshot: changing the store while
        iterating is fine). For views; timers walk `live_items` and `settled_items`."""
        settled = [(item_id, doc) for item_id in list(self._settled) if (doc := self.get(item_id)) is not None]
        return iter([*self._docs.items(), *settled])

    def live_items(self) -> Iterator[tuple[str, M]]:
        """Every (id, document) not settled (a snapshot)."""
        return iter(list(self._docs.items()))

    def settled_items(self) -> Iterator[tuple[str, S]]:
        """Every (id, summary) of a settled document (a snapshot)."""
        return iter(list(self._settled.items()))

    def __len__(self) -> int:
        return len(self._docs) + len(self._settled)

    @property
    def outbox_ids(self) -> int:
        """How many documents have events not yet known to be sent (what the outbox holds)."""
        return len(self._outbox)

    def put(self, item_id: str, doc: M, events: Sequence[Outbound] = ()) -> None:
        """Keep `doc` and the events it causes; both are written by the next `commit`, the events sent after."""
        numbered = [replace(e, n=self.next_n + i) for i, e in enumerate(events)]
        self.next_n += len(numbered)
        if numbered:  # no entry for a document without events: the outbox holds unsent events only
            self._outbox[item_id] = [*self._outbox.get(item_id, []), *numbered]
        self._settled.pop(item_id, None)
        self._docs[item_id] = doc
        self._dirty.add(item_id)
        self._deleted.discard(item_id)

    def delete(self, item_id: str) -> bool:
        """Forget `item_id` (tombstone at the next commit); refused (False) while it has unsent events."""
        if self._outbox.get(item_id) or (item_id not in self._docs and item_id not in self._settled):
            return False
        self._docs.pop(item_id, None)
        self._settled.pop(item_id, None)
        self._dirty.discard(item_id)
        self._deleted.add(item_id)
        return True

    def pending(self) -> list[Outbound]:
        """Events written with their documents but not yet known to be sent, in the order they were decided."""
        return sorted((e for entries in self._outbox.values() for e in entries), key=lambda e: e.n)

    # ---- CheckpointStore (`stream.checkpoint`) ----------------------------------------------------------

    @property
    def changelog_topic(self) -> str:
        """Kafka name of the table's changelog."""
        return changelog_of(self._table)

    def write_keys(self) -> list[ChangelogRecord]:
        """Changed documents (and tombstones), written locally; their changelog records. Documents without
        unsent events settle now; the others once `mark_sent` says their events are out."""
        self._wrote = bool(self._dirty or self._deleted or self._rewrite)
        records = self._write_documents()
        if self._rewrite:  # after a failed checkpoint: every document of the partition, as the table has it
            self._rewrite = False
            prefix = self._prefix.encode()
            records = [r for r in records if r[1] is None] + [
                (k, v) for k, v in self._table.data.items() if isinstance(k, bytes) and k.startswith(prefix)]
        self._settle_written()
        return records

    def write_progress(self) -> ChangelogRecord | None:
        """The outbox marker after the documents just written (with `sync_marker`; else nothing)."""
        if not (self._wrote and self._sync_marker):
            return None
        self._wrote = False
        return self._marker()

    def mark_sent(self, n: int) -> ChangelogRecord:
        """Events up to `n` are out: the outbox forgets them, their documents may settle; the marker record."""
        self.sent = max(self.sent, n)
        # The stored copies stay in the documents until they are next written; the marker says they are out.
        self._outbox = unsent(self._outbox, self.sent)
        self._settle_written()
        return self._marker()

    def rewrite(self) -> None:
        """Write every document and the marker at the next checkpoint (after a failed one)."""
        self._rewrite = True

    def forget_input(self) -> None:
        """The broker lost its topics (`stream.checkpoint.InputStore`): every document and the marker go to the
        changelog it re-created at the next checkpoint. No input offset to forget: the desk's input is acknowledged
        by the consumer's committed offsets, which a loss makes it forget (`stream.consumer.forget_read_offsets`)."""
        self.rewrite()

    def _write_documents(self) -> list[ChangelogRecord]:
        records = [self._write((self._prefix + item_id).encode(), None) for item_id in self._deleted]
        for item_id in self._dirty:
            stored = {"doc": self._docs[item_id].model_dump(mode="json"),
                      "outbox": [e.to_list() for e in self._outbox.get(item_id, ())]}
            records.append(self._write((self._prefix + item_id).encode(), orjson.dumps(stored)))
        self._written.update(self._dirty)
        self._deleted.clear()
        self._dirty.clear()
        return records

    def _settle_written(self) -> None:
        """Settle what was written and has no unsent events; keep the rest for after `mark_sent`."""
        self._settle_docs(self._written)
        self._written = {item_id for item_id in self._written if self._outbox.get(item_id)}

    def _marker(self) -> ChangelogRecord:
        return self._write(self._marker_key, orjson.dumps({"sent": self.sent, "next": self.next_n}))

    def _write(self, table_key: bytes, value: bytes | None) -> ChangelogRecord:
        set_local(self._table.data, table_key, value)
        return table_key, value

@asynccontextmanager
async def locked(stores: Iterable[DocStore[Any, Any]]) -> AsyncIterator[None]:
    """Hold the locks of several stores, taken in the order given (callers give partition order)."""
    async with AsyncExitStack() as locks:
        for store in stores:
            await locks.enter_async_context(store.lock)
        yield

