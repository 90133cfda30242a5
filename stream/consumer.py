"""Faust's aiokafka transport with a configurable consumer `fetch_max_wait_ms`, and re-read partitions delivered.

faust-streaming 0.15.3 builds its worker consumer with `fetch_max_wait_ms=1500` hard-coded
(`faust/transport/drivers/aiokafka.py`). aiokafka keeps one fetch in flight per broker, so a fetch that
covers only idle partitions (Faust's leader-assignor partition, an idle changelog) holds back partitions that
have data for up to that long: live p99 latency was 1.7 s at 2,000 msg/s against ~70 ms at 100 ms.

Use it through the broker URL scheme `aiops-kafka://host:9092` (registered in Faust's transport registry
when this module is imported) and set the wait with the `consumer_fetch_max_wait_ms` setting of
`FaustSettings` (an `App` subclass must declare `Settings = FaustSettings`, as `stream.app` does); with a
plain `faust.App` the default of 100 ms applies. `stream.app.make_app` maps `kafka://` URLs to this scheme.

`Consumer` also delivers every record it fetches of the topics an app names in `redelivered_topics` (the
pipeline's `alerts.raw` and `alerts`, whose agents apply a record twice as once), where Faust drops a record
below the partition's read offset as already seen. After a rebalance Faust resumes the stream partitions before
it seeks them to the committed offsets (`Recovery.on_recovery_completed`), so records fetched from the old
position are still delivered after the seek and move the read offset past it: the records the seek was for,
left unacknowledged at the rebalance (cleared from the agents' buffers, or held for a checkpoint), were then
dropped on re-read (seen: 79 records of one partition), and a record never acknowledged leaves a hole at the
head of Faust's acknowledged offsets, past which the partition never commits again, with nothing logged.

`FlowControl` closes a second way to that hole, on every consumed topic (the stall still came in 1 of 7 overload
runs with the re-reads alone): an app of this project (`stream.app.App`) uses it for the flow control of its
agents' queues. Faust's
`FlowControlEvent.resume` empties every agent queue, and its table recovery calls it twice per rebalance: once
when it resumes the flow (stream partitions still paused), then again after `on_recovery_completed` has resumed
the stream partitions and sought them to their committed offsets, one partition at a time, while the flow was
already running. Records fetched in between, after their partition's seek (so never read again), were queued
and then emptied out, unacknowledged: a stalled partition (seen: `alerts:1` committed 70, acknowledged from 95).

`ConsumerThread.seek_to_committed` closes the last way, for partitions the group never committed: Faust's rebalance
relies on its seek to the committed offsets to read again what its fetcher fetched while the flow was stopped and
then dropped (`getmany` drops such a fetch and "seeks back to committed offsets"), but aiokafka seeks only partitions
whose committed offset is above 0. A partition whose owner died before its first offset commit was left where the
fetcher had got to: its next owner never read the records before that point. Seen in the two-worker takeover test
under load: `alerts:3` restored progress raw offset 2 and no committed offset, and the successor's first record of
it was offset 7, the first of the second half of the storm; the 14 firing alerts of one key in offset 6 never
reached it, and their resolutions later opened 14 one-alert incidents. Any agent's topic can lose records so (in
another run `alerts.raw:2`, read from offset 31: the bodies the killed worker had not normalized yet were never
normalized). `seek_to_committed` below reads such a partition from its first record.

`Consumer._getmany` closes the same hole where it opens, for every partition, changelogs included: a fetch that
comes back while the flow is stopped (the consumer thread waited for records while a rebalance stopped the flow) is
dropped by Faust, which then seeks only the partitions with a committed offset back, and a table's changelog has none.
Its records were never read again: a standby (or an active table restoring) missed them, so a table restored short
(a checkpoint's keys missing while a later progress said its input was applied), or a restore waited for offsets it
would never get (seen in the two-worker takeover test under load: the successor's recovery logged "No event received
for active tp" for every changelog partition for 90 s, right after such a drop, and nothing was correlated).
`unfetch` seeks each such partition back to the first record of the dropped fetch, never forward.

`fill_gap` keeps a partition's commits moving when Faust's fetcher took records as skipped (its "gap": a record
delivered more than one past the read offset) that the agents then acknowledge too: a batch fetched before the seek
after a rebalance and delivered after it does that, and Faust, counting those offsets twice, committed one a commit.
`unserved` gives it the offsets a fetch passed over without a record, which Faust's fetcher misses after a
partition's first record and on the redelivered topics: such a partition never committed past them.

`Consumer.release` keeps the records a stage gives up unacknowledged (`stream.stages.StageRunner._undo`,
`stream.deadletters.DeadLetters`: a fold or checkpoint failing while the worker stops or rebalances) from being
committed past before they are read again. Faust's only guard is its head-gap rule (no commit while the lowest
acknowledged offset is more than one past the committed one), and it fails in two ways: Faust's revocation forgets
each partition's committed offset before it waits for the streams and commits what they acknowledge meanwhile (the
rule is then off), and a hole of one record at the committed offset passes it. Either way the seek after the
rebalance started past the released records, on a partition this worker kept as on one it lost: never read again
(`tests/test_stages.py`: route:0 committed 30 past released 10-19). A partition with released records now commits
only up to the first of them until that record, read again (the seek after a rebalance reads from the committed
offset, which then stays at or below it), is acknowledged. Input is released only before that seek (`sought`): after
it nothing would read it again in this generation on a partition this worker keeps, so a stage retries it instead.
"""

