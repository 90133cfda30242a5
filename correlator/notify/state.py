"""The notify stage as a fold: (state, record, now) -> deliveries, and a timer step (state, now) -> deliveries.

Pure: no clock, no I/O; `now` is the wall clock the caller passes (holds, re-notify and rate limits are about
how long a person has been left alone, not about event time). The state is owned by the caller and changed in
place; each step returns the deliveries to make and the ids of the subjects it changed (what the stream writes
back to its table).

The rules, exactly:

* What pages. With `page_causes` (stage 2 on), a stage-1 incident is a child: it is recorded (its sample and
  why it was grouped appear in its cause's page) but never paged itself; its cause (the parent) is. A stage-1
  incident that no assignment names within `cause_wait_s` of its first sight pages on its own, so that a slow or
  stopped stage 2 never hides an outage. Without `page_causes`, every stage-1 incident pages.
* Causes of one incident not published (`lone_causes` off, `correlator.stage2.publishing`): stage 2 names no
  cause for an incident it grouped with no other, and says instead how far it has decided (`Progress`, per
  routing partition). An incident no assignment names pages as its own cause as soon as the progress of every one
  of the `stage2_partitions` routing partitions reaches its first alert (stage 2 put it in no group of two), or
  after `cause_wait_s` as before when that progress does not come (stage 2 stopped; with `follow_progress_s` a
  progress still moving, stage 2 behind, is waited for longer, up to `follow_progress_s`). Either way, an incident
  a state built anew loaded from its table waits `rebuilt_wait_s` from that state's first step first.
  Such an incident may still become the first child of a cause later (a second incident joins within stage 2's
  gap). Its partition then answers the cause's (a `Handover`, re-addressed through `Step.forward`): whether it paged
  alone. A cause waits for that answer (at most `cause_wait_s`): if the child paged, the child's page carries the
  cause (the cause sends no trigger; acknowledgements and escalations of the cause go to the child; the child's
  resolve waits for the cause's `closed` handover, or `retention_s`), else the cause pages as usual. So a fault
  pages once either way. With `every_child_answers` (session 33) every child a cause names answers so, and the
  cause waits for all of them (`cause_wait_s` at most): a later child that paged alone carries the cause when it
  had not paged, and a carrying page moves on with its child's `merged` assignment when its cause is merged into
  another (the merged cause does not free it); a cause merged away whose own page is out answers the cause it
  merged into the same way (its children, moving, name it: `Handover.via`), so that page carries the other cause
  instead of resolving while the fault goes on; acknowledgements and escalations reach a page that still carries. With `update_carried` the carrying page is updated with what the
  cause is (an `update` delivery: never a new page). With `late_waits` an incident first seen when the progress
  already covers its first alert (it reaches stage 2 late: a source back after the idle advance) pages alone only
  once a progress names it placed (`Progress.late`), or after `cause_wait_s`.
* Routing: the subject's labels (`routes.labels_of`) pick receivers (`routes.routes_for`); labels are looked at
  again on every event, so an incident that turns critical reaches the critical route then. A receiver once
  chosen stays chosen.
* Hold: a target waits until the subject has lasted the route's `hold.for` since first seen here, or counts
  `hold.alerts` alerts, or (with `critical_at_once`) is critical. A subject that resolves while held never pages.
* Silences: an active matching silence, or a mute set at the source (`silences.incident_mute`), keeps every trigger,
  re-notify and refresh back; the subject is `silenced`, still correlated and listed. When the silence ends and
  the subject still fires, it pages then. A resolve of something already paged is always sent.
* Re-notify: a sent, unacknowledged target is re-sent every route `renotify` seconds while the subject fires
  (0: never). Alertmanager targets are re-posted every receiver `repost` seconds instead (a refresh, not a page).
* Ordering: each delivery carries the subject's next `order`; the deliverer sends one lane (receiver + subject)
  in order, so a resolve never overtakes its trigger. A resolve is made only for a target whose trigger was made.
* Rate limit per receiver (`ratelimit`): pages beyond the receiver's token bucket wait in its queue, in order,
  and anything later of the same lane waits behind them. A subject that resolves while its trigger still waits
  is dropped from the queue with nothing sent.
* Acknowledgement (a person, via the console): PagerDuty gets `acknowledge`, Slack and webhooks a message;
  re-notifying stops, and a target still held is not paged at all (someone is on it already). An SLA escalation re-pages the subject (`escalate`) and reaches routes that match its tier.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict

from correlator.models import Census, IncidentEvent
from correlator.notify.config import AlertmanagerReceiver, NotifyConfig, Receiver
from correlator.notify.models import Acknowledgement, Action, Delivery, Handover, Subject, SubjectKind, Target
from correlator.notify.payloads import build_request, summary_of
from correlator.notify.ratelimit import Bucket, take_token, trigger_waits, without_lane
from correlator.notify.routes import labels_of, routes_for
from correlator.notify.silences import Silence, incident_mute, silenced_by
from correlator.stage2.models import Assignment, ParentEvent, Relation
from correlator.stage2.publishing import Progress
from correlator.triage.incident_sla import INCIDENT_KEY_PREFIX

__all__ = [
    "Escalation",
    "NotifyPolicy",
    "NotifyRecord",
    "RECONCILED",
    "NotifyState",
    "Step",
    "on_record",
    "on_tick",
    "status_of",
]

_PAGES = ("trigger", "renotify", "escalate")
"""Actions a rate limit counts; acknowledgements, resolves and refreshes are never held back by it."""
_HOST_LABELS = ("host", "instance", "node")
RECONCILED = "closed by reconciliation after broker loss"
"""The reason an incident closed by a stage-1 `Census` shows (its resolve, the console)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class NotifyPolicy:
    """How the fold treats stage 2 and how long it remembers (the rest is in the notify file)."""

    page_causes: bool = True
    cause_wait_s: float = 30.0
    retention_s: float = 3600.0
    lone_causes: bool = True
    """Stage 2 publishes causes of one incident (`Settings.stage2_lone_causes`); off: progress and handovers."""
    stage2_partitions: int = 0
    """Routing partitions whose `Progress` must cover an incident before it pages as its own cause (0: none, it
    waits `cause_wait_s`); only with `lone_causes` off."""
    every_child_answers: bool = True
    """Every child a cause names answers whether its page is out (not only the one that opened it), and the cause
    waits for all of them (at most `cause_wait_s`): a child that paged alone, or whose page carries a cause merged
    into this one, carries this cause too instead of it paging again. Off: only the first child answers, and a
    merged cause frees its carrier's page (the old rule)."""
    late_waits: bool = True
    """An incident whose first event comes when the progress already covers its first alert (it reached stage 2
    late, or will: a source back after the idle advance) waits for a progress that names it placed (`Progress.late`,
    after its assignment if it joined a cause), or `cause_wait_s`; off: it pages at once, alone (the old rule)."""
    update_carried: bool = True
    """A page that carries its cause is updated with what the cause is (its summary, services, children), when it
    starts carrying it and whenever the cause's services, severity or children change: PagerDuty gets a trigger
    with the same dedup key (added to the open alert's log, no new page), Alertmanager the alert re-posted with the
    cause's summary, Slack and webhooks a message. Off: the page keeps showing only its incident (the old rule)."""
    progress_index: bool = True
    """When progress moves, look only at the incidents it can release (`Waiting`, by first alert); off: scan every
    subject held (the old rule, linear in open subjects; the same pages in the same order either way)."""
    follow_progress_s: float = 0.0
    """With stage 2's progress known (`stage2_partitions`): an incident no cause names and the progress has not
    covered keeps waiting past `cause_wait_s` while that progress still moves (it moved within `progress_stall_s`), at
    most this long after it was first seen: stage 2 behind under load is not stage 2 stopped, and its children paged
    alone one by one are what an on-call gets instead of their cause (session 37). A progress that stalls, or none
    known (a restart), pages at `cause_wait_s` as before. 0 (or at most `cause_wait_s`): the old rule, the default:
    with 300 s, quick chaos soaks on session 37's main paged the fault posted across the broker restart child by
    child (39 and 18 pages; a rebuilt state's first tick comes before stage 2's first progress, so every child held
    past the cause wait paged alone at once; fixed by follow37, merged in session 38). Session 38's interleaved quick
    chaos soaks (3 a value, soak38) still paged one fault 45 times with 300 (92 with 0: the broker loss's own storm,
    which the restatement after a loss now addresses), failing their declared rule, so it stays off."""
    progress_stall_s: float = 10.0
    """How long without the progress moving counts as stage 2 stopped (`follow_progress_s`)."""
    rebuilt_wait_s: float = 10.0
    """A state built anew (a rebalance, a broker restart) pages no incident it loaded from its table (seen before its
    first step) as its own cause until this long after that step, neither by `cause_wait_s` nor by stage 2's progress:
    the records about it that the state has not read may be gone with a broker that lost its topics, and stage 2 says
    its open causes again after such a loss (`Grouper.restate`), and names the children whose routing the loss took
    once stage 1 routes them again, a few seconds after the rebuilt state's first tick. A critical child
    (`critical_at_once`, no hold) paged alone there before: by the cause wait (session 38, soak38), and by a progress
    produced before the re-sent routing landed (session 40, lone41's t1: 7 children). Once the wait is over the tick
    (or the next progress) looks at it again and it pages as before if no cause named it meanwhile. 0: the old rule."""
    source_of: Callable[[str], int] | None = None
    """The stage-1 partition (of `alerts`) an incident's correlation key belongs to, as the stream partitions it:
    what a `Census` is about. None: censuses close nothing (`Settings.reconcile_after_loss` off, the old rule)."""


