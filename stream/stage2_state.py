"""The stage-2 GroupStore on a changelog-backed Faust table, scoped to one partition of the routing topic.

Like `stream.state.TableStore`: live objects in dicts (no decode per event), each group or held child
changed since the last checkpoint written once at the checkpoint (`stream.checkpoint`), as orjson bytes. The
store updates the table's local data and hands back the changelog records; the checkpoint sends them, on this
partition of the changelog, as whole record batches: Faust's per-message `send_changelog` path cost more
than the grouping that changed the state. A group or held child created and deleted between two
checkpoints is never written. Table keys are UTF-8 bytes:

* `<partition>|g|<parent id>`: a group (`GroupState.to_dict`);
* `<partition>|h|<child id>`: a child held for reordering: `{"first_seq": n, "event": <its latest IncidentEvent>}`
  (the seq stage 2 first took of it names its parent; a bare event, the form before, restores with its own seq);
* `<partition>#progress`: the last offset of the routing partition applied, the grouper's watermark, the
  marks of the stage-1 partitions as that offset left them (`correlator.stage2.watermark`), and the late children
  (`correlator.stage2.LateChildren`): those noted behind a progress already sent and not yet named by one
  (`late`), and how far the progresses sent for the partition reached (`covered`), so that a successor (a restart
  or the partition's next owner) names them, and notes the ones it reads again, as this owner would have.

Tombstones go out in the same checkpoint as the change that caused them: a released child must never come
back as held beside the group that took it, and a group merged away must never come back beside the group that
holds its children. A restore applies a checkpoint's keys and tombstones only with its progress
(`stream.checkpoint.CommitGate`), so the state restored is always the one that progress covers.
"""

from __future__ import annotations

from typing import Any

import orjson

from correlator.models import IncidentEvent
from correlator.stage2 import DictGroupStore, GroupState, SourceMark, dump_marks, load_marks
from stream.checkpoint import ChangelogRecord, Outbound, changelog_of
from stream.runtime import set_local

__all__ = ["GroupTableStore"]