from __future__ import annotations

import logging
import types
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence, Set
from typing import Any, cast

import aiokafka
from aiokafka.client import AIOKafkaClient, CoordinationType
from aiokafka.errors import KafkaError
from aiokafka.protocol.group import JoinGroupRequest, LeaveGroupRequest
from faust.transport import drivers
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP
from faust.types.tuples import ack_lock
from faust.types.settings import Settings, params, sections
from mode import Seconds
from mode.services import WaitArgT, WaitResults
from mode.utils.queues import FlowControlEvent

from stream.eager import first_step

__all__ = [
    "DEFAULT_FETCH_MAX_WAIT_MS",
    "TRANSPORT_SCHEME",
    "Consumer",
    "ConsumerThread",
    "FaustSettings",
    "FlowControl",
    "ReadOffsets",
    "Transport",
    "await_chain",
    "committed_offset",
    "coordination_waits",
    "describe_coordination",
    "fetch_max_wait_ms",
    "fill_gap",
    "forget_read_offsets",
    "group_state",
    "leave_group",
    "membership",
    "register_transport",
    "release",
    "request_rejoin",
    "sought",
    "take_group_error",
    "unfetch",
    "unserved",
]

log = logging.getLogger(__name__)

TRANSPORT_SCHEME = "aiops-kafka"
DEFAULT_FETCH_MAX_WAIT_MS = 100


class FaustSettings(Settings):
    """Faust's settings plus `consumer_fetch_max_wait_ms`."""

    @sections.Consumer.setting(params.UnsignedInt, version_introduced="aiops", default=DEFAULT_FETCH_MAX_WAIT_MS)
    def consumer_fetch_max_wait_ms(self) -> int:
        """Longest time in ms the broker may hold a fetch when no data is ready (Faust hard-codes 1500)."""
        return DEFAULT_FETCH_MAX_WAIT_MS  # never called: Faust keeps only the name and the docstring


def committed_offset(consumer: Any, tp: Any) -> int | None:
    """The offset the group committed for `tp` (the next one to read after a rebalance), None before any commit.

    Faust keeps committed offsets only in a private map of its consumer: read here, one place to mend when it moves.
    """
    offset = getattr(consumer, "_committed_offset", {}).get(tp)
    return offset if isinstance(offset, int) else None


def fetch_max_wait_ms(conf: Any) -> int:
    """The configured wait of an app's settings, or the default when the app uses plain Faust settings."""
    value: int = getattr(conf, "consumer_fetch_max_wait_ms", DEFAULT_FETCH_MAX_WAIT_MS)
    return value


def _set_fetch_max_wait(consumer: aiokafka.AIOKafkaConsumer, wait_ms: int) -> aiokafka.AIOKafkaConsumer:
    # aiokafka reads this attribute when start() builds its Fetcher, which happens after Faust has
    # constructed the consumer; fail loudly if an aiokafka upgrade renames it rather than silently
    # falling back to 1500 ms.
    if not hasattr(consumer, "_fetch_max_wait_ms") or consumer._fetcher is not None:
        raise RuntimeError("aiokafka internals changed: cannot set fetch_max_wait_ms before start()")
    consumer._fetch_max_wait_ms = wait_ms
    log.info("aiokafka consumer fetch_max_wait_ms=%d", wait_ms)
    return consumer


class ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """The aiokafka consumer thread, building consumers with the configured fetch wait.

    It also leaves the group on stop when the generation is 0. Tansu numbers generations from 0 and aiokafka
    sends LeaveGroup only for generation > 0, so without this a worker restarted after a clean stop waits for
    the old member's session to expire: 19.6 s to its first message instead of 6.5 s. Kafka starts at 1,
    so there this never runs.
    """

    async def on_thread_stop(self) -> None:
        member = self._generation_zero_member()
        await super().on_thread_stop()
        if member is not None:
            transport = cast(faust_aiokafka.Transport, self.transport)
            await leave_group(faust_aiokafka.server_list(transport.url, transport.default_port), *member)

    def _generation_zero_member(self) -> tuple[str, str] | None:
        coordinator = getattr(self._consumer, "_coordinator", None)
        if coordinator is None or coordinator.generation != 0:
            return None
        if coordinator.member_id == JoinGroupRequest.UNKNOWN_MEMBER_ID:
            return None
        return coordinator.group_id, coordinator.member_id

    async def seek_to_committed(self) -> Mapping[TP, int]:
        """Faust's seek after a rebalance (`perform_seek`), in the consumer's thread: `seek_to_committed` below, so a
        partition the group never committed is read from its first record, as the reset policy says (Faust's default,
        `earliest`; under another policy aiokafka's seek alone, as before)."""
        if self.app.conf.consumer_auto_offset_reset != "earliest":
            return await super().seek_to_committed()
        # the agents' topics, whose offsets their acknowledgements commit; not the changelogs, which table recovery
        # seeks itself and no one commits
        topics = frozenset(self.app.topics.acking_topics)
        return cast(Mapping[TP, int], await self.call_thread(seek_to_committed, self._ensure_consumer(), topics))

    async def _commit(self, offsets: Mapping[TP, int]) -> bool:
        """Faust's commit, in the consumer's thread, except while the consumer is no member of its group, or while the
        broker watch has not confirmed the broker's epoch lately (`app.commit_gate`, `stream.recovery.commit_fresh`:
        a worker resumed after a pause across a broker restart): nothing then.

        A coordinator that forgot the member (a broker restarted empty) makes aiokafka drop its member id and
        generation until it joins again, and a commit sent meanwhile carries neither, which the broker takes as a
        commit from outside the group. Those offsets were read before the loss, of topics that no longer exist: so
        committed for the re-created partitions, the seek after the join skipped every record below them (seen:
        a worker that read none of its partitions' new records; `forget_read_offsets` drops the rest)."""
        coordinator = getattr(self._consumer, "_coordinator", None)
        if coordinator is not None and coordinator.member_id == JoinGroupRequest.UNKNOWN_MEMBER_ID:
            log.info("not committing offsets of %d partitions: the consumer is no member of its group (joining)",
                     len(offsets))
            return False
        gate: Callable[[], bool] | None = getattr(self.app, "commit_gate", None)
        if gate is not None and not gate():
            log.info("not committing offsets of %d partitions: no broker check has confirmed the broker's epoch "
                     "lately (stream.recovery.commit_fresh); the next commit after one sends them", len(offsets))
            return False
        return await super()._commit(offsets)

    async def request_rejoin(self) -> None:
        """Make the consumer rejoin its group, in the consumer's own thread (aiokafka is not thread-safe)."""
        await self.call_thread(self._request_rejoin)

    async def _request_rejoin(self) -> None:
        coordinator = getattr(self._consumer, "_coordinator", None)
        if coordinator is None:  # not started, or no group: nothing to rejoin
            raise RuntimeError("the consumer has no group coordinator")
        coordinator.request_rejoin()

    async def coordination_waits(self) -> str:
        """Where aiokafka's group coordination and metadata refresh wait (`coordination_waits`), in the consumer's
        thread."""
        return cast(str, await self.call_thread(self._coordination_waits))

    async def _coordination_waits(self) -> str:
        return coordination_waits(self._consumer)

    async def take_group_error(self) -> BaseException | None:
        """The error that stopped the group coordination, taken (so it goes on), or None; in the consumer's thread."""
        return cast(BaseException | None, await self.call_thread(self._take_group_error))

    async def _take_group_error(self) -> BaseException | None:
        coordinator = getattr(self._consumer, "_coordinator", None)
        if coordinator is None or getattr(coordinator, "_pending_exception", None) is None:
            return None
        try:
            coordinator.check_errors()  # raises the pending error and releases the coordination routine
        except Exception as exc:  # noqa: BLE001 - whatever stopped it is what the caller reports
            return exc
        return None

    def _create_worker_consumer(self, transport: faust_aiokafka.Transport) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        # With table_standby_replicas 0 Faust gives a process without changelog tables (a `--role ingest` front)
        # aiokafka's round-robin assignor, and the group refuses its join (InconsistentGroupProtocolError, fatal):
        # every process of the group assigns with Faust's. (The consumer is not started yet: nothing joined.)
        self._assignor = self.app.assignor
        consumer._partition_assignment_strategy = (self.app.assignor,)
        return _set_fetch_max_wait(consumer, fetch_max_wait_ms(self.app.conf))

    def _create_client_consumer(self, transport: faust_aiokafka.Transport) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_client_consumer(transport)
        return _set_fetch_max_wait(consumer, fetch_max_wait_ms(self.app.conf))


