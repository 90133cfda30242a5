"""The Stage contract, and the one place where the worker's stages are assembled and run.

A stage is one consumer of one topic: it decodes a batch, hands it to the function of `correlator/` that
decides (the engine, the Grouper, triage and the SLA policy), publishes what comes out, and keeps its state in
changelog-backed stores written by a `stream.checkpoint.Checkpointer`, in the one crash-safe order that module
describes. Everything else is the same for every stage and lives here, in `StageRunner`: the agent loop
(`take_events`), the dead-letter guard (`stream.deadletters.DeadLetters.guarded`: bad records are refused one by
one, a batch is acknowledged only when handled whole), the idle/SLA timer, revoked partitions, the stop hook,
and the retry of a batch that fails as a whole.

How a stage plugs in (the next one, notify, included): write a class with the attributes and methods of
`Stage` below, its decisions as pure functions in `correlator/` and its stores as `CheckpointStore`s; checkpoint
through a `Checkpointer` (`run` for input held across batches, as stages 1 and 2 do; `commit` for a stage that
writes per batch and sends what its state decided after it, through the stores' outbox, as the desk does);
then add it to the list in `stream.worker.build_worker_app`. Nothing of the commit order is written again.

A batch that fails as a whole (the broker refuses the output or the state; not one bad record, which is
dead-lettered) is retried in the running worker, with backoff (0.1 s doubling to 5 s,
`aiops_batch_retries_total{agent}`): the stage's `rollback` forgets the state it folded since its last
checkpoint (rebuilt from its table, and rewritten whole at the next checkpoint) and returns the input to fold
again (what it held since that checkpoint, then the failed batch), folded as two batches in that order.
Refolded input regenerates the same output (same ids, same seq; but two batches where the first fold had more
can give a seq other content, which readers drop: hop42, not fixed) and is deduplicated by the stores' progress
and keys as after a crash; a dead letter already sent for a record is not sent again; the input metrics of a
fold (`stream.tally`) count only when it succeeds, and not at all for the held input folded again, so each
record counts once. Only a stopping worker, or one rebalancing before the rebalance's seek, gives up (Faust waits
for every message it handed out): the input stays unacknowledged and the partition's next owner reads it again, and
the failure ends that fold or tick, never the worker (a timer's exception would crash the app): one rule for
both, `StageRunner._undo`.
"""

from __future__ import annotations

import asyncio
import logging
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

from faust.types import EventT, TopicT

from correlator import metrics
from stream.app import App
from stream.batches import MAX_RECORD_BYTES
from stream.checkpoint import Checkpointer
from stream.consumer import sought
from stream.deadletters import DeadLetters, first_offsets
from stream.tally import tallied

__all__ = ["Folding", "GroupAbsent", "HeldUntilCheckpoint", "PerBatch", "Stage", "StageRunner", "StageSpec"]

log = logging.getLogger(__name__)

BACKOFF_S, MAX_BACKOFF_S = 0.1, 5.0
HOLD_POLL_S = 0.5
"""How often a held batch asks whether the worker may page again, or must give it up."""


@dataclass(frozen=True, slots=True)
class StageSpec:
    """How the runner drives a stage's agent: its name, its batches, its record bound and its timer."""

    name: str
    """The agent's name: label of its metrics and of the dead letters it sends."""
    batch_size: int
    within_s: float
    """At most `batch_size` records per batch, or what arrived within `within_s`."""
    max_record_bytes: int = MAX_RECORD_BYTES
    """Records larger than this are dead-lettered before the fold (`record_too_large`); 0: no bound. By default
    what one record a stage writes may carry, since every stage but normalize stores or sends on what it reads."""
    tick_s: float | None = None
    """Seconds between `tick` calls; None: no timer."""
    pages: bool = False
    """The stage decides pages: its batches wait unread and its timer skips while the worker may not page
    (`StageRunner.trusted`: outside its consumer group, `stream.membership`)."""


class Stage(Protocol):
    """What the runner needs of a stage: what it consumes, how it folds a batch, and how it undoes one."""

    @property
    def spec(self) -> StageSpec:
        """Name, batches, record bound, timer."""
        ...

    @property
    def source(self) -> TopicT:
        """The topic it consumes (bytes keys and values)."""
        ...

    async def fold(self, events: Sequence[EventT[Any]]) -> None:
        """Decode the batch (refusing bad records to the dead-letter topic), let `correlator/` decide, publish
        the output, and checkpoint if one is due."""
        ...

    def rollback(self, failed: Sequence[EventT[Any]]) -> list[EventT[Any]]:
        """After a failed fold or tick: forget what was folded since the last checkpoint; the input to fold again,
        in order (the input held since then, then `failed`)."""
        ...

    def held(self) -> Sequence[EventT[Any]]:
        """Input folded and not yet acknowledged (held for the next checkpoint)."""
        ...

    async def tick(self) -> None:
        """Timer work (idle steps, SLA checks), then a checkpoint if one is due."""
        ...

    def drop(self, partitions: set[int]) -> None:
        """Forget the in-memory state of revoked partitions of `source` (it lives on in the changelog)."""
        ...

    async def stop(self) -> None:
        """The app stops: checkpoint what is held (always due then)."""
        ...


