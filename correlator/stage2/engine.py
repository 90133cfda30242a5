"""Stage-2 engine: stage-1 incident events in, parent events and child -> parent assignments out.

Pure and time-passed-in like stage 1: time moves only through the `emitted_at` of the events it is given
(the watermark is the latest one; in the stream, the low watermark of its sources, see `watermark`) and
through `advance(watermark)`. The release point is the watermark
less `lateness_s`; a new child waits in a reorder buffer until the release point passes its first alert,
and children are assigned in order of first alert (ties by id), so arrival order within the lateness
changes nothing.

The rule, exactly. A released child C (first alert at t) is related to a group G that is still accepting when

* scope: C's key has exactly G's scope (cluster, environment, region: a hard boundary, never crossed);

* time: G.first_seen - gap <= t <= G.reach + gap, reach being the latest alert (children's spans arrive on
  their `updated` events) of any child that extends G: the first, and each that started within burst_s of
  G's latest child onset. A child that starts after a longer lull, or merely inside a long child's span,
  joins but does not extend G (onset proximity: steady background alerts and an overlapping unrelated fault
  do not chain a cause on);
* company: a child that starts more than burst_s after G's reach is related to G only when it is not alone:
  another incident of its scope started within burst_s before it, or with it (`onsets`). A fault starts
  incidents in bursts, background noise one here and there: on the development noise sets (rca_sets, seeds
  6113 and 101) a noise incident joined a fault's parent in 23-39% of all wrongly grouped pairs, by a shared
  service mostly, anywhere from 10 to 120 s after its reach, and three in four of those noise incidents had
  no other incident starting within 10 s of them, against one in ten of the fault incidents that joined that
  late (issue 17, sixth round). Only earlier children count, so the answer is known when the child is
  released. A lone child opens its own group and says so. A continuation (CONTINUES) needs no company;
* relation: C continues a child of G, or shares an entity with G, or is within max_hops of it in the
  topology, or (the label fallback) shares a namespace, and no cluster separates them (see `relations`);
  weighed by kind (`_admits`): a shared machine (host, node) or any topology path counts only when C starts
  within burst_s of G's latest child onset; a shared service, instance or call, a continuation or a
  namespace across the whole gap. A topology path says two incidents could share a cause, not that they do:
  taken across the whole gap (as one dependency edge was until issue 17's fifth round), every fault that
  started next to a cause while it lasted joined it, and its own later incidents followed it by name (on
  the development cascades, seed 6211, 45 of the 101 joins by one edge joined another fault; F1 with the
  topology 0.702 against 0.774 without). A path also needs G to be still alerting: C starts within burst_s
  of G's reach (`_alerting`), since G's latest onset may be a late child's that joined by name after a lull.
  And the names a child joined by a path brings are borrowed (`GroupState.borrowed`): a later child that
  shares only such a name relates as weakly as the path did (within burst_s, folding two groups only when
  their latest onsets lie within burst_s: `GroupingConfig.borrowed_folds`),
  until a child joined by a name of its own carries it too. Issue 17's sixth round, read on the development
  cascades: even with every wrong path join refused (an oracle, seed 201), the file cost 0.02 of precision,
  because each right path join lent the group the names of the child's callers, and unrelated faults at
  those callers then joined by name across the whole gap. A child joined by a path moves only G's
  `path_onset`, which admits the next path step but no shared machine and no merge (`GroupState.path_onset`;
  issue 17, seventh round: on seed 201 a fault that joined by a path two seconds after another's onset made
  the group young enough for a shared host to fold a third fault in, and the file cost 0.02 of F1);
* callers: a name G knows only as a `caller` (`relations.CALLER_LABELS`: the calling side of a trace error,
  a victim of the call, `GroupState.callers`) relates C only when C starts within caller_window_s of G's
  latest child onset. Issue 17's seventh round, read on the development cascades (seeds 201, 6211, 8101): a
  new fault's own instance matching an instance the cause knew only as a caller was 64 true pairs against
  8,548 false on seed 201; on MicroSS every such join (130, all true) came within 90 s of the onset. Its mirror
  (`GroupingConfig.victims`): a name C carries only as a caller (C's failed call hurt it) relates C only within
  caller_window_s too: a shared victim says two failures began together, not that a later one belongs. Issue 17,
  session 31, on the development sets: such joins were all right on MicroSS and all within 90 s; on the cascades
  23 of 34 past 120 s brought another fault (a new fault's trace error into a service the cause's callers call);

* burst-follow: a C that names exactly one entity (a host's own metric) and relates to no open group joins, by time
  alone, the one group of its scope that took a child starting within burst_s before C, when no other group's
  child started in that window (`_burst`, `GroupingConfig.burst_follow`). It shares nothing a cause could name,
  so time is its only evidence, and one burst with no competitor is the evidence a time-gap grouper takes
  (issue 17, session 31: on the development noise sets a fault's host metrics starting with it stayed apart);
  a child naming more is a cause of its own as likely (a renamed twin failing 30 s later, MicroSS x2);
* call chains: a call chain (`relations`, `GroupingConfig.call_chains`, off by default: C's failed call went into a
  service G holds a failed call out of) is taken as a caller name is, and never folds two groups; a path of calls
  (`GroupingConfig.path_chains`: C names a failed call and one topology edge runs from its side to G's, the failure
  climbing the call graph) is taken within caller_window_s of G's latest onset while G alerts, not only within
  burst_s as other paths (issue 17, session 32: on the development cascades such trace errors came 20-120 s after
  the cause's latest onset and opened apart);
* machine-follow: a host's own metric (it names nothing but machines beside its service, and no call) that shares only
  a machine with G is taken while G alerts (within burst_s of its reach), not only within burst_s of its latest onset,
  when no other group shares the machine, joining G but never folding it with another and moving none of its onsets
  (`_machine`, `GroupingConfig.machine_follow`; issue 17, session 33: a host's metric drawn anywhere in its fault's
  span was the largest class of split pairs on the development cascades);
* calls climbing: a C that names a failed call, relates to no open group and would open its own joins the one group of
  its scope that knows as a caller only a name of the service C's call went into, when C starts within climb_s of its
  reach (`_climb`, `GroupingConfig.climb_s`, 60 s by default; 0: never): R fails, H's calls into R fail, then U's into H;
  it joins as a call-chain child does (issue 17, session 36, casc22: such hop-2 trace errors were the largest class of
  split pairs on the development cascades without the file);
* late symptoms: a C naming no failed call, of a key G does not hold, that starts alone (`_alone`) more than
  late_symptom_s after G's latest child onset is not related to G by a name (`_late_symptom`,
  `GroupingConfig.late_symptom_s`, 60 s by default; 0: never): another root failing at a service G names, after G's outage
  stopped growing (issue 17, session 38, casc24: another fault's root symptom merged was the largest wrongly merged
  class on the development cascades);
* burst companions: a container's own metric (its service and machines only) follows the one group taking a burst at
  any burst, not only the opening one (`burst_machines`), when its service sat before in another group of the scope
  with a service this group holds, neither joined by a path or a chain alone (`_kept_company`,
  `GroupingConfig.burst_companions`, off by default), with a topology file too: a side of the outage seen with it
  before, where a renamed twin failing at once has no such history;

and C joins the related group that minimizes (relation rank, time gap, G's first alert, G's id), skipping
groups at a cap (max_children children, or t > G.first_seen + max_lifetime). When only capped groups are
related, C opens a successor that names the best of them (`previous_id`); when none is, C opens its own
group. A group stops accepting when the release point passes its reach + gap, resolves once it has
stopped accepting and every child has resolved or expired, and is evicted retention_s later (then its
children are forgotten too). Parent ids derive from the first child's id.

Resumption (`GroupingConfig.resume_below`, `_resume`): a group's only child, of fewer than resume_below alerts,
whose event moves its latest alert more than gap_s on carries the group on: when the release point passes that
alert (in event-time order with the children, `_resumed`), the group's latest onset moves to it and the group
accepts again. Stage 1 glues a busy key's background alert or two in front of a fault's burst of that key (within
its first_gap or min_gap); the group they opened had closed when the burst came, so the fault's other pieces
opened apart, and its onset was minutes before theirs, so no bridge folded them (issue 17, session 32, read on the
development noise sets: 8,192 of noise seed 6143's 9,076 split pairs in noise-opened incidents).

Late children (`GroupingConfig.late_placed`, off by default): a child that arrives behind the release point (in the
stream, from a stage-1 partition that said idle and then got a backlog) is placed by its first alert among the groups
still open, those that stopped accepting while it lay within their gap included (`_closed_around`), not only the ones
still accepting; one it carries past the release point accepts again. Without it the rest of a fault that came late
opens a cause of its own beside the fault's (session 39, across39's quick chaos soak). `GroupingConfig.idle_placed`
places so only the late children the stream names on time for their own stage-1 partition (`ingest`'s `on_time`,
from `watermark.on_own_time`); the replay names none.

Transitive merges: a child related to several groups is a bridge. Groups whose latest child onsets lie
within merge_window_s of the best-related group's latest child onset are taking incidents together, as one
blast seen from different sides (on MicroSS a fault's trace alerts and its host metrics first open two
groups that nothing relates until an incident carrying both names arrives): they are merged into the
oldest of them, within the size cap; the absorbed parents publish a last `resolved` event with status
`merged` and `merged_into`, and each of their children a new assignment (relation `merged`). A group whose
latest child started longer ago is a separate cause that happens to overlap, and is never merged: the bridge
joins the best group only. Nor is a group the bridge relates to only through the topology: a merge folds
published causes together, so it needs a shared name (or a namespace, a continuation) with each group it
folds; a path is enough to join one, not to fold two (on the development cascades, merges through a path
cost 0.03 of F1). With `GroupingConfig.path_folds_labelled`, a group the path relates that the labels alone relate too
folds as it would without the file (`_as_labelled`): the file never takes away a fold the labels give. So merges cannot chain across time (A~B, B~C merging an early A with a late C),
and a published child only ever moves to a group that took a child within the merge window of its own
group's latest; on MicroSS merging lifts recall from 0.916 to 0.955 at equal precision. The latest onset, not
the first: a group's first child may be a lone background alert that stage 1 glued in front of a fault's
burst of the same key (it bridges first_gap), which dates the group minutes before the fault it now holds;
measured from the first, the rest of that fault, opening beside it, never merged (issue 17, fourth round,
read on the development seed). A group that is one alert which started alone (no company) folds only within
burst_s (`GroupingConfig.lone_apart`, `_lone`): a lone background alert that shares a service with a fault is no
side of its blast (issue 17, session 32: 3-8k wrongly merged pairs per development noise set came from such folds).
"""