async def seek_to_committed(consumer: aiokafka.AIOKafkaConsumer, topics: Collection[str]) -> dict[Any, int | None]:
    """Seek every assigned partition to the group's committed offset, and one of `topics` the group never committed
    to its first record; the committed offsets (None: none), as aiokafka's `seek_to_committed` returns them.

    aiokafka seeks only partitions whose committed offset is above 0 and leaves the others where its fetcher got to,
    past records Faust fetched and dropped during the rebalance (see the module doc): read from their first record,
    as a consumer with no committed offset starts, they are read again, and a redelivery costs no more than after
    any rebalance (the agents of `alerts.raw` and `alerts` skip what they applied by its source offset).
    """
    committed: dict[Any, int | None] = await consumer.seek_to_committed()
    never = sorted((tp for tp, offset in committed.items() if not offset and tp.topic in topics),
                   key=lambda tp: (tp.topic, tp.partition))
    if never:
        log.info("no committed offset for %s: read from the first record",
                 ", ".join(f"{tp.topic}:{tp.partition}" for tp in never))
        await consumer.seek_to_beginning(*never)
    return committed


async def unfetch(consumer: aiokafka.AIOKafkaConsumer, records: Mapping[Any, Sequence[Any]]) -> dict[Any, int]:
    """Hand back a fetch that will not be delivered: seek each of its partitions still assigned back to its first
    record, unless something sought it further back or reset it meanwhile (a table's recovery, the seek after a
    rebalance: the call may wait in the consumer thread's queue behind a join); never forward. In the consumer's
    thread. The partitions sought, with their offsets."""
    sought: dict[Any, int] = {}
    assignment = consumer._subscription.subscription.assignment if consumer._subscription.subscription else None
    for tp, fetched in records.items():
        if not fetched or assignment is None or tp not in assignment.tps:
            continue
        first = fetched[0].offset
        state = assignment.state_value(tp)
        if not state.has_valid_position or state.position <= first:  # sought (or reset) since: theirs stands
            continue
        consumer.seek(tp, first)
        sought[tp] = first
    if sought:
        log.info("a fetch came back while the flow was stopped; read again: %s",
                 ", ".join(f"{tp.topic}:{tp.partition} from {offset}" for tp, offset in sorted(
                     sought.items(), key=lambda item: (item[0].topic, item[0].partition))))
    return sought


def forget_read_offsets(consumer: Any) -> int:
    """After the broker lost its topics: forget every offset a Faust consumer holds of them, and the acknowledgements
    still to come of records it delivered before; the number of those records.

    A record read before the loss names an offset of a topic that no longer exists. Acknowledged after the rebalance
    that follows (the agents hold records until their checkpoint), Faust committed that old, high offset for the
    re-created partition, and the seek to the committed offsets then skipped every record below it (seen: a worker
    whose broker check had not seen the topics missing read none of its partitions' new records). Marked acknowledged
    here, their acknowledgement is a no-op, and nothing waits for them at the next revocation."""
    with ack_lock:  # Faust's, held by every acknowledgement: none half-way through while this runs
        stale = [m for m in list(consumer._unacked_messages) if not m.acked]
        for message in stale:
            message.acked = True
            consumer._unacked_messages.discard(message)
        for offsets in (consumer._acked, consumer._acked_index, consumer._gap, consumer._committed_offset):
            offsets.clear()
        consumer._read_offset.clear()
        getattr(consumer, "_released", {}).clear()
        getattr(consumer, "_fetched_to", {}).clear()
        if isinstance(consumer, Consumer):
            consumer.losses += 1  # a commit under way keeps none of its old offsets (`Consumer._commit_offsets`)
    if stale:
        log.info("%d records read before the broker lost its topics will not be committed when acknowledged",
                 len(stale))
    return len(stale)


def release(consumer: Any, messages: Iterable[Any]) -> None:
    """Give up records this worker will not acknowledge: Faust's rebalance and stop no longer wait for them, and a
    `Consumer` commits none of their partitions past them until they are read again (`Consumer.release`)."""
    if isinstance(consumer, Consumer):
        consumer.release(messages)
        return
    unacked = getattr(consumer, "_unacked_messages", None)
    if unacked is not None:
        for message in messages:
            unacked.discard(message)


def sought(app: Any) -> bool:
    """Whether the current rebalance has assigned this worker its partitions and then sought them to the committed
    offsets: from then on nothing waits for the messages handed out (Faust's revocation did), and released input of
    a partition this worker keeps is not read again in this generation (`stream.stages.StageRunner._giving_up`).
    Only a `Consumer` says so.

    Faust's recovery seeks after the assignment (`perform_seek`), then resumes the flow, then ends the rebalance
    (`rebalancing` off); its fetcher also seeks while the flow is stopped, in the revocation too, which does not
    count (before the assignment). Seen: a stage-2 fold given up between the seek and the flow's resumption."""
    consumer = getattr(app, "_consumer", None)
    if not isinstance(consumer, Consumer):
        return False
    return consumer.sought_in == getattr(app, "rebalancing_count", None)


