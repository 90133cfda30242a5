"""Broker faults: notice the broker going and coming back, re-create what it lost, resume the agents in process.

What happens without this module, measured on the embedded Tansu 0.6.0 (memory storage) under a live worker
(faust-streaming 0.15.3, aiokafka 0.14):

- Broker down: every client retries on its own; the ingest's sends fail after `ingest_send_timeout` (503).
- Broker back: it is empty (no topics, no committed offsets, no groups). aiokafka reconnects, the group
  coordinator no longer knows the member and the consumer rejoins at once, on partitions of topics that no
  longer exist; its commits then fail with UnknownTopicOrPartition for as long as the process lives, and
  nothing re-creates the topics. Tansu still acknowledges produce requests for the missing topics, so the
  ingest answered 202 for bodies that no agent would ever read.
- Topics re-created by someone else: the agents resume only if a rebalance follows, because Faust drops
  every record whose offset is below the last one it read on that partition (`Consumer._drain_messages`),
  and a re-created topic starts again at offset 0; a rebalance (every partition revoked, then assigned)
  resets those offsets and seeks to the group's committed offsets (none: the topic's start).

So every `broker_check_interval` the `BrokerWatch` asks the broker for its topics and feeds what it saw to
`Recovery`, the rule (pure: no I/O, the worker's rebalance count passed in): topics this process creates
(the pipeline's, from `Settings.topic_plan`, and Faust's internal ones: changelogs, the assignor's leader
topic) that are missing are re-created (`recreate_topics`), the `on_loss` hooks run (the pipeline forgets
`alerts.raw` offsets, which start again at 0, and rewrites its state to the new changelog), then the
consumer is asked to rejoin its group, and readiness stays false, with the reason, until a rebalance that
began after that request has finished. `Recovery.reasons` is one of `/readyz`'s checks, so the ingest's
gate answers 503 for as long (never a 202 for a body that cannot reach correlation).

Several workers share a group, and only the first to look sees the topics missing: it re-creates them, and the
others find them all there. So every worker of the agents also reads the broker's epoch for the app, the first
record of `<app_id>-broker-epoch` (`Probe.epoch`; written by the first worker to find the topic empty, so every
worker reads the same one): another epoch than the one it saw before is the same loss, with the same hooks, rejoin
and readiness. Without it such a worker kept its old offsets: its engines skipped the records of the re-created
`alerts` below the ones they had applied, and its consumer committed, for the new partitions, the old offsets of
records it acknowledged after the rebalance (the agents hold records until their checkpoint), so the seek skipped
every record below them (seen: a worker that correlated none of its partitions' new alerts). At a loss the consumer
forgets those offsets and acknowledgements (`stream.consumer.forget_read_offsets`), sends no commit while it is no
member of its group (`stream.consumer.ConsumerThread._commit`: the coordinator that forgot the member took such a
commit of old offsets as an outside one), and the check also runs as every rebalance begins
(`BrokerWatch.before_rebalance`): a broker restart makes every member rejoin at once, and the hooks must run before
the new member's first commit. Nor does the consumer commit while the watch's last confirmation of the epoch is
stale (`BrokerWatch.commit_allowed`): a worker stopped (SIGSTOP, a long pause) across a broker restart ran its overdue
commit as it resumed, before its first probe saw the new epoch, and the new broker took the old offsets from a member
it no longer knew (seen: the held worker's stage-2 routing partitions never read their new records). What is left: a
worker that cannot reach the broker at that moment sees the loss only at its next probe.

Two ways a broker restart stopped a worker, closed here: at a loss, Faust's table recovery forgets how far it read
the lost changelogs (`forget_changelog_offsets`; the next recovery compared it with the shorter new changelog and
crashed the worker, `stream.app` also turns that check off), and every check takes an error that stopped the
consumer's group coordination, which Faust never reads (`stream.consumer.take_group_error`): the join then goes on,
where it used to stop for good after "Elected group leader". While the agents wait for an assignment, `/readyz`
says where the group stands (`stream.consumer.group_state`).

What a broker restart loses is whatever only the broker held: with the embedded broker, every record on
every topic (raw alerts not yet correlated, incident events not yet read by a consumer, dead letters,
committed offsets and the changelogs). The worker's in-memory state (open incidents, SLA clocks) survives
and the correlation state is written again to the new changelog; a durable Kafka cluster loses nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.client import AIOKafkaClient
from mode import Service

from correlator import metrics
from stream.app import App
from stream.broker import create_topics
from stream.consumer import describe_coordination, forget_read_offsets, group_state, request_rejoin, take_group_error
from stream.ingest import Ingest, ReadyState
from stream.restore_watch import RestoreWatch
from stream.security import client_options
from stream.settings import Settings
from stream.topics import BROKER_EPOCH, internal_topic_name
from stream.topics import topic_specs as planned_topics

__all__ = ["BrokerWatch", "Probe", "Recovery", "Step", "TopicSpec", "forget_changelog_offsets", "install_recovery",
           "topic_specs"]

log = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 2.0
REJOIN_RETRY_S = 15.0
"""A requested rejoin that started no rebalance within this long is requested again."""

LossHook = Callable[[], None]

STARTING = ("agents starting: no partition assignment finished yet",)
REJOINING = ("agents rejoining their group after the broker lost its topics",)


@dataclass(frozen=True)
class TopicSpec:
    """A topic this process creates: partitions and topic configs."""

    partitions: int
    config: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Probe:
    """One look at the broker: whether it answered (and if not, why), and the topic names it holds."""

    reachable: bool
    topics: frozenset[str] = frozenset()
    error: str = ""
    epoch: str | None = None
    """The broker's epoch for this app: the first record of its epoch topic (None: not read)."""