from __future__ import annotations

import hashlib
import heapq
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field, fields, replace
from typing import TypeVar

from ..keys import split_key
from ..models import SEVERITY_RANK, IncidentEvent
from ..topology import Topology
from .config import DEFAULT_GROUPING, GroupingConfig
from .models import Assignment, ParentEvent, ParentEventKind, ParentStatus, Relation
from .onsets import Onsets
from .relations import (
    CALLEE_LABELS, ChildView, Link, burst_link, labelled_tenant, machine_burst_link, machine_only, names_call, relate,
    service_of, tenant, time_gap, trace_link, view_of,
)
from .state import ChildState, DictGroupStore, GroupPhase, GroupState, GroupStore

__all__ = ["Grouper", "GroupingCounters", "GroupingOutput", "parent_id"]

_INF = float("inf")


def parent_id(child_id: str, first_seq: int = 1) -> str:
    """Deterministic parent id from the child that opened it, so a replay or restart names it the same.

    `first_seq` is the sequence number of the first event stage 2 saw of that child: 1 normally; a
    straggler first seen later folds it in, so it can never reuse the id of a group already forgotten.
    """
    text = child_id if first_seq == 1 else f"{child_id}|{first_seq}"
    return "par-" + hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


@dataclass(slots=True)
class GroupingCounters:
    """What went through stage 2."""

    events: int = 0
    duplicates: int = 0
    children: int = 0
    late: int = 0
    opened: int = 0
    capped: int = 0
    resolved: int = 0
    merged: int = 0
    evicted: int = 0

    def as_dict(self) -> dict[str, int]:
        """Counter name -> value."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(slots=True)
class GroupingOutput:
    """What one call produced: parent events and assignments, each list in the order it happened."""

    parents: list[ParentEvent] = field(default_factory=list)
    assignments: list[Assignment] = field(default_factory=list)

    def extend(self, other: GroupingOutput) -> None:
        """Append another call's output."""
        self.parents.extend(other.parents)
        self.assignments.extend(other.assignments)


@dataclass(slots=True)
class _Candidate:
    group: GroupState
    link: Link
    gap: float

    @property
    def order(self) -> tuple[int, bool, float, float, str]:
        # a shared name before a call chain of the same rank: the chain is the weaker evidence (`relations`)
        return (self.link.rank, self.link.chain, self.gap, self.group.first_seen, self.group.id)


_K = TypeVar("_K")


def _drop(index: dict[_K, set[str]], key: _K, gid: str) -> None:
    ids = index.get(key)
    if ids is not None:
        ids.discard(gid)
        if not ids:
            del index[key]


def _seconds(s: float) -> str:
    return f"{s:.0f}s" if s < 120 else f"{s / 60:.1f}m".replace(".0m", "m")


