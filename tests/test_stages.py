"""The stage runner's retry of a batch that fails whole, with Faust's own app, consumer and messages (no broker:
the stage here writes no state; `test_pipeline.py` has the same on the broker with the real stages)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from faust.types import TP, TopicT
from faust.types.tuples import ConsumerMessage, Message
from prometheus_client import REGISTRY, Counter
from pydantic import BaseModel

from stream import sends, tally
from stream.app import make_app
from stream.checkpoint import Checkpointer
from stream.deadletters import DeadLetters
from stream.docstore import DocStore
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
    records_read: Counter = field(default_factory=lambda: Counter("flaky_records_read", "", registry=None))
    tick_fails: int = 0
    ticks: int = 0
    topic: TopicT | None = None
    failing: Callable[[], None] = lambda: None
    """Called as a fold fails (the app starts rebalancing)."""

    @property
    def source(self) -> TopicT:
        if self.topic is None:
            raise NotImplementedError
        return self.topic

    async def fold(self, events: Sequence[Any]) -> None:
        self.checkpoints.hold(events)
        self.folds.append([e.message.offset for e in events])
        tally.inc(self.records_read, len(events))  # an input metric, as normalize and correlate count theirs
        if self.fails:
            self.fails -= 1
            self.failing()
            raise SendFailed("record batch not delivered: broker down")

    def rollback(self, failed: Sequence[Any]) -> list[Any]:
        return self.checkpoints.rollback(failed)

    def held(self) -> Sequence[Any]:
        return self.checkpoints.held

    async def tick(self) -> None:
        self.ticks += 1
        if self.tick_fails:
            self.tick_fails -= 1
            raise SendFailed("checkpoint not delivered: broker down")

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
    # each retry starts from the last checkpoint: the input held since then (folded, and counted, before), then
    # the failed batch, each as a fold of its own (`stream.tally` counts the second only); here the first retry
    # fails on the held input already
    assert stage.folds == [[0, 1], [2], [0, 1], [0, 1], [2]]
    assert REGISTRY.get_sample_value("aiops_batch_retries_total", {"agent": "flaky"}) == before + 2
    assert [m.acked for m in messages] == [False, False, False]  # the stream still holds its reference
    for message in messages:
        message.ack(consumer)  # what Faust's take_events does once the agent's loop moves on
    assert [m.acked for m in messages] == [True, True, True]  # the checkpoint let go of exactly one each


def read(stage: Flaky) -> float:
    return stage.records_read._value.get()


def test_a_refold_counts_each_record_once(tmp_path: Path) -> None:
    """A retried batch and a failed tick fold records again; their input metrics count once per record."""
    app = make_app(Settings(data_dir=tmp_path))
    messages = [Message("alerts", 0, offset, 0.0, 0, [], None, b"{}", None) for offset in range(4)]
    events = [SimpleNamespace(message=m) for m in messages]
    stage = Flaky(Checkpointer(app))
    runner = StageRunner(app, DeadLetters(app, "deadletter", 900_000, 65_536), backoff_s=0.001)
    counts: list[float] = []

    async def run() -> None:
        lock = asyncio.Lock()
        await runner.fold(stage, lock, events[:2])
        counts.append(read(stage))
        stage.fails = 2  # refused twice (the batch [2], then the held [0, 1] folded again), then taken
        await runner.fold(stage, lock, events[2:3])
        counts.append(read(stage))
        stage.tick_fails = 1  # a failed checkpoint: everything held is folded again
        await runner.tick(stage, lock)
        counts.append(read(stage))
        await runner.fold(stage, lock, events[3:])
        counts.append(read(stage))

    asyncio.run(run())
    assert stage.folds == [[0, 1], [2], [0, 1], [0, 1], [2], [0, 1, 2], [3]]
    assert counts == [2, 3, 3, 4]  # before stream.tally: 2, 9, 12, 13


def test_outside_a_tallied_fold_a_count_is_at_once_and_a_failed_fold_counts_nothing() -> None:
    counter = Counter("tally_probe", "", registry=None)
    tally.inc(counter, 2)
    assert counter._value.get() == 2
    try:
        with tally.tallied():
            tally.inc(counter, 5)
            assert counter._value.get() == 2  # kept until the fold returns
            raise SendFailed("broker down")
    except SendFailed:
        pass
    with tally.tallied(counting=False):
        tally.inc(counter, 7)
    with tally.tallied():
        tally.inc(counter, 1)
        tally.inc(counter, 0)
    assert counter._value.get() == 3


@pytest.mark.parametrize("rebalance_on", ["tick", "refold"])
def test_a_tick_failing_while_the_worker_rebalances_releases_the_held_input_and_the_timer_goes_on(
        tmp_path: Path, rebalance_on: str) -> None:
    """A checkpoint refused by a restarting broker during a rebalance (`tick`), or refused before it and the refold
    of its held input refused during one (`refold`): the stage is rolled back, its held input released
    unacknowledged (the partitions' next owner, this worker too, reads it again from the committed offsets), and
    the timer, run as Faust runs it, ticks on: its exception would crash the app."""
    app = make_app(Settings(data_dir=tmp_path))

    def rebalancing() -> None:
        app.rebalancing = True  # what Faust's on_rebalance_start sets

    stage = Flaky(Checkpointer(app), spec=StageSpec("flaky_tick", 10, 0.0, tick_s=0.02), topic=app.topic("alerts"))
    runner = StageRunner(app, DeadLetters(app, "deadletter", 900_000, 65_536), backoff_s=0.001)
    runner.install(stage)
    timer = app._app_tasks[-1]  # the timer's task, as `app.timer` registered it
    messages = [Message("alerts", 0, offset, 0.0, 0, [], None, b"{}", None) for offset in range(3)]

    async def run() -> None:
        consumer = app.consumer  # made in the running loop, as the worker makes it (its timers tick in that loop)
        for message in messages:
            message.incref()
            consumer.track_message(message)
        await runner.fold(stage, asyncio.Lock(), [SimpleNamespace(message=m) for m in messages])
        for message in messages:
            message.ack(consumer)  # the agent's loop moved on: only the checkpoint's hold keeps them
        stage.tick_fails = 1
        if rebalance_on == "tick":
            rebalancing()
        else:
            stage.fails, stage.failing = 1, rebalancing
        task = app.add_future(timer())  # as Faust starts an app's timers: an exception ends in `app.crash`
        await asyncio.sleep(0.3)
        assert not task.done()
        task.cancel()
        assert not set(messages) & set(consumer._unacked_messages)  # released: a rebalance does not wait for them

    before = REGISTRY.get_sample_value("aiops_batch_retries_total", {"agent": "flaky_tick"}) or 0.0
    asyncio.run(run())
    assert not app.crashed
    assert stage.ticks > 3  # it ticked on after the failure
    assert stage.held() == []  # rolled back, and not folded again while rebalancing:
    assert stage.folds == [[0, 1, 2]] + ([[0, 1, 2]] if rebalance_on == "refold" else [])
    assert [m.acked for m in messages] == [False, False, False]  # never acknowledged: read again
    retries = REGISTRY.get_sample_value("aiops_batch_retries_total", {"agent": "flaky_tick"}) or 0.0
    assert retries == before + (rebalance_on == "refold")  # the tick's failure before the rebalance: a retry


@pytest.mark.parametrize("case", ["rebalance", "one_record"])
def test_input_released_during_a_rebalance_is_not_committed_past_before_it_is_read_again(
        tmp_path: Path, case: str) -> None:
    """A stage's checkpoint fails while the worker rebalances (a broker blip): its held input is released
    unacknowledged (`StageRunner._undo`), to be read again after the rebalance, this worker keeping the partition
    included. The stage's next batch succeeds and is acknowledged before that re-read: Faust must not commit past
    the released input meanwhile, or the seek after the rebalance starts beyond it and it is never read again
    (stage 2: a routing record never grouped; tickets: a ticket never triaged).

    `rebalance`: the next batch is acknowledged inside Faust's revocation (its `wait_empty`), after Faust forgot
    the partition's committed offset, so its head-gap rule is off. `one_record`: one held record released before
    the revocation; Faust's head-gap rule lets a one-record hole at the committed offset through. Faust's own
    app, consumer, revocation and commit bookkeeping; only the commit request to the broker is recorded here."""
    app = make_app(Settings(data_dir=tmp_path))
    topic = app.topic("route")
    stage = Flaky(Checkpointer(app), spec=StageSpec("flaky_route", 10, 0.0, tick_s=60.0), topic=topic)
    runner = StageRunner(app, DeadLetters(app, "deadletter", 900_000, 65_536), backoff_s=0.001)
    runner.install(stage)
    tp = TP("route", 0)
    app.topics.acking_topics.add(tp.topic)
    committed: list[dict[TP, int]] = []
    held_n = 10 if case == "rebalance" else 1
    first, second = range(10, 10 + held_n), range(10 + held_n, 30)

    async def run() -> None:
        consumer = app.consumer

        async def commit_request(offsets: Any) -> bool:  # what the consumer thread would send to the broker
            committed.append(dict(offsets))
            return True

        consumer._commit = commit_request  # type: ignore[method-assign]
        consumer.assignment = lambda: {tp}  # type: ignore[method-assign]
        app._producer = SimpleNamespace(flush=_nothing)
        consumer._committed_offset[tp] = 10  # the seek after the last rebalance
        lock = asyncio.Lock()

        def delivered(offsets: range) -> list[Any]:
            messages = [ConsumerMessage(tp.topic, tp.partition, o, 0.0, 0, [], None, b"{}", None, tp=tp)
                        for o in offsets]
            for message in messages:
                message.incref()  # the stream's reference
                consumer.track_message(message)
            return [SimpleNamespace(message=m) for m in messages]

        def taken(events: list[Any]) -> None:
            for event in events:
                event.message.ack(consumer)  # take_events moves on: only the checkpoint's hold keeps them

        held = delivered(first)
        await runner.fold(stage, lock, held)
        taken(held)
        app.rebalancing = True  # Faust's on_rebalance_start, called first thing in the consumer thread
        stage.tick_fails = 1
        await runner.tick(stage, lock)  # the checkpoint fails: rolled back, released unacknowledged
        assert stage.held() == [] and not any(e.message.acked for e in held)
        later = delivered(second)  # fetched before the flow stopped; the agent folds them next
        if case == "rebalance":
            revocation = asyncio.ensure_future(consumer.on_partitions_revoked({tp}))
            await asyncio.sleep(0)  # Faust forgot the partition's offsets and waits for its streams
        await runner.fold(stage, lock, later)
        taken(later)
        await stage.checkpoints.if_due()  # due at once while rebalancing: acknowledges the batch
        if case == "rebalance":
            await asyncio.wait_for(revocation, 10)
        else:
            await consumer.commit()
        assert all(offsets.get(tp, 10) <= 10 for offsets in committed), committed
        # the rebalance ends with this worker keeping the partition: sought to what the group committed, it reads
        # the released input again, then what followed, and commits them once acknowledged: no stall either

        async def seek_to_committed() -> dict[TP, int]:
            return {tp: max([10] + [offsets[tp] for offsets in committed if tp in offsets])}

        consumer.seek_to_committed = seek_to_committed  # type: ignore[method-assign]
        await consumer.perform_seek()
        app.rebalancing = False
        again = delivered(range(10, 30))
        await runner.fold(stage, lock, again)
        taken(again)
        await stage.checkpoints.if_due()
        await consumer.commit()
        assert committed[-1] == {tp: 30}
        assert not app.crashed

    asyncio.run(run())


def test_a_fold_failing_after_the_rebalance_s_seek_is_folded_again_not_released(tmp_path: Path) -> None:
    """A fold refused after the rebalance's seek to the committed offsets (Faust's recovery has not yet resumed
    the flow nor ended the rebalance: the chaos soak's broker restart, 3 ms after the seek) on a partition this
    worker keeps: nothing would read released input again in this generation, and nothing waits for it, so the
    batch is folded again as outside a rebalance, acknowledged and committed. Before, it was released
    unacknowledged (`StageRunner._undo` gave up), the partition's commits held at it for good and its records
    never applied (stage 2: routing partitions never grouped again). Faust's own app, consumer, flow and seek;
    only the broker's answers to the seek and the commit are given here."""
    app = make_app(Settings(data_dir=tmp_path))
    stage = Flaky(Checkpointer(app), spec=StageSpec("flaky_after_seek", 10, 0.0), topic=app.topic("route"))
    runner = StageRunner(app, DeadLetters(app, "deadletter", 900_000, 65_536), backoff_s=0.001)
    tp = TP("route", 0)
    app.topics.acking_topics.add(tp.topic)
    committed: list[dict[TP, int]] = []

    async def run() -> None:
        consumer = app.consumer

        async def commit_request(offsets: Any) -> bool:  # what the consumer thread would send to the broker
            committed.append(dict(offsets))
            return True

        async def seek_to_committed() -> dict[TP, int]:  # the group's committed offset, as the broker answers
            return {tp: 10}

        consumer._commit = commit_request  # type: ignore[method-assign]
        consumer.assignment = lambda: {tp}  # type: ignore[method-assign]
        consumer.seek_to_committed = seek_to_committed  # type: ignore[method-assign]
        app._producer = SimpleNamespace(flush=_nothing)
        # the rebalance as Faust runs it: started (the consumer thread), the flow stopped (revocation), the
        # partition assigned again, then the recovery's seek and the flow resumed before the rebalance ends
        app.rebalancing = True
        app.rebalancing_count += 1
        consumer.stop_flow()
        consumer.assigned_in = app.rebalancing_count  # what its on_partitions_assigned notes (no tables here)
        await consumer.perform_seek()
        messages = [ConsumerMessage(tp.topic, tp.partition, o, 0.0, 0, [], None, b"{}", None, tp=tp)
                    for o in range(10, 20)]
        for message in messages:
            message.incref()  # the stream's reference
            consumer.track_message(message)
        stage.fails = 1  # the restarted broker refuses the fold's output once
        await runner.fold(stage, asyncio.Lock(), [SimpleNamespace(message=m) for m in messages])
        for message in messages:
            message.ack(consumer)  # take_events moves on: only the checkpoint's hold keeps them
        app.rebalancing = False  # Faust's on_rebalance_end
        await stage.checkpoints.if_due()
        await consumer.commit()
        assert stage.folds == [list(range(10, 20))] * 2  # folded again in this worker, not released
        assert all(m.acked for m in messages)
        assert committed[-1] == {tp: 20}

    asyncio.run(run())


async def _nothing() -> None:
    return None


class _Doc(BaseModel):
    state: str


def test_a_checkpoint_whose_state_the_broker_refuses_acknowledges_none_of_its_input(tmp_path: Path) -> None:
    """`Checkpointer.run` acknowledges the held input only once the state covering it is delivered: before, it
    acknowledged when the state was handed to the producer, Faust committed it, and the refusal showed one
    checkpoint later, when the rollback no longer had that input to fold again (`tests/test_rebalance_release.py`
    shows the loss on the broker)."""
    app = make_app(Settings(data_dir=tmp_path))
    table = SimpleNamespace(data={}, changelog_topic=SimpleNamespace(get_topic_name=lambda: "t-state-changelog"))
    store = DocStore(table, 0, _Doc)
    checkpoints = Checkpointer(app, lambda: [store])
    messages = [ConsumerMessage("route", 0, offset, 0.0, 0, [], None, b"{}", None) for offset in range(3)]
    events = [SimpleNamespace(message=m) for m in messages]

    async def run() -> list[Any]:
        for message in messages:
            app.consumer.track_message(message)
        checkpoints.hold(events)  # type: ignore[arg-type]
        store.put("t1", _Doc(state="open"))
        with pytest.raises(SendFailed):
            await checkpoints.run()
        return checkpoints.rollback()

    sends.set_fault(lambda topic, partition: ConnectionError("refused") if topic == "t-state-changelog" else None)
    try:
        again = asyncio.run(run())
    finally:
        sends.set_fault(None)
    assert [m.acked for m in messages] == [False, False, False]
    assert again == events  # still held: folded again on the state rebuilt from the table
