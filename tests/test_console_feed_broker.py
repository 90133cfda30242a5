"""The console's feed (a task of every worker) when the broker is down as it starts, on the real embedded broker.

Found by `benchmarks/soak.py`: a worker restarted after a SIGKILL became ready, the broker was restarted a few seconds
later, and the feed's consumer, starting just then, raised `KafkaConnectionError("Unable to bootstrap ...")` out of
the task, which Faust answers by stopping the whole worker (exit 1, `stream.app: Crashed reason=...`).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from aiokafka.admin import AIOKafkaAdminClient

from correlator.readmodel import ReadModel
from stream.broker import create_topics, free_port, start_broker
from stream.console.feed import METADATA_MAX_AGE_MS, FeedState, FeedTopics, run_feed
from stream.feed import TOPIC_APPEARS_MS, topic_records
from stream.incident_records import encode_incident_event

from .notifying import incident
from .workers import _produce

pytestmark = pytest.mark.integration


async def _an_incident_read(bootstrap: str, topics: FeedTopics, model: ReadModel, feed: asyncio.Task[None]) -> None:
    """Produce one incident event and wait until the running feed has folded it into `model` (30 s at most)."""
    await _produce(bootstrap, topics.incidents, [(b"inc-1", encode_incident_event(incident("inc-1")))])
    deadline = time.monotonic() + 30
    while "inc-1" not in model.rows and time.monotonic() < deadline and not feed.done():
        await asyncio.sleep(0.2)
    assert "inc-1" in model.rows, feed.exception() if feed.done() else "the feed read nothing"


def test_a_feed_started_while_the_broker_is_down_waits_for_it_and_then_folds_what_it_reads(tmp_path: Path) -> None:
    port = free_port()
    topics = FeedTopics("soak.incidents", "soak-clocks", "soak-tickets")

    async def scene() -> None:
        model = ReadModel()
        feed = asyncio.create_task(run_feed(model, topics, f"127.0.0.1:{port}", {}, FeedState()))
        await asyncio.sleep(3.0)  # the broker is down: aiokafka gave up bootstrapping long before this
        assert not feed.done(), feed.exception()  # the old feed ended here, and took the worker with it
        broker = await asyncio.to_thread(start_broker, port=port, log_path=tmp_path / "tansu.log")
        try:
            await create_topics(broker.bootstrap, {name: 1 for name in topics.names()})
            await _an_incident_read(broker.bootstrap, topics, model, feed)
        finally:
            feed.cancel()
            await asyncio.gather(feed, return_exceptions=True)
            await asyncio.to_thread(broker.stop)

    asyncio.run(scene())


def test_a_feed_that_reaches_the_broker_before_the_topics_exist_creates_none_of_them(tmp_path: Path) -> None:
    """Seen in CI: the feed of the test above, connecting between the broker's start and the topics' creation,
    made `soak.incidents` exist with Tansu's 4 partitions, and the worker's `create_topics` refused it. A console
    started before the workers, or the first client back after a broker loss, does the same in production."""
    topics = FeedTopics("early.incidents", "early-clocks", "early-tickets")
    broker = start_broker(log_path=tmp_path / "tansu.log")

    async def existing() -> set[str]:
        admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
        await admin.start()
        try:
            return set(await admin.list_topics()) & set(topics.names())
        finally:
            await admin.close()

    async def scene() -> None:
        model = ReadModel()
        state = FeedState()
        feed = asyncio.create_task(run_feed(model, topics, broker.bootstrap, {}, state))
        try:
            # started, and refreshed its metadata at least once: a subscription by name has touched the names by now
            await asyncio.sleep(METADATA_MAX_AGE_MS / 1000 + 1.0)
            assert not feed.done(), feed.exception()
            assert await existing() == set(), "the feed created topics it only reads"
            await create_topics(broker.bootstrap, {name: 1 for name in topics.names()})  # raised before
            await _an_incident_read(broker.bootstrap, topics, model, feed)
        finally:
            feed.cancel()
            await asyncio.gather(feed, return_exceptions=True)

    try:
        asyncio.run(scene())
    finally:
        broker.stop()


def test_a_tail_of_a_topic_not_yet_created_creates_nothing_and_reads_it_once_it_exists(tmp_path: Path) -> None:
    """`aiops tail` run before the workers: the same trap as the feed's (`stream.feed.topic_records`)."""
    broker = start_broker(log_path=tmp_path / "tansu.log")

    async def scene() -> None:
        seen: list[bytes] = []

        async def tail() -> None:
            async for record in topic_records(broker.bootstrap, "later.incidents", idle_timeout=20):
                seen.append(record.key or b"")
                return

        reader = asyncio.create_task(tail())
        await asyncio.sleep(2 * TOPIC_APPEARS_MS / 1000 + 1.0)
        assert not reader.done(), reader.exception()
        await create_topics(broker.bootstrap, {"later.incidents": 1})  # raised when the tail subscribed by name
        await _produce(broker.bootstrap, "later.incidents", [(b"inc-1", encode_incident_event(incident("inc-1")))])
        await asyncio.wait_for(reader, 30)
        assert seen == [b"inc-1"]

    try:
        asyncio.run(scene())
    finally:
        broker.stop()