@dataclass(frozen=True)
class Step:
    """What to do after a probe: topics to create, whether to ask the consumer to rejoin, whether the loss
    hooks run now (and what showed the loss, in words), and the reasons the worker is not ready (empty: ready)."""

    create: tuple[str, ...] = ()
    rejoin: bool = False
    lost: bool = False
    reasons: tuple[str, ...] = ()
    loss: str = ""


class Recovery:
    """The recovery rule between probes (see the module docstring); pure, time and rebalance count passed in.

    `agents` is False for `--role ingest`, which has no consumer to resume.
    """

    def __init__(self, wanted: Sequence[str], *, recreate: bool, agents: bool) -> None:
        self.wanted = sorted(wanted)
        self.recreate = recreate
        self.agents = agents
        self.lost = False
        """Topics went missing since the agents last resumed."""
        self.rejoin_from: int | None = None
        """The rebalance count when the rejoin was requested: a later, finished rebalance is the resumption."""
        self.rejoin_at = 0.0
        self.started = False
        self.complete = False
        """A probe has seen every wanted topic: from then on a missing one was lost, not yet to be created."""
        self.reasons: tuple[str, ...] = ("no broker check yet",)
        self.losses = 0
        self.epoch: str | None = None
        """The broker epoch this worker last saw: another one means the broker lost every topic since."""

    def observe(self, probe: Probe, rebalances: int, rebalancing: bool, now: float) -> Step:
        """The step after one probe, given Faust's rebalance count and whether a rebalance is under way."""
        step = self._step(probe, rebalances, rebalancing, now)
        self.reasons = step.reasons
        return step

    def _step(self, probe: Probe, rebalances: int, rebalancing: bool, now: float) -> Step:
        if not probe.reachable:
            return Step(reasons=("broker unreachable",))  # the words of the ingest's broker check: shown once
        missing = tuple(t for t in self.wanted if t not in probe.topics)
        if missing and not self.complete:  # starting: Faust declares its internal topics as its tables start
            return Step(create=missing if self.recreate else (),
                        reasons=(f"topics missing on the broker: {', '.join(missing)}",))
        self.complete = True
        if missing:
            first = not self.lost
            self.lost, self.rejoin_from = True, None
            self.losses += first
            self.epoch = None  # the next epoch seen is the new broker's, whoever writes it
            action = "re-creating them" if self.recreate else "re-creation is off (recreate_topics): create them"
            reason = f"broker lost {len(missing)} topics ({', '.join(missing)}); {action}"
            return Step(create=missing if self.recreate else (), lost=first, reasons=(reason,), loss=reason)
        if self._new_epoch(probe.epoch):
            self.lost, self.rejoin_from = True, None
            self.losses += 1
            return replace(self._resume(rebalances, rebalancing, now), lost=True, loss=(
                "broker lost every topic since the last check: its epoch changed (another process re-created the "
                "topics before this worker saw them missing)"))
        if self.lost:
            return self._resume(rebalances, rebalancing, now)
        if self.agents and not self.started:
            if not self._finished(rebalances, rebalancing):
                return Step(reasons=STARTING)
            self.started = True
        return Step()

    def _new_epoch(self, epoch: str | None) -> bool:
        """Whether `epoch` (None: not read) shows a loss this worker has not handled: it differs from the one seen
        before, outside a loss already under way (whose re-created epoch topic is written after the loss was seen)."""
        if epoch is None:
            return False
        known, self.epoch = self.epoch, epoch
        return known is not None and known != epoch and not self.lost

    def _finished(self, rebalances: int, rebalancing: bool) -> bool:
        """Whether the agents' start-up, or their resumption after a loss, is over: a rebalance (begun after the
        rejoin request, for a resumption) has ended."""
        if rebalancing:
            return False
        if self.lost:
            return self.rejoin_from is not None and rebalances > self.rejoin_from
        return rebalances > 0

    def _resume(self, rebalances: int, rebalancing: bool, now: float) -> Step:
        """Every topic is back: the agents resume with the first rebalance that ends after that.

        A rebalance already under way counts (it revoked every partition when it began, and an assignment
        computed before the topics existed makes aiokafka rejoin again on the metadata change); asking for a
        rejoin inside it would be lost, since aiokafka clears the request when the join completes.
        """
        if not self.agents:
            self.lost = False
            return Step()
        waiting = Step(reasons=REJOINING)
        if self.rejoin_from is None:
            self.rejoin_at = now
            self.rejoin_from = rebalances - 1 if rebalancing else rebalances
            return waiting if rebalancing else replace(waiting, rejoin=True)
        if self._finished(rebalances, rebalancing):
            self.lost, self.rejoin_from, self.started = False, None, True
            return Step()
        if not rebalancing and now - self.rejoin_at > REJOIN_RETRY_S:  # the request started no rebalance
            self.rejoin_at, self.rejoin_from = now, rebalances
            return replace(waiting, rejoin=True)
        return waiting

    def check(self, rebalances: int, rebalancing: bool) -> list[str]:
        """The reasons now (empty: ready): the last probe's, except that a start-up or resumption that a rebalance
        finished since is over at once (a probe is up to an interval old; readiness must not lag the agents)."""
        if self.reasons in (STARTING, REJOINING) and self._finished(rebalances, rebalancing):
            self.lost, self.rejoin_from, self.started = False, None, True
            self.reasons = ()
        return list(self.reasons)


