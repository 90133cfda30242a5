"""Why a rebalance is not over: a warning naming what Faust's table recovery waits for, when one lasts too long.

Faust's table recovery (`faust/tables/recovery.py`) reads each active changelog partition up to the highwater it read
as the rebalance began, and the agents (and `/readyz`) wait until it has. When that never happens the worker stays not
ready with no error: seen after a broker restart under load (ci69: a worker rejoined, began its recovery and logged
nothing for 60 s), and in the two-worker takeover test (the survivor's recovery logged "No event received for active
tp" for 90 s). Faust names neither the step its recovery is in nor the offsets it waits for.

The one cause found (stall35, in loops of the broker-restart tests under load): after a broker restart the embedded
Tansu's ListOffsets counted records of a re-created changelog partition that its Fetch never served (a fresh consumer
fetched nothing at offset 0 of a partition whose ListOffsets end was 2, and the fetch responses gave end offset 0).
Faust's recovery takes its highwater from ListOffsets, so it waited for them for ever. `RestoreWatch.settle` ends such a
wait: once the broker's fetches have said for `SERVED_AFTER_S` that the partition ends where the consumer stands, the
recovery's highwater becomes that end (logged with the offsets given up), and the recovery goes on.

A second way a recovery waited for ever, with nothing left to read (scale25: "Restoring state from changelog
topics...", then "rebalance under way for 45 s ... Recovery._restart_recovery > Recovery._wait", the worker never
ready; tests/test_recovery_end.py): Faust's changelog reader (`Recovery._slurp_changelogs`) ends the recovery
(`in_recovery` off) and sets `signal_recovery_end`, and clears that signal again at the top of its next turn. The
recovery task starts waiting for the signal only after it has started the fetcher (an await). When the reader has read
a short restore to its end before that wait begins, the signal is gone, and the reader never sets it again (the recovery
is no longer in progress): the wait lasts until the next rebalance. `RestoreWatch.wake` ends such a wait: a waiter of
the end signal, still waiting `LOST_END_AFTER_S` after the recovery ended with nothing left to read, is woken
(logged). It wakes the waiter alone, without setting the signal, so no later restore finds it set.

So every `STALL_REPORT_S` while one rebalance has lasted longer than `STALL_AFTER_S`, `RestoreWatch` logs a warning
with the recovery's step (the await chain of its task: which call it waits in) and, for each active changelog partition
still short of its highwater, the offset read, the consumer's position and whether the partition is fetched at all
(paused in Faust or aiokafka, awaiting an offset reset, records buffered and not taken). Read from attributes only,
as `stream.consumer.group_state` reads the consumer: no call into the consumer's thread, which may be what is stuck.
"""

from __future__ import annotations

import asyncio
import logging
import time
import types
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from mode import Service

__all__ = ["LOST_END_AFTER_S", "SERVED_AFTER_S", "STALL_AFTER_S", "STALL_REPORT_S", "ChangelogWait", "LostEnd",
           "RestoreWatch", "ServedEnds", "StallClock", "await_chain",
           "changelog_waits", "describe_restore", "pending_requests"]

log = logging.getLogger(__name__)

STALL_AFTER_S = 30.0
"""A rebalance (revocation to the end of the table recovery) that lasts longer than this is reported."""
STALL_REPORT_S = 15.0
"""How often a rebalance that goes on is reported again."""
CHECK_S = 1.0
SERVED_AFTER_S = 5.0
"""How long the broker's fetches must keep saying a partition ends at the consumer's position (with a response newer
than the first that said so) before the recovery stops waiting for the offsets its ListOffsets counted past it."""


