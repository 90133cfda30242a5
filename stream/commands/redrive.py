"""`aiops redrive`: send chosen dead letters back to the topic they came from, once their cause is fixed.

The dead-letter topic is read from its start up to its end at the time the command starts (the snapshot);
letters are chosen by reason (the `category` header, as in `aiops_deadletters_total{reason}`), agent, original
topic, dead-letter offsets and time, and each chosen letter's key and value are produced to its original topic
and partition (from its headers). A bounded reference (a record too large to dead-letter whole: header
`truncated: 1`) holds only the record's first bytes and is refused, with where the original lies.
The letters stay on the dead-letter topic: the summary prints the offsets read, so a later run can start after
them (`--offsets`), and a record that fails again is dead-lettered again.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from correlator.config import parse_duration
from stream.deadletters import Origin, origin_of
from stream.settings import Settings

__all__ = ["Selection", "configure", "run", "parse_time", "parse_offsets"]

SEND_LIMIT_BYTES = 16 * 1024 * 1024
"""Producer request limit of the redrive: letters are at most `deadletter_max_bytes` plus headers."""


def parse_time(text: str, now: float) -> float:
    """Epoch seconds from an ISO 8601 time, epoch seconds, or a duration ago (`2h` is two hours before now)."""
    try:
        return float(text)
    except ValueError:
        pass
    if re.fullmatch(r"\s*\d+(\.\d+)?\s*[smhd]\s*", text):
        return now - parse_duration(text)
    try:
        stamp = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a time: {text!r} (ISO 8601, epoch seconds, or 30m/2h/1d ago)") \
            from None
    if stamp.tzinfo is None:
        raise argparse.ArgumentTypeError(f"time without a zone: {text!r} (add Z or +00:00)")
    return stamp.timestamp()


def parse_offsets(text: str) -> tuple[int, int | None]:
    """`A-B` (inclusive), `A-` (from A on) or `A` (that offset alone), on the dead-letter topic."""
    match = re.fullmatch(r"(\d+)(?:-(\d*))?", text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"not an offset range: {text!r} (A-B, A- or A)")
    low = int(match.group(1))
    if match.group(2) is None:
        return low, low
    high = int(match.group(2)) if match.group(2) else None
    if high is not None and high < low:
        raise argparse.ArgumentTypeError(f"empty offset range: {text!r}")
    return low, high


@dataclass(frozen=True)
class Selection:
    """Which dead letters to redrive; every criterion given must hold (empty: any)."""

    reasons: frozenset[str] = frozenset()
    agents: frozenset[str] = frozenset()
    topics: frozenset[str] = frozenset()
    partition: int | None = None
    offsets: tuple[int, int | None] | None = None
    since: float | None = None
    until: float | None = None

    def chooses(self, partition: int, offset: int, timestamp_s: float, origin: Origin) -> bool:
        """Whether the letter at `partition`@`offset` of the dead-letter topic, written at `timestamp_s`, is chosen."""
        low, high = self.offsets or (0, None)
        return ((not self.reasons or origin.category in self.reasons)
                and (not self.agents or origin.agent in self.agents)
                and (not self.topics or origin.topic in self.topics)
                and (self.partition is None or partition == self.partition)
                and low <= offset and (high is None or offset <= high)
                and (self.since is None or timestamp_s >= self.since)
                and (self.until is None or timestamp_s <= self.until))


def refusal(origin: Origin) -> str | None:
    """Why a letter cannot be redriven, or None when it can."""
    if origin.truncated:
        return (f"bounded reference: only the first bytes of {origin.original_size} were kept "
                f"(sha256 {origin.sha256}); the original is {origin.topic}[{origin.partition}]@{origin.offset}")
    if origin.topic is None:
        return "no origin topic in its headers"
    return None


def configure(parser: argparse.ArgumentParser) -> None:
    """Flags of `aiops redrive`."""
    now = time.time()
    parser.add_argument("--broker", default=None, help="kafka://host:9092 (default: AIOPS_BROKER)")
    parser.add_argument("--reason", action="append", default=[],
                        help="category to redrive, e.g. unknown_ticket (repeatable; default: any)")
    parser.add_argument("--agent", action="append", default=[], help="agent that refused it (repeatable)")
    parser.add_argument("--topic", action="append", default=[], help="original topic (repeatable)")
    parser.add_argument("--partition", type=int, default=None, help="dead-letter partition (with --offsets)")
    parser.add_argument("--offsets", type=parse_offsets, default=None,
                        help="dead-letter offsets A-B, A- or A (inclusive)")
    parser.add_argument("--since", type=lambda t: parse_time(t, now), default=None,
                        help="dead-lettered at or after: ISO 8601, epoch seconds, or 30m/2h/1d ago")
    parser.add_argument("--until", type=lambda t: parse_time(t, now), default=None, help="dead-lettered at or before")
    parser.add_argument("--dry-run", action="store_true", help="list what would be redriven and send nothing")


def run(args: argparse.Namespace) -> int:
    """Read the dead-letter topic up to its current end, redrive the chosen letters, print what was done."""
    settings = Settings.from_args(broker=args.broker)
    selection = Selection(reasons=frozenset(args.reason), agents=frozenset(args.agent), topics=frozenset(args.topic),
                          partition=args.partition, offsets=args.offsets, since=args.since, until=args.until)
    return asyncio.run(redrive(settings.bootstrap_servers, settings.topics.deadletter, selection, args.dry_run))


async def redrive(bootstrap: str, topic: str, selection: Selection, dry_run: bool) -> int:
    """Redrive the chosen letters of `topic`; prints one line per chosen letter and a summary; the exit code."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                fetch_max_wait_ms=100)
    await consumer.start()
    try:
        partitions = sorted(consumer.partitions_for_topic(topic) or ())
        if not partitions:
            print(f"no topic {topic!r} on {bootstrap}")
            return 1
        tps = [TopicPartition(topic, p) for p in partitions]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends: dict[Any, int] = await consumer.end_offsets(tps)
        chosen = await _read_chosen(consumer, ends, selection)
    finally:
        await consumer.stop()
    producer = None if dry_run else AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all",
                                                     max_request_size=SEND_LIMIT_BYTES)
    sent = refused = 0
    if producer is not None:
        await producer.start()
    try:
        for record, origin in chosen:
            why = refusal(origin)
            where = f"{topic}[{record.partition}]@{record.offset}"
            if why is not None:
                refused += 1
                print(f"{where}  {origin.category}  refused: {why}")
                continue
            target = f"{origin.topic}[{origin.partition}]@{origin.offset}"
            if producer is not None:
                headers = [("aiops-redriven-from", where.encode())]
                await _send(producer, origin, record, headers)
            sent += 1
            print(f"{where}  {origin.category}  {'would redrive' if dry_run else 'redriven'} to {target}: "
                  f"{origin.reason[:120]}")
    finally:
        if producer is not None:
            await producer.stop()
    read = ", ".join(f"{tp.partition}: 0-{end - 1}" if end else f"{tp.partition}: none" for tp, end in
                     sorted(ends.items(), key=lambda kv: kv[0].partition))
    verb = "would redrive" if dry_run else "redriven"
    print(f"read {topic} offsets {{{read}}}; chosen {len(chosen)}: {verb} {sent}, refused {refused}"
          + (" (bounded references cannot be redriven: fix the producer and re-send the original)" if refused else ""))
    return 0