async def leave_group(bootstrap: str | list[str], group_id: str, member_id: str) -> bool:
    """Send one LeaveGroup for `member_id` with a short-lived client; True if the broker accepted it."""
    client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=2000)
    try:
        await client.bootstrap()
        node = await client.coordinator_lookup(CoordinationType.GROUP, group_id)
        response = await client.send(node, LeaveGroupRequest(group_id, member_id))
    except (KafkaError, OSError) as exc:
        log.warning("LeaveGroup for %s failed: %r", group_id, exc)
        return False
    finally:
        await client.close()
    ok: bool = response.error_code == 0
    log.info("LeaveGroup %s for %s (generation 0): error code %d", group_id, member_id, response.error_code)
    return ok


def group_state(consumer: Any) -> str:
    """Where the consumer's group membership stands, in words for `/readyz` and the logs: what a rejoin waits on."""
    return membership(consumer)[1]


def membership(consumer: Any) -> tuple[bool | None, str]:
    """Whether the consumer is a member of its group with an assignment (None: not started), and where its
    membership stands in words: a pending error, no coordinator, a join under way, or the generation and how many
    partitions it assigned.

    Read from aiokafka's coordinator (attributes only, no call into the consumer's thread, which may be the part
    that is stuck)."""
    thread = getattr(consumer, "_thread", None)
    coordinator = getattr(getattr(thread, "_consumer", None), "_coordinator", None)
    if coordinator is None:
        return None, "consumer not started"
    error = getattr(coordinator, "_pending_exception", None)
    if error is not None:
        return False, f"group coordination stopped by {error!r}"
    if coordinator.coordinator_id is None:
        return False, "looking for the group coordinator"
    if coordinator.member_id == JoinGroupRequest.UNKNOWN_MEMBER_ID:
        return False, "joining the group (no member id yet)"
    subscription = coordinator._subscription.subscription
    assignment = subscription.assignment if subscription is not None else None
    if assignment is None or coordinator._rejoin_needed_fut.done():
        return False, f"joining the group as {coordinator.member_id} (generation {coordinator.generation} so far)"
    return True, f"generation {coordinator.generation}: {len(assignment.tps)} partitions assigned"


def await_chain(task: Any) -> str:
    """Where an asyncio task waits, outermost call first (`function file:line`, then what the innermost awaits), or
    how it ended. `Task.get_stack` stops at the task's own coroutine; this follows `cr_await` down to the future."""
    if task is None:
        return "no task"
    if task.done():
        if task.cancelled():
            return "cancelled"
        error = task.exception()
        return f"ended by {error!r}" if error is not None else "ended"
    steps: list[str] = []
    awaited: Any = task.get_coro()
    while awaited is not None:
        frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "gi_frame", None)
        if frame is None:  # a future (or a finished coroutine): the bottom of the chain
            kind = type(awaited).__name__  # a Future's __await__ is a FutureIter, which does not name its future
            steps.append("awaits a future" if "Future" in kind else f"awaits {kind}")
            break
        code = frame.f_code
        steps.append(f"{code.co_name} {code.co_filename.rsplit('/', 1)[-1]}:{frame.f_lineno}")
        awaited = getattr(awaited, "cr_await", None) or getattr(awaited, "gi_yieldfrom", None)
    return " > ".join(steps)


def coordination_waits(consumer: Any) -> str:
    """Where an aiokafka consumer's group coordination, heartbeat and metadata refresh wait, in one line for the log:
    aiokafka's coordinator looks for its coordinator without a log line between failures (census41's t1: a worker
    never found it again after a broker restart, 180 s with nothing logged). Call in the consumer's thread."""
    coordinator = getattr(consumer, "_coordinator", None)
    client = getattr(consumer, "_client", None)
    if coordinator is None or client is None:
        return "consumer not started"
    refresh = getattr(client, "_md_update_fut", None)
    lookup = getattr(coordinator, "_coordinator_lookup_lock", None)
    return "; ".join((
        f"coordination: {await_chain(getattr(coordinator, '_coordination_task', None))}",
        f"heartbeat: {await_chain(getattr(coordinator, '_heartbeat_task', None))}",
        f"metadata sync: {await_chain(getattr(client, '_sync_task', None))}",
        f"metadata refresh {'none asked' if refresh is None else 'pending' if not refresh.done() else 'done'}",
        f"coordinator lookup lock {'held' if lookup is not None and lookup.locked() else 'free'}",
    ))


async def describe_coordination(consumer: Any) -> str:
    """`coordination_waits` of a Faust consumer of this transport, asked in its thread; '' for another consumer."""
    thread = getattr(consumer, "_thread", None)
    if not isinstance(thread, ConsumerThread):
        return ""
    return await thread.coordination_waits()


