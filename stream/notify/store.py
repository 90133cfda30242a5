"""One partition of the notify stage's state on a changelog-backed table: subjects, rate limits, silences, outbox.

Table keys are the UTF-8 bytes of `"<partition>|<kind>|<id>"` (kind `s` a subject, `x` a silence, `o` an outbox
delivery, `q` the rate-limit buckets and queues), values orjson bytes, written with an explicit changelog
partition (the partition of `incidents` that owns the subjects), as `stream.docstore.DocStore` does. It is a
`stream.checkpoint.InputStore`: the `Checkpointer` writes the changed keys, then the one-record marker
Tansu 0.6.0 needs to report the changelog's true end offset, before the stage sends anything or acknowledges
its input. The outbox holds every delivery made and not yet finished; a restarted owner hands it to the
deliverer again (same lane, same order: PagerDuty's `dedup_key` absorbs the repeat).
"""

from __future__ import annotations

from typing import Any

import orjson

from correlator.notify import Acknowledgement, Delivery, Escalation, Handover, NotifyState, Silence, Step, Subject
from stream.checkpoint import ChangelogRecord, Outbound, changelog_of
from stream.runtime import set_local

__all__ = ["NotifyStore"]

_SUBJECT, _SILENCE, _OUTBOX, _LIMITS = "s", "x", "o", "q"


def outbox_key(delivery: Delivery) -> str:
    """A delivery's id in the outbox: its lane and order (unique: order grows per subject)."""
    return f"{delivery.lane}/{delivery.order}"


class NotifyStore:
    """The notify state of one partition, loaded from the table, and the keys changed since the last checkpoint."""

    def __init__(self, table: Any, partition: int, *, sync_marker: bool = True) -> None:
        self.partition = partition
        self.state = NotifyState()
        self.silences: dict[str, Silence] = {}
        self.outbox: dict[str, Delivery] = {}
        self._table = table
        self._sync_marker = sync_marker
        self._prefix = f"{partition}|"
        self._marker_key = f"{partition}#notify".encode()
        self._dirty: set[tuple[str, str]] = set()
        self._decided: list[Delivery] = []
        self.forward: list[Escalation | Acknowledgement | Handover] = []
        """Records folds re-addressed to other partitions (`Step.forward`), in order, not yet sent: the stage sends
        them after a checkpoint of this store succeeds and drops each once it is out, so what a refused checkpoint
        or a failed send leaves goes with the next one (a refold of the same input does not decide them again)."""
        self._rewrite = False
        self._wrote = False
        self._load()

    def _load(self) -> None:
        for table_key, raw in list(self._table.data.items()):
            key = table_key.decode() if isinstance(table_key, bytes) else str(table_key)
            if not key.startswith(self._prefix) or raw is None:
                continue
            kind, _, item_id = key[len(self._prefix):].partition("|")
            doc = orjson.loads(raw)
            if kind == _SUBJECT:
                self.state.subjects[item_id] = Subject.from_dict(doc)
            elif kind == _SILENCE:
                self.silences[item_id] = Silence.model_validate(doc)
            elif kind == _OUTBOX:
                self.outbox[item_id] = Delivery.model_validate(doc)
            elif kind == _LIMITS:
                limits = NotifyState.from_dict(doc)
                self.state.buckets, self.state.queues = limits.buckets, limits.queues

    def took(self, step: Step) -> None:
        """Record a fold step: its subjects changed, its deliveries in the outbox, the rate limits moved."""
        self._dirty.update((_SUBJECT, subject_id) for subject_id in step.changed)
        for delivery in step.deliveries:
            key = outbox_key(delivery)
            self.outbox[key] = delivery
            self._dirty.add((_OUTBOX, key))
        self._decided += step.deliveries
        self.forward += [r for r in step.forward if r not in self.forward]  # a refold's ack or escalation again
        self._dirty.add((_LIMITS, ""))

    def decided(self) -> list[Delivery]:
        """The deliveries folded in since the last call, to send now that a checkpoint has written them; the caller
        asks only after a checkpoint of this store succeeded, so what a refused one decided waits for the next
        (the fold's state already says they were made: nothing would decide them again)."""
        decided, self._decided = self._decided, []
        return decided

    def finished(self, delivery: Delivery) -> None:
        """A delivery ended (2xx or dead letter): out of the outbox at the next checkpoint."""
        key = outbox_key(delivery)
        if self.outbox.pop(key, None) is not None:
            self._dirty.add((_OUTBOX, key))

    def put_silence(self, silence: Silence) -> None:
        """Keep (or replace) a silence."""
        self.silences[silence.id] = silence
        self._dirty.add((_SILENCE, silence.id))

    def drop_silence(self, silence_id: str) -> None:
        """Forget a silence (purged after it ended)."""
        if self.silences.pop(silence_id, None) is not None:
            self._dirty.add((_SILENCE, silence_id))

    @property
    def changed(self) -> bool:
        """Whether anything waits to be written."""
        return bool(self._dirty) or self._rewrite

    # ---------------------------------------------------------------- CheckpointStore

    @property
    def changelog_topic(self) -> str:
        """Kafka name of the table's changelog."""
        return changelog_of(self._table)

    def write_keys(self) -> list[ChangelogRecord]:
        """The changed keys (tombstones for what is gone), written locally; their changelog records."""
        dirty, self._dirty = self._dirty, set()
        if self._rewrite:
            self._rewrite = False
            dirty |= {(_SUBJECT, s) for s in self.state.subjects} | {(_SILENCE, s) for s in self.silences}
            dirty |= {(_OUTBOX, o) for o in self.outbox} | {(_LIMITS, "")}
        records = [self._write(kind, item_id, self._value(kind, item_id)) for kind, item_id in sorted(dirty)]
        self._wrote = self._wrote or bool(records)
        return records

    def write_progress(self) -> ChangelogRecord | None:
        """The marker after the keys just written (with `sync_marker`), else nothing."""
        if not (self._wrote and self._sync_marker):
            return None
        self._wrote = False
        value = orjson.dumps({"subjects": len(self.state.subjects), "outbox": len(self.outbox)})
        set_local(self._table.data, self._marker_key, value)
        return self._marker_key, value

    def pending(self) -> list[Outbound]:
        """No topic events: deliveries go over HTTP, from the outbox."""
        return []

    def mark_sent(self, n: int) -> ChangelogRecord | None:
        """Nothing to mark (see `pending`)."""
        return None

    def rewrite(self) -> None:
        """Write everything at the next checkpoint (after a failed one)."""
        self._rewrite = True

    def forget_input(self) -> None:
        """The broker lost its topics (`stream.checkpoint.InputStore`): the progress names no input offsets, so only
        everything held goes to the re-created changelog at the next checkpoint."""
        self.rewrite()

    def _value(self, kind: str, item_id: str) -> bytes | None:
        if kind == _SUBJECT:
            subject = self.state.subjects.get(item_id)
            return orjson.dumps(subject.to_dict()) if subject is not None else None
        if kind == _SILENCE:
            silence = self.silences.get(item_id)
            return silence.model_dump_json(by_alias=True).encode() if silence is not None else None
        if kind == _OUTBOX:
            delivery = self.outbox.get(item_id)
            return delivery.model_dump_json().encode() if delivery is not None else None
        return orjson.dumps(self.state.limits_to_dict())

    def _write(self, kind: str, item_id: str, value: bytes | None) -> ChangelogRecord:
        table_key = f"{self._prefix}{kind}|{item_id}".encode()
        set_local(self._table.data, table_key, value)
        return table_key, value