class PerBatch:
    """Defaults of a stage that holds no input across batches (each batch is its own checkpoint)."""

    def rollback(self, failed: Sequence[EventT[Any]]) -> list[EventT[Any]]:
        """Nothing held: the failed batch again."""
        return list(failed)

    def held(self) -> Sequence[EventT[Any]]:
        """Nothing held."""
        return ()

    async def tick(self) -> None:
        """No timer work of its own."""

    def drop(self, partitions: set[int]) -> None:
        """No state per partition."""

    async def stop(self) -> None:
        """Nothing held to write."""


class Folding(Protocol):
    """The shared state of a stage whose input is held until a checkpoint (`Pipeline`, `Stage2`)."""

    @property
    def checkpoints(self) -> Checkpointer:
        """Its output, held input and checkpoint clock."""
        ...

    def rollback(self, failed: Sequence[EventT[Any]]) -> list[EventT[Any]]:
        """Rebuild the state from the table; the input to fold again."""
        ...

    def drop(self, partitions: Iterable[int]) -> None:
        """Forget revoked partitions."""
        ...


class HeldUntilCheckpoint:
    """Defaults of a stage whose input is held by its `Checkpointer` until the next checkpoint (stages 1 and 2)."""

    @property
    def state(self) -> Folding:
        """The shared state the stage folds into."""
        raise NotImplementedError

    def rollback(self, failed: Sequence[EventT[Any]]) -> list[EventT[Any]]:
        """The state's rollback (`Pipeline.rollback`, `Stage2.rollback`)."""
        return self.state.rollback(failed)

    def held(self) -> Sequence[EventT[Any]]:
        """Input folded since the last checkpoint."""
        return self.state.checkpoints.held

    def drop(self, partitions: set[int]) -> None:
        """The state forgets revoked partitions."""
        self.state.drop(partitions)

    async def stop(self) -> None:
        """The last checkpoint (always due when the app stops and something is held)."""
        await self.state.checkpoints.if_due()


class GroupAbsent(Exception):
    """A held batch of a stage that decides pages given up: the worker stops or rebalances while outside its group."""


def _always() -> bool:
    return True


