"""The stage runner's retry of a batch that fails whole, with Faust's own app, consumer and messages (no broker:
the stage here writes no state; `test_pipeline.py` has the same on the broker with the real stages)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from faust.types import TopicT
from faust.types.tuples import Message
from prometheus_client import REGISTRY

from stream.app import make_app
from stream.checkpoint import Checkpointer
from stream.deadletters import DeadLetters
from stream.sends import SendFailed
from stream.settings import Settings
from stream.stages import StageRunner, StageSpec


@dataclass
class Flaky:
    """A stage holding its input until a checkpoint whose fold fails `fails` times."""

    checkpoints: Checkpointer
    fails: int = 0
    folds: list[list[int]] = field(default_factory=list)
    spec: StageSpec = StageSpec("flaky", 10, 0.0)

    @property
    def source(self) -> TopicT:
        raise NotImplementedError

    async def fold(self, events: Sequence[Any]) -> None:
        self.checkpoints.hold(events)
        self.folds.append([e.message.offset for e in events])
        if self.fails:
            self.fails -= 1
            raise SendFailed("record batch not delivered: broker down")

    def rollback(self, failed: Sequence[Any]) -> list[Any]:
        return self.checkpoints.rollback(failed)

    def held(self) -> Sequence[Any]:
        return self.checkpoints.held

    async def tick(self) -> None:
        pass

    def drop(self, partitions: set[int]) -> None:
        pass

    async def stop(self) -> None:
        pass


def test_a_failed_batch_is_folded_again_from_the_last_checkpoint_and_acknowledged_once(tmp_path: Path) -> None:
    app = make_app(Settings(data_dir=tmp_path))
    consumer = app.consumer
    messages = [Message("alerts", 0, offset, 0.0, 0, [], None, b"{}", None) for offset in range(3)]
    for message in messages:
        message.incref()  # what delivering it to the agent's stream does
        consumer.track_message(message)
    stage = Flaky(Checkpointer(app))
    runner = StageRunner(app, DeadLetters(app, "deadletter", 900_000, 65_536), backoff_s=0.001)
    before = REGISTRY.get_sample_value("aiops_batch_retries_total", {"agent": "flaky"}) or 0.0

    async def run() -> None:
        lock = asyncio.Lock()
        await runner.fold(stage, lock, [SimpleNamespace(message=m) for m in messages[:2]])
        stage.fails = 2  # the next batch's output is refused twice, then taken
        await runner.fold(stage, lock, [SimpleNamespace(message=messages[2])])
        await stage.checkpoints.run()

    asyncio.run(run())
    # each retry starts from the last checkpoint: the input held since then, then the failed batch
    assert stage.folds == [[0, 1], [2], [0, 1, 2], [0, 1, 2]]
    assert REGISTRY.get_sample_value("aiops_batch_retries_total", {"agent": "flaky"}) == before + 2
    assert [m.acked for m in messages] == [False, False, False]  # the stream still holds its reference
    for message in messages:
        message.ack(consumer)  # what Faust's take_events does once the agent's loop moves on
    assert [m.acked for m in messages] == [True, True, True]  # the checkpoint let go of exactly one each