async def take_group_error(consumer: Any) -> BaseException | None:
    """Take the error that stopped a Faust consumer's group coordination, so that it resumes; None when none did.

    aiokafka's coordinator parks any error of its join (a failed partition assignment, a broker error it does not
    retry) until the user's next `getmany` reads it, and coordinates nothing meanwhile. Faust never reads it: its
    fetcher calls aiokafka's fetcher directly. Without this, such an error stops the group for good with no log
    line, and the worker waits for an assignment forever (`stream.recovery` calls this every broker check).
    """
    thread = getattr(consumer, "_thread", None)
    if not isinstance(thread, ConsumerThread):
        return None
    if getattr(getattr(thread._consumer, "_coordinator", None), "_pending_exception", None) is None:
        return None  # read here, so the consumer's thread is asked only when there is something to take
    return await thread.take_group_error()


async def request_rejoin(consumer: Any) -> None:
    """Ask a Faust consumer of this transport for a full rebalance: every partition revoked, then assigned.

    That is what resets Faust's per-partition read, acked and committed offsets and seeks to the group's
    committed offsets (none on a broker that lost them: the topic's start), after a broker lost its topics.
    """
    thread = getattr(consumer, "_thread", None)
    if not isinstance(thread, ConsumerThread):
        raise RuntimeError(f"{type(consumer).__name__} does not run stream.consumer.ConsumerThread")
    await thread.request_rejoin()


def fill_gap(acked: list[int] | None, gap: Any) -> None:
    """Faust's gap fill of `Consumer._new_offset` (offsets its fetcher skipped count as acknowledged), done first and
    counting each offset once: `acked` (a partition's acknowledged offsets) ends with no offset twice, and `gap` (its
    IntervalTree of skipped offsets) holds nothing below `acked`'s highest, so Faust's own fill then does nothing.

    Faust fills the gap with every offset in it, acknowledged or not, and its commit takes the first run of consecutive
    offsets: each offset present twice ends a run, so the partition committed one offset per commit. Seen after a
    rebalance (tests/test_rebalance_release.py): a batch fetched before the seek to the committed offset was
    delivered after it, so Faust's fetcher took offsets committed+1 .. that batch's first as skipped, while the stage
    acknowledged those same records, held since before the rebalance (committed 72, gap 73-113, those offsets then in
    `acked` twice); in another run `stage2-route:0` committed 88, 89, 91, 93, 95, 97, 98, 100 at 5 s apart while
    records came at 5 a second, and the test's wait for the partition's commit to reach its end timed out."""
    if not acked:
        return
    if gap:
        highest = max(acked)
        skipped = sorted(gap.overlap(0, highest), key=lambda interval: interval.begin)
        if skipped:
            filled = [offset for interval in skipped for offset in range(interval.begin, interval.end)]
            gap.chop(0, max(filled[-1], highest + 1))  # Faust's own bound
            acked.extend(filled)
    if len(set(acked)) != len(acked):
        acked[:] = sorted(set(acked))


def unserved(records: Mapping[Any, Sequence[Any]], fetched_to: dict[Any, int],
             acking: Callable[[str], bool]) -> list[tuple[Any, int, int]]:
    """The offsets a fetch passed over without a record, per partition of an acknowledged topic, as (partition,
    first, last): between two of its records, and between the end of the partition's last fetch (`fetched_to`,
    brought up to this fetch's end here) and its first record. A fetch that starts below that end read again after
    a seek: nothing passed over. Faust's commit counts such offsets as acknowledged (its gap), or never passes them.

    Faust's fetcher finds them only from the read offset, and misses them twice: it tests the read offset for
    truth, so none after a partition's first record (0); and a redelivered topic has no read offset. A partition of
    either then never committed past the offsets (stuck40's kind B: after a broker loss the embedded Tansu refused a
    produce to the re-created `incidents` (AlreadyExists: the sender saw UnknownError and sent the records again) and
    never served the offsets it had counted for it; fetched 0, then 215 on: committed 1 for as long as it ran).
    Unlike the read offset, a fetch never takes a record it fetched and then dropped as skipped."""
    passed: list[tuple[Any, int, int]] = []
    for tp, fetched in records.items():
        if not fetched:
            continue
        expected = fetched_to.get(tp)
        first, last = fetched[0].offset, fetched[-1].offset
        fetched_to[tp] = last + 1
        # nearly every fetch: consecutive offsets from where the last one ended, answered without a loop per record
        if last - first + 1 == len(fetched) and (expected is None or first <= expected) or not acking(tp.topic):
            continue
        for record in fetched:
            if expected is not None and record.offset > expected:
                passed.append((tp, expected, record.offset - 1))
            expected = record.offset + 1
    return passed


