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
again (what it held since that checkpoint, then the failed batch). Refolded input regenerates the same output
(same ids, same seq) and is deduplicated by the stores' progress and keys as after a crash; a dead letter
already sent for a record is not sent again. Only a stopping worker gives up: the batch stays unacknowledged
and the partition's next owner reads it again.
"""

from __future__ import annotations

import asyncio
import logging
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

from faust.types import EventT, TopicT

from correlator import metrics
from stream.app import App
from stream.deadletters import DeadLetters

__all__ = ["Stage", "StageRunner"]

log = logging.getLogger(__name__)

BACKOFF_S, MAX_BACKOFF_S = 0.1, 5.0


class Stage(Protocol):
    """What the runner needs of a stage: what it consumes, how it folds a batch, and how it undoes one."""

    name: str
    """The agent's name: label of its metrics and of the dead letters it sends."""
    @property
    def source(self) -> TopicT:
        """The topic it consumes (bytes keys and values)."""
        ...

    batch_size: int
    within_s: float
    """At most `batch_size` records per batch, or what arrived within `within_s`."""
    max_record_bytes: int
    """Records larger than this are dead-lettered before the fold (`record_too_large`); 0: no bound."""
    tick_s: float | None
    """Seconds between `tick` calls; None: no timer."""

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


@dataclass
class StageRunner:
    """Runs stages on one app: their agents, timers, revocations and stop hooks, and the retry of failed batches."""

    app: App
    letters: DeadLetters
    backoff_s: float = BACKOFF_S

    def install(self, stage: Stage) -> None:
        """Add the stage's agent, timer, revocation handler and stop hook to the app."""
        lock = asyncio.Lock()  # a fold, a tick and the stop hook never interleave, and a retry waits for neither
        topic = str(stage.source.get_topic_name())

        @self.app.agent(stage.source, name=stage.name)
        async def agent(stream: Any) -> None:
            async for events in stream.take_events(stage.batch_size, within=stage.within_s):
                await self.letters.guarded(stage.name, events, partial(self.fold, stage, lock),
                                           stage.max_record_bytes)

        if stage.tick_s is not None:
            async def timer() -> None:
                await self.tick(stage, lock)

            self.app.timer(interval=stage.tick_s, name=f"{stage.name}_tick")(timer)

        async def on_revoked(app: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
            revoked = args[0] if args else kwargs.get("revoked", ())
            stage.drop({tp.partition for tp in revoked if tp.topic == topic})

        self.app.on_partitions_revoked.connect(on_revoked)

        self.app.stop_hooks.append(partial(self.stop, stage, lock))

    async def fold(self, stage: Stage, lock: asyncio.Lock, events: Sequence[EventT[Any]]) -> None:
        """Fold a batch; if it fails as a whole, roll the stage back and fold again with backoff until it works."""
        attempt: Sequence[EventT[Any]] = events
        delay = self.backoff_s
        while True:
            async with lock:
                try:
                    await stage.fold(attempt)
                except Exception as exc:  # noqa: BLE001 - a batch failed whole: undone and retried, never skipped
                    if self.app.should_stop:
                        raise
                    attempt = stage.rollback(events)
                    self._failed(stage, attempt, exc, delay)
                else:
                    self.letters.forget(stage.name, keep=stage.held())
                    return
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_BACKOFF_S)

    async def tick(self, stage: Stage, lock: asyncio.Lock) -> None:
        """The stage's timer work; if it fails, the stage is rolled back and its held input folded again."""
        async with lock:
            try:
                await stage.tick()
                return
            except Exception as exc:  # noqa: BLE001 - as a failed batch: undone, its held input folded again
                if self.app.should_stop:
                    raise
                replay = stage.rollback([])
                self._failed(stage, replay, exc, self.backoff_s)
        await asyncio.sleep(self.backoff_s)
        if replay:
            await self.fold(stage, lock, replay)

    async def stop(self, stage: Stage, lock: asyncio.Lock) -> None:
        """The stop hook: the stage's last checkpoint, after any fold in progress."""
        async with lock:
            await stage.stop()

    def _failed(self, stage: Stage, replay: Sequence[EventT[Any]], exc: Exception, delay: float) -> None:
        metrics.BATCH_RETRIES.labels(stage.name).inc()
        spans = sorted({(e.message.topic, e.message.partition) for e in replay})
        first = {tp: min(e.message.offset for e in replay if (e.message.topic, e.message.partition) == tp)
                 for tp in spans}
        log.error("%s: batch failed as a whole (%r); rolled back, folding %d records again in %.1f s (%s)",
                  stage.name, exc, len(replay), delay, ", ".join(f"{t}:{p} from {o}" for (t, p), o in first.items()),
                  exc_info=exc)
        if exc.__traceback__ is not None:  # its frames would keep the batch's messages alive
            traceback.clear_frames(exc.__traceback__)