@dataclass(frozen=True)
class ChangelogWait:
    """One active changelog partition the recovery has not read to its highwater, and where its consumer stands."""

    topic: str
    partition: int
    highwater: int
    """The last offset the recovery waits for (Faust's highwater: the end offset read as the rebalance began, - 1)."""
    read: int | None
    """The last offset it read (-1: none; None: not known)."""
    position: int | None = None
    """The consumer's next offset to fetch (None: none valid, e.g. awaiting an offset reset)."""
    fetching: str = "unknown"
    """Whether the partition is fetched, or why not, in words."""
    fetch_end: int | None = None
    """The end offset the broker's last fetch response gave (None: no response yet)."""
    fetched_at: float | None = None
    """When that response came (epoch seconds)."""

    def __str__(self) -> str:
        return (f"{self.topic}:{self.partition} read to {self.read} of highwater {self.highwater}, consumer position "
                f"{self.position}, {self.fetching}, the last fetch's end offset {self.fetch_end}")

    @property
    def served_all(self) -> bool:
        """Whether the broker's fetch says the partition ends at the consumer's position: it serves nothing more, though
        the recovery waits for more (its highwater came from ListOffsets)."""
        return (self.fetching == "fetched" and self.position is not None and self.fetch_end is not None
                and self.position >= self.fetch_end)


@dataclass
class StallClock:
    """When a rebalance under way is due to be reported (pure: Faust's rebalance count and times passed in)."""

    after_s: float = STALL_AFTER_S
    every_s: float = STALL_REPORT_S
    _count: int | None = None
    _since: float = 0.0
    _reported: float | None = None

    def due(self, rebalances: int, rebalancing: bool, now: float) -> float | None:
        """How long the rebalance under way has lasted, if it is time to report it; else None. A new rebalance (the
        count moved) starts the clock again; none under way resets it."""
        if not rebalancing:
            self._count, self._reported = None, None
            return None
        if self._count != rebalances:
            self._count, self._since, self._reported = rebalances, now, None
        lasted = now - self._since
        if lasted < self.after_s or (self._reported is not None and now - self._reported < self.every_s):
            return None
        self._reported = now
        return lasted


LOST_END_AFTER_S = 1.0
"""How long the recovery may wait for the end signal of a restore that has already ended before the watch wakes it."""


@dataclass
class LostEnd:
    """Whether the recovery has waited `after_s` for the end of a restore that already ended (pure: what the watch saw
    and the time passed in): a waiter of the end signal, the recovery not in progress, nothing left to read."""

    after_s: float = LOST_END_AFTER_S
    _since: float | None = None

    def due(self, waiting: bool, in_recovery: bool, remaining: bool, now: float) -> bool:
        """True once the lost wait has lasted `after_s`; any other sight starts the clock again."""
        if not waiting or in_recovery or remaining:
            self._since = None
            return False
        if self._since is None:
            self._since = now
        return now - self._since >= self.after_s


@dataclass
class ServedEnds:
    """Which partitions the recovery waits for have been fetched to the end the broker's fetches give, for `after_s`
    (pure: waits and the wall-clock time passed in; wall clock because aiokafka stamps fetch responses so)."""

    after_s: float = SERVED_AFTER_S
    _since: dict[tuple[str, int], float] = field(default_factory=dict)

    def settled(self, waits: Iterable[ChangelogWait], now: float) -> list[ChangelogWait]:
        """The waits whose broker has served everything its fetches say there is, for `after_s` and in a response
        that came after the first one that said so; a wait that stops saying so starts again."""
        since: dict[tuple[str, int], float] = {}
        due = []
        for wait in waits:
            if not wait.served_all:
                continue
            key = (wait.topic, wait.partition)
            first = since[key] = self._since.get(key, now)
            if now - first >= self.after_s and wait.fetched_at is not None and wait.fetched_at > first:
                due.append(wait)
        self._since = since
        return due


def await_chain(task: asyncio.Task[Any]) -> list[str]:
    """The coroutines `task` waits in, outermost first, ending with the future it waits for (if any): the step a
    service's task is in, which `Task.get_stack` does not show (it stops at the outermost frame)."""
    chain: list[str] = []
    awaited: Any = task.get_coro()
    for _ in range(64):  # a cycle is impossible, but a log line must end
        if isinstance(awaited, types.CoroutineType):
            chain.append(awaited.__qualname__)
            awaited = awaited.cr_await
        elif isinstance(awaited, types.GeneratorType):  # a generator-based awaitable (asyncio.sleep(0)'s __sleep0)
            chain.append(awaited.__qualname__)
            awaited = awaited.gi_yieldfrom
        elif awaited is None:
            break
        else:
            chain.append(type(awaited).__name__)
            break
    return chain


