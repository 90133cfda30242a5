"""The flow control of the agents' queues across a rebalance, with Faust's own app, consumer and ack bookkeeping
(no broker): `benchmarks/stall_rebalance.py` shows the same on the broker, a front joining during a flood."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest
from aiokafka.structs import ConsumerRecord
from faust.types import TP
from faust.types.tuples import Message
from mode import Service
from mode.utils.queues import FlowControlQueue

from stream.app import make_app
from stream.consumer import FlowControl, forget_read_offsets, unserved
from stream.settings import Settings


def record(tp: TP, offset: int) -> Message:
    return Message(tp.topic, tp.partition, offset, 0.0, 0, [], None, b"{}", None, tp=tp)


def test_records_queued_while_the_flow_runs_survive_the_recovery_and_the_partition_commits(tmp_path: Path) -> None:
    """Faust's table recovery resumes the flow control twice per rebalance: when the flow starts (stream
    partitions paused), then after it resumed the stream partitions and sought them to their committed offsets.
    Faust's resume empties every agent queue, so records fetched after their partition's seek and queued before
    the second resume were never acknowledged, nor read again: a hole at the head of the acknowledged offsets,
    and the partition never committed again (seen: alerts:1 committed 70, acknowledged from 95)."""
    app = make_app(Settings(data_dir=tmp_path))
    consumer = app.consumer
    tp = TP("t.alerts", 1)
    app.topics.acking_topics.add(tp.topic)

    async def rebalance() -> int | None:
        queue = app.FlowControlQueue(app.conf.stream_buffer_maxsize, clear_on_resume=True)  # an agent's channel
        app.flow_control.suspend()  # the revocation stops the flow and empties the queues
        app.flow_control.clear()
        app.flow_control.resume()  # recovery: the flow runs again, the stream partitions still paused
        consumer._committed_offset[tp] = 70  # on_recovery_completed: resumed and sought to the committed offset
        for offset in range(70, 95):  # fetched while the other partitions are being sought
            queue.put_nowait(record(tp, offset))
        app.flow_control.resume()  # on_recovery_completed, once every partition is sought
        for offset in range(95, 100):
            queue.put_nowait(record(tp, offset))
        while not queue.empty():  # the agent takes each record, handles it and acknowledges it
            message = queue.get_nowait()
            consumer.track_message(message)
            consumer.ack(message)
        return consumer._new_offset(tp)

    assert asyncio.run(rebalance()) == 100  # Faust's own flow control: None, and never anything else again
    assert isinstance(app.flow_control, FlowControl)


def test_a_suspended_flow_still_empties_the_queues_when_resumed() -> None:
    """What Faust empties the queues for stays: records queued before a rebalance suspended the flow."""

    async def run() -> tuple[int, int]:
        flow = FlowControl(initially_suspended=False)
        queue = FlowControlQueue[int](100, flow_control=flow, clear_on_resume=True)
        queue.put_nowait(1)
        flow.resume()  # running: nothing is emptied
        running = queue.qsize()
        flow.suspend()
        flow.resume()
        return running, queue.qsize()

    assert asyncio.run(run()) == (1, 0)



def test_a_released_record_holds_its_partition_s_commits_until_it_is_read_again_or_the_partition_goes(
        tmp_path: Path) -> None:
    """`Consumer.release`: no commit passes a record given up unacknowledged while Faust's committed offset is
    unknown (its revocation forgot it); the hold ends once the record, read again, is acknowledged, and with the
    partition when another worker gets it (whose commits this worker's hold must never block later)."""
    app = make_app(Settings(data_dir=tmp_path))
    consumer = app.consumer
    kept, lost = TP("t.route", 0), TP("t.route", 1)
    app.topics.acking_topics.add(kept.topic)

    def acked(tp: TP, offsets: range) -> None:
        for offset in offsets:
            consumer.ack(record(tp, offset))

    async def run() -> list[int | None]:
        for tp in (kept, lost):
            consumer.release([record(tp, 10), record(tp, 11)])
        acked(kept, range(12, 20))  # Faust's committed offset forgotten: its own rule would commit 20
        acked(kept, range(5, 10))  # read before the released ones: commits up to them, not beyond
        seen = [consumer._new_offset(kept), consumer._new_offset(kept)]
        acked(kept, range(10, 20))  # read again from the first released record and acknowledged: the hold ends
        seen.append(consumer._new_offset(kept))
        with contextlib.suppress(Exception):  # only its bookkeeping matters here, not the app's callbacks
            await consumer.on_partitions_assigned({kept})
        seen.append(len(consumer._released))
        return seen

    assert asyncio.run(run()) == [10, None, 20, 0]


def test_offsets_taken_as_skipped_and_then_acknowledged_commit_at_once(tmp_path: Path) -> None:
    """A batch fetched before the seek after a rebalance and delivered after it: Faust's fetcher takes committed+1 up
    to that batch's first record as skipped (its gap), and the stage acknowledges those records too (held since before
    the rebalance). Counted twice, Faust's commit (the first run of consecutive offsets) moved one offset per commit
    (seen on the broker: stage2-route:0 committed 88, 89, 91, 93, ... 5 s apart); each counted once, it commits all."""
    app = make_app(Settings(data_dir=tmp_path))
    consumer = app.consumer
    tp = TP("t.route", 0)
    app.topics.acking_topics.add(tp.topic)

    async def run() -> list[int | None]:
        consumer._committed_offset[tp] = 85  # the seek after the rebalance
        await consumer._add_gap(tp, 86, 135)  # Faust's drain: read offset 85, then record 135 of the earlier fetch
        for offset in range(85, 136):  # the held records, folded again and acknowledged, and 135
            consumer.ack(record(tp, offset))
        seen = []
        for _ in range(3):
            offset = consumer._new_offset(tp)
            seen.append(offset)
            if offset is not None:
                consumer._committed_offset[tp] = offset
        consumer.ack(record(tp, 136))  # later records commit as before
        seen.append(consumer._new_offset(tp))
        return seen

    assert asyncio.run(run()) == [136, None, None, 137]


def test_a_commit_under_way_when_the_broker_lost_its_topics_leaves_no_old_offset(tmp_path: Path) -> None:
    """stuck40's q5: a commit refused during the broker loss returned after `forget_read_offsets` had run, and Faust,
    which records offsets as committed whether the broker took them or not, put the old topic's offset (529) back for
    the re-created partition. Every acknowledgement below it was then dropped, and the partition never committed its
    new records. The commit now keeps nothing when the forget ran during it."""
    app = make_app(Settings(data_dir=tmp_path))
    consumer = app.consumer
    tp = TP("t.incidents", 0)
    app.topics.acking_topics.add(tp.topic)

    async def run() -> int | None:
        refused = asyncio.Event()

        async def commit(offsets: object) -> bool:  # the broker's answer comes after the loss is seen
            await refused.wait()
            return False

        async def flush() -> None:
            return None

        consumer.assignment = lambda: {tp}  # type: ignore[method-assign]
        consumer._commit = commit  # type: ignore[method-assign]
        app.producer.flush = flush  # type: ignore[method-assign]
        consumer._committed_offset[tp] = 512
        under_way = asyncio.ensure_future(consumer._commit_offsets({tp: 529}))
        await asyncio.sleep(0)
        forget_read_offsets(consumer)  # the broker watch sees the loss meanwhile
        refused.set()
        await under_way
        for offset in range(3):  # the re-created partition's first records, read and acknowledged
            consumer.ack(record(tp, offset))
        return consumer._new_offset(tp)

    assert asyncio.run(run()) == 3  # before: None (0-2 dropped as below the old 529), and so for good


def fetched(tp: TP, offset: int) -> ConsumerRecord[bytes, bytes]:
    """A record as aiokafka's fetcher hands it to Faust."""
    return ConsumerRecord(tp.topic, tp.partition, offset, 0, 0, None, b"{}", None, 0, 2, ())


@pytest.mark.parametrize("redelivered", [False, True], ids=["incidents", "redelivered topic"])
@pytest.mark.parametrize("fetches", [[[0], list(range(215, 221))], [[0, *range(215, 221)]]],
                         ids=["two fetches", "one fetch"])
def test_offsets_the_broker_never_served_after_the_first_record_do_not_stop_the_partition_s_commits(
        tmp_path: Path, fetches: list[list[int]], redelivered: bool) -> None:
    """stuck40's kind B (q3): after a broker loss the embedded Tansu refused a produce to the re-created `incidents`
    (AlreadyExists, its client saw UnknownError and the stage sent the records again) and never served the offsets
    it had counted for it: the fetches gave offset 0, then 215 on. Faust's fetcher takes offsets it never got as
    skipped (its gap) only when the partition's read offset tests true, and 0 does not; a redelivered topic
    (alerts.raw, alerts) has none at all: no gap, and the commit stopped at 1 for as long as the worker ran. Run
    through Faust's own fetcher loop (`_drain_messages`, `getmany`), with the broker's fetches as stuck40's trace
    saw them, each followed by Faust's periodic commits."""
    app = make_app(Settings(data_dir=tmp_path))
    consumer = app.consumer
    tp = TP("t.incidents", 0)
    app.topics.acking_topics.add(tp.topic)
    if redelivered:
        app.redelivered_topics = frozenset({tp.topic})

    async def run() -> int | None:
        async def handled(message: Message) -> None:  # the agents read each record and acknowledge it
            consumer.track_message(message)
            consumer.ack(message)

        fetcher = Service()
        broker = iter(fetches)

        async def getmany(active_partitions: object, timeout: float) -> dict[TP, list[ConsumerRecord[bytes, bytes]]]:
            fetcher._stopped.set()  # one fetch per loop
            return {tp: [fetched(tp, offset) for offset in next(broker)]}

        consumer._thread.getmany = getmany  # type: ignore[method-assign]
        consumer.highwater = lambda tp: 0  # type: ignore[method-assign]
        consumer._active_partitions = {tp}
        consumer.callback = handled
        for _ in fetches:  # offsets 1-214 counted by the broker, never served
            fetcher._stopped.clear()
            await consumer._drain_messages(fetcher)
            for _ in range(3):
                if (offset := consumer._new_offset(tp)) is not None:
                    consumer._committed_offset[tp] = offset  # what Faust's commit records
        return consumer._committed_offset.get(tp)

    assert asyncio.run(run()) == 221  # before: 1, for good


def test_a_fetch_passes_over_only_offsets_it_skipped_forward() -> None:
    """`unserved`: between records and from the end of the partition's last fetch; nothing for a fetch that reads
    again after a seek back, nor for a topic without acknowledgements (a changelog)."""
    tp, log = TP("t.alerts", 0), TP("t-changelog", 0)
    fetched_to: dict[TP, int] = {}
    acking = {"t.alerts"}.__contains__
    assert unserved({tp: [fetched(tp, o) for o in (0, 1, 5, 6)], log: [fetched(log, 3), fetched(log, 9)]},
                    fetched_to, acking) == [(tp, 2, 4)]
    assert unserved({tp: [fetched(tp, 9)]}, fetched_to, acking) == [(tp, 7, 8)]
    assert unserved({tp: [fetched(tp, 4), fetched(tp, 5)]}, fetched_to, acking) == []  # sought back
    assert unserved({tp: [fetched(tp, 6)]}, fetched_to, acking) == [] and fetched_to == {tp: 7, log: 10}
