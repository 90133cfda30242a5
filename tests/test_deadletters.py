"""The dead letter of a record: whole when it fits, a bounded reference when it does not, headers read back."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.client import AIOKafkaClient, CoordinationType
from aiokafka.protocol.commit import OffsetCommitRequest
from aiokafka.admin import AIOKafkaAdminClient
from faust.types.tuples import Message
from prometheus_client import REGISTRY

from stream.app import make_app
from stream.broker import EmbeddedBroker
from stream.deadletters import INTERNAL_ERROR, DeadLetters, category_of, letter_of, origin_of, reason_of
from stream.settings import Settings

from .workers import Deployment, WorkerProc

ORIGIN = ("alerts.raw", 2, 41)


def test_a_record_that_fits_goes_whole_with_its_origin() -> None:
    letter = letter_of(b"generic", b"{bad", ORIGIN, "normalize", "malformed JSON", "malformed_json", 1000, 100)
    assert (letter.key, letter.value, letter.truncated) == (b"generic", b"{bad", False)
    origin = origin_of(letter.headers)
    assert (origin.topic, origin.partition, origin.offset, origin.agent, origin.category, origin.reason) == (
        "alerts.raw", 2, 41, "normalize", "malformed_json", "malformed JSON")
    assert not origin.truncated and origin.sha256 is None


@pytest.mark.parametrize(("key", "value"), [
    (None, b"x" * 2_000_000), (b"k" * 1_500_000, b"{}"), (b"k" * 600_000, b"v" * 600_000), (None, None),
])
def test_a_record_too_large_goes_as_a_bounded_reference(key: bytes | None, value: bytes | None) -> None:
    limits = Settings()
    letter = letter_of(key, value, ORIGIN, "normalize", "r" * 100_000, "malformed_json",
                       limits.deadletter_max_bytes, limits.deadletter_head_bytes)
    size = len(letter.key or b"") + len(letter.value or b"") + sum(len(n) + len(v) for n, v in letter.headers)
    assert size < 1_000_000 - 1024, "fits the producer's 1 MB request with room for the batch overhead"
    whole = len(key or b"") + len(value or b"") <= limits.deadletter_max_bytes
    assert letter.truncated is not whole
    if whole:
        assert (letter.key, letter.value) == (key, value)
        return
    origin = origin_of(letter.headers)
    assert origin.truncated and origin.original_size == len(value or b"")
    assert origin.sha256 == hashlib.sha256(value or b"").hexdigest()
    assert letter.value == (value or b"")[:limits.deadletter_head_bytes]
    assert letter.key == (None if key is None else key[:limits.deadletter_head_bytes])
    assert len(origin.reason.encode()) <= 1024


def test_reasons_and_categories_of_errors() -> None:
    class Refusal(ValueError):
        category = "missing_field"

    assert (category_of(Refusal("no starts_at")), reason_of(Refusal("no starts_at"))) == ("missing_field",
                                                                                         "no starts_at")
    assert (category_of(KeyError("t")), reason_of(KeyError("t"))) == (INTERNAL_ERROR, "KeyError: 't'")


def test_a_bounded_reference_always_fits_the_settings() -> None:
    with pytest.raises(ValueError, match="at most half"):
        Settings(deadletter_max_bytes=100_000, deadletter_head_bytes=60_000)


def test_a_failed_batch_is_never_acknowledged_and_a_handled_one_is(tmp_path: Path) -> None:
    """The guard with Faust's own app, consumer and messages (no broker needed: nothing is fetched or sent)."""
    app = make_app(Settings(data_dir=tmp_path))
    consumer = app.consumer
    messages = [Message("alerts.raw", 0, offset, 0.0, 0, [], b"generic", b"{}", None) for offset in range(3)]
    for message in messages:
        message.incref()  # what delivering it to the agent's stream does
        consumer.track_message(message)
    letters = DeadLetters(app, "deadletter", 900_000, 65_536)
    held_before = REGISTRY.get_sample_value("aiops_batches_unacknowledged_total", {"agent": "normalize"}) or 0.0

    async def broker_down(events: Sequence[Any]) -> None:
        raise RuntimeError("broker down")

    async def fine(events: Sequence[Any]) -> None:
        return None

    async def batches() -> None:
        await letters.guarded("normalize", [SimpleNamespace(message=m) for m in messages[:2]], broker_down)
        await letters.guarded("normalize", [SimpleNamespace(message=messages[2])], fine)

    asyncio.run(batches())
    for message in messages:
        message.ack(consumer)  # what Faust's take_events does once the agent's loop moves on, failed or not
    assert [m.acked for m in messages] == [False, False, True], "a failed batch is never acknowledged"
    assert not set(messages[:2]) & set(consumer._unacked_messages), "nor awaited by the next rebalance"
    held = REGISTRY.get_sample_value("aiops_batches_unacknowledged_total", {"agent": "normalize"})
    assert held == held_before + 1