def _recovery_step(tasks: Iterable[asyncio.Task[Any]]) -> str:
    """The await chain of Faust's recovery task, in words ("not found" if no task runs it)."""
    for task in tasks:
        chain = await_chain(task)
        if any(name.endswith("Recovery._restart_recovery") for name in chain):
            tail = chain[next(i for i, name in enumerate(chain) if name.endswith("Recovery._restart_recovery")):]
            return " > ".join(tail)
    return "not found"


def _fetching(app: Any, tp: Any) -> tuple[int | None, str, int | None, float | None]:
    """The consumer's position of `tp`, whether it is fetched (in words), and the end offset the broker's last fetch
    response gave with when (epoch seconds) it came; read from Faust's and aiokafka's attributes."""
    consumer = app.consumer
    reasons = []
    if tp in getattr(consumer, "_paused_partitions", ()):
        reasons.append("paused by Faust")
    active = getattr(consumer, "_active_partitions", None)
    if active is not None and tp not in active:
        reasons.append("not among Faust's active partitions")
    if not getattr(consumer, "flow_active", True):
        reasons.append("consumer flow stopped")
    aio = getattr(getattr(consumer, "_thread", None), "_consumer", None)
    subscription = getattr(getattr(aio, "_subscription", None), "subscription", None)
    assignment = getattr(subscription, "assignment", None)
    if assignment is None or tp not in assignment.tps:
        return None, ", ".join([*reasons, "not assigned in aiokafka"]), None, None
    state = assignment.state_value(tp)
    position = state.position if state.has_valid_position else None
    if state.paused:
        reasons.append("paused in aiokafka")
    if state.awaiting_reset:
        reasons.append("awaiting an offset reset")
    if tp in getattr(getattr(aio, "_fetcher", None), "_records", {}):
        reasons.append("fetched records buffered, not taken")
    fetched = "fetched" if not reasons else ", ".join(reasons)
    answered = state.timestamp / 1000 if state.timestamp is not None else None  # aiokafka keeps epoch ms
    return position, ("fetched" if not reasons else fetched), state.highwater, answered


def pending_requests(app: Any) -> str:
    """The requests the consumer's client has sent and not had answered, by connection: the oldest one's correlation id
    and kind (the same id in two reports 15 s apart is a request the broker never answered), and the nodes with a
    fetch in flight (aiokafka sends no other fetch to such a node until it is answered)."""
    aio = getattr(getattr(app.consumer, "_thread", None), "_consumer", None)
    client = getattr(aio, "_client", None)
    if client is None:
        return "consumer not started"
    waiting = []
    for key, conn in sorted(getattr(client, "_conns", {}).items(), key=lambda item: str(item[0])):
        requests = list(getattr(conn, "_requests", ()))
        if requests:
            correlation_id, request, _ = requests[0]
            waiting.append(f"{key}: {len(requests)} (oldest #{correlation_id} {type(request).__name__})")
    in_flight = sorted(getattr(getattr(aio, "_fetcher", None), "_in_flight", ()))
    return (f"requests unanswered: {'; '.join(waiting) or 'none'}; fetch in flight to nodes {in_flight}")


def changelog_waits(app: Any) -> list[ChangelogWait]:
    """Each active changelog partition Faust's recovery has not read to its highwater, by topic and partition."""
    recovery = app.tables.recovery
    waits = []
    for tp, highwater in recovery.active_highwaters.items():
        read = recovery.active_offsets.get(tp)
        if highwater is None or (read is not None and read >= highwater):
            continue
        position, fetching, fetch_end, fetched_at = _fetching(app, tp)
        waits.append(ChangelogWait(tp.topic, tp.partition, highwater, read, position, fetching, fetch_end, fetched_at))
    return sorted(waits, key=lambda w: (w.topic, w.partition))