def topic_specs(app: App, settings: Settings, *, epoch: str | None = None) -> dict[str, TopicSpec]:
    """Every topic this process creates: the pipeline's (as `ensure_topics` does), Faust's internal ones and the
    `epoch` topic if named."""
    specs = {name: TopicSpec(partitions) for name, partitions in settings.topic_plan().items()}
    if epoch is not None:
        spec = next(s for s in planned_topics(settings) if s.name == epoch)
        specs[epoch] = TopicSpec(spec.partitions, spec.config)
    channels: list[Any] = [c for c in app.topics if getattr(c, "internal", False)]
    channels += [table.changelog_topic for table in app.tables.values()]
    for channel in channels:
        config = {str(k): str(v) for k, v in (channel.config or {}).items()}
        if channel.compacting:
            config["cleanup.policy"] = "compact"
        for name in channel.topics:
            specs.setdefault(name, TopicSpec(channel.partitions or app.conf.topic_partitions, config))
    return specs


class BrokerWatch(Service):
    """Probes the broker every `broker_check_interval` and carries out `Recovery`'s steps."""

    def __init__(self, app: App, settings: Settings, *, agents: bool,
                 on_loss: Sequence[LossHook] = (), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.app = app
        self.settings = settings
        self.agents = agents
        self.on_loss = list(on_loss)
        self.recovery = Recovery(list(settings.topic_plan()), recreate=settings.recreate_topics, agents=agents)
        self.epoch_topic = internal_topic_name(settings, BROKER_EPOCH) if agents and settings.broker_epoch else None
        """Only the agents' workers read it: they hold the offsets a loss makes wrong."""
        self._client: AIOKafkaClient | None = None
        self._epoch_reader: AIOKafkaConsumer | None = None
        self._lock = asyncio.Lock()
        """One probe and its step at a time: the periodic one and the one at the start of a rebalance."""
        self._rejoins = 0
        """Rejoins asked since the last loss: from the second on, the log says where the coordination waits."""
        self.confirmed_at: float | None = None
        """When (monotonic) a probe last read the broker's epoch and handled any loss it showed (None: never)."""
        self.answered = True
        """Whether the last probe was answered (`stream.membership`: an absence from the group counts towards a
        restart only while the broker answers)."""

    async def check(self) -> ReadyState:
        """The watch's part of /readyz (an `Ingest.checks` entry): the reasons of its last step, and while the agents
        wait for a partition assignment, where the consumer's group membership stands (what it waits on)."""
        reasons = tuple(self.recovery.check(*self._rebalances()))
        if reasons in (STARTING, REJOINING):
            reasons += (f"consumer group: {group_state(self.app.consumer)}",)
        return ReadyState(not reasons, {"broker_losses": self.recovery.losses}, reasons)

    def _rebalances(self) -> tuple[int, bool]:
        """Faust's rebalance count (it counts each one as it begins) and whether one is under way."""
        return int(getattr(self.app, "rebalancing_count", 0)), bool(getattr(self.app, "rebalancing", False))

    def commit_allowed(self) -> bool:
        """Whether the consumer may commit offsets now: always without an epoch to read, else only while a probe
        confirmed the epoch (and handled a loss it showed) lately (`commit_fresh`). Called from the
        consumer's thread (it reads one float)."""
        if self.epoch_topic is None:
            return True
        return commit_fresh(self.confirmed_at, time.monotonic(), self.settings.broker_check_interval)

    async def on_start(self) -> None:
        """Check for a loss at the start of every rebalance too (`before_rebalance`)."""
        self.app.on_partitions_revoked.connect(self.before_rebalance)

    async def on_stop(self) -> None:
        """Close the probe's clients."""
        self.app.on_partitions_revoked.disconnect(self.before_rebalance)
        client, self._client = self._client, None
        if client is not None:
            await client.close()
        await self._close_epoch_reader()

    async def before_rebalance(self, sender: Any, /, *args: Any, signal: Any = None, **_: Any) -> None:
        """A probe and its loss hooks as a rebalance begins, before its table recovery and before the agents read a
        record of the new assignment: a broker restart makes every member rejoin at once, and a worker whose periodic
        probe came after the rejoin would apply records of the re-created topics against its old offsets (skipping
        the ones below them) until that probe. No rejoin is asked here (one is under way), and nothing here calls
        into the consumer's thread, which waits for this signal."""
        try:
            await self.check_once(in_rebalance=True)
        except Exception:  # the rebalance must go on; the periodic probe retries
            log.exception("broker check at the start of a rebalance failed")

    @Service.task
    async def _watch(self) -> None:
        while not self.should_stop:
            try:
                await self.check_once()
            except Exception:  # the watch must outlive any one failed step; the next probe retries it
                log.exception("broker watch step failed")
            await self.sleep(self.settings.broker_check_interval)

    async def check_once(self, *, in_rebalance: bool = False) -> Step:
        """One probe and the step it calls for (`in_rebalance`: called as a rebalance begins, so no rejoin and no
        call into the consumer's thread)."""
        async with self._lock:
            return await self._check(in_rebalance)

    async def _check(self, in_rebalance: bool) -> Step:
        specs = topic_specs(self.app, self.settings, epoch=self.epoch_topic)
        self.recovery.wanted = sorted(specs)  # tables declare their changelogs as they start
        probe = await self._probe()
        self.answered = probe.reachable
        step = self.recovery.observe(probe, *self._rebalances(), time.monotonic())
        if step.lost:
            log.warning("%s", step.loss)
            metrics.BROKER_RECOVERIES.labels("topics_lost").inc()
            tables: Any = self.app.tables  # Faust types it as TableManagerT, which does not name its recovery
            forget_changelog_offsets(tables.recovery, list(specs))  # every topic was lost, re-created or not
            forget_read_offsets(self.app.consumer)
            for hook in self.on_loss:
                hook()
        if probe.epoch is not None:
            self.confirmed_at = time.monotonic()
        if step.create:
            await self._create({name: specs[name] for name in step.create})
        if in_rebalance:
            return step
        if step.lost:
            self._rejoins = 0
        if step.rejoin:
            self._rejoins += 1
            # a request again: the last one started no rebalance, so say where aiokafka's coordination waits
            waits = await self.coordination_waits() if self._rejoins > 1 else ""
            log.warning("asking the consumer to rejoin its group, so the agents resume on the re-created topics "
                        "(consumer group: %s)%s", group_state(self.app.consumer), f"; it waits in: {waits}" if waits else "")
            metrics.BROKER_RECOVERIES.labels("rejoin").inc()
            await request_rejoin(self.app.consumer)
        if self.agents:  # last: a failure here must not hold back the steps above
            await self._resume_group()
        return step

    async def coordination_waits(self) -> str:
        """`describe_coordination`, bounded: a consumer thread that does not answer is itself the answer (also the
        group watch's last line before a restart, `stream.membership`)."""
        try:
            return await asyncio.wait_for(describe_coordination(self.app.consumer), PROBE_TIMEOUT_S)
        except TimeoutError:
            return f"the consumer's thread did not answer within {PROBE_TIMEOUT_S:g} s"

    async def _resume_group(self) -> None:
        """Take an error that stopped the consumer's group coordination (which Faust never reads), so it goes on."""
        error = await take_group_error(self.app.consumer)
        if error is not None:
            log.error("the consumer's group coordination had stopped on %r (no partition assignment until someone "
                      "reads it, and Faust never does): resuming it", error)
            metrics.BROKER_RECOVERIES.labels("group_error").inc()

    async def _probe(self) -> Probe:
        try:
            if self._client is None:
                client = AIOKafkaClient(bootstrap_servers=self.settings.bootstrap_servers,
                                        request_timeout_ms=int(PROBE_TIMEOUT_S * 1000),
                                        **client_options(self.settings))
                try:
                    await asyncio.wait_for(client.bootstrap(), PROBE_TIMEOUT_S)
                except BaseException:
                    await client.close()
                    raise
                self._client = client
            cluster = await asyncio.wait_for(self._client.fetch_all_metadata(), PROBE_TIMEOUT_S)
        except Exception as exc:  # unreachable is an answer, not a failure of the watch
            return Probe(False, error=repr(exc))
        topics = frozenset(cluster.topics())
        if self.epoch_topic is None or self.epoch_topic not in topics:
            return Probe(True, topics)
        try:
            epoch = await self._epoch(self.epoch_topic)
        except Exception as exc:  # noqa: BLE001 - not read is an answer too (the rule changes nothing on it)
            log.warning("could not read the broker epoch from %s: %r", self.epoch_topic, exc)
            await self._close_epoch_reader()
            epoch = None
        return Probe(True, topics, epoch=epoch)

    async def _epoch(self, topic: str) -> str | None:
        """The first record of the epoch topic as `offset:value`, written first if the topic is empty (whoever writes
        first, every worker reads the same record); None when there is none yet."""
        tp = TopicPartition(topic, 0)
        reader = self._epoch_reader
        if reader is None:
            reader = AIOKafkaConsumer(bootstrap_servers=self.settings.bootstrap_servers, group_id=None,
                                      enable_auto_commit=False, fetch_max_wait_ms=50,
                                      request_timeout_ms=int(PROBE_TIMEOUT_S * 1000), **client_options(self.settings))
            await asyncio.wait_for(reader.start(), PROBE_TIMEOUT_S)
            self._epoch_reader = reader
            reader.assign([tp])
            reader.pause(tp)  # fetched only when asked, not prefetched for ever
        start = (await asyncio.wait_for(reader.beginning_offsets([tp]), PROBE_TIMEOUT_S))[tp]
        end = (await asyncio.wait_for(reader.end_offsets([tp]), PROBE_TIMEOUT_S))[tp]
        if end <= start:
            await asyncio.wait_for(self._write_epoch(topic), PROBE_TIMEOUT_S)
        reader.seek(tp, start)
        reader.resume(tp)
        try:
            batch = await reader.getmany(tp, timeout_ms=int(PROBE_TIMEOUT_S * 1000), max_records=1)
        finally:
            reader.pause(tp)
        records = batch.get(tp, [])
        if not records:
            return None
        value = records[0].value or b""
        return f"{records[0].offset}:{value.decode(errors='replace')}"

    async def _write_epoch(self, topic: str) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=self.settings.bootstrap_servers, acks="all",
                                    request_timeout_ms=int(PROBE_TIMEOUT_S * 1000), **client_options(self.settings))
        await producer.start()
        try:
            token = f"{self.settings.app_id} {uuid.uuid4().hex} {time.time():.3f}"
            await producer.send_and_wait(topic, token.encode(), partition=0)
        finally:
            await producer.stop()
        log.info("wrote a broker epoch to %s (it was empty)", topic)

    async def _close_epoch_reader(self) -> None:
        reader, self._epoch_reader = self._epoch_reader, None
        if reader is not None:
            await reader.stop()

    async def _create(self, specs: Mapping[str, TopicSpec]) -> None:
        created = await create_topics(
            self.settings.bootstrap_servers, {n: s.partitions for n, s in specs.items()},
            configs={n: s.config for n, s in specs.items()}, client_options=client_options(self.settings))
        if created:
            log.warning("re-created topics %s", ", ".join(sorted(created)))
            metrics.BROKER_RECOVERIES.labels("topics_created").inc(len(created))