class Escalation(BaseModel):
    """An incident's SLA escalation as read from `tickets.triaged` (`incident_sla.incident_event_value`)."""

    model_config = ConfigDict(frozen=True)

    incident_id: str
    tier: str
    seq: int
    reason: str = ""

    @classmethod
    def from_value(cls, value: dict[str, Any]) -> Escalation | None:
        """The escalation in a `tickets.triaged` value, or None for anything else (tickets, routing events)."""
        if value.get("subject") != "incident" or value.get("status") != "escalated":
            return None
        ticket_id = str(value.get("ticket_id", ""))
        return cls(incident_id=ticket_id.removeprefix(INCIDENT_KEY_PREFIX), tier=str(value.get("tier")),
                   seq=int(value.get("seq", 1)), reason=str(value.get("reason", "")))


NotifyRecord = IncidentEvent | ParentEvent | Assignment | Escalation | Acknowledgement | Progress | Handover | Census
"""Everything the fold takes."""


@dataclass(slots=True)
class Waiting:
    """The incidents stage 2's progress may release, by first alert (`NotifyPolicy.progress_index`): a heap of
    (first alert, rank, id), where rank is the subject's place in `NotifyState.subjects` (the old scan's order, so
    that rate limits hand their tokens out alike). Derived, never written back: built from the subjects on first
    use, kept by the fold after that; an entry whose subject changed its first alert or left is skipped."""

    heap: list[tuple[float, int, str]] = field(default_factory=list)
    queued: dict[str, float] = field(default_factory=dict)
    """Id -> the first alert of its live entry."""
    rank: dict[str, int] = field(default_factory=dict)
    next_rank: int = 0
    built: bool = False