async def _read_chosen(consumer: Any, ends: dict[Any, int], selection: Selection) -> list[tuple[Any, Origin]]:
    """The chosen letters among every record before the snapshot's end offsets, in partition and offset order."""
    remaining = {tp for tp, end in ends.items() if end > 0}
    chosen: list[tuple[Any, Origin]] = []
    while remaining:
        batches = await consumer.getmany(*remaining, timeout_ms=1000, max_records=1000)
        for tp, records in batches.items():
            for record in records:
                if record.offset >= ends[tp]:
                    remaining.discard(tp)
                    break
                origin = origin_of(record.headers)
                if selection.chooses(record.partition, record.offset, record.timestamp / 1000.0, origin):
                    chosen.append((record, origin))
            if tp in remaining and await consumer.position(tp) >= ends[tp]:
                remaining.discard(tp)
    chosen.sort(key=lambda item: (item[0].partition, item[0].offset))
    return chosen


async def _send(producer: Any, origin: Origin, record: Any, headers: Sequence[tuple[str, bytes]]) -> None:
    """Produce the letter's key and value to its original topic and partition (the key's, if that is gone)."""
    partitions = await producer.partitions_for(origin.topic)
    partition = origin.partition if origin.partition is not None and origin.partition in partitions else None
    await (await producer.send(origin.topic, record.value, key=record.key, partition=partition,
                               headers=list(headers)))
