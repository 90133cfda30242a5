"""Stage-1 correlation engine: alerts in, incident events out, event time only.

The same object runs inside the Faust correlate agent, in `aiops replay` and in unit tests; it never reads
the clock. Time moves only through the event times of the alerts it is given (the watermark is the latest
one seen) and through `advance(watermark)`, which the stream's idle timer calls.

Order of work per key: alerts wait in a reorder buffer until the watermark has passed them by the allowed
lateness, are then applied in event-time order (ties by status, then fingerprint, so any arrival order
within the lateness gives the same result), and afterwards the key's incidents are settled: absorption
closes, resolutions and expiries are declared, throttled updates go out, finished incidents are evicted.
"""

from __future__ import annotations

import bisect
import heapq
from collections.abc import Iterable
from dataclasses import dataclass, fields
from typing import Protocol

from .config import DEFAULT_CONFIG, CorrelationConfig
from .eventtime import FIRING_SINCE_LABEL
from .incidents import IncidentState, Phase, event_of, incident_id, said_again
from .models import SEVERITY_RANK, IncidentEvent
from .state import DictStore, Entry, KeyState, StateStore
from .windows import absorbs, absorption_ends_at, background_cap, rejoins, window_start

__all__ = ["AlertLike", "Correlator", "Counters", "noise_reduction"]

_INF = float("inf")