def forget_changelog_offsets(recovery: Any, lost: Collection[str]) -> list[Any]:
    """Make Faust's table recovery forget how far it read the changelog partitions of `lost` topics; the ones forgotten.

    It keeps that offset, per changelog partition this worker keeps through a rebalance, and checks it against the
    changelog's end at the next one: against a changelog the broker lost and this worker re-created (now shorter),
    that check crashed the worker with `ConsistencyError` ("persisted offset ... higher than the highwater", seen
    on the second broker restart of a worker's life), and an offset within the new end would skip its first records.
    `revoke` is Faust's own forgetting of one partition (offsets and highwaters, active and standby).
    """
    tps = sorted({tp for offsets in (recovery.active_offsets, recovery.standby_offsets) for tp in offsets
                  if tp.topic in lost}, key=lambda tp: (tp.topic, tp.partition))
    for tp in tps:
        recovery.revoke(tp)
    if tps:
        log.info("table recovery forgets how far it read %d partitions of the lost changelogs", len(tps))
    return tps


def commit_fresh(confirmed_at: float | None, now: float, interval: float) -> bool:
    """Whether an epoch confirmed at `confirmed_at` (monotonic; None: never) still vouches for a commit at `now`: within
    three probe intervals (at least 2 s). A worker that was stopped, or starved, for longer must see a probe first."""
    return confirmed_at is not None and now - confirmed_at <= max(3 * interval, 2.0)


def install_recovery(app: App, settings: Settings, ingest: Ingest, *, agents: bool,
                     on_loss: Sequence[LossHook] = ()) -> BrokerWatch:
    """Run a `BrokerWatch` with the app and make its reasons part of `/readyz` (and so of the ingest's gate); with the
    agents, a `RestoreWatch` too (a rebalance that lasts too long names what its table recovery waits for)."""
    watch = BrokerWatch(app, settings, agents=agents, on_loss=on_loss)
    app.commit_gate = watch.commit_allowed  # type: ignore[attr-defined]  # read by stream.consumer.ConsumerThread
    app.add_dependency(watch)
    if agents:
        app.add_dependency(RestoreWatch(app))
    ingest.checks.append(watch.check)
    return watch