@dataclass
class StageRunner:
    """Runs stages on one app: their agents, timers, revocations and stop hooks, and the retry of failed batches."""

    app: App
    letters: DeadLetters
    backoff_s: float = BACKOFF_S
    trusted: Callable[[], bool] = _always
    """Whether the worker may decide pages now (`stream.membership.GroupWatch.trusted`): asked for the stages whose
    `spec.pages` says they do."""

    def install(self, stage: Stage) -> None:
        """Add the stage's agent, timer, revocation handler and stop hook to the app."""
        lock = asyncio.Lock()  # a fold, a tick and the stop hook never interleave, and a retry waits for neither
        topic, spec = str(stage.source.get_topic_name()), stage.spec

        @self.app.agent(stage.source, name=spec.name)
        async def agent(stream: Any) -> None:
            async for events in stream.take_events(spec.batch_size, within=spec.within_s):
                await self.letters.guarded(spec.name, events, partial(self.fold, stage, lock), spec.max_record_bytes)

        if spec.tick_s is not None:
            async def timer() -> None:
                await self.tick(stage, lock)

            self.app.timer(interval=spec.tick_s, name=f"{spec.name}_tick")(timer)

        async def on_revoked(app: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
            revoked = args[0] if args else kwargs.get("revoked", ())
            stage.drop({tp.partition for tp in revoked if tp.topic == topic})

        self.app.on_partitions_revoked.connect(on_revoked)

        self.app.stop_hooks.append(partial(self.stop, stage, lock))

    async def fold(self, stage: Stage, lock: asyncio.Lock, events: Sequence[EventT[Any]],
                   counted: Sequence[EventT[Any]] = ()) -> None:
        """Fold a batch; if it fails as a whole, roll the stage back and fold again with backoff until it works.

        `counted` is input to fold first whose metrics were counted before (a failed tick's held input). The
        metrics a fold counts (`stream.tally`) apply only when it succeeds, and a refold of input already counted
        counts nothing, so each record counts once however often it is folded."""
        if stage.spec.pages and events:
            await self._until_trusted(stage, events)
        again, attempt = list(counted), events
        delay = self.backoff_s
        while True:
            async with lock:
                try:
                    if again:
                        with tallied(counting=False):
                            await stage.fold(again)
                    if attempt:
                        with tallied():
                            await stage.fold(attempt)
                except Exception as exc:  # noqa: BLE001 - a batch failed whole: undone and retried, never skipped
                    replay = self._undo(stage, events, exc, delay)
                    if replay is None:  # given up: `DeadLetters.guarded` leaves the batch unacknowledged
                        raise
                    again, attempt = _counted_first(replay, events)
                else:
                    return
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_BACKOFF_S)

    async def _until_trusted(self, stage: Stage, events: Sequence[EventT[Any]]) -> None:
        """Hold a batch of a stage that decides pages while the worker may not page: wait until it may, or give the
        batch up unacknowledged (`GroupAbsent`; `DeadLetters.guarded` releases it) when the worker stops or a
        rebalance begins: whoever owns its partitions after it, this worker included, reads it again. Never
        folded on a state this worker may no longer own, never dropped."""
        if self.trusted():
            return
        name = stage.spec.name
        log.warning("%s: holding %d records (%s) while this worker is outside its consumer group", name, len(events),
                    first_offsets(e.message for e in events))
        while not self.trusted():
            if self._giving_up():
                raise GroupAbsent(f"{name}: {len(events)} records held outside the consumer group, left for their "
                                  "partitions' owner after the rebalance")
            await asyncio.sleep(HOLD_POLL_S)
        log.warning("%s: folding %d held records: this worker is back in its consumer group", name, len(events))

    async def tick(self, stage: Stage, lock: asyncio.Lock) -> None:
        """The stage's timer work; if it fails, the stage is rolled back and its held input folded again. A stage
        that decides pages skips it while the worker may not page."""
        if stage.spec.pages and not self.trusted():
            return
        async with lock:
            try:
                await stage.tick()
                return
            except Exception as exc:  # noqa: BLE001 - as a failed batch: undone, its held input folded again
                replay = self._undo(stage, [], exc, self.backoff_s)
                if replay is None:  # given up: raising would end the timer, and Faust crashes the app for it
                    return
        await asyncio.sleep(self.backoff_s)
        if replay:
            try:
                await self.fold(stage, lock, [], counted=replay)
            except Exception:  # noqa: BLE001 - given up (`_undo`: released, logged); the timer must go on
                return

    async def stop(self, stage: Stage, lock: asyncio.Lock) -> None:
        """The stop hook: the stage's last checkpoint, after any fold in progress."""
        async with lock:
            await stage.stop()

    def _giving_up(self) -> bool:
        """Stopping, or rebalancing before the rebalance's seek after its assignment (`stream.consumer.sought`):
        Faust waits for every message it handed out, so a retry would stall it, and the seek reads the released
        input again.

        After the seek (`rebalancing` stays set until Faust's recovery ends) nothing waits for the messages, and
        nothing would read released input of a partition this worker keeps again: the batch is retried as outside
        a rebalance. Seen in the chaos soak: stage 2's fold refused by a broker restarted empty 3 ms after the
        seek, its routing records released and never read again (`tests/test_stages.py`)."""
        if self.app.should_stop:
            return True
        return bool(getattr(self.app, "rebalancing", False)) and not sought(self.app)

    def _undo(self, stage: Stage, failed: Sequence[EventT[Any]], exc: Exception,
              delay: float) -> list[EventT[Any]] | None:
        """After a failed fold or tick: roll the stage back; the input to fold again, or None if the worker gives
        up (stopping or rebalancing).

        The one rule for both: given up, the rolled-back input is released unacknowledged (never lost: the
        consumer commits no offset past it, `stream.consumer.Consumer.release`, and whoever owns its partitions
        after the rebalance, this worker included, seeks to the committed offsets and reads it again), and the
        failure ends that fold or tick, never the worker (a timer's exception would crash the app, and a retry
        would stall the rebalance)."""
        replay = stage.rollback(failed)
        name, offsets = stage.spec.name, first_offsets(e.message for e in replay)
        given_up = self._giving_up()
        if given_up:
            self.letters.release(e.message for e in replay)
            log.warning("%s: a fold or tick failed while the worker stops or rebalances (%r); rolled back, %d "
                        "records left unacknowledged for their partitions' next owner (%s)", name, exc, len(replay),
                        offsets)
        else:
            metrics.BATCH_RETRIES.labels(name).inc()
            log.error("%s: batch failed as a whole (%r); rolled back, folding %d records again in %.1f s (%s)",
                      name, exc, len(replay), delay, offsets, exc_info=exc)
        if exc.__traceback__ is not None:  # its frames would keep the batch's messages alive
            traceback.clear_frames(exc.__traceback__)
        return None if given_up else replay


def _counted_first(replay: Sequence[EventT[Any]], failed: Sequence[EventT[Any]]) -> tuple[list[EventT[Any]],
                                                                                           list[EventT[Any]]]:
    """A rollback's input split in two, in order: what earlier folds counted (held before `failed`, whose
    folds succeeded), then the records of `failed` (its fold's counts were dropped)."""
    failing = {id(e.message) for e in failed}
    return ([e for e in replay if id(e.message) not in failing], [e for e in replay if id(e.message) in failing])