class GroupTableStore(DictGroupStore):
    """A `correlator.stage2.GroupStore` over one partition of a Faust table (bytes keys and values), and a
    `stream.checkpoint.CheckpointStore`: the in-memory store's dicts and reads, each change also marked for the next
    checkpoint."""

    def __init__(self, table: Any, partition: int) -> None:
        self._table = table
        self.partition = partition
        """The table's (and so its changelog's) partition this store owns."""
        self._group_prefix = f"{partition}|g|"
        self._held_prefix = f"{partition}|h|"
        self._progress_key = f"{partition}#progress".encode()
        super().__init__()
        self._dirty: set[bytes] = set()
        self._gone: set[bytes] = set()
        self.offset = -1
        """Last offset of the routing partition whose record has been applied (written at each commit)."""
        self.watermark = float("-inf")
        """The Grouper's watermark, written with the progress (stage 2 sets it before a checkpoint)."""
        self.marks: dict[int, SourceMark] = {}
        """The stage-1 partitions' marks (the low watermark's `LowWatermark.marks`), saved with the progress."""
        self.late: set[str] = set()
        """Children noted late and not yet named by a progress (`LateChildren.pending` of this partition), saved
        with the progress."""
        self.covered = float("-inf")
        """The highest `Progress.decided` sent for this partition (stage 2 sets it before a checkpoint), saved with
        the progress: a child new to the Grouper at or below it is late."""
        self._load()

    # ---- GroupStore -------------------------------------------------------------------------------------

    def put(self, group_id: str, state: GroupState) -> None:
        """Keep `state` and mark it for the next commit."""
        super().put(group_id, state)
        self._touch(self._group_prefix + group_id)

    def delete(self, group_id: str) -> None:
        """Forget a group; its tombstone goes out at the next commit."""
        if self._groups.pop(group_id, None) is not None:
            self._drop(self._group_prefix + group_id)

    def hold(self, child_id: str, event: IncidentEvent, first_seq: int) -> None:
        """Keep the child's latest event, and the seq stage 2 first took of it, until it is assigned."""
        super().hold(child_id, event, first_seq)
        self._touch(self._held_prefix + child_id)

    def release(self, child_id: str) -> IncidentEvent | None:
        """Remove and return the held event (its tombstone goes out at the next commit)."""
        ev = super().release(child_id)
        if ev is not None:
            self._drop(self._held_prefix + child_id)
        return ev

    # ---- progress and commit ----------------------------------------------------------------------------

    @property
    def dirty(self) -> bool:
        """Whether a group or held child changed since the last `write_keys`."""
        return bool(self._dirty or self._gone)

    def seen(self, offset: int) -> bool:
        """Whether the routing record at `offset` was applied already (redelivered after a crash)."""
        return offset <= self.offset

    def forget_input(self) -> None:
        """Forget the routing offset applied and mark every group and held child for the next commit: after the
        broker lost its topics the routing topic starts again at offset 0, so the old offset would make new
        records look applied (and skip them), and the changelog that held the state is gone
        (`stream.checkpoint.InputStore`)."""
        self.offset = -1
        self.rewrite()

    def rewrite(self) -> None:
        """Mark every group and held child for the next checkpoint (after a failed one, or a lost changelog)."""
        for group_id in self._groups:
            self._touch(self._group_prefix + group_id)
        for child_id in self._held:
            self._touch(self._held_prefix + child_id)

    @property
    def changelog_topic(self) -> str:
        """Kafka name of the table's changelog, where `write_keys` and `write_progress` records go."""
        return changelog_of(self._table)

    def write_keys(self) -> list[ChangelogRecord]:
        """Every group and held child changed since the last commit, and the tombstones, for the changelog."""
        records: list[ChangelogRecord] = [self._write(name, None) for name in self._gone]
        records += [self._write(name, self._encode(name.decode())) for name in self._dirty]
        self._gone.clear()
        self._dirty.clear()
        return records

    def write_progress(self) -> ChangelogRecord:
        """The applied offset, the watermark, the marks and the late children, for the changelog after the keys it
        covers."""
        wm = None if self.watermark == float("-inf") else self.watermark
        covered = None if self.covered == float("-inf") else self.covered
        return self._write(self._progress_key, orjson.dumps(
            {"offset": self.offset, "watermark": wm, "marks": dump_marks(self.marks), "late": sorted(self.late),
             "covered": covered}))

    def pending(self) -> list[Outbound]:
        """Nothing: stage 2 publishes its parents before it checkpoints the groups that produced them."""
        return []

    def mark_sent(self, n: int) -> ChangelogRecord | None:
        """Nothing to mark (no outbox)."""
        return None

    # ---- internals --------------------------------------------------------------------------------------

    def _touch(self, name: str) -> None:
        raw = name.encode()
        self._dirty.add(raw)
        self._gone.discard(raw)

    def _drop(self, name: str) -> None:
        raw = name.encode()
        self._dirty.discard(raw)
        if raw in self._table.data:  # a child held and released between two commits was never written
            self._gone.add(raw)

    def _encode(self, name: str) -> bytes:
        if name.startswith(self._group_prefix):
            return orjson.dumps(self._groups[name[len(self._group_prefix):]].to_dict())
        child_id = name[len(self._held_prefix):]
        return b'{"first_seq":%d,"event":%s}' % (self._first_seq[child_id],
                                                 self._held[child_id].model_dump_json().encode())

    def _load(self) -> None:
        """Take over every group, held child and the progress of this partition from the restored table."""
        for table_key, raw in list(self._table.data.items()):
            key = table_key.decode() if isinstance(table_key, bytes) else str(table_key)
            if raw is None:
                continue
            if key.startswith(self._group_prefix):
                self._groups[key[len(self._group_prefix):]] = GroupState.from_dict(orjson.loads(raw))
            elif key.startswith(self._held_prefix):
                child_id = key[len(self._held_prefix):]
                doc = orjson.loads(raw)
                if "first_seq" in doc and "event" in doc:
                    self._held[child_id] = IncidentEvent.model_validate(doc["event"])
                    self._first_seq[child_id] = int(doc["first_seq"])
                else:  # written before the first seq was kept: its own seq is all that is known
                    self._held[child_id] = ev = IncidentEvent.model_validate(doc)
                    self._first_seq[child_id] = ev.seq
        assigned = {cid for g in self._groups.values() for cid in g.children}
        for cid in assigned & set(self._held):  # cannot happen with same-commit tombstones; never hold twice
            del self._held[cid], self._first_seq[cid]
        saved = self._table.data.get(self._progress_key)
        if saved is not None:
            doc = orjson.loads(saved)
            self.offset = int(doc["offset"])
            self.watermark = float("-inf") if doc["watermark"] is None else float(doc["watermark"])
            self.marks.update(load_marks(doc.get("marks", {})))
            self.late.update(doc.get("late", ()))  # a progress written before session 35 kept none
            covered = doc.get("covered")
            self.covered = float("-inf") if covered is None else float(covered)

    def _write(self, table_key: bytes, value: bytes | None) -> ChangelogRecord:
        """Set (None: delete) a key in the table's local data; the changelog record the caller sends."""
        set_local(self._table.data, table_key, value)
        return table_key, value