class Grouper:
    """Folds stage-1 incident events into parent incidents; every public call returns what it caused."""

    def __init__(
        self,
        config: GroupingConfig = DEFAULT_GROUPING,
        topology: Topology | None = None,
        store: GroupStore | None = None,
    ) -> None:
        self.config = config
        self.topology = topology
        self.store: GroupStore = store if store is not None else DictGroupStore()
        self.watermark = -_INF
        self.released_to = -_INF
        """Event time up to which held children have been assigned; a child first seen behind it is late."""
        self.counters = GroupingCounters()
        self._child_group: dict[str, str] = {}
        self._by_entity: dict[str, set[str]] = {}
        self._by_scope: dict[tuple[str, str], set[str]] = {}
        self._accepting: dict[str, set[str]] = {}
        """Ids of the accepting groups of each scope (a superset: resolved at `finish` may linger): what `_climb` reads
        instead of every group the store holds, resolved ones kept for retention_s included."""
        self._held: list[tuple[float, str]] = []
        """(first alert, child id) of each held child: the reorder buffer, oldest first."""
        self._deadlines: list[tuple[float, str]] = []
        self._resumes: list[tuple[float, str]] = []
        """(resumption, group id) of each group a resuming child carries on (`_resume`), applied in event-time order."""
        self._scheduled: dict[str, float] = {}
        self._closed_to = -_INF
        """The latest reach + gap of a group that stopped accepting while open: a child whose first alert lies beyond
        it is in no closed group's window, so `_candidates` looks for closed ones (`_closed_around`) only for a child
        that came late."""
        self._onsets = Onsets()
        """When each known child started, per scope: whether a child starts alone (`_alone`)."""
        self._placed: set[str] = set()
        """Late children on time for their own stage-1 partition (`GroupingConfig.idle_placed`), until assigned: in the
        very `ingest` that takes them (they lie behind the release point), so nothing of it needs saving."""
        self._placing = False
        """Whether the child `_assign` is placing may join a group that stopped accepting (`_closed_around`, `_takes`,
        `_join`): `GroupingConfig.late_placed`, or one of `_placed`."""
        self._rebuild()

    # ---- public surface -------------------------------------------------------------------------------

    @property
    def release_point(self) -> float:
        """Event time up to which children have been assigned: the watermark less the lateness."""
        return self.watermark - self.config.lateness_s

    def ingest(self, events: Iterable[IncidentEvent], watermark: float | None = None,
               on_time: Collection[str] = ()) -> GroupingOutput:
        """Take stage-1 events in the order stage 1 emitted them; return what they caused.

        Event time moves to the latest `emitted_at`, or, when `watermark` is given, to it alone: the stream
        passes the low watermark of the stage-1 partitions that feed it (`watermark`), which an event of a
        partition running ahead must not overtake. `on_time`: ids of children the stream's marks show on time for
        their own stage-1 partition (`watermark.on_own_time`); one of them that is late here is placed by its first
        alert (`GroupingConfig.idle_placed`).
        """
        out = GroupingOutput()
        for ev in events:
            if watermark is None:
                self.watermark = max(self.watermark, ev.emitted_at)
            self._take(ev, out, ev.incident_id in on_time)
        if watermark is not None:
            self.watermark = max(self.watermark, watermark)
        self._run(self.release_point, out)
        return out

    def advance(self, watermark: float) -> GroupingOutput:
        """Move event time forward without events (an idle timer): assigns held children, closes what is due."""
        if watermark > self.watermark:
            self.watermark = watermark
        out = GroupingOutput()
        self._run(self.release_point, out)
        return out

    def finish(self) -> GroupingOutput:
        """End of a recorded input: assign every held child, publish every change, resolve finished groups."""
        out = GroupingOutput()
        now = self.watermark
        self._release(_INF, now, out)
        for _, g in self.store.items():
            if g.phase is GroupPhase.OPEN and g.all_done:
                self._resolve(g, now, out)
            elif g.phase is GroupPhase.OPEN and g.dirty:
                out.parents.append(self._event(g, "updated", now))
            self.store.put(g.id, g)
        return out

    def set_topology(self, topology: Topology | None) -> bool:
        """Use another topology from now on (a reloaded file); True when its content differs.

        Children assigned from now on are matched with it; groups keep the entity names they were built with.
        """
        old = self.topology.version if self.topology is not None else None
        new = topology.version if topology is not None else None
        self.topology = topology
        return old != new

    def parent_of(self, child_id: str) -> str | None:
        """The parent a child was assigned to, while its group is held."""
        return self._child_group.get(child_id)

    def groups(self) -> Iterator[GroupState]:
        """Every group held, for views and tests."""
        return (g for _, g in self.store.items())

    def oldest_held(self) -> float:
        """First alert of the oldest child held (inf: none), for `publishing.decided_to`: the top of the reorder
        buffer once the stale entries above it are dropped (a child released since, or whose first alert a late
        alert moved; `_release` skips them), not a scan of every held child at each progress report."""
        held, store = self._held, self.store
        while held:
            first_seen, cid = held[0]
            ev = store.held(cid)
            if ev is not None and ev.first_seen == first_seen:
                return first_seen
            heapq.heappop(held)  # what `_release` would pop and skip; the resumptions it would apply first are
            # all at or before the next entry it pops, or its `until`, and applied then, before any assignment
        return _INF

    def state_size(self) -> dict[str, int]:
        """Groups, children, held children, indexed names and timers: what must stay flat on a long run."""
        groups = children = 0
        for _, g in self.store.items():
            groups += 1
            children += len(g.children)
        return {"groups": groups, "children": children, "held": len(self._held),
                "indexed": len(self._by_entity) + len(self._by_scope) + len(self._onsets),
                "timers": len(self._deadlines) + len(self._resumes)}

    # ---- intake -----------------------------------------------------------------------------------------

    def _take(self, ev: IncidentEvent, out: GroupingOutput, on_time: bool = False) -> None:
        self.counters.events += 1
        cid = ev.incident_id
        gid = self._child_group.get(cid)
        g = self.store.get(gid) if gid is not None else None
        if g is not None:
            self._update_child(g, ev, out)
            return
        held = self.store.held(cid)
        if held is not None:
            if ev.seq > held.seq:
                self.store.hold(cid, ev, self.store.first_seq(cid))
                if ev.first_seen != held.first_seen:  # a late alert moved its start: released by the new one
                    heapq.heappush(self._held, (ev.first_seen, cid))
                    self._onsets.add(split_key(ev.key)[0], ev.first_seen, cid)
            else:
                self.counters.duplicates += 1
            return
        if ev.first_seen < self.released_to:
            self.counters.late += 1  # assigned at once; groups it could have joined may have closed
        if on_time and self.config.idle_placed and ev.first_seen < max(self.released_to, self.release_point):
            # the release point too: after a restart released_to starts over while the watermark is restored
            self._placed.add(cid)
        self.store.hold(cid, ev, ev.seq)
        heapq.heappush(self._held, (ev.first_seen, cid))
        self._onsets.add(split_key(ev.key)[0], ev.first_seen, cid)

    def _update_child(self, g: GroupState, ev: IncidentEvent, out: GroupingOutput) -> None:
        known = g.children.get(ev.incident_id)
        if known is None or ev.seq <= known.seq:
            self.counters.duplicates += 1
            return
        self._resume(g, known, ev)
        child = ChildState.of(ev)
        child.extends, child.by_path, child.by_chain = known.extends, known.by_path, known.by_chain
        child.moves_onset = known.moves_onset
        if child.extends and self._lulled(g, known, ev):
            child.extends = False
        if child.first_seen != known.first_seen:
            self._onsets.add(split_key(ev.key)[0], child.first_seen, child.id)
        g.refresh(child)
        if g.accepting and child.entity_values != known.entity_values:
            before, view = self._callers_before(g), view_of(ev, self.config, self.topology)
            self._absorb(g, view, borrowed=child.by_path, heard=child.by_chain)
            self._climbed_late(g, before, view, ev, ev.last_seen, self.release_point, out)
        # A parent republishes on membership and severity changes; children's counts travel on their own events.
        if SEVERITY_RANK.get(child.severity, 1) > SEVERITY_RANK.get(known.severity, 1):
            g.dirty = True
        self.store.put(g.id, g)
        self._schedule(g.id, self._deadline(g))

    def _resuming(self, g: GroupState, known: ChildState, ev: IncidentEvent) -> bool:
        """Whether the event resumes its group (`_resume`): the group's only child, of fewer than resume_below alerts,
        moves its latest alert more than gap_s on."""
        return not (len(g.children) != 1 or known.alert_count >= self.config.resume_below
                    or g.phase is not GroupPhase.OPEN or ev.last_seen - known.last_seen <= self.config.gap_s)

    def _resume(self, g: GroupState, known: ChildState, ev: IncidentEvent) -> None:
        """Resumption: a group's only child, of fewer than resume_below alerts, whose event moves its latest alert more
        than gap_s on (a lull the group would have closed on) carries the group on: the group's latest onset moves to
        that alert and the group accepts again (`GroupingConfig.resume_below`). Decided from the child's stored
        figures and the event alone, so it does not matter whether the group had already stopped accepting."""
        if not self._resuming(g, known, ev):
            return
        g.resume_at = max(g.resume_at or -_INF, ev.last_seen)
        heapq.heappush(self._resumes, (g.resume_at, g.id))

    def _lulled(self, g: GroupState, known: ChildState, ev: IncidentEvent) -> bool:
        """Lull: whether a child's event moves its latest alert more than lull_s past its previous one, the group not
        resuming on it (`GroupingConfig.lull_s`). The alert after the lull is stage 1's continuation gap gluing a later
        alert of the key on, not the cause going on, so the child stops extending the group's reach from then.
        Decided from the child's stored figures and the event alone, as `_resume` is."""
        lull = self.config.lull_s
        return bool(lull) and ev.last_seen - known.last_seen > lull and not self._resuming(g, known, ev)

    def _resumed(self, until: float) -> None:
        """Apply the resumptions at or before `until`: in event-time order with the children released, so a child
        that started before the resumption is placed as if it had not happened, whenever its event arrived."""
        resumes = self._resumes
        while resumes and resumes[0][0] <= until:
            at, gid = heapq.heappop(resumes)
            g = self.store.get(gid)
            if g is None or g.resume_at != at:
                continue
            g.resume_at = None
            if g.phase is GroupPhase.OPEN:
                g.last_onset = max(g.last_onset, at)
                if not g.accepting:
                    g.accepting = True
                    self._index(g)
            self.store.put(g.id, g)
            self._schedule(g.id, self._deadline(g))

    # ---- assignment -------------------------------------------------------------------------------------

    def _release(self, until: float, now: float, out: GroupingOutput) -> None:
        """Assign held children whose first alert is at or before `until`, oldest first.

        Order and ids come from the store alone (the held event's first alert, the first seq taken), so a
        Grouper rebuilt on a restored store assigns as the one before the restart would have; an entry whose
        child has since moved its first alert (a late alert) is stale and skipped."""
        held, store = self._held, self.store
        while held and held[0][0] <= until:
            first_seen, cid = heapq.heappop(held)
            if self._resumes:
                self._resumed(first_seen)
            ev = store.held(cid)
            if ev is None or ev.first_seen != first_seen:
                continue
            first_seq = store.first_seq(cid)
            store.release(cid)
            self._assign(ev, first_seq, now, out)
        if self._resumes:
            self._resumed(until)

    def _assign(self, ev: IncidentEvent, first_seq: int, now: float, out: GroupingOutput) -> None:
        self.counters.children += 1
        self._placing = self.config.late_placed or ev.incident_id in self._placed
        self._placed.discard(ev.incident_id)
        view = view_of(ev, self.config, self.topology)
        related, capped, lone, late, stray = self._choose(ev, view)
        if not related and capped is None and lone is None and self.config.burst_follow:
            follow = self._burst(ev, view)
            related = [follow] if follow is not None else related
        if not related and capped is None and lone is None and self.config.climb_s:
            climb = self._climb(ev, view)
            related = [climb] if climb is not None else related
        if not related and capped is None and lone is None and self.config.trace_follow:
            trace = self._trace_follow(ev, view)
            related = [trace] if trace is not None else related
        if related:
            before = {c.group.id: len(c.group.children) for c in related}
            merging = len(related) > 1 and self.config.merge_window_s > 0
            target = self._merge(related, ev, view, now, out) if merging else related[0]
            self._join(target, ev, view, now, out)
            if self.config.prompt_pairs and before.get(target.group.id, 0) <= 1:
                self._announce(target.group, now, out)
            return
        why = None
        if capped is not None:
            self.counters.capped += 1
            why = f"{capped.group.id} is {self._capped_reason(capped.group, ev.first_seen)}"
        elif lone is not None:
            why = (f"it started alone (no other incident within {_seconds(self.config.burst_s)} before it), "
                   f"{_seconds(lone.gap)} after {lone.group.id}'s latest alert")
        elif late is not None:
            why = (f"a symptom of its own (no failed call), started alone "
                   f"{_seconds(ev.first_seen - late.group.last_onset)} after {late.group.id}'s latest child onset")
        elif stray is not None:
            why = (f"{stray.group.id} is one alert that started alone and had no second within "
                   f"{_seconds(self.config.lone_wait_s)} ({_seconds(stray.gap)} before this one): a stray, no cause")
        self._open(ev, view, first_seq, capped.group if capped else None, why, now, out)

    def _choose(
        self, ev: IncidentEvent, view: ChildView,
    ) -> tuple[list[_Candidate], _Candidate | None, _Candidate | None, _Candidate | None, _Candidate | None]:
        """The related accepting groups with room, best first; the best related one that is capped; the best one it
        would relate to but for starting alone long after the group's reach (`_alone`); the best one it relates to
        by a name but for being a late symptom (`_late_symptom`); and the best one it relates to but for that group
        being a stray alert past lone_wait_s (`_stray`). The last two only for the explanation of the parent it opens."""
        related: list[_Candidate] = []
        capped: _Candidate | None = None
        lone: _Candidate | None = None
        late: _Candidate | None = None
        stray: _Candidate | None = None
        scope = split_key(ev.key)[0]
        alone: bool | None = None
        found: list[_Candidate] = []
        for gid in self._candidates(ev, view):
            g = self.store.get(gid)
            if g is not None and g.scope != scope:
                continue  # scope is a hard boundary: two clusters' failures are two causes, whatever relates them
            gap = None if g is None else time_gap(ev.first_seen, g.first_seen, g.reach, self.config.gap_s)
            link = None if g is None or gap is None else self._admitted(ev, view, g)
            if g is None or gap is None or link is None:
                continue
            if link.relation is not Relation.CONTINUES and self._recurs(g, ev.key, ev.incident_id, ev.first_seen):
                continue  # the symptom failing again after its outage went quiet: the next outage
            if (self.config.late_symptom_s and link.relation is Relation.ENTITY and not link.weak
                    and self._late_symptom(g, ev)):
                refused = _Candidate(g, link, gap)
                late = refused if late is None or refused.order < late.order else late
                continue  # a service's own new symptom long after the outage stopped growing: another root failing
            if (self.config.lone_joins and gap > self.config.burst_s and link.relation is not Relation.CONTINUES
                    and self._lone(g) and (not self.config.lone_habit or self._habitual(g))):
                continue  # a stray background alert, past its burst: no cause for a later burst to join
            found.append(_Candidate(g, link, gap))
        for cand in found:
            g, link, gap = cand.group, cand.link, cand.gap
            if self.config.company and gap > self.config.burst_s and link.relation is not Relation.CONTINUES:
                if alone is None:
                    alone = self._alone(ev, scope, self._company_groups(found))
                if alone:  # background, not the cause going on
                    lone = cand if lone is None or cand.order < lone.order else lone
                    continue
            if self._stray(g, link, gap):  # after company: a child company refuses keeps that reason and placement
                stray = cand if stray is None or cand.order < stray.order else stray
                continue  # one alert, alone, and no second came within lone_wait_s: no cause for this one to join
            if self._capped_reason(g, ev.first_seen):
                capped = cand if capped is None or cand.order < capped.order else capped
            else:
                related.append(cand)
        if self.config.machine_follow and any(c.link.machine for c in related):
            related = self._unrivalled(related)
        related.sort(key=lambda c: c.order)
        if self.config.tenants_apart and (
                tenant(view, self.topology, self.config) if self.topology is not None
                else self.config.tenants_apart_labels and labelled_tenant(view, self.config)):
            return (*self._tenants_apart(related, capped, lone), late, stray)
        return related, capped, lone, late, stray

    def _tenants_apart(
        self, related: list[_Candidate], capped: _Candidate | None, lone: _Candidate | None,
    ) -> tuple[list[_Candidate], _Candidate | None, _Candidate | None]:
        """Tenants apart: with a topology (or by labels: `tenants_apart_labels`), a group related to a tenant's child
        by a shared machine alone is never its target (no join, no successor, no note that it started alone), only
        folded into a best group related otherwise (`GroupingConfig.tenants_apart`): the file knows both tenants and no path between them that avoids
        the machine, while a fault's two sides, one of them seen by its host, are still one blast. A group holding a
        machine's own alert is the exception: the machine itself fails, and its tenants are its sides."""
        def machine(c: _Candidate) -> bool:
            return c.link.weak and not c.link.borrowed and not self._machine_alerts(c.group)

        if related and machine(related[0]):
            related = [c for c in related if not machine(c)]
        return (related, None if capped is not None and machine(capped) else capped,
                None if lone is not None and machine(lone) else lone)

    @staticmethod
    def _unrivalled(related: list[_Candidate]) -> list[_Candidate]:
        """Machine-follow takes a host's metric only when one group shares its machine: with two, the machine says
        nothing of which cause it belongs to (`GroupingConfig.machine_follow`)."""
        if sum(c.link.weak for c in related) <= 1:
            return related
        return [c for c in related if not c.link.machine]

    def _machine_alerts(self, g: GroupState) -> bool:
        """Whether the group holds a machine's own alert: a child whose service the topology knows as a machine."""
        topology, types = self.topology, self.config.shared_node_types
        return topology is not None and any(
            topology.shared(topology.node_of(service) or service, types)
            for service in {split_key(c.key)[1] for c in g.children.values()})

    def _merge(
        self, related: list[_Candidate], ev: IncidentEvent, view: ChildView, now: float, out: GroupingOutput,
    ) -> _Candidate:
        """A child related to several groups: fold those taking incidents together into the oldest; the target.

        Together means a latest child onset within merge_window_s of the best-related group's latest child
        onset; a group whose latest child started longer before or after is a separate cause that happens to
        overlap, and stays apart. A group related only through the topology, or only by a call chain, is never
        folded in (see above, and `relations`).
        """
        best = related[0]
        if self.config.victims_first_apart and best.link.victim:
            # the group the failed call went into is the child's cause when the caller's group does not fold into it
            own = next((c for c in related if not c.link.victim and self._victim_first(best, c)), None)
            best = own if own is not None else best
        if best.link.chain or best.link.machine:  # a call chain, or a machine alone, joins one group, never folds two
            return best
        pool = sorted((c for c in related if c is best or self._folds(self._as_labelled(c, ev, view), best)),
                      key=lambda c: (c.group.first_seen, c.group.id))
        keep = pool[0].group
        room = self.config.max_children - len(keep.children) - 1
        for cand in pool[1:]:
            if len(cand.group.children) <= room:
                room -= len(cand.group.children)
                self._fold(cand.group, keep, ev, now, out)
        if keep is best.group:
            return best
        link = self._link(ev, view, keep) or best.link
        gap = time_gap(ev.first_seen, keep.first_seen, keep.reach, self.config.gap_s)
        return _Candidate(keep, link, best.gap if gap is None else gap)

    def _folds(self, cand: _Candidate, best: _Candidate) -> bool:
        """Whether a related group folds into the best one's: never through a path; never when one of the two began
        after the other had gone quiet (`_in_turn`); through a name borrowed from a path only when both groups' latest
        onsets lie within burst_s (one burst: on the development noise sets a fault's pieces, apart with the file
        where without it a name folds them; `GroupingConfig.borrowed_folds`); else within merge_window_s."""
        apart = abs(cand.group.last_onset - best.group.last_onset)
        if cand.link.relation is Relation.TOPOLOGY or cand.link.chain or cand.link.machine:
            return False
        if self.config.recur_apart_s and self._in_turn(cand.group, best.group):
            return False
        if cand.link.borrowed:
            return self.config.borrowed_folds and apart <= self.config.burst_s
        if self._victim_first(cand, best):
            return False
        if self.config.lone_apart and self._lone(cand.group):
            return apart <= self.config.burst_s
        return apart <= self.config.merge_window_s

    def _victim_first(self, cand: _Candidate, best: _Candidate) -> bool:
        """Victims first apart: whether a group the bridge relates to only by a name it carries as a caller (its failed
        call came out of that group's names) began before the group it relates to by its own names, the callee's side,
        both opened by a symptom of their own (`GroupState.rooted`; `GroupingConfig.victims_first_apart`). A failure
        climbs from callee to caller: the caller failing first was not hurt by the callee failing later, and the
        callee's own failure is no step of the caller's; two roots."""
        return (self.config.victims_first_apart and cand.link.victim and not best.link.victim
                and cand.group.rooted and best.group.rooted
                and (cand.group.first_seen, cand.group.id) < (best.group.first_seen, best.group.id))

    def _as_labelled(self, cand: _Candidate, ev: IncidentEvent, view: ChildView) -> _Candidate:
        """For a fold, a group the bridge relates to by a topology path as its labels relate them, when they do and that
        relation is enough (`GroupingConfig.path_folds_labelled`): the file never takes away a fold the labels give
        without it, as `_admitted` never takes away a join."""
        if not self.config.path_folds_labelled or cand.link.relation is not Relation.TOPOLOGY:
            return cand
        plain = relate(view, cand.group.entities, cand.group.scopes, None, self.config)
        if plain is None or not self._admits(plain, ev, cand.group):
            return cand
        return replace(cand, link=plain)

    def _in_turn(self, a: GroupState, b: GroupState) -> bool:
        """Recurrence apart, for a fold: whether the later-started of two groups holds a recurrence (`_recurs`) of a
        key the earlier one holds: two outages in turn, not two sides of one blast."""
        early, late = (a, b) if (a.first_seen, a.id) <= (b.first_seen, b.id) else (b, a)
        return any(self._recurs(early, c.key, c.id, c.first_seen) for c in late.children.values())

    def _recurs(self, g: GroupState, key: str, child_id: str, t: float) -> bool:
        """Recurrence apart: whether an incident of `key` starting at t is the symptom failing again, not the outage
        going on (`GroupingConfig.recur_apart_s`): the group holds other incidents of that key (stage 1 ended them and
        opened this one), every one of them stopped before the group's reach (the outage outlived the symptom), and the
        group has been quiet (its reach) more than recur_apart_s before t. A key whose incident is what the group last
        alerted with is a storm pausing, not a new outage. From the stored children and reach alone, so replay, stream
        and restart agree."""
        quiet = self.config.recur_apart_s
        if not quiet or t - g.reach <= quiet:
            return False
        earlier = [c.last_seen for c in g.children.values() if c.key == key and c.id != child_id]
        return bool(earlier) and max(earlier) < g.reach

    def _late_symptom(self, g: GroupState, ev: IncidentEvent) -> bool:
        """Late symptoms: whether a child naming no failed call, of a key the group does not hold, starts alone (`_alone`)
        more than late_symptom_s after the group's latest child onset (`GroupingConfig.late_symptom_s`). From the stored
        children, onsets and the scope's onsets alone, so replay, stream and restart agree."""
        if ev.first_seen - g.last_onset <= self.config.late_symptom_s:
            return False
        if names_call(ev):
            return False
        return all(c.key != ev.key for c in g.children.values()) and self._alone(ev, g.scope)

    def _lone(self, g: GroupState) -> bool:
        """Whether a group is one alert that started alone (`GroupingConfig.lone_apart`): one child of one alert, and
        no other incident of its scope started within burst_s before it (`onsets`, as for company)."""
        if len(g.children) != 1:
            return False
        child = next(iter(g.children.values()))
        return child.alert_count <= 1 and not self._onsets.accompanied(
            g.scope, child.first_seen, child.id, self.config.burst_s, self._first_seen_of)

    def _stray(self, g: GroupState, link: Link, gap: float) -> bool:
        """Lone wait: whether a group is one alert that started alone (`_lone`) and the child starts more than
        lone_wait_s after it, not continuing it (`GroupingConfig.lone_wait_s`). A fault's first alert is followed by
        its next within a burst; an alert nothing followed for that long is background, and a later outage that
        shares its service is not its consequence. From the store and onsets alone, as `_lone` is."""
        wait = self.config.lone_wait_s
        return bool(wait) and gap > wait and link.relation is not Relation.CONTINUES and self._lone(g)

    def _habitual(self, g: GroupState) -> bool:
        """Whether a lone group's alert is a habit (`GroupingConfig.lone_habit`): another incident of its key and scope
        started before it in a group stage 2 holds. From the store alone, as `_lone` is."""
        child = next(iter(g.children.values()))
        return any(c.key == child.key and c.id != child.id and c.first_seen < child.first_seen
                   for _, other in self.store.items() if other.scope == g.scope for c in other.children.values())

    def _fold(self, src: GroupState, dst: GroupState, ev: IncidentEvent, now: float, out: GroupingOutput,
              why: str | None = None, heard: bool = False) -> None:
        """Move every child of `src` into `dst`, announce it, and retire `src` (its id is never reused). `why`: the
        reason, when it is not that the child `ev` relates to both; `heard`: `src`'s children join as calls climbing do
        (`_climbed_late`): their names relate as caller names, and they move no onset and no reach."""
        self.counters.merged += 1
        self._unindex(src)
        why = why or f"{ev.incident_id} ({ev.key}) relates it to {dst.id} too"
        for child in src.children.values():
            if heard:
                child.by_chain, child.moves_onset = True, False
            dst.refresh(child)
            self._child_group[child.id] = dst.id
            out.assignments.append(Assignment(
                child_id=child.id, child_key=child.key, parent_id=dst.id, relation=Relation.MERGED,
                via=ev.incident_id, gap_s=0.0, explanation=f"merged in from {src.id}: {why}", assigned_at=now))
        own, callers = src.entities - src.borrowed, frozenset(src.callers)
        self._absorb(dst, ChildView({n: ("", n) for n in own}, {k: frozenset(v) for k, v in src.scopes.items()},
                                    callers), heard=heard)
        self._absorb(dst, ChildView({n: ("", n) for n in src.borrowed}, {}, callers), borrowed=True)
        dst.dirty = True
        src.phase = GroupPhase.RESOLVED
        out.parents.append(self._event(src, "resolved", now, f"merged into {dst.id}: {why}", merged_into=dst.id))
        self.store.delete(src.id)

    def _candidates(self, ev: IncidentEvent, view: ChildView) -> set[str]:
        """Accepting groups that share a name, a nearby topology node or a scope with the child."""
        found: set[str] = set()
        by_entity = self._by_entity
        for name in view.entities:
            for near in self._near(name):
                found.update(by_entity.get(near, ()))
        for name in view.chains:
            found.update(by_entity.get(name, ()))
        for label in self.config.scope_labels:
            for value in view.scopes.get(label, ()):
                found.update(self._by_scope.get((label, value), ()))
        previous = self._child_group.get(ev.previous_id) if ev.previous_id else None
        g = self.store.get(previous) if previous is not None else None
        if g is not None and g.accepting:
            found.add(g.id)
        if self._placing and ev.first_seen <= self._closed_to:
            found.update(self._closed_around(ev))
        return found

    def _closed_around(self, ev: IncidentEvent) -> Iterator[str]:
        """Late children: the groups of the child's scope that stopped accepting while its first alert lay within their
        gap, and are still open (firing). Such a child reached stage 2 after event time had passed them by (a stage-1
        partition that said idle and then got a backlog: session 39's chaos soak, where the rest of a fault posted
        across the broker restart opened a second cause); placed by its own first alert, it joins what it would have
        joined on time. A resolved group is not reopened (its close is published): the child opens its own then. Read
        only for a child behind `_closed_to` (a late one), so a scan of the store is rare
        (`GroupingConfig.late_placed`, or `idle_placed` for the children `ingest` is told are on time for their own
        stage-1 partition)."""
        scope, t, gap = split_key(ev.key)[0], ev.first_seen, self.config.gap_s
        for gid, g in self.store.items():
            if (not g.accepting and g.phase is GroupPhase.OPEN and g.scope == scope
                    and time_gap(t, g.first_seen, g.reach, gap) is not None):
                yield gid

    def _near(self, name: str) -> Iterable[str]:
        topology, hops = self.topology, self.config.max_hops
        if topology is None or hops == 0 or name not in topology:
            return (name,)
        return [other for other, d in topology.reach(name).items() if d <= hops]

    def _link(self, ev: IncidentEvent, view: ChildView, g: GroupState) -> Link | None:
        if ev.previous_id is not None and ev.previous_id in g.children:
            return Link(Relation.CONTINUES, -1, ev.previous_id)
        link = relate(view, g.entities, g.scopes, self.topology, self.config)
        victims = view.callers if self.config.victims else frozenset()
        if (link is None or not (g.borrowed or g.callers or victims) or link.relation is not Relation.ENTITY
                or link.weak):
            return link
        own = self._named(view.without(g.borrowed | g.callers | victims), g)
        if own is not None and not own.chain:
            return own
        victim = self._named(view.without(g.borrowed | g.callers), g) if victims else None
        if victim is not None and not (victim.chain and self.config.chains_last):
            # the only shared name is one the child carries only as a caller (`_admits`)
            return replace(victim, caller=True, victim=True)
        heard = self._named(view.without(g.borrowed), g) if g.callers else None
        if heard is not None and not heard.chain:  # the only shared name is one the group knows only as a caller
            return replace(heard, caller=True)
        if own is not None:  # a call chain alone (`relations`), weighed as a caller name (`_admits`)
            return own
        # the only shared name came with a child joined through a path: as weak as the path (see the docstring)
        return Link(Relation.ENTITY, self.config.max_hops + 1, link.via, weak=True, borrowed=True)

    def _named(self, view: ChildView, g: GroupState) -> Link | None:
        """A shared name (not a machine) between the view and the group, or None."""
        link = relate(view, g.entities, g.scopes, self.topology, self.config)
        return link if link is not None and link.relation is Relation.ENTITY and not link.weak else None

    def _admitted(self, ev: IncidentEvent, view: ChildView, g: GroupState) -> Link | None:
        """The child's relation to the group when it is enough (`_admits`), else None. A topology path that is not
        (the child did not start with the group) is no evidence either way: the labels alone decide, as without a
        topology file, so the file never takes away a relation they give (a shared namespace: the lab storm's
        vector store, a minute behind the model API that depends on it, is one cause with the file or without)."""
        link = self._link(ev, view, g)
        if link is None or self._admits(link, ev, g):
            return link
        if self._machine(link, ev, view, g):
            return replace(link, machine=True)
        if link.relation is Relation.TOPOLOGY:
            plain = relate(view, g.entities, g.scopes, None, self.config)
            if plain is not None and self._admits(plain, ev, g):
                return plain
        return None

    def _machine(self, link: Link, ev: IncidentEvent, view: ChildView, g: GroupState) -> bool:
        """Machine-follow: a host's own metric related to the group by a shared machine alone, starting while the
        group alerts (`GroupingConfig.machine_follow`). A host's metric shows while a fault on it lasts, not only in
        its first burst; the tenant's own names stay the cause's, so the group is joined, never folded, and the child
        moves none of its onsets (`ChildState.by_chain`): its start is no step of the cause."""
        return (self.config.machine_follow and link.weak and link.relation is Relation.ENTITY and not link.borrowed
                and (self.topology is not None or not self.config.machine_follow_filed)
                and machine_only(view, self.topology, self.config) and self._alerting(ev, g))

    def _admits(self, link: Link, ev: IncidentEvent, g: GroupState) -> bool:
        """Whether a relation is enough, by its kind. A shared name (service, instance, call), a continuation or a
        namespace is, within the time gap. A shared machine or any topology path only from a child that starts
        within burst_s of the group's latest child onset: they relate many incidents that merely overlap (every
        tenant of a host, every fault next to a cause on the dependency graph while it lasts), so they are
        evidence that two incidents began together, not that a later one belongs. A path (or a borrowed name) is
        measured from the latest onset of any child, one joined by a path too (a cascade, step by step); a shared
        machine only from the group's own onsets. A name the group knows only as a caller relates only within
        caller_window_s of its latest onset, and so does a name the child carries only as a caller (a victim; see the
        module docstring)."""
        if link.upstream:  # a path of calls (`GroupingConfig.path_chains`): near the onsets as a caller name is
            return (ev.first_seen - max(g.last_onset, g.path_onset) <= self.config.caller_window_s
                    and (self.config.upstream_lingers or self._alerting(ev, g)))
        if link.relation is Relation.TOPOLOGY or link.borrowed:
            return ev.first_seen - max(g.last_onset, g.path_onset) <= self.config.burst_s and self._alerting(ev, g)
        if link.caller:
            return ev.first_seen - g.last_onset <= self.config.caller_window_s
        if link.weak:
            return self._began_with(ev, g)
        return True

    def _began_with(self, ev: IncidentEvent, g: GroupState) -> bool:
        """Onset proximity: the child starts within burst_s of the group's latest child onset (or before it)."""
        return ev.first_seen - g.last_onset <= self.config.burst_s

    def _alerting(self, ev: IncidentEvent, g: GroupState) -> bool:
        """The group still alerts when the child starts: within burst_s of its reach (its latest extending alert).
        A cascade's effect shows while its cause fails; the latest onset alone can be a late child's that joined
        by name after a lull, which would let a path reach a group whose cause stopped minutes ago."""
        return ev.first_seen - g.reach <= self.config.burst_s

    def _company_groups(self, found: list[_Candidate]) -> set[str] | None:
        """The groups whose children are company for a child related to `found` (`GroupingConfig.related_company`),
        or None (any incident of the scope is): all of them, or with `company_named` those related otherwise than by
        a topology path alone (a fresh group a path away is no evidence that its child came with this one)."""
        if not self.config.related_company:
            return None
        return {c.group.id for c in found
                if not (self.config.company_named and c.link.relation is Relation.TOPOLOGY)}

    def _alone(self, ev: IncidentEvent, scope: str, related: set[str] | None = None) -> bool:
        """Company: whether no other incident of the child's scope started within burst_s before it (or with it).
        A fault starts incidents in bursts; background noise one here and there. Only children that start at or
        before this one count, and every one of them is known when it is released, so the answer does not depend
        on arrival order, batching or a restart (`onsets`). With `related` (`GroupingConfig.related_company`) only
        a companion placed in one of those groups (the child's related ones), or not placed yet, counts; with
        `GroupingConfig.company_reach` also one that started within burst_s of such a group's reach."""
        if related is None:
            return not self._onsets.accompanied(scope, ev.first_seen, ev.incident_id, self.config.burst_s,
                                                self._first_seen_of)
        reaches = ([g.reach for g in map(self.store.get, sorted(related)) if g is not None]
                   if self.config.company_reach else [])
        for other in self._onsets.starting(scope, ev.first_seen - self.config.burst_s, ev.first_seen,
                                           self._first_seen_of):
            gid = self._child_group.get(other)
            if other != ev.incident_id and (gid is None or gid in related or self._in_reach(other, reaches)):
                return False
        return True

    def _in_reach(self, child_id: str, reaches: list[float]) -> bool:
        """Whether a known child started within burst_s of one of these reaches (`GroupingConfig.company_reach`)."""
        start = self._first_seen_of(child_id)
        return start is not None and any(start - reach <= self.config.burst_s for reach in reaches)

    def _burst(self, ev: IncidentEvent, view: ChildView) -> _Candidate | None:
        """Burst-follow: the one accepting group with room whose children alone started within burst_s before a child
        that names one entity only and relates to nothing open, or None (two groups starting then compete, or none
        does, or the topology knows the child). Only children assigned before this one count (`onsets`), so replay,
        stream and restart agree."""
        link = burst_link(view, self.config)
        opening = False  # a container's metric follows only a cause's opening burst (`GroupingConfig.burst_machines`)
        if link is None and (self.config.burst_machines or self.config.burst_companions):
            link = machine_burst_link(view, self.topology, self.config)
            opening = link is not None
        known = self.topology is not None and any(n in self.topology for n in view.entities)
        if link is None or (known and not (opening and self.config.burst_companions)):
            return None  # a topology that knows the child decides by its paths: no path is evidence against
        scope, t = split_key(ev.key)[0], ev.first_seen
        found: set[str] = set()
        for other in self._onsets.starting(scope, t - self.config.burst_s, t, self._first_seen_of):
            gid = self._child_group.get(other)
            if gid is not None and other != ev.incident_id:
                found.add(gid)
        if len(found) > 1 and self.config.burst_rivals and not opening:
            return self._rivals(found, link, t)
        g = self.store.get(found.pop()) if len(found) == 1 else None
        if g is None or not self._takes(g) or self._capped_reason(g, t):
            return None
        if opening and not ((self.config.burst_machines and not known and t - g.first_seen <= self.config.burst_s)
                            or (self.config.burst_companions and self._kept_company(ev, g))):
            return None  # past its opening burst (or known to the file), only the company it kept admits it
        gap = time_gap(t, g.first_seen, g.reach, self.config.gap_s)
        return None if gap is None else _Candidate(g, link, gap)

    def _kept_company(self, ev: IncidentEvent, g: GroupState) -> bool:
        """Whether a container metric's service kept company with the group's services before
        (`GroupingConfig.burst_companions`): a child of that service, started before this one, sat in another group of
        the scope stage 2 holds with an earlier child of a service the group holds, neither joined by a topology path
        or a call chain alone (a guess, or names heard, is no company kept). From the store alone, as `_habitual` is."""
        scope, service, _ = split_key(ev.key)
        mine = {split_key(c.key)[1] for c in g.children.values()} - {service}
        for _, other in self.store.items():
            if other.id == g.id or other.scope != scope:
                continue
            earlier = {split_key(c.key)[1] for c in other.children.values()
                       if c.first_seen < ev.first_seen and not (c.by_path or c.by_chain)}
            if service in earlier and not earlier.isdisjoint(mine):
                return True
        return False

    def _rivals(self, found: set[str], link: Link, t: float) -> _Candidate | None:
        """Burst rivals: of several groups that took a child within burst_s before a one-name child, the one with the
        most children (then the oldest, then the lowest id) that accepts, has room and reaches it, or None
        (`GroupingConfig.burst_rivals`). The fault's own burst opens small groups beside its main one; the main one
        is the outage. Children counts come from assignments alone, so replay, stream and restart agree."""
        best: _Candidate | None = None
        rank: tuple[int, float, str] | None = None
        for gid in sorted(found):
            g = self.store.get(gid)
            if g is None or not self._takes(g) or self._capped_reason(g, t):
                continue
            gap = time_gap(t, g.first_seen, g.reach, self.config.gap_s)
            mine = (-len(g.children), g.first_seen, g.id)
            if gap is not None and (rank is None or mine < rank):
                best, rank = _Candidate(g, link, gap), mine
        return best

    def _takes(self, g: GroupState) -> bool:
        """Whether burst-follow may join the group: it accepts, or (`_placing`: `GroupingConfig.late_placed`, or
        `idle_placed` for a child on time for its own stage-1 partition) it stopped accepting
        but is open, for a late child whose first alert lies within its gap (the caller checks the gap: a closed group's
        never covers a child on time)."""
        return g.accepting or (self._placing and g.phase is GroupPhase.OPEN)

    def _trace_follow(self, ev: IncidentEvent, view: ChildView) -> _Candidate | None:
        """Trace-follow: the one accepting group of the child's scope, with room, that alerts when a child naming a
        failed call and related to nothing open starts (its reach within burst_s before the start, or after it), or
        None when no group or two alert then (`GroupingConfig.trace_follow`). Groups are read from the store alone,
        so replay, stream and restart agree."""
        link = trace_link(view, self.config)
        if link is None:
            return None
        scope, t = split_key(ev.key)[0], ev.first_seen
        found = [g for _, g in self.store.items() if g.accepting and g.phase is GroupPhase.OPEN and g.scope == scope
                 and g.first_seen <= t and t - g.reach <= self.config.burst_s]
        if len(found) != 1 or self._capped_reason(found[0], t):
            return None
        g = found[0]
        gap = time_gap(t, g.first_seen, g.reach, self.config.gap_s)
        return None if gap is None else _Candidate(g, link, gap)

    def _climb(self, ev: IncidentEvent, view: ChildView) -> _Candidate | None:
        """Calls climbing: the one accepting group of the child's scope, with room, that knows as a caller only a name
        of the service a child's failed call went into (its `callee`'s, by instance naming), when the child starts
        within climb_s of its reach; None when no group or two do (`GroupingConfig.climb_s`). Only for a child related
        to nothing open, so a name it shares with another group (a new fault of that service) always comes first.
        With `GroupingConfig.climb_lone_apart`, a group that is one alert which started alone is no such group.
        The accepting groups of the scope come from an index rebuilt from the store after a restart (`_rebuild`), so
        replay, stream and restart agree."""
        services = {service_of(value) or value for label, value in view.entities.values() if label in CALLEE_LABELS}
        if not services:
            return None
        scope, t = split_key(ev.key)[0], ev.first_seen
        found: list[_Candidate] = []
        for g in self._climb_groups(scope):  # one group or none is the answer, so their order does not matter
            if not g.accepting or g.phase is not GroupPhase.OPEN or g.scope != scope or t - g.reach > self.config.climb_s:
                continue
            via = min((n for n in g.callers if (service_of(n) or n) in services), default=None)
            gap = time_gap(t, g.first_seen, g.reach, self.config.gap_s)
            if via is None or gap is None or self._capped_reason(g, t):
                continue
            if self.config.climb_lone_apart and self._lone(g):
                continue  # a lone background alert is no cause to climb to (`GroupingConfig.climb_lone_apart`)
            found.append(_Candidate(g, Link(Relation.ENTITY, 0, via, caller=True, climbs=True), gap))
            if len(found) > 1:
                return None
        return found[0] if found else None

    def _climb_groups(self, scope: str) -> Iterator[GroupState]:
        """The groups `_climb` looks at: the scope's accepting ones, by the index (a superset, so `_climb` checks)."""
        for gid in self._accepting.get(scope, ()):
            g = self.store.get(gid)
            if g is not None:
                yield g

    def _callers_before(self, g: GroupState) -> frozenset[str]:
        """The group's caller names before a child's names come, for `_climbed_late` (nothing to copy when it is off)."""
        return frozenset(g.callers) if self.config.climb_late_s else frozenset()

    def _climbed_late(self, g: GroupState, before: frozenset[str], view: ChildView, ev: IncidentEvent, t: float, now: float,
                      out: GroupingOutput) -> None:
        """Calls climbing, learnt late (`GroupingConfig.climb_late_s`): when a child's alert at t makes the group (opened by
        a symptom of its own: `GroupState.rooted`) know,
        as a name the child carries as a caller, an instance of a service H no caller name it knew before belongs to
        (H's calls into the group's failure failed), each accepting group of its scope that is only failed calls into
        H (opened by one, every name of its own H or an instance of H, none borrowed), began after the group did (a
        failure climbs after its cause fails) and alerted within climb_late_s before t is folded in, its children joining
        as calls climbing do. It opened before any group knew H as a
        caller, so `_climb` had no name to climb by. Not when another group of the scope knows a caller of H too (two
        failures H's calls went into), nor past room. `before`: the group's caller names before the child's names
        came. From the stored groups and the event alone, so a restart decides as the run before it did."""
        window = self.config.climb_late_s
        new = (g.callers - before) & view.callers
        if not window or not g.accepting or not new or not g.rooted:
            return  # a cause seen only from calls (MicroSS's faults open so, and its stray trace errors) learns nothing here
        known = {service_of(n) for n in before}
        for service in sorted({s for n in new if (s := service_of(n)) is not None} - known):
            via = min(n for n in new if service_of(n) == service)
            pieces: list[GroupState] = []
            for other in self._climb_groups(g.scope):
                if other.id == g.id or other.phase is not GroupPhase.OPEN or not other.accepting:
                    continue
                if any(service_of(n) == service for n in other.callers):
                    pieces = []
                    break  # H's calls failed into another cause too: which one this piece is, nothing says
                own = other.entities - other.callers
                if (not other.rooted and own and not other.borrowed and t - other.reach <= window
                        and (other.first_seen, other.id) > (g.first_seen, g.id)
                        and all(n == service or service_of(n) == service for n in own)):
                    pieces.append(other)
            for piece in sorted(pieces, key=lambda p: (p.first_seen, p.id)):
                if len(g.children) + len(piece.children) > self.config.max_children:
                    continue
                why = (f"its failed calls went into {service}, whose own calls failed in {g.id}: {ev.incident_id} "
                       f"({ev.key}) named {via} as a caller {_seconds(max(t - piece.reach, 0.0))} after its latest "
                       f"alert")
                self._fold(piece, g, ev, now, out, why=why, heard=True)

    def _first_seen_of(self, child_id: str) -> float | None:
        """A known child's first alert as it stands: held, or in its group."""
        held = self.store.held(child_id)
        if held is not None:
            return held.first_seen
        gid = self._child_group.get(child_id)
        g = self.store.get(gid) if gid is not None else None
        child = g.children.get(child_id) if g is not None else None
        return child.first_seen if child is not None else None

    def _capped_reason(self, g: GroupState, t: float) -> str:
        cfg = self.config
        if len(g.children) >= cfg.max_children:
            return f"full ({len(g.children)} incidents)"
        if t > g.first_seen + cfg.max_lifetime_s:
            return f"past its {_seconds(cfg.max_lifetime_s)} lifetime"
        return ""

    def _open(
        self, ev: IncidentEvent, view: ChildView, first_seq: int, previous: GroupState | None, why: str | None,
        now: float, out: GroupingOutput,
    ) -> None:
        g = GroupState(
            id=parent_id(ev.incident_id, first_seq), first_child=ev.incident_id, first_seen=ev.first_seen,
            last_seen=ev.last_seen, previous_id=previous.id if previous is not None else None,
            topology_version=self.topology.version if self.topology is not None else None, rooted=not names_call(ev),
        )
        g.refresh(ChildState.of(ev))
        self._absorb(g, view)
        self._child_group[ev.incident_id] = g.id
        self.counters.opened += 1
        reason = f"opened it: {why}" if why else "opened it: no related incident open within the gap"
        out.parents.append(self._event(g, "opened", now, reason))
        out.assignments.append(Assignment(
            child_id=ev.incident_id, child_key=ev.key, parent_id=g.id, relation=Relation.FIRST, gap_s=0.0,
            explanation=reason, assigned_at=now))
        self.store.put(g.id, g)
        self._schedule(g.id, self._deadline(g))

    def _join(self, cand: _Candidate, ev: IncidentEvent, view: ChildView, now: float, out: GroupingOutput) -> None:
        g, link, gap = cand.group, cand.link, cand.gap
        child = ChildState.of(ev)
        # onset proximity: a child carries its group on when it starts in the group's burst of onsets; one that
        # starts after a lull, or merely somewhere inside a long child's span, joins but does not extend it
        child.extends = self._began_with(ev, g)
        # a path's guess, or time alone (trace-follow): the names it brings are borrowed (`GroupState.borrowed`);
        # a call chain, a machine alone (machine-follow) or a call climbing (`_climb`): they relate as caller names,
        # and it moves no onset
        child.by_path = link.relation is Relation.TOPOLOGY or link.follows
        child.by_chain = link.chain or link.machine or (link.climbs and not self.config.climb_owns)
        child.moves_onset = link.climbs and self.config.climb_onset  # (`GroupingConfig.climb_onset`)
        g.refresh(child)
        before = self._callers_before(g)
        self._absorb(g, view, borrowed=child.by_path, heard=child.by_chain)
        self._child_group[ev.incident_id] = g.id
        g.dirty = True
        self._climbed_late(g, before, view, ev, ev.last_seen, now, out)
        if self._placing and not g.accepting and now <= g.reach + self.config.gap_s:
            # a late child (`_closed_around`) carried it past the release point: accepting, as it would be on time
            g.accepting = True
            self._index(g)
        when = "within its span" if gap == 0 else f"{_seconds(gap)} after its latest alert"
        out.assignments.append(Assignment(
            child_id=ev.incident_id, child_key=ev.key, parent_id=g.id, relation=link.relation, via=link.via,
            hops=link.hops, gap_s=gap, explanation=f"{link.describe()}, {when}", assigned_at=now))
        self.store.put(g.id, g)
        self._schedule(g.id, self._deadline(g))

    def _announce(self, g: GroupState, now: float, out: GroupingOutput) -> None:
        """A group that just took its second child publishes at once (`GroupingConfig.prompt_pairs`): where causes
        of one incident are not published this is its first event, and a cause's page must not wait out the
        update interval for it."""
        out.parents.append(self._event(g, "updated", now))
        self.store.put(g.id, g)
        self._schedule(g.id, self._deadline(g))

    def restate(self, *, closed: bool = False) -> GroupingOutput:
        """Every open group said again as it stands, at the current event time: an `updated` event listing all its
        children and an assignment of each child but the first (`Relation.RESTATED`; the first is named by the
        event). For readers that lost what stage 2 published: a broker that lost `incidents` with records notify had
        not read yet leaves each child a cause named there paging alone at notify's cause wait, one page per child
        (session 38, soak38's chaos soak: 9 and 12 pages for two faults of one cause each).

        With `closed`, every resolved group still held (until its retention ends) says its close again too (a
        `resolved` event): the broker may have taken that close unread, and a cause notify paged would never
        clear (session 39, `Settings.reconcile_after_loss`; its children are closed by stage 1's census)."""
        out = GroupingOutput()
        now = self.watermark
        for g in list(self.groups()):
            if g.phase is GroupPhase.RESOLVED and closed:
                out.parents.append(self._event(g, "resolved", now, "closed before the broker lost incidents: "
                                                                   "said again by reconciliation after broker loss"))
                self.store.put(g.id, g)
            if g.phase is not GroupPhase.OPEN:
                continue
            out.parents.append(self._event(g, "updated", now, "restated after the broker lost incidents"))
            out.assignments += [Assignment(
                child_id=c.id, child_key=c.key, parent_id=g.id, relation=Relation.RESTATED, gap_s=0.0,
                explanation=f"restated: joined {g.id} before the broker lost incidents", assigned_at=now)
                for c in g.children.values() if c.id != g.first_child]
            self.store.put(g.id, g)
        return out

    # ---- indexes of accepting groups ------------------------------------------------------------------

    def _absorb(self, g: GroupState, view: ChildView, *, borrowed: bool = False, heard: bool = False) -> None:
        """Take a child's entities and scopes into the group, and into the indexes while it accepts.

        `borrowed`: the child joined through a path alone, so its new names are borrowed; a child that did not
        makes every name it carries the group's own. `heard`: it joined by a call chain alone, so its new names
        relate as caller names do, near the group's latest onset (a later fault of its own service is another
        cause: issue 17, session 31, on the development cascades)."""
        room = self.config.max_entities - len(g.entities)
        new = [n for n in view.entities if n not in g.entities][:max(room, 0)]
        g.entities.update(new)
        g.callers.update(n for n in new if heard or n in view.callers)
        if g.callers and not heard:
            g.callers.difference_update(n for n in view.entities if n not in view.callers)
        if borrowed:
            g.borrowed.update(new)
        elif g.borrowed:
            if self.config.borrowed_callers:  # what the labels make of it: a caller name (`borrowed_callers`)
                g.callers.update(n for n in g.borrowed if n in view.entities and (heard or n in view.callers))
            g.borrowed.difference_update(view.entities)
        for label, values in view.scopes.items():
            g.scopes.setdefault(label, set()).update(values)
        if not g.accepting:
            return
        self._accepting.setdefault(g.scope, set()).add(g.id)
        for name in new:
            self._by_entity.setdefault(name, set()).add(g.id)
        for label in self.config.scope_labels:
            for value in view.scopes.get(label, ()):
                self._by_scope.setdefault((label, value), set()).add(g.id)

    def _index(self, g: GroupState) -> None:
        """Put every name and scope of an accepting group into the indexes (after a restart, or when it resumes)."""
        self._accepting.setdefault(g.scope, set()).add(g.id)
        for name in g.entities:
            self._by_entity.setdefault(name, set()).add(g.id)
        for label in self.config.scope_labels:
            for value in g.scopes.get(label, ()):
                self._by_scope.setdefault((label, value), set()).add(g.id)

    def _unindex(self, g: GroupState) -> None:
        _drop(self._accepting, g.scope, g.id)
        for name in g.entities:
            _drop(self._by_entity, name, g.id)
        for label in self.config.scope_labels:
            for value in g.scopes.get(label, ()):
                _drop(self._by_scope, (label, value), g.id)

    # ---- time-driven transitions ------------------------------------------------------------------------

    def _run(self, now: float, out: GroupingOutput) -> None:
        self._release(now, now, out)
        self.released_to = max(self.released_to, now)
        deadlines = self._deadlines
        while deadlines and deadlines[0][0] < now:
            due, gid = heapq.heappop(deadlines)
            if self._scheduled.get(gid) != due:
                continue
            del self._scheduled[gid]
            g = self.store.get(gid)
            if g is not None:
                self._settle(g, now, out)

    def _settle(self, g: GroupState, now: float, out: GroupingOutput) -> None:
        cfg = self.config
        if g.accepting and now > g.reach + cfg.gap_s:
            g.accepting = False
            self._unindex(g)
            self._closed_to = max(self._closed_to, g.reach + cfg.gap_s)
        if g.phase is GroupPhase.OPEN and not g.accepting and g.all_done:
            self._resolve(g, now, out)
        elif g.phase is GroupPhase.OPEN and g.dirty and now > g.last_emit_at + cfg.update_interval_s:
            out.parents.append(self._event(g, "updated", now))
        if g.done_at is not None and now > g.done_at + cfg.retention_s:
            self._evict(g)
            return
        self.store.put(g.id, g)
        self._schedule(g.id, self._deadline(g))

    def _deadline(self, g: GroupState) -> float:
        cfg = self.config
        if g.done_at is not None:
            return g.done_at + cfg.retention_s
        if not g.accepting and g.all_done:
            return -_INF
        deadline = g.reach + cfg.gap_s if g.accepting else _INF
        if g.dirty:
            deadline = min(deadline, g.last_emit_at + cfg.update_interval_s)
        return deadline

    def _resolve(self, g: GroupState, now: float, out: GroupingOutput) -> None:
        done = [c.done_at for c in g.children.values() if c.done_at is not None]
        g.phase = GroupPhase.RESOLVED
        g.done_at = max([g.last_seen + self.config.gap_s, *done])
        expired = sum(c.status == "expired" for c in g.children.values())
        why = f"all {len(g.children)} incidents resolved" if not expired else (
            f"all {len(g.children)} incidents finished ({expired} expired)")
        self.counters.resolved += 1
        out.parents.append(self._event(g, "resolved", now, why))

    def _evict(self, g: GroupState) -> None:
        if g.accepting:
            self._unindex(g)
        for cid in g.children:
            if self._child_group.get(cid) == g.id:
                del self._child_group[cid]
        self.store.delete(g.id)
        self.counters.evicted += 1
        self._onsets.forget(g.scope, self._known)

    def _known(self, child_id: str) -> bool:
        """Whether stage 2 still holds the child: assigned to a group it keeps, or held for reordering."""
        return child_id in self._child_group or self.store.held(child_id) is not None

    def _schedule(self, gid: str, deadline: float) -> None:
        """Make sure the group is looked at by `deadline`; an earlier timer already set will do (it re-arms)."""
        if deadline == _INF:
            return
        current = self._scheduled.get(gid)
        if current is None or deadline < current:
            self._scheduled[gid] = deadline
            heapq.heappush(self._deadlines, (deadline, gid))

    def _event(
        self, g: GroupState, kind: ParentEventKind, now: float, reason: str = "", *, merged_into: str | None = None,
    ) -> ParentEvent:
        g.seq += 1
        g.last_emit_at = now
        g.dirty = False
        status: ParentStatus = "firing"
        if merged_into is not None:
            status = "merged"
        elif g.phase is GroupPhase.RESOLVED:
            status = "resolved" if all(c.status == "resolved" for c in g.children.values()) else "expired"
        return ParentEvent(
            kind=kind, parent_id=g.id, seq=g.seq, status=status, first_seen=g.first_seen, last_seen=g.last_seen,
            children=list(g.children), alert_count=g.alert_count, max_severity=g.max_severity,
            services=sorted({split_key(c.key)[1] for c in g.children.values()}), first_child=g.first_child,
            previous_id=g.previous_id, merged_into=merged_into, topology_version=g.topology_version, reason=reason,
            emitted_at=now,
        )

    # ---- restart ----------------------------------------------------------------------------------------

    def _rebuild(self) -> None:
        """After a restart on a recovered store: indexes, timers, reorder buffer and watermark."""
        for gid, g in self.store.items():
            self.watermark = max(self.watermark, g.last_seen)
            for cid, child in g.children.items():
                self._child_group[cid] = gid
                self._onsets.add(split_key(child.key)[0], child.first_seen, cid)
            if g.accepting:
                self._index(g)
            elif g.phase is GroupPhase.OPEN:
                self._closed_to = max(self._closed_to, g.reach + self.config.gap_s)
            if g.resume_at is not None:
                heapq.heappush(self._resumes, (g.resume_at, gid))
            self._schedule(gid, -_INF)
        for cid, ev in self.store.held_items():
            self.watermark = max(self.watermark, ev.emitted_at)
            heapq.heappush(self._held, (ev.first_seen, cid))
            self._onsets.add(split_key(ev.key)[0], ev.first_seen, cid)