def describe_restore(app: Any, lasted: float) -> str:
    """One warning's words: how long the rebalance has lasted, the recovery's step and what it waits for."""
    recovery = app.tables.recovery
    waits = changelog_waits(app)
    try:
        step = _recovery_step(asyncio.all_tasks())
    except RuntimeError:  # no running loop (called outside the worker's)
        step = "not known (no running event loop)"
    flags = (f"in recovery {recovery.in_recovery}, {len(recovery.active_tps)} active and {len(recovery.standby_tps)} "
             f"standby changelog partitions, highwaters read for {len(recovery.active_highwaters)}")
    waiting = "; ".join(str(w) for w in waits) if waits else "no active changelog partition short of its highwater"
    return (f"rebalance under way for {lasted:.0f} s, the agents wait for it: table recovery step: {step} ({flags}); "
            f"waits for: {waiting}; consumer {pending_requests(app)}")


class RestoreWatch(Service):
    """Logs `describe_restore` while a rebalance lasts too long (see the module doc)."""

    def __init__(self, app: Any, clock: StallClock | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.app = app
        self.clock = clock or StallClock(STALL_AFTER_S, STALL_REPORT_S)  # read now: a test worker may set them
        self.served = ServedEnds(SERVED_AFTER_S)
        self.lost_end = LostEnd(LOST_END_AFTER_S)

    def settle(self, now: float) -> list[ChangelogWait]:
        """While the table recovery runs: stop it waiting for offsets of a partition that the broker counts but does
        not serve (`ServedEnds`): its highwater becomes the end the fetches give, and Faust's recovery, which checks
        what remains every 5 s, goes on. Logged, with the offsets given up. `now`: wall-clock seconds."""
        recovery = self.app.tables.recovery
        if not recovery.in_recovery:
            self.served = ServedEnds(self.served.after_s)
            return []
        due = self.served.settled(changelog_waits(self.app), now)
        for wait in due:
            tp = next(tp for tp in recovery.active_highwaters if (tp.topic, tp.partition) == (wait.topic,
                                                                                              wait.partition))
            assert wait.fetch_end is not None  # served_all says so
            recovery.active_highwaters[tp] = wait.fetch_end - 1  # Faust's highwater is the last offset, end - 1
            log.warning("table recovery waited for offsets %d-%d of %s:%d, which the broker counts (ListOffsets) but "
                        "does not serve: its fetches end at %d, where the consumer stands, for %.0f s. Reading the "
                        "partition to %d only, so the recovery ends (seen on the embedded Tansu after a broker "
                        "restart; a worker waited for them for ever)", wait.fetch_end, wait.highwater, wait.topic,
                        wait.partition, wait.fetch_end, self.served.after_s, wait.fetch_end)
        return due

    def wake(self, now: float) -> int:
        """Wake the recovery's wait for the end of a restore that Faust's changelog reader has already ended and whose
        end signal it cleared before the wait began (see the module doc); logged. The number of waiters woken.
        `now`: monotonic seconds."""
        recovery = self.app.tables.recovery
        signal = getattr(recovery, "_signal_recovery_end", None)  # Faust creates it on first use
        waiters = [f for f in getattr(signal, "_waiters", None) or () if not f.done()]  # asyncio.Event's own
        if not self.lost_end.due(bool(waiters), bool(recovery.in_recovery), recovery.need_recovery(), now):
            return 0
        for waiter in waiters:
            waiter.set_result(True)
        self.lost_end = LostEnd(self.lost_end.after_s)
        log.warning("table recovery waited %.0f s for the end of a restore that had already ended (Faust's changelog "
                    "reader cleared the end signal before the recovery waited for it); the wait is ended, so the "
                    "rebalance ends", self.lost_end.after_s)
        return len(waiters)

    def check(self, now: float) -> str | None:
        """The warning due now, logged, or None."""
        rebalances = int(getattr(self.app, "rebalancing_count", 0))
        lasted = self.clock.due(rebalances, bool(getattr(self.app, "rebalancing", False)), now)
        if lasted is None:
            return None
        text = describe_restore(self.app, lasted)
        log.warning("%s", text)
        return text

    @Service.task
    async def _watch(self) -> None:
        while not self.should_stop:
            try:
                self.check(time.monotonic())
                self.settle(time.time())
                self.wake(time.monotonic())
            except Exception:  # a report must never stop the worker; the next check tries again
                log.exception("restore watch check failed")
            await self.sleep(CHECK_S)