class ReadOffsets(defaultdict[Any, int | None]):
    """Faust's per-partition read offsets, except that a partition of a redelivered topic has none: the fetcher
    then delivers each of its records, re-reads after a seek included (see the module doc)."""

    def __init__(self, redelivered: Callable[[], Collection[str]]) -> None:
        super().__init__(lambda: None)
        self._redelivered = redelivered

    def __getitem__(self, tp: Any) -> int | None:
        if tp.topic in self._redelivered():
            return None
        return super().__getitem__(tp)


class FlowControl(FlowControlEvent):
    """Faust's flow control of the agents' queues, except that resuming a flow that runs keeps what is queued.

    Emptying the queues on resume is for records queued before a rebalance suspended the flow (Faust's
    revocation suspends it and empties them itself); when nothing was suspended, what is queued was fetched in
    this generation, and dropping it leaves records that are never read again unacknowledged (see the module doc).
    """

    release: Callable[[list[Any]], None] | None = None
    """Given the records of the queued events `clear` drops (`stream.app.App` passes `release` on its consumer)."""

    def resume(self) -> None:
        """Resume production into the queues, emptying them only if the flow was suspended."""
        if self.is_active():
            return
        super().resume()

    def clear(self) -> None:
        """Empty the queues, releasing the records of what is dropped (`release`): that agent never reads them.

        A record of a topic two agents read (`incidents`: notify and the incident SLA agent) has one reference
        per agent; the copy dropped from the slower agent's queue is never acknowledged, so Faust's revocation
        waits for the record (`Consumer.wait_empty`, a weak set) as long as anything holds it: the faster agent's
        stream keeps its last event until the next, which the stopped flow never gives. Seen in the chaos soak:
        the survivor of a SIGKILL waiting 380 s, or for good, on `incidents` records
        (tests/test_rebalance_shared_topic.py). Released, nothing waits for them and their partitions commit no
        further until they are read again after the rebalance's seek."""
        dropped = [message for queue in self._queues for item in list(queue._queue)  # type: ignore[attr-defined]
                   if (message := getattr(item, "message", None)) is not None]
        super().clear()
        if dropped and self.release is not None:
            self.release(dropped)


