"""Where aiokafka's group coordination waits, for the log of a worker that never finds its group again after a broker
restart (census41's t1: b-2 logged one failed coordinator lookup, then nothing for 180 s; `stream.consumer`
`coordination_waits`, logged by `stream.recovery.BrokerWatch` when a rejoin request started no rebalance)."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from aiokafka import AIOKafkaConsumer

from stream.broker import EmbeddedBroker, create_topics_sync
from stream.consumer import await_chain, coordination_waits


def test_the_await_chain_follows_a_task_down_to_the_future_it_waits_on() -> None:
    async def scene() -> tuple[str, str, str]:
        never: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        async def inner() -> None:
            await never

        async def outer() -> None:
            await inner()

        task = asyncio.create_task(outer())
        await asyncio.sleep(0)
        waiting = await_chain(task)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        failed = asyncio.create_task(asyncio.sleep(0, result=None))
        await failed
        return waiting, await_chain(task), await_chain(failed)

    waiting, cancelled, ended = asyncio.run(scene())
    assert waiting.startswith("outer test_coordination_waits.py:"), waiting
    assert " > inner test_coordination_waits.py:" in waiting and waiting.endswith(" > awaits a future"), waiting
    assert (cancelled, ended, await_chain(None)) == ("cancelled", "ended", "no task")


@pytest.mark.integration
def test_coordination_waits_reads_the_installed_aiokafka_consumer(broker: EmbeddedBroker) -> None:
    # reads aiokafka's private coordinator and client attributes, as group_state does: an upgrade that renames them
    # must fail here, not leave the stuck worker's log line empty
    topic, group = f"cw-{uuid.uuid4().hex[:8]}", f"cw-group-{uuid.uuid4().hex[:8]}"
    create_topics_sync(broker.bootstrap, {topic: 2})

    async def waits() -> tuple[str, str]:
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=broker.bootstrap, group_id=group,
                                    auto_offset_reset="earliest")
        before = coordination_waits(consumer)
        await consumer.start()
        try:
            deadline = time.monotonic() + 30
            while not consumer.assignment() and time.monotonic() < deadline:
                await consumer.getmany(timeout_ms=200)
            return before, coordination_waits(consumer)
        finally:
            await consumer.stop()

    before, member = asyncio.run(waits())
    assert before == "consumer not started"
    parts = dict(part.split(": ", 1) for part in member.split("; ") if ": " in part)
    assert parts["coordination"].startswith("_coordination_routine group_coordinator.py:"), member
    assert parts["heartbeat"].startswith("_heartbeat_routine group_coordinator.py:"), member
    assert parts["metadata sync"].startswith("_md_synchronizer client.py:"), member
    assert "metadata refresh none asked" in member or "metadata refresh pending" in member, member
    assert member.endswith("coordinator lookup lock free"), member