@dataclass(slots=True)
class NotifyState:
    """Subjects by id, and each rate-limited receiver's bucket and queue."""

    subjects: dict[str, Subject] = field(default_factory=dict)
    buckets: dict[str, Bucket] = field(default_factory=dict)
    queues: dict[str, list[Delivery]] = field(default_factory=dict)
    progress: dict[int, float] = field(default_factory=dict)
    """Stage 2's progress (`decided_to`) by routing partition; not written back: it comes again within a second."""
    waiting: Waiting = field(default_factory=Waiting)
    """Incidents the progress may release, by first alert (derived from `subjects`, not written back)."""
    progress_moved_at: float | None = None
    """When stage 2's progress (the minimum over its partitions) last moved, wall clock; not written back either."""
    started_at: float | None = None
    """When this state, as built here, first stepped (wall clock; not written back): a state built from the table
    after a rebalance or a broker restart knows no progress until stage 2's next one (`NotifyPolicy.follow_progress_s`
    waits `progress_stall_s` for it)."""

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values (a snapshot; the stream keeps subjects one per table key instead)."""
        return {"subjects": {k: v.to_dict() for k, v in self.subjects.items()}, **self.limits_to_dict()}

    def limits_to_dict(self) -> dict[str, Any]:
        """The rate limits alone (buckets and queues) as plain JSON values: what the stream writes after every step,
        so it must cost nothing per subject held."""
        return {"buckets": {k: {"tokens": b.tokens, "at": b.at} for k, b in self.buckets.items()},
                "queues": {k: [d.model_dump(mode="json") for d in q] for k, q in self.queues.items()}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NotifyState:
        """The inverse of `to_dict`."""
        return cls(subjects={k: Subject.from_dict(v) for k, v in data.get("subjects", {}).items()},
                   buckets={k: Bucket(**b) for k, b in data.get("buckets", {}).items()},
                   queues={k: [Delivery.model_validate(d) for d in q] for k, q in data.get("queues", {}).items()})


@dataclass(slots=True)
class Step:
    """What one step produced: deliveries to make now, subjects changed, and what it held back (for metrics)."""

    deliveries: list[Delivery] = field(default_factory=list)
    changed: set[str] = field(default_factory=set)
    """Ids of subjects to write back; one no longer in `state.subjects` was purged (delete it)."""
    silenced: list[tuple[str, str]] = field(default_factory=list)
    """(subject id, reason: `silence` or `source`) each time a subject becomes silenced."""
    dropped: list[tuple[str, str]] = field(default_factory=list)
    """(receiver, outcome): `held_back` (resolved while held), `cancelled` (resolved while rate-limited)."""
    reconciled: list[tuple[str, str]] = field(default_factory=list)
    """(subject id, outcome) of each incident a `Census` closed: `resolved` (its page was out: a resolve is sent)
    or `dropped` (it never paged: closed quietly)."""
    forward: list[Escalation | Acknowledgement | Handover] = field(default_factory=list)
    """Records about a grouped child whose cause this state does not hold, re-addressed to the cause's id: the
    stream sends each to the partition of that id and folds it there."""


@dataclass(slots=True)
class _Ctx:
    state: NotifyState
    config: NotifyConfig
    silences: Sequence[Silence]
    policy: NotifyPolicy
    now: float
    step: Step


def on_record(state: NotifyState, record: NotifyRecord, now: float, config: NotifyConfig,
              silences: Sequence[Silence] = (), policy: NotifyPolicy = NotifyPolicy()) -> Step:
    """Fold one record in; the deliveries it makes due now."""
    ctx = _Ctx(state, config, silences, policy, now, Step())
    if state.started_at is None:
        state.started_at = now
    if isinstance(record, IncidentEvent):
        _incident(ctx, record)
    elif isinstance(record, ParentEvent):
        _parent(ctx, record)
    elif isinstance(record, Assignment):
        _assignment(ctx, record)
    elif isinstance(record, Escalation):
        _escalation(ctx, record)
    elif isinstance(record, Progress):
        _progress(ctx, record)
    elif isinstance(record, Handover):
        _handover(ctx, record)
    elif isinstance(record, Census):
        _census(ctx, record)
    else:
        _acknowledged(ctx, record)
    return ctx.step


def on_tick(state: NotifyState, now: float, config: NotifyConfig, silences: Sequence[Silence] = (),
            policy: NotifyPolicy = NotifyPolicy()) -> Step:
    """The timer: holds that ended, silences that ended, re-notify and refresh due, rate-limit queues, purge."""
    ctx = _Ctx(state, config, silences, policy, now, Step())
    if state.started_at is None:
        state.started_at = now
    for subject in list(state.subjects.values()):
        if subject.open:
            _advance(ctx, subject)
        elif subject.carries is not None and subject.closed_at is not None \
                and now - subject.closed_at >= policy.retention_s:
            subject.carries = None  # its cause never said it closed: resolve rather than page forever
            _close(ctx, subject)
        elif subject.closed_at is not None and now - subject.closed_at >= policy.retention_s \
                and not _queued_of(state, subject.id):
            del state.subjects[subject.id]
            state.waiting.rank.pop(subject.id, None)
            state.waiting.queued.pop(subject.id, None)
            ctx.step.changed.add(subject.id)
    _release_queues(ctx)
    return ctx.step


def status_of(subject: Subject, policy: NotifyPolicy = NotifyPolicy()) -> str:
    """What a person sees: grouped (a child paged through its cause), silenced, paged, held, resolved, expired."""
    if policy.page_causes and subject.kind == "incident" and subject.parent_id and not _was_paged(subject):
        return "grouped"
    if not subject.open:
        return subject.status
    if subject.carried_by is not None:
        return "paged"  # through its first child's page
    if subject.silenced_by or subject.muted:
        return "silenced"
    if any(t.phase == "sent" for t in subject.targets.values()):
        return "paged"
    return "held"


# ---------------------------------------------------------------- records


def _subject(ctx: _Ctx, subject_id: str, kind: SubjectKind) -> Subject:
    subject = ctx.state.subjects.get(subject_id)
    if subject is None:
        subject = Subject(id=subject_id, kind=kind, seen_at=ctx.now)
        ctx.state.subjects[subject_id] = subject
        waiting = ctx.state.waiting
        if waiting.built:
            waiting.rank[subject_id] = waiting.next_rank
            waiting.next_rank += 1
    return subject


def _incident(ctx: _Ctx, ev: IncidentEvent) -> None:
    subject = _subject(ctx, ev.incident_id, "incident")
    if ev.seq <= subject.seq:
        return  # a redelivery, or older than what we hold
    if subject.seq == 0 and ctx.policy.late_waits:
        decided = _decided_to(ctx)
        subject.late = decided is not None and ev.first_seen <= decided
    hosts = [v for label in _HOST_LABELS for v in ev.entities.get(label, ())]
    subject.seq, subject.status, subject.severity = ev.seq, ev.status, ev.max_severity
    subject.services, subject.symptom, subject.scope = [ev.service], ev.symptom, ev.scope
    subject.alert_count, subject.firing_count = ev.alert_count, ev.firing_count
    subject.first_seen, subject.last_seen = ev.first_seen, ev.last_seen
    subject.member_sample, subject.hosts, subject.reason = list(ev.member_sample), hosts, ev.reason
    subject.muted = incident_mute(ev.entities)
    subject.key, subject.emitted_at = ev.key, ev.emitted_at
    ctx.step.changed.add(subject.id)
    _settle(ctx, subject)
    _wait(ctx.state, subject)


def _census(ctx: _Ctx, census: Census) -> None:
    """After a broker loss: close each incident held open here that the census's stage-1 partition no longer holds.

    The broker took with it the closes (`resolved`, `expired`) stage 1 had published and this state had not read;
    stage 1 keeps only open incidents and never says a close again, so such an incident stayed firing here, paged
    alone at the cause wait and never resolved (session 38's chaos soak, mechanism 1b). An incident is closed only
    when it is of the census's partition (`NotifyPolicy.source_of` of its key), open, not named, and its last event
    read here was produced before the state the census counts (`emitted_at < at`: a census of an engine rebuilt
    from an older checkpoint, or read late, cannot speak for what came after it). A page that was out is resolved
    (with `RECONCILED` as its reason); one never sent is closed quietly; neither pages anew."""
    source_of = ctx.policy.source_of
    if source_of is None:
        return
    named = set(census.open)
    for subject in list(ctx.state.subjects.values()):
        if subject.kind != "incident" or not subject.open or subject.seq == 0 or not subject.key \
                or subject.id in named or subject.emitted_at >= census.at or source_of(subject.key) != census.source:
            continue
        paged = _was_paged(subject)
        subject.status, subject.reason = "resolved", RECONCILED
        ctx.step.reconciled.append((subject.id, "resolved" if paged else "dropped"))
        ctx.step.changed.add(subject.id)
        _close(ctx, subject)


def _parent(ctx: _Ctx, ev: ParentEvent) -> None:
    subject = _subject(ctx, ev.parent_id, "cause")
    if ev.seq <= subject.seq:
        return
    children = [ctx.state.subjects[c] for c in ev.children if c in ctx.state.subjects]
    subject.seq, subject.severity, subject.services = ev.seq, ev.max_severity, list(ev.services)
    subject.status = "merged" if ev.status == "merged" else ev.status
    subject.alert_count, subject.children = ev.alert_count, list(ev.children)
    subject.first_seen, subject.last_seen, subject.reason = ev.first_seen, ev.last_seen, ev.reason
    subject.firing_count = sum(c.firing_count for c in children)
    subject.scope = next((c.scope for c in children if c.scope), subject.scope)
    subject.symptom = ",".join(sorted({c.symptom for c in children if c.symptom}))[:200]
    subject.member_sample = [m for c in children for m in c.member_sample][:10]
    subject.hosts = sorted({h for c in children for h in c.hosts})[:10]
    mutes = [c.muted for c in children]  # muted only when every child is known here and muted at its source
    whole = bool(children) and len(children) == len(ev.children) and all(mutes)
    subject.muted = ",".join(sorted({m for m in mutes if m})) if whole else None
    if ev.merged_into:
        subject.why = f"merged into {ev.merged_into}"
        if ctx.policy.every_child_answers and ctx.policy.page_causes and not ctx.policy.lone_causes:
            _hand_on(ctx, subject, ev.merged_into)
    ctx.step.changed.add(subject.id)
    _settle(ctx, subject)
    _tell_carrier(ctx, subject)


def _assignment(ctx: _Ctx, a: Assignment) -> None:
    child = _subject(ctx, a.child_id, "incident")
    moved = child.parent_id if child.parent_id not in (None, a.parent_id) else None
    child.parent_id, child.why = a.parent_id, a.explanation
    ctx.step.changed.add(child.id)
    answers = a.relation is Relation.FIRST or ctx.policy.every_child_answers
    if ctx.policy.page_causes and not ctx.policy.lone_causes and answers:
        _answer(ctx, child, a.parent_id, moved if ctx.policy.every_child_answers else None)
    if ctx.policy.page_causes:
        for target in child.targets.values():
            if target.phase == "held":  # grouped before it paged: its cause pages instead
                target.phase = "closed"


def _answer(ctx: _Ctx, child: Subject, cause_id: str, moved_from: str | None = None) -> None:
    """A child tells its cause whether its page is out; if it is, that page carries the cause.

    The first child always answers; with `every_child_answers` every child does, and a page still standing for
    another cause (one merged into this one) counts as out."""
    carried = _was_paged(child) and child.open
    if ctx.policy.every_child_answers and child.carries is not None:
        carried = True  # its page stands for the cause it carried, now merged into this one: it carries this one
    if carried:
        child.carries = cause_id
    ctx.step.forward.append(Handover(kind="answer", cause_id=cause_id, child_id=child.id, carried=carried,
                                     via=moved_from, at=ctx.now))


def _hand_on(ctx: _Ctx, cause: Subject, merged_into: str) -> None:
    """A cause merged into another answers it as a child does (`every_child_answers`): when its own page is out,
    that page carries the other cause (its resolve waits for the other's `closed`); a page of its first child that
    carries it moves on with that child's merged assignment instead."""
    if cause.closed_at is not None:
        return  # answered at its first merged event
    own = _was_paged(cause) and cause.carried_by is None
    if own:
        cause.carries = merged_into
    ctx.step.forward.append(Handover(kind="answer", cause_id=merged_into, child_id=cause.id, carried=own,
                                     at=ctx.now))


def _handover(ctx: _Ctx, h: Handover) -> None:
    if h.kind == "update":
        _carried_update(ctx, h)
        return
    if h.kind == "closed":
        child = ctx.state.subjects.get(h.child_id)
        if child is None or child.carries != h.cause_id:
            return
        child.carries = None
        ctx.step.changed.add(child.id)
        if not child.open:
            _close(ctx, child)  # the resolves it held back for its cause
        return
    cause = _subject(ctx, h.cause_id, "cause")
    if ctx.policy.every_child_answers:
        if h.via is not None and h.via not in cause.awaits:
            cause.awaits.append(h.via)  # it moved here with a merged cause: wait for that one's answer too
            ctx.step.changed.add(cause.id)
        if h.child_id in cause.answers:
            return  # a child answers every announcement (and a redelivered assignment) alike
        cause.answers.append(h.child_id)
    elif cause.answered:
        return  # the first answer decides (the child answers every announcement of its cause alike)
    cause.answered = True
    ctx.step.changed.add(cause.id)
    if h.carried and (_was_paged(cause) or cause.carried_by not in (None, h.child_id)):
        # it paged on its own meanwhile (cause_wait_s), or another child's page carries it: this page is its own
        ctx.step.forward.append(Handover(kind="closed", cause_id=cause.id, child_id=h.child_id, at=ctx.now))
    elif h.carried:
        cause.carried_by = h.child_id
    if cause.seq > 0:
        _settle(ctx, cause)
        _tell_carrier(ctx, cause)


def _cause_facts(cause: Subject) -> dict[str, Any]:
    """What a carrying page shows of its cause (JSON values)."""
    return {"cause_id": cause.id, "summary": summary_of(cause), "services": cause.services[:10],
            "severity": cause.severity, "children_total": len(cause.children), "children": cause.children[:10]}


def _tell_carrier(ctx: _Ctx, cause: Subject) -> None:
    """A cause carried by a child's page sends that page what it now is, when its services, severity or children
    changed since it last did (`NotifyPolicy.update_carried`)."""
    if not ctx.policy.update_carried or cause.carried_by is None or not cause.open:
        return
    shown = f"{cause.severity}|{','.join(cause.services)}|{','.join(cause.children)}"
    if shown == cause.shown:
        return
    cause.shown = shown
    ctx.step.changed.add(cause.id)
    ctx.step.forward.append(Handover(kind="update", cause_id=cause.id, child_id=cause.carried_by,
                                     facts=_cause_facts(cause), at=ctx.now))


def _carried_update(ctx: _Ctx, h: Handover) -> None:
    """The page carrying a cause learns what the cause now is, and every receiver that has it open is updated."""
    child = ctx.state.subjects.get(h.child_id)
    if child is None or child.carries != h.cause_id or h.facts is None:
        return
    child.cause_facts = dict(h.facts)
    ctx.step.changed.add(child.id)
    if _muted(ctx, child):
        return
    for target in child.targets.values():
        if target.phase in ("sent", "queued"):
            _emit(ctx, child, target, "update")


def _progress(ctx: _Ctx, p: Progress) -> None:
    """Stage 2 decided further on some routing partitions: incidents it covers now and no cause names page."""
    progress = ctx.state.progress
    before = _decided_to(ctx)
    for partition, at in p.decided.items():
        if at > progress.get(partition, float("-inf")):
            progress[partition] = at
    after = _decided_to(ctx)
    if after is not None and (before is None or after > before):
        ctx.state.progress_moved_at = ctx.now
        _moved(ctx, after)
    if p.late:
        _placed_late(ctx, p)


def _moved(ctx: _Ctx, after: float) -> None:
    """Progress moved to `after`: the incidents it covers that await it page (old scan or index, same order)."""
    if not ctx.policy.progress_index:
        for subject in list(ctx.state.subjects.values()):
            if _awaits_progress(subject) and subject.first_seen <= after:
                _advance(ctx, subject)
        return
    released = _released(ctx.state, after)
    for subject in released:
        _advance(ctx, subject)
    for subject in released:
        _wait(ctx.state, subject)  # still waiting (silenced, or no route matched): the old scan saw it again too


def _placed_late(ctx: _Ctx, p: Progress) -> None:
    """Late incidents stage 2 says it placed: those no assignment named meanwhile page as their own cause now."""
    for subject_id in p.late:
        subject = ctx.state.subjects.get(subject_id)
        if subject is None or not subject.late:
            continue
        subject.late = False
        ctx.step.changed.add(subject.id)
        _advance(ctx, subject)
        _wait(ctx.state, subject)


def _awaits_progress(subject: Subject) -> bool:
    """An open incident no cause names that has not chosen its receivers: progress may page it (a late one only
    once a progress names it: `_placed_late`)."""
    return subject.kind == "incident" and subject.open and subject.parent_id is None and not subject.targets \
        and not subject.late


def _built(state: NotifyState) -> Waiting:
    """The progress index, built from the subjects held on its first use (a state loaded from a table)."""
    waiting = state.waiting
    if not waiting.built:
        waiting.built = True
        for rank, subject in enumerate(state.subjects.values()):
            waiting.rank[subject.id] = rank
        waiting.next_rank = len(state.subjects)
        for subject in state.subjects.values():
            _wait(state, subject)
    return waiting


def _wait(state: NotifyState, subject: Subject) -> None:
    """Index an incident that awaits progress under its first alert (once per first alert)."""
    waiting = state.waiting
    if not waiting.built or subject.seq == 0 or not _awaits_progress(subject):
        return  # known by name only pages on no progress; an unbuilt index indexes everything when built
    if waiting.queued.get(subject.id) != subject.first_seen:
        waiting.queued[subject.id] = subject.first_seen
        heapq.heappush(waiting.heap, (subject.first_seen, waiting.rank[subject.id], subject.id))


def _released(state: NotifyState, after: float) -> list[Subject]:
    """The incidents awaiting progress whose first alert is at or before `after`, out of the index, in the order
    of `state.subjects`."""
    waiting = _built(state)
    heap, found = waiting.heap, []
    while heap and heap[0][0] <= after:
        first_seen, _, subject_id = heapq.heappop(heap)
        if waiting.queued.get(subject_id) != first_seen:
            continue  # stale: its first alert moved (a newer entry stands for it) or it was released already
        del waiting.queued[subject_id]
        subject = state.subjects.get(subject_id)
        if subject is not None and _awaits_progress(subject) and subject.first_seen == first_seen:
            found.append(subject)
    found.sort(key=lambda s: waiting.rank[s.id])
    return found


def _decided_to(ctx: _Ctx) -> float | None:
    """Event time up to which every routing partition has decided, or None when not known (`stage2_partitions`)."""
    count = ctx.policy.stage2_partitions
    if ctx.policy.lone_causes or count <= 0:
        return None
    marks = [ctx.state.progress.get(p) for p in range(count)]
    return None if any(m is None for m in marks) else min(m for m in marks if m is not None)


def _escalation(ctx: _Ctx, e: Escalation) -> None:
    subject = _paged_subject(ctx, e)
    if subject is None or not _standing(ctx, subject):
        return
    subject.escalated_tier = e.tier
    ctx.step.changed.add(subject.id)
    if _muted(ctx, subject):
        return
    _choose_targets(ctx, subject, escalation=True)
    for target in subject.targets.values():
        if target.phase == "held":
            _trigger(ctx, subject, target)
        elif target.phase == "sent" and not _is_alertmanager(ctx, target):
            _emit(ctx, subject, target, "escalate")


def _acknowledged(ctx: _Ctx, ack: Acknowledgement) -> None:
    subject = _paged_subject(ctx, ack)
    if subject is None or not _standing(ctx, subject) or subject.acked_by is not None:
        return
    subject.acked_by = ack.who
    ctx.step.changed.add(subject.id)
    for target in subject.targets.values():
        target.acked = True
        if target.phase in ("sent", "queued") and not _is_alertmanager(ctx, target):
            _emit(ctx, subject, target, "acknowledge")


def _standing(ctx: _Ctx, subject: Subject) -> bool:
    """Whether a page of the subject stands: it fires, or (`every_child_answers`) it closed and its page still
    carries a cause (a cause merged away whose own page carries the one it merged into, or a resolved child)."""
    return subject.open or (ctx.policy.every_child_answers and subject.carries is not None)


def _paged_subject(ctx: _Ctx, record: Escalation | Acknowledgement) -> Subject | None:
    """The subject that pages for the record's incident: its cause when it is a grouped child, else itself.

    A grouped child whose cause is not held here has its record re-addressed to the cause (`Step.forward`).
    """
    subject = ctx.state.subjects.get(record.incident_id)
    if subject is not None and subject.carried_by is not None:  # its page is its first child's
        ctx.step.forward.append(record.model_copy(update={"incident_id": subject.carried_by}))
        return None
    if subject is None or not subject.parent_id or _was_paged(subject) or not ctx.policy.page_causes:
        return subject
    cause = ctx.state.subjects.get(subject.parent_id)
    if cause is None:
        ctx.step.forward.append(record.model_copy(update={"incident_id": subject.parent_id}))
    return cause


# ---------------------------------------------------------------- deciding


def _settle(ctx: _Ctx, subject: Subject) -> None:
    if subject.open:
        _advance(ctx, subject)
    else:
        _close(ctx, subject)


def _pages_itself(ctx: _Ctx, subject: Subject) -> bool:
    if subject.seq == 0:
        return False  # known by name only (an assignment or a handover came before its own event)
    if subject.kind == "cause":
        return _cause_pages(ctx, subject)
    if not ctx.policy.page_causes or _was_paged(subject):
        return True  # a child paged before its cause was known stays paged, and resolves, on its own (or carries it)
    if subject.parent_id is not None:
        return False
    if subject.targets:
        return True
    if _rebuilt(ctx, subject):
        return False  # by progress or cause wait alike; the tick (and the progress index) looks at it again
    decided = _decided_to(ctx)
    if decided is not None and subject.first_seen <= decided and not subject.late:
        return True
    waited = ctx.now - subject.seen_at
    return waited >= ctx.policy.cause_wait_s and not _stage2_behind(ctx, subject, waited)


def _rebuilt(ctx: _Ctx, subject: Subject) -> bool:
    """Whether the subject came with a state built anew less than `rebuilt_wait_s` ago (`NotifyPolicy.
    rebuilt_wait_s`): known before this state first stepped, so loaded from the table. Such an incident does not page
    as its own cause yet, by either path (`_pages_itself`)."""
    started = ctx.state.started_at
    return started is not None and subject.seen_at < started and ctx.now - started < ctx.policy.rebuilt_wait_s


def _stage2_behind(ctx: _Ctx, subject: Subject, waited: float) -> bool:
    """Whether an incident past the cause wait still waits for stage 2 (`NotifyPolicy.follow_progress_s`): its
    progress is known and moved within `progress_stall_s`, and the incident waited less than `follow_progress_s`.

    A state built anew (a rebalance, a broker restart: the progress is not written back) waits `progress_stall_s`
    from its first step for a progress to come: its first tick ran before stage 2's next progress and paged at once,
    alone, every child the rule had held past the cause wait (session 37's quick chaos soaks, follow37)."""
    policy, state = ctx.policy, ctx.state
    if policy.follow_progress_s <= policy.cause_wait_s or waited >= policy.follow_progress_s or subject.late:
        return False
    if _decided_to(ctx) is None:
        started = state.started_at
        return state.progress_moved_at is None and started is not None and ctx.now - started < policy.progress_stall_s
    moved = state.progress_moved_at
    return moved is not None and ctx.now - moved < policy.progress_stall_s


def _cause_pages(ctx: _Ctx, cause: Subject) -> bool:
    """Whether a cause pages: always when causes of one incident are published; else once its first child answered
    that it did not page alone (or `cause_wait_s` passed without an answer), never while that child's page carries
    it."""
    if ctx.policy.lone_causes or cause.targets:
        return True
    if cause.carried_by is not None:
        return False
    return _answered(ctx, cause) or ctx.now - cause.seen_at >= ctx.policy.cause_wait_s


def _answered(ctx: _Ctx, cause: Subject) -> bool:
    """Whether a cause heard from its children: from every child it names (`every_child_answers`), else from one."""
    if not ctx.policy.every_child_answers:
        return cause.answered
    heard = set(cause.answers)
    return bool(cause.children) and all(c in heard for c in (*cause.children, *cause.awaits))


def _was_paged(subject: Subject) -> bool:
    return any(t.sent_at is not None for t in subject.targets.values())


def _muted(ctx: _Ctx, subject: Subject) -> bool:
    """Whether a silence or a source mute holds the subject back now; notes the moment it becomes silenced."""
    ids = silenced_by(ctx.silences, labels_of(subject), ctx.now)
    muted = bool(ids) or subject.muted is not None
    if ids != subject.silenced_by or muted != subject.mute_noted:
        if muted and not subject.mute_noted:
            ctx.step.silenced.append((subject.id, "silence" if ids else "source"))
        subject.silenced_by, subject.mute_noted = ids, muted
        ctx.step.changed.add(subject.id)
    return muted


def _advance(ctx: _Ctx, subject: Subject) -> None:
    if not _pages_itself(ctx, subject):
        return
    if _muted(ctx, subject):
        return
    _choose_targets(ctx, subject)
    for target in subject.targets.values():
        if target.phase == "held" and subject.acked_by is None and _hold_over(ctx, subject, target):
            _trigger(ctx, subject, target)
        elif target.phase == "sent":
            _repeat(ctx, subject, target)


def _choose_targets(ctx: _Ctx, subject: Subject, *, escalation: bool = False) -> None:
    for index, route in routes_for(ctx.config, labels_of(subject), escalation=escalation):
        if route.receiver not in subject.targets:
            subject.targets[route.receiver] = Target(receiver=route.receiver, route=index, since=ctx.now)
            ctx.step.changed.add(subject.id)


def _hold_over(ctx: _Ctx, subject: Subject, target: Target) -> bool:
    if target.route >= len(ctx.config.routes):
        return True  # its route went away in a reload: page rather than hold forever
    hold = ctx.config.hold_of(ctx.config.routes[target.route])
    if hold.critical_at_once and subject.severity == "critical":
        return True
    if hold.alerts and subject.alert_count >= hold.alerts:
        return True
    return ctx.now - target.since >= hold.for_s


def _repeat(ctx: _Ctx, subject: Subject, target: Target) -> None:
    receiver = _receiver(ctx, target)
    if isinstance(receiver, AlertmanagerReceiver):
        last = target.last_refresh if target.last_refresh is not None else target.sent_at or ctx.now
        if ctx.now - last >= receiver.repost:
            target.last_refresh = ctx.now
            _emit(ctx, subject, target, "refresh")
        return
    if target.acked or target.route >= len(ctx.config.routes) or target.sent_at is None:
        return
    every = ctx.config.renotify_of(ctx.config.routes[target.route])
    if every > 0 and ctx.now - target.sent_at >= every:
        target.sent_at = ctx.now
        _emit(ctx, subject, target, "renotify")


def _trigger(ctx: _Ctx, subject: Subject, target: Target) -> None:
    target.phase, target.sent_at = "sent", ctx.now
    outcome = _emit(ctx, subject, target, "trigger")
    if outcome != "sent":
        target.phase = "queued" if outcome == "queued" else "closed"


def _close(ctx: _Ctx, subject: Subject) -> None:
    if subject.closed_at is None:
        subject.closed_at = ctx.now
        moves_on = ctx.policy.every_child_answers and subject.status == "merged"  # its carrier answers the new cause
        if subject.carried_by is not None and not moves_on:  # the first child's page carried it: it may resolve now
            ctx.step.forward.append(Handover(kind="closed", cause_id=subject.id, child_id=subject.carried_by,
                                             at=ctx.now))
    if subject.carries is not None:  # its page stands for its cause until that closes: hold the resolves back
        for target in subject.targets.values():
            if target.phase == "held":
                ctx.step.dropped.append((target.receiver, "held_back"))
                target.phase = "closed"
        ctx.step.changed.add(subject.id)
        return
    for target in subject.targets.values():
        if target.phase == "held":
            ctx.step.dropped.append((target.receiver, "held_back"))
        elif target.phase == "queued" and _cancel_queued(ctx.state, subject.id, target.receiver):
            ctx.step.dropped.append((target.receiver, "cancelled"))
        elif target.phase in ("sent", "queued"):
            receiver = _receiver(ctx, target)
            if receiver is not None and receiver.send_resolved:
                _emit(ctx, subject, target, "resolve")
        target.phase = "closed"
    ctx.step.changed.add(subject.id)


# ---------------------------------------------------------------- emitting, rate limits


def _receiver(ctx: _Ctx, target: Target) -> Receiver | None:
    try:
        return ctx.config.receiver(target.receiver)
    except KeyError:
        return None  # gone in a reload: nothing more is sent there


def _is_alertmanager(ctx: _Ctx, target: Target) -> bool:
    return isinstance(_receiver(ctx, target), AlertmanagerReceiver)


def _emit(ctx: _Ctx, subject: Subject, target: Target, action: Action) -> str:
    """Make one delivery: `sent` (due now), `queued` (behind the rate limit or its lane), or `gone`."""
    receiver = _receiver(ctx, target)
    if receiver is None:
        return "gone"
    children = [ctx.state.subjects[c] for c in subject.children if c in ctx.state.subjects]
    url, headers, body = build_request(receiver, subject, children, action, ctx.now, ctx.config)
    subject.order += 1
    delivery = Delivery(receiver=receiver.name, receiver_type=receiver.type, action=action, subject_id=subject.id,
                        order=subject.order, url=url, headers=headers, body=body, timeout_s=receiver.timeout,
                        retries=receiver.retries, created_at=ctx.now)
    ctx.step.changed.add(subject.id)
    queue = ctx.state.queues.get(receiver.name, [])
    behind = any(d.subject_id == subject.id for d in queue)  # its lane waits: keep the order
    waits = action in _PAGES and (bool(queue) or not take_token(ctx.state.buckets, receiver, ctx.now))
    if behind or waits:
        ctx.state.queues.setdefault(receiver.name, []).append(delivery)
        return "queued"
    ctx.step.deliveries.append(delivery)
    return "sent"


def _queued_of(state: NotifyState, subject_id: str) -> bool:
    return any(d.subject_id == subject_id for queue in state.queues.values() for d in queue)


def _cancel_queued(state: NotifyState, subject_id: str, receiver: str) -> bool:
    """Drop a trigger that never left its queue, with everything behind it of the same lane: nothing to resolve."""
    queue = state.queues.get(receiver, [])
    if not trigger_waits(queue, subject_id):
        return False
    state.queues[receiver] = without_lane(queue, subject_id)
    return True


def _release_queues(ctx: _Ctx) -> None:
    for name, queue in ctx.state.queues.items():
        try:
            receiver = ctx.config.receiver(name)
        except KeyError:
            queue.clear()
            continue
        while queue:
            head = queue[0]
            if head.action in _PAGES and not take_token(ctx.state.buckets, receiver, ctx.now):
                break
            ctx.step.deliveries.append(queue.pop(0))
            subject = ctx.state.subjects.get(head.subject_id)
            target = subject.targets.get(name) if subject is not None else None
            if target is not None and head.action == "trigger" and target.phase == "queued":
                target.phase = "sent"
            ctx.step.changed.add(head.subject_id)