async def _committed(bootstrap: str, group: str, tp: TopicPartition) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        meta = (await admin.list_consumer_group_offsets(group, partitions=[tp])).get(tp)
    finally:
        await admin.close()
    return meta.offset if meta is not None else -1


async def _commit_back(bootstrap: str, group: str, tp: TopicPartition, offset: int) -> None:
    """What a commit that never reached the broker leaves: the group's offset before the record. Committed as the
    group's only member (the broker refuses a commit from outside the group), in its generation."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        [described] = await admin.describe_consumer_groups([group])
    finally:
        await admin.close()
    [member] = described.groups[0][5]  # (error, group, state, protocol type, protocol, members)
    client = AIOKafkaClient(bootstrap_servers=bootstrap)
    await client.bootstrap()
    try:
        node = await client.coordinator_lookup(CoordinationType.GROUP, group)
        for generation in range(5):  # not told by DescribeGroups; Tansu numbers from 0
            response = await client.send(node, OffsetCommitRequest(group, generation, member[0], -1,
                                                                   [(tp.topic, [(tp.partition, offset, "")])]))
            if response.topics[0][1][0][1] == 0:
                return
        raise AssertionError(f"the broker refused the commit: {response}")
    finally:
        await client.close()


def test_a_bad_record_read_again_after_a_rebalance_is_dead_lettered_once(broker: EmbeddedBroker, tmp_path: Path,
                                                                         workers: list[WorkerProc]) -> None:
    """A bad alerts.raw record read again by the same worker after a rebalance (a front joins the group; the
    group's offset is before the record, as when the commit after its letter never landed) is not sent to the
    dead-letter topic twice: counted in aiops_deadletters_repeated_total instead."""
    dep = Deployment(broker, tmp_path)
    dep.create_topics()
    worker = dep.start_worker("w")
    workers.append(worker)
    worker.wait_partitions(dep.partitions)
    dep.produce("alerts_raw", [(b"generic", b"{not json")])
    [letter] = dep.read("deadletter", 1, timeout=60)
    origin = origin_of(letter.headers)
    assert origin.topic == dep.topic("alerts_raw") and origin.partition is not None and origin.offset is not None
    tp = TopicPartition(origin.topic, origin.partition)
    deadline = time.monotonic() + 30
    while asyncio.run(_committed(broker.bootstrap, dep.app_id, tp)) <= origin.offset:  # the worker moved past it
        assert time.monotonic() < deadline, worker.tail()
        time.sleep(0.5)
    asyncio.run(_commit_back(broker.bootstrap, dep.app_id, tp, origin.offset))
    front = Deployment(broker, tmp_path, app_id=dep.app_id, extra_env={**dep.extra_env, "AIOPS_ROLE": "ingest"})
    workers.append(front.start_worker("front"))  # joins the group: the worker rebalances and reads it again
    deadline = time.monotonic() + 60
    while worker.metric_or_zero("aiops_deadletters_repeated_total", agent="normalize") < 1:
        assert time.monotonic() < deadline, f"the record was not read again, or was dead-lettered again\n{worker.tail()}"
        time.sleep(0.5)
    assert len(dep.read_so_far("deadletter")) == 1
    assert worker.metric("aiops_deadletters_total", agent="normalize", reason=origin.category) == 1