class Consumer(faust_aiokafka.Consumer):
    """Faust's aiokafka consumer, running `ConsumerThread`, delivering re-read records of `redelivered_topics`, and
    handing a record to its agents without a Task when their queues take it at once (`wait_first`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._read_offset = ReadOffsets(lambda: getattr(self.app, "redelivered_topics", ()))
        self._released: dict[TP, int] = {}
        """Per partition, the lowest offset released unacknowledged and not acknowledged since (read again): no
        commit passes it (see the module doc)."""
        self.sought_in: int | None = None
        """The app's `rebalancing_count` at the last seek to the committed offsets after an assignment (`sought`)."""
        self.assigned_in: int | None = None
        """The app's `rebalancing_count` at the last assignment."""
        self.losses = 0
        """How many times `forget_read_offsets` ran: a commit that spans one keeps none of its offsets."""
        self._fetched_to: dict[TP, int] = {}
        """Per partition, the offset after the last record fetched in this generation: where its next fetch
        starts unless something seeks it (`unserved`)."""

    def release(self, messages: Iterable[Any]) -> None:
        """Records given up unacknowledged (a fold or checkpoint failed while the worker stops or rebalances): out
        of the set Faust's rebalance and stop wait on, and their partitions commit no further than the first of
        them until it is read again, which the seek after the rebalance does, and acknowledged (see the module
        doc)."""
        released, before = self._released, dict(self._released)
        for message in messages:
            self._unacked_messages.discard(message)
            tp, offset = message.tp, message.offset
            if offset < released.get(tp, offset + 1):
                released[tp] = offset
        moved = sorted((tp, offset) for tp, offset in released.items() if before.get(tp) != offset)
        if moved:
            log.info("released unacknowledged: %s; their commits stop there until they are read again",
                     ", ".join(f"{tp.topic}:{tp.partition} from {offset}" for tp, offset in moved))

    async def _commit_offsets(self, offsets: Mapping[TP, int], start_new_transaction: bool = True) -> bool:
        """Faust's commit, except that a commit under way when the broker's topics were lost (`forget_read_offsets`
        ran during it) leaves no committed offset behind for its partitions.

        Faust records the offsets as committed after the commit returns, whether the broker took them or not: a
        commit refused during the loss (its member forgotten) that returned after the forget put the old topic's
        offsets (529, 549) back for the re-created partitions, and Faust then dropped every acknowledgement below
        them (`Consumer.ack` keeps only offsets at or past the committed one): the partitions never committed
        again (stuck40's q5: `incidents:0` and `:2` of one worker, 535 records, for as long as it ran)."""
        losses = self.losses
        done = await super()._commit_offsets(offsets, start_new_transaction)
        if self.losses != losses:
            for tp in offsets:
                self._committed_offset.pop(tp, None)
        return done

    async def perform_seek(self) -> None:
        """Faust's seek to the committed offsets, noting the rebalance it was for (`sought`)."""
        count = getattr(self.app, "rebalancing_count", None)
        await super().perform_seek()
        if self.assigned_in == count:  # not a seek of Faust's fetcher in the revocation
            self.sought_in = count

    def _new_offset(self, tp: TP) -> int | None:
        """Faust's next offset to commit, never past a record released unacknowledged and not read again yet, each
        offset counted once (`fill_gap`).

        The first released record acknowledged means it was read again (nothing acknowledges the released copy),
        so the partition's commits run free again. Checked here, per commit, rather
        than per delivered record: Faust's streams track a delivered record inline, never through the consumer."""
        fill_gap(self._acked.get(tp), self._gap.get(tp))
        floor = self._released.get(tp)
        if floor is None:
            return super()._new_offset(tp)
        if floor in self._acked_index.get(tp, ()):
            del self._released[tp]
            log.info("%s:%d read again from %d and acknowledged: its commits go on", tp.topic, tp.partition, floor)
            return super()._new_offset(tp)
        acked = self._acked.get(tp)
        if not acked or min(acked) > floor:  # nothing acknowledged below it: nothing to commit, nothing taken out
            return None
        offset = super()._new_offset(tp)
        # the run Faust took out starts at or below the floor and reaches past it only through gaps: commit up to it
        return floor if offset is not None and offset > floor else offset

    async def on_partitions_assigned(self, assigned: Set[TP], generation_id: int = 0) -> None:
        """Faust's assignment; released records of partitions no longer this worker's are their new owner's."""
        self._released = {tp: offset for tp, offset in self._released.items() if tp in assigned}
        self._fetched_to.clear()  # the seek after the assignment puts each partition where it will
        self.assigned_in = getattr(self.app, "rebalancing_count", None)
        await super().on_partitions_assigned(assigned, generation_id)

    async def wait_first(self, *coros: WaitArgT, timeout: Seconds | None = None) -> WaitResults:
        """`Service.wait_first`, with a coroutine first in line run at once (`stream.eager`): the consumer's loop
        passes every record as `wait_first(on_message(record), flow_suspended.wait())`, and when `on_message`
        finishes without waiting the record costs no Task (the flow's wait, never started, is closed). One that
        waits goes on in a Task, raced against the others as before: a suspended flow still abandons it."""
        limit: dict[str, Seconds] = {} if timeout is None else {"timeout": timeout}  # mode types it not Optional
        head = coros[0] if coros else None
        if not isinstance(head, types.CoroutineType) or self.should_stop:
            return await super().wait_first(*coros, **limit)
        step = first_step(head)
        if step.rest is not None:
            return await super().wait_first(cast(WaitArgT, step.rest), *coros[1:], **limit)
        for other in coros[1:]:
            if isinstance(other, types.CoroutineType):
                other.close()
        if self.should_stop:  # stopped or crashed meanwhile: as `Service.wait_first` says it
            return WaitResults([], [], True)
        return WaitResults([head], [step.result], False)

    def _new_consumer_thread(self) -> ConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def _getmany(self, active_partitions: set[TP] | None, timeout: float) -> Any:
        """Faust's fetch, except that a fetch that comes back while the flow is stopped is handed back (`unfetch`):
        nothing, and its partitions read again from its first records. Faust drops such a fetch and seeks back only
        partitions with a committed offset (never a changelog's). Checked here, with no await before Faust checks
        the flow again, so a fetch is either delivered or handed back, never dropped. Offsets a delivered fetch
        passes over without a record are taken as skipped (`unserved`)."""
        records = await super()._getmany(active_partitions, timeout)
        if records and self.flow_active:
            for tp, start, end in unserved(records, self._fetched_to, self.app.topics.acks_enabled_for):
                # rare (a broker that counted offsets it never served) and what a lost record would look like: said
                log.info("%s:%d offsets %d-%d passed over by the fetch, taken as skipped", tp.topic, tp.partition,
                         start, end)
                await self._add_gap(tp, start, end)  # facts of the log, whether this fetch is delivered or not
        if records and not self.flow_active:
            thread = cast(ConsumerThread, self._thread)
            await thread.call_thread(unfetch, thread._ensure_consumer(), records)
            return {}
        return records


class Transport(faust_aiokafka.Transport):
    """Faust's aiokafka transport with `Consumer` above; the producer is unchanged."""

    Consumer = Consumer


def register_transport(scheme: str = TRANSPORT_SCHEME) -> None:
    """Make `scheme://host:port` broker URLs select `Transport` (idempotent)."""
    drivers.TRANSPORTS[scheme] = f"{__name__}:Transport"


register_transport()