class AlertLike(Protocol):
    """What the engine reads of an alert: the pydantic `Alert` and any cheaper record with these fields."""

    @property
    def fingerprint(self) -> str: ...
    @property
    def key(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def severity(self) -> str: ...
    @property
    def starts_at(self) -> float: ...
    @property
    def ends_at(self) -> float | None: ...
    @property
    def labels(self) -> dict[str, str]: ...


@dataclass(slots=True)
class Counters:
    """What went through the engine; noise reduction is computed from `alerts` and `opened`."""

    records: int = 0
    duplicates: int = 0
    alerts: int = 0
    late: int = 0
    resolutions: int = 0
    opened: int = 0
    resolved: int = 0
    expired: int = 0
    evicted: int = 0
    clamped: int = 0
    """Records placed at arrival + max_future_skew because they were dated further ahead (`ingest`'s guard)."""

    def as_dict(self) -> dict[str, int]:
        """Counter name -> value."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def noise_reduction(incidents: int, alerts: int) -> float:
    """1 - incidents / distinct alerts (DESIGN.md); 0 when there were no alerts."""
    return 1.0 - incidents / alerts if alerts else 0.0


def _T(entry: Entry) -> float:
    return entry[0]


class Correlator:
    """Folds alerts into stage-1 incidents; every public call returns the incident events it caused."""

    def __init__(
        self,
        config: CorrelationConfig = DEFAULT_CONFIG,
        store: StateStore | None = None,
        *,
        record_assignments: bool = False,
    ) -> None:
        self.config = config
        self.store: StateStore = store if store is not None else DictStore()
        self.watermark = -_INF
        self.counters = Counters()
        self.assignments: dict[tuple[str, float], str] | None = {} if record_assignments else None
        self._seq = 0
        self._entity_names = frozenset(config.entity_labels)
        self._sure_gap = {"tumbling": -_INF, "continuation": config.window_s}.get(
            config.mode, min(config.min_gap_s, config.first_gap_s, config.window_s,
                             config.dense_floor_s if config.dense_alerts else _INF))
        self._pending: list[tuple[float, str]] = []
        self._held: dict[str, float] = {}
        """Key -> the release time its live entry in `_pending` has: one entry per key, not one per batch."""
        self._deadlines: list[tuple[float, str]] = []
        self._scheduled: dict[str, float] = {}
        self._rebuild()

    # ---- public surface -------------------------------------------------------------------------------

    @property
    def release_point(self) -> float:
        """Event time up to which alerts have been applied: the watermark less the allowed lateness."""
        return self.watermark - self.config.allowed_lateness_s

    def ingest(self, alerts: Iterable[AlertLike], arrival: float | None = None) -> list[IncidentEvent]:
        """Take a batch of alerts (any keys, any order) and return the events they caused.

        With `arrival` (when the batch reached us, read by the caller), the last line of defence of the
        event-time rule: a record dated more than `max_future_skew_s` ahead of it is placed at arrival plus
        the skew and counted in `counters.clamped`, so no record, whatever wrote it, can carry the watermark
        further. The source adapters' guard (correlator/eventtime.py) has normally clamped it already.
        A record labelled `aiops_firing_since` (a firing alert older than the horizon, re-sent) is placed no
        later than the partition's event time, so it never moves it.
        """
        # key -> (on-time entries, late entries, how far the key has been applied, its state if it has one)
        groups: dict[str, tuple[list[Entry], list[Entry], float, KeyState | None]] = {}
        wm, lateness, seq = self.watermark, self.config.allowed_lateness_s, self._seq
        guarded = arrival is not None
        newest = arrival + self.config.time_guard.max_future_skew_s if arrival is not None else _INF
        for a in alerts:
            seq += 1
            # entry_of inlined: this loop runs once per record
            resolving = a.status == "resolved"
            if resolving:
                ends = a.ends_at
                t = a.starts_at if ends is None else ends
            else:
                t = a.starts_at
            if guarded and not t <= newest:  # not t <= newest: NaN as well
                t = newest
                self.counters.clamped += 1
            if t > wm:
                if wm > -_INF and FIRING_SINCE_LABEL in a.labels:
                    t = wm  # a long-firing alert's re-send (eventtime.py) joins event time, never moves it
                else:
                    wm = t
            entry: Entry = (t, resolving, a.fingerprint, seq, a)
            key = a.key
            group = groups.get(key)
            if group is None:
                st = self.store.get(key)
                group = groups[key] = ([], [], -_INF if st is None else st.applied_to, st)
            # Late means behind what this key has already applied, not behind other keys: alerts of
            # different keys reach a partition in any order, and only the order within a key matters.
            (group[1] if t < group[2] else group[0]).append(entry)
        self.counters.records += seq - self._seq
        self._seq = seq
        self.watermark = wm
        now = wm - lateness
        events: list[IncidentEvent] = []
        for key, (fresh, late, _, known) in groups.items():
            st = known or KeyState(key)
            st.pending.extend(fresh)
            self._process(st, now, late, events)
        self._run_due(now, events)
        return events

    def advance(self, watermark: float) -> list[IncidentEvent]:
        """Move event time forward without alerts (an idle timer): releases held alerts, closes what is due."""
        if watermark > self.watermark:
            self.watermark = watermark
        events: list[IncidentEvent] = []
        self._run_due(self.release_point, events)
        return events

    def flush_idle(self) -> list[IncidentEvent]:
        """Input has paused: apply held alerts up to the watermark and publish every unpublished change.

        Event time does not move (that is `advance`); the reorder buffer stops waiting for alerts that
        are not coming, and throttled updates go out now rather than at the next alert. An alert that
        then arrives behind what was applied takes the late path.
        """
        events: list[IncidentEvent] = []
        now = self.watermark
        for key, st in self.store.items():
            if st.pending:
                self._process(st, now, None, events)  # settles, so it puts or deletes the key itself
            published = False
            for inc in st.incidents:
                if inc.dirty and inc.phase is Phase.OPEN:
                    events.append(event_of(inc, "opened" if inc.seq == 0 else "updated", now))
                    published = True
            if published and self.store.get(key) is st:
                self.store.put(key, st)  # seq and last_emit_at changed: the changelog must see them
        self._pending.clear()
        self._held.clear()
        return events

    def finish(self) -> list[IncidentEvent]:
        """End of a recorded input: apply every held alert, publish every change, resolve what has resolved.

        Nothing expires here: an incident still firing at the end of a replay is reported as firing.
        """
        events: list[IncidentEvent] = []
        for key, st in self.store.items():
            self._process(st, _INF, None, events, settle=False)
            for inc in st.incidents:
                self._finish_incident(inc, events)
            self.store.put(key, st)
        self._pending.clear()
        self._held.clear()
        return events

    def open_incidents(self) -> list[IncidentState]:
        """Incidents not yet resolved or expired, for views and tests."""
        return [i for _, st in self.store.items() for i in st.incidents if i.phase is Phase.OPEN]

    def restate(self) -> list[IncidentEvent]:
        """Every open incident already published, said again as it stands under its last sequence number (nothing
        changes, `said_again`). After a broker loss, for stage 2: the routing records it had not folded went with the
        broker, and the new incidents in them, which stage 1 says nothing more of until their next change, would never
        join their cause; notify paged each alone (session 40, census41: a rebalance begun just before the broker
        stopped left a routing partition unread). A child stage 2 holds counts it as a duplicate."""
        return [ev for inc in self.open_incidents() if (ev := said_again(inc)) is not None]

    # ---- per key ----------------------------------------------------------------------------------------

    def _process(
        self, st: KeyState, now: float, late: list[Entry] | None, events: list[IncidentEvent],
        *, settle: bool = True,
    ) -> None:
        ready = self._release(st, now)
        late_seqs: set[int] = set()
        if late:
            self.counters.late += len(late)
            late_seqs = {e[3] for e in late}
            ready = sorted(ready + late)
        if now > st.applied_to:
            st.applied_to = now
        if not ready and now < st.due and settle:
            # Only held alerts were added and nothing is due: settling would change nothing (every transition
            # needs now past a deadline st.due bounds), so only the new reorder-buffer entries need writing.
            self.store.put(st.key, st)
            return
        for t, resolving, fp, seq, a in ready:
            if t > st.due:
                # Whatever fell due before this alert happens first, so the outcome never depends on
                # how alerts were batched or when the last timer ran.
                self._settle(st, t, events)
            self._apply(st, t, resolving, fp, a, seq in late_seqs)
        if settle:
            self._settle(st, now, events)

    def _release(self, st: KeyState, now: float) -> list[Entry]:
        """The held entries whose event time the release point has passed, in order; the rest stay."""
        pending = st.pending
        if not pending:
            return []
        pending.sort()
        last_t = pending[-1][0]
        if last_t > st.max_t:
            st.max_t = last_t
        if last_t <= now:
            st.pending = []
            return pending
        cut = bisect.bisect_right(pending, now, key=_T)
        st.pending = pending[cut:]
        self._hold(st.key, st.pending[0][0])
        return pending[:cut]

    def _hold(self, key: str, release_at: float) -> None:
        """Make sure `_run_due` visits `key` once event time reaches `release_at`."""
        current = self._held.get(key)
        if current is None or release_at < current:
            self._held[key] = release_at
            heapq.heappush(self._pending, (release_at, key))

    def _apply(self, st: KeyState, t: float, resolving: bool, fp: str, a: AlertLike, late: bool) -> None:
        incidents = st.incidents
        flap = None
        for inc in reversed(incidents):
            start = inc.members.get(fp)
            if start is None:
                continue
            if resolving:
                self._resolve_member(st, inc, a, start, t)
                return
            # A re-send of an occurrence already held; a long-firing one carries its arrival as start (eventtime.py),
            # so any re-send of it while the occurrence is held firing is one too.
            if a.starts_at <= start or (FIRING_SINCE_LABEL in a.labels and fp not in inc.resolved):
                inc.duplicates += 1
                self.counters.duplicates += 1
                return
            # a new occurrence of a known fingerprint: placed like any new alert, unless it is a flap that rejoins
            if fp in inc.resolved and self._rejoins(inc, t):
                flap = inc
            break
        target = None
        if incidents:
            cur = incidents[-1]
            cfg = self.config
            # The common case inlined: an in-order alert joining the absorbing incident within the shortest gap
            # any incident of the mode bridges (`_sure_gap`); anything farther takes the full rule in `_target`.
            if (not late and cur.accepting and cur.alert_count < cfg.max_alerts
                    and cur.first_seen <= t <= cur.last_seen + self._sure_gap
                    and t <= cur.first_seen + cfg.max_lifetime_s and cur.phase is Phase.OPEN):
                target = cur
            else:
                target = self._target(st, t, late)
        if flap is not None and target is not flap:
            # past its gap, or another incident would take it: rejoined, but its span (stage 2's reach) stays put
            self._add_member(flap, a, t, resolving, late, stretch=False)
            return
        if target is None:
            target = self._open(st, a, t, late)
        self._add_member(target, a, t, resolving, late)
        if resolving and target.all_resolved_at is not None:
            st.due = min(st.due, target.all_resolved_at + self.config.resolve_hold_s)

    def _rejoins(self, inc: IncidentState, t: float) -> bool:
        """Whether a resolved member's re-fire at `t` rejoins `inc` past its gap (`windows.rejoins`): only while it
        is open and under its size and lifetime caps."""
        cfg = self.config
        return (inc.phase is Phase.OPEN and inc.alert_count < cfg.max_alerts and t <= inc.first_seen + cfg.max_lifetime_s
                and rejoins(inc.last_seen, t, cfg))

    def _resolve_member(self, st: KeyState, inc: IncidentState, a: AlertLike, current_start: float, t: float) -> None:
        """A resolution of a member the incident holds.

        It need not repeat the exact startsAt (generic senders rarely do): it ends whatever occurrence is
        firing, unless it is older than that occurrence, in which case it is a stale re-send.
        """
        fp = a.fingerprint
        if a.starts_at < current_start or fp in inc.resolved:
            inc.duplicates += 1
            self.counters.duplicates += 1
            return
        inc.resolved.add(fp)
        if t > inc.last_change:
            inc.last_change = t
        inc.dirty = True
        self.counters.resolutions += 1
        if len(inc.resolved) == len(inc.members):
            inc.all_resolved_at = inc.last_change
            # the resolve hold is a deadline the key must not pass unseen
            st.due = min(st.due, inc.last_change + self.config.resolve_hold_s)

    def _target(self, st: KeyState, t: float, late: bool) -> IncidentState | None:
        """The incident an alert at `t` joins, if any: the absorbing one, or on the late path any open one."""
        cfg = self.config
        candidates = reversed(st.incidents) if late else st.incidents[-1:]
        for inc in candidates:
            if inc.phase is not Phase.OPEN or (not late and not inc.accepting):
                continue
            if inc.alert_count >= cfg.max_alerts or t > inc.first_seen + cfg.max_lifetime_s:
                inc.accepting = False
                continue
            if absorbs(inc.first_seen, inc.last_seen, inc.alert_count, inc.window_start, t, cfg, inc.gap_cap):
                return inc
        return None

    def _open(self, st: KeyState, a: AlertLike, t: float, late: bool) -> IncidentState:
        ws = window_start(t, self.config.window_s)
        n = 0
        for other in st.incidents:
            n += other.window_start == ws
        previous = st.incidents[-1] if st.incidents else None
        if previous is not None:
            previous.accepting = False
            if not self._capped(previous, t):
                previous = None  # it went quiet or resolved: a new occurrence, not a continuation
        inc = IncidentState(
            id=incident_id(st.key, ws, n, a.fingerprint if late else None),
            key=st.key, window_start=ws, first_seen=t, last_seen=t,
            previous_id=previous.id if previous is not None else None, last_change=t,
            # a successor after a cap continues its predecessor's occurrence, at its predecessor's cap
            gap_cap=previous.gap_cap if previous is not None else background_cap(
                (i.first_seen for i in st.incidents if i.previous_id is None), t, self.config),
        )
        st.incidents.append(inc)
        st.due = min(st.due, absorption_ends_at(t, t, 1, ws, self.config, inc.gap_cap))
        self.counters.opened += 1
        return inc

    def _capped(self, inc: IncidentState, t: float) -> bool:
        """Whether `inc` would have absorbed an alert at `t` but for its size or lifetime cap."""
        cfg = self.config
        capped = inc.alert_count >= cfg.max_alerts or t > inc.first_seen + cfg.max_lifetime_s
        if inc.phase is not Phase.OPEN or not capped:
            return False
        return absorbs(inc.first_seen, inc.last_seen, inc.alert_count, inc.window_start, t, cfg, inc.gap_cap)

    def _add_member(self, inc: IncidentState, a: AlertLike, t: float, resolving: bool, late: bool,
                    stretch: bool = True) -> None:
        fp = a.fingerprint
        if fp in inc.members:
            inc.resolved.discard(fp)
        elif len(inc.sample) < self.config.sample_size:
            inc.sample.append(fp)
        names = self._entity_names
        for name, value in a.labels.items():  # alerts carry few labels: cheaper than walking the names
            if name in names:
                values = inc.entities.get(name)
                if values is None:
                    inc.entities[name] = [value]
                elif len(values) < self.config.entity_values and value not in values:
                    values.append(value)
        inc.members[fp] = a.starts_at
        inc.alert_count += 1
        self.counters.alerts += 1
        if resolving:
            inc.resolved.add(fp)
            self.counters.resolutions += 1
        if stretch and t < inc.first_seen:
            inc.first_seen = t
        if stretch and t > inc.last_seen:
            inc.last_seen = t
        if t > inc.last_change:
            inc.last_change = t
        rank = SEVERITY_RANK.get(a.severity, 1)
        if rank > inc.severity_rank:
            inc.severity_rank = rank
        inc.all_resolved_at = inc.last_change if len(inc.resolved) == len(inc.members) else None
        inc.late_alerts += late
        inc.dirty = True
        if self.assignments is not None:
            self.assignments[(fp, a.starts_at)] = inc.id

    # ---- settling: time-driven transitions --------------------------------------------------------------

    def _settle(self, st: KeyState, now: float, events: list[IncidentEvent]) -> None:
        cfg = self.config
        deadline = _INF
        keep: list[IncidentState] = []
        for inc in st.incidents:
            if inc.phase is Phase.OPEN:
                deadline = min(deadline, self._settle_open(inc, now, events))
            if inc.phase is not Phase.OPEN:
                assert inc.done_at is not None
                if now > inc.done_at + cfg.retention_s:
                    self.counters.evicted += 1
                    continue
                deadline = min(deadline, inc.done_at + cfg.retention_s)
            keep.append(inc)
        st.incidents = keep
        st.due = deadline
        if not keep and not st.pending:
            self.store.delete(st.key)
            return
        self.store.put(st.key, st)
        self._schedule(st.key, deadline)

    def _settle_open(self, inc: IncidentState, now: float, events: list[IncidentEvent]) -> float:
        """Apply what is due for one open incident; return its next deadline."""
        cfg = self.config
        if inc.seq == 0:
            events.append(event_of(inc, "opened", now))
        if inc.accepting:
            ends = absorption_ends_at(inc.first_seen, inc.last_seen, inc.alert_count, inc.window_start, cfg,
                                      inc.gap_cap)
            if now > ends or inc.alert_count >= cfg.max_alerts:
                inc.accepting = False
        # Transitions are strict (due when now > deadline) everywhere, matching the timer heap, and a closed
        # incident is dated by its deadline, not by when the timer happened to run.
        if inc.all_resolved_at is not None and now > inc.all_resolved_at + cfg.resolve_hold_s:
            done = inc.all_resolved_at + cfg.resolve_hold_s
            return self._close(inc, Phase.RESOLVED, now, done, events, "all members resolved")
        if now > inc.last_change + cfg.stale_after_s:
            done = inc.last_change + cfg.stale_after_s
            return self._close(inc, Phase.EXPIRED, now, done, events, "no alert or resolution within stale_after")
        if inc.dirty and now >= inc.last_emit_at + cfg.update_interval_s:
            events.append(event_of(inc, "updated", now))
        deadline = inc.last_change + cfg.stale_after_s
        if inc.accepting:
            deadline = min(deadline, absorption_ends_at(
                inc.first_seen, inc.last_seen, inc.alert_count, inc.window_start, cfg, inc.gap_cap))
        if inc.all_resolved_at is not None:
            deadline = min(deadline, inc.all_resolved_at + cfg.resolve_hold_s)
        if inc.dirty:
            deadline = min(deadline, inc.last_emit_at + cfg.update_interval_s)
        return deadline

    def _close(
        self, inc: IncidentState, phase: Phase, now: float, done: float, events: list[IncidentEvent], why: str
    ) -> float:
        inc.phase = phase
        inc.accepting = False
        inc.done_at = done
        if phase is Phase.RESOLVED:
            self.counters.resolved += 1
            events.append(event_of(inc, "resolved", now, why))
        else:
            self.counters.expired += 1
            events.append(event_of(inc, "expired", now, why))
        return done + self.config.retention_s

    def _finish_incident(self, inc: IncidentState, events: list[IncidentEvent]) -> None:
        if inc.phase is not Phase.OPEN:
            return
        now = self.watermark
        if inc.seq == 0:
            events.append(event_of(inc, "opened", now))
        if inc.all_resolved_at is not None:
            self._close(inc, Phase.RESOLVED, now, now, events, "all members resolved")
        elif inc.dirty:
            events.append(event_of(inc, "updated", now))

    # ---- timers -----------------------------------------------------------------------------------------

    def _schedule(self, key: str, deadline: float) -> None:
        if deadline == _INF:
            return
        current = self._scheduled.get(key)
        if current is None or deadline < current:
            self._scheduled[key] = deadline
            heapq.heappush(self._deadlines, (deadline, key))

    def _run_due(self, now: float, events: list[IncidentEvent]) -> None:
        pending, held = self._pending, self._held
        while pending and pending[0][0] <= now:
            release_at, key = heapq.heappop(pending)
            if held.get(key) != release_at:
                continue  # superseded by an earlier entry for the key, already visited
            del held[key]
            st = self.store.get(key)
            if st is None or not st.pending:
                continue
            earliest = min(e[0] for e in st.pending)
            if earliest > now:  # released meanwhile by its own alerts: nothing due yet
                self._hold(key, earliest)
                continue
            self._process(st, now, None, events)
        deadlines = self._deadlines
        while deadlines and deadlines[0][0] < now:
            due, key = heapq.heappop(deadlines)
            if self._scheduled.get(key) != due:
                continue
            del self._scheduled[key]
            st = self.store.get(key)
            if st is not None:
                self._settle(st, now, events)

    def _rebuild(self) -> None:
        """After a restart on a recovered store: watermark, reorder buffer and timers from the per-key state."""
        for key, st in self.store.items():
            self.watermark = max(self.watermark, st.max_t)
            if st.pending:
                self._hold(key, min(e[0] for e in st.pending))
            self._schedule(key, -_INF)

    def state_size(self) -> dict[str, int]:
        """Keys, incidents and members held: what must stay flat on a long run."""
        keys = incidents = members = 0
        for _, st in self.store.items():
            keys += 1
            incidents += len(st.incidents)
            members += sum(len(i.members) for i in st.incidents)
        return {"keys": keys, "incidents": incidents, "members": members, "timers": len(self._deadlines)}
