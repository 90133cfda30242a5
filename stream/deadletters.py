"""Dead letters: the one way an agent refuses a consumed record, and the batch guard that keeps offsets honest.

Every consumed record is either processed or dead-lettered; nothing in between. Three parts make it so:

- `letter_of` builds the dead letter of a record: its original key and value with the reason, the agent and
  the record's topic, partition and offset in headers. A record too large to dead-letter whole (past
  `deadletter_max_bytes`: the producer refuses requests above 1 MB, and a 2 MB record crashed the agent that
  tried) goes as a bounded reference instead: its first `deadletter_head_bytes`, its original size and
  sha256 (`truncated: 1`), so an operator can find it at its origin; `aiops redrive` refuses those.
- `DeadLetters.send` hands a letter to the producer; `settle` waits for every letter an agent sent in its
  batch, re-sending failed ones with backoff until the broker has them (a failed dead letter is retried, never
  skipped); only a stopping worker gives up, and then the batch is not acknowledged.
- `DeadLetters.guarded` runs an agent's batch: its messages are held (one reference each) while the batch is
  handled and its letters settle, and acknowledged only then. A batch that fails as a whole (a broker fault,
  not one record: those are dead-lettered) is never acknowledged, so Faust never commits an offset past it and
  the partition's next owner reads it again; the agent logs it, counts it and goes on.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import traceback
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from correlator import metrics
from stream.consumer import committed_offset, release
from stream.batches import RecordTooLarge
from stream.sends import key_partition, send_batches

if TYPE_CHECKING:  # `aiops redrive` reads letters with `origin_of` and never loads Faust
    from faust.types import EventT

__all__ = ["INTERNAL_ERROR", "DeadLetterUndelivered", "DeadLetters", "Letter", "Origin", "Refused", "category_of",
           "first_offsets", "letter_of", "origin_of", "reason_of"]

log = logging.getLogger(__name__)

INTERNAL_ERROR = "internal_error"
"""Category of a record whose decoding raised something no decoder names: a bug on that input, dead-lettered
so the agent goes on and the record can be redriven once the bug is fixed."""

MAX_REASON_BYTES = 1024
"""Longest reason header: a validation message can quote the input, which may be megabytes."""

MAX_BACKOFF_S = 5.0

MAX_REFUSED = 100_000
"""Refusals remembered per consumed partition until its committed offset passes them (a few MB at most)."""


class DeadLetterUndelivered(RuntimeError):
    """The worker is stopping and some dead letters of a batch never reached the broker: not acknowledged."""


@dataclass(frozen=True, slots=True)
class Letter:
    """One record for the dead-letter topic, with the agent and category it is counted under."""

    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    agent: str
    category: str
    truncated: bool
    origin_partition: int = 0


def _clip(text: str, limit: int) -> bytes:
    """`text` as UTF-8 of at most `limit` bytes, cut on a character boundary."""
    data = text.encode("utf-8", "replace")
    return data if len(data) <= limit else data[:limit].decode("utf-8", "ignore").encode()


def letter_of(key: bytes | None, value: bytes | None, origin: tuple[str, int, int], agent: str, reason: str,
              category: str, max_bytes: int, head_bytes: int) -> Letter:
    """The dead letter of one record: whole if key and value fit in `max_bytes`, else a bounded reference.

    A bounded reference keeps the first `head_bytes` of the value (and of the key) and says in headers how
    large the original was and its sha256, so the letter always fits the producer's request limit.
    """
    topic, partition, offset = origin
    headers = [("reason", _clip(reason, MAX_REASON_BYTES)), ("category", category.encode()),
               ("agent", agent.encode()), ("topic", topic.encode()), ("partition", str(partition).encode()),
               ("offset", str(offset).encode())]
    if len(key or b"") + len(value or b"") <= max_bytes:
        return Letter(key, value, headers, agent, category, truncated=False, origin_partition=partition)
    headers.append(("truncated", b"1"))
    if value is not None:
        headers += [("original-size", str(len(value)).encode()),
                    ("sha256", hashlib.sha256(value).hexdigest().encode())]
        value = value[:head_bytes]
    if key is not None and len(key) > head_bytes:
        headers += [("key-size", str(len(key)).encode()), ("key-sha256", hashlib.sha256(key).hexdigest().encode())]
        key = key[:head_bytes]
    return Letter(key, value, headers, agent, category, truncated=True, origin_partition=partition)


@dataclass(frozen=True, slots=True)
class Origin:
    """What a dead letter's headers say about the record it stands for (`aiops redrive` reads them)."""

    topic: str | None
    partition: int | None
    offset: int | None
    agent: str
    category: str
    reason: str
    truncated: bool
    original_size: int | None
    sha256: str | None


def origin_of(headers: Sequence[tuple[str, bytes]]) -> Origin:
    """The origin of a dead letter from its headers; missing or garbled headers read as None or empty."""
    h = {name: value.decode("utf-8", "replace") for name, value in headers}

    def number(name: str) -> int | None:
        text = h.get(name, "")
        return int(text) if text.isdigit() else None

    return Origin(topic=h.get("topic") or None, partition=number("partition"), offset=number("offset"),
                  agent=h.get("agent", ""), category=h.get("category", ""), reason=h.get("reason", ""),
                  truncated=h.get("truncated") == "1", original_size=number("original-size"),
                  sha256=h.get("sha256"))


def _size(event: EventT[Any]) -> int:
    return len(event.message.key or b"") + len(event.message.value or b"")


def first_offsets(messages: Iterable[Any]) -> str:
    """Where a batch starts in each partition it spans (`topic:partition from offset`), for the log."""
    first: dict[tuple[str, int], int] = {}
    for m in messages:
        first[(m.topic, m.partition)] = min(m.offset, first.get((m.topic, m.partition), m.offset))
    return ", ".join(f"{t}:{p} from {o}" for (t, p), o in sorted(first.items()))


def category_of(exc: BaseException) -> str:
    """The bounded metric label of a refusal: the error's own `category`, else `internal_error`."""
    category = getattr(exc, "category", None)
    return category if isinstance(category, str) else INTERNAL_ERROR


def reason_of(exc: BaseException) -> str:
    """The reason text of a refusal; an error with no category names its type, being a bug to report."""
    return str(exc) if isinstance(getattr(exc, "category", None), str) else f"{type(exc).__name__}: {exc}"


@dataclass
class Refused:
    """The records of one consumed partition refused to the dead-letter topic and not yet below its committed
    offset: (offset, category) pairs, forgotten once the committed offset passes them (re-read no more) and
    bounded by `MAX_REFUSED` (the oldest go first)."""

    seen: dict[tuple[int, str], None] = field(default_factory=dict)
    """Insertion-ordered (offsets grow within a partition), so the oldest are first."""
    pruned_at: int | None = None

    def add(self, offset: int, category: str, committed: int | None) -> bool:
        """Note a refusal; False if this one was already noted (its letter was sent: do not send it again)."""
        if committed is not None and committed != self.pruned_at:
            self.seen = {k: None for k in self.seen if k[0] >= committed}
            self.pruned_at = committed
        if (offset, category) in self.seen:
            return False
        self.seen[(offset, category)] = None
        if len(self.seen) > MAX_REFUSED:
            del self.seen[next(iter(self.seen))]
        return True


@dataclass
class DeadLetters:
    """The dead-letter topic's sender: bounded letters, delivery waited for per batch, retried until delivered."""

    app: Any
    topic: str
    max_bytes: int
    head_bytes: int
    backoff_s: float = 0.1
    _pending: dict[str, list[tuple[Letter, asyncio.Future[Any]]]] = field(default_factory=dict)
    """Letters sent and not yet settled, per agent: each agent settles only its own batch's letters."""
    _refused: dict[tuple[str, str, int], Refused] = field(default_factory=dict)
    """Per agent and consumed partition, the records refused (offset, category) that the partition's committed
    offset has not passed yet: a record read again (a batch folded again after a failure, a re-read after a
    rebalance) is not dead-lettered twice."""

    async def send(self, agent: str, event: EventT[Any], reason: str, category: str) -> None:
        """Hand the dead letter of `event`'s record to the producer; its agent's `settle` waits for delivery.

        A record this worker already refused for the same category is not sent again while its partition's
        committed offset is below it: a batch folded again after a failure, or read again after a rebalance
        that kept the partition here (`stream.stages`, `tests/test_deadletters.py`)."""
        msg = event.message
        refused = self._refused.setdefault((agent, msg.topic, msg.partition), Refused())
        if not refused.add(msg.offset, category, self._committed(msg.tp)):
            metrics.DEADLETTERS_REPEATED.labels(agent).inc()
            return
        await self.send_record(agent, msg.key, msg.value, (msg.topic, msg.partition, msg.offset), reason, category)

    def _committed(self, tp: Any) -> int | None:
        """The consumer's committed offset of `tp` (what it will read from after a rebalance), if it has one."""
        return committed_offset(getattr(self.app, "consumer", None), tp)

    async def send_record(self, agent: str, key: bytes | None, value: bytes | None, origin: tuple[str, int, int],
                          reason: str, category: str) -> None:
        """Hand a dead letter to the producer for something that is not a consumed record (a notification the
        notify stage could not deliver: origin names its lane and order); `settle` waits for it and counts it."""
        topic, partition, offset = origin
        letter = letter_of(key, value, origin, agent, reason, category, self.max_bytes, self.head_bytes)
        self._pending.setdefault(agent, []).append((letter, await self._produce(letter)))
        log.warning("dead-lettering %s:%d@%d%s: %s", topic, partition, offset,
                    " (bounded reference)" if letter.truncated else "", reason[:200])

    async def _produce(self, letter: Letter) -> asyncio.Future[Any]:
        """Send one letter as a record batch of its own: `AIOKafkaProducer.send` refuses a record with neither key
        nor value, which a topic can hold. Keyed letters go where a keyed producer puts them, others to the
        partition the record came from (modulo the dead-letter topic's partitions)."""
        try:
            kafka = self.app.producer._ensure_producer()  # Faust keeps its aiokafka producer private
            partitions = len(await kafka.partitions_for(self.topic))
            partition = key_partition(letter.key, partitions) if letter.key else letter.origin_partition % partitions
            (future,) = await send_batches(self.app, self.topic, partition, [(letter.key, letter.value,
                                                                              letter.headers)])
        except Exception as exc:  # noqa: BLE001 - refused before it left: settled (and retried) like a failure
            future = asyncio.get_running_loop().create_future()
            future.set_exception(exc)
        return future

    async def settle(self, agent: str) -> None:
        """Wait until every letter `agent` sent is on the broker, re-sending failed ones with backoff; count them.

        Raises `DeadLetterUndelivered` only when the app is stopping with letters still failing.
        """
        delay = self.backoff_s
        while pending := self._pending.pop(agent, []):
            await asyncio.gather(*(future for _, future in pending), return_exceptions=True)
            failed: list[Letter] = []
            error: BaseException | None = None
            for letter, future in pending:
                problem = asyncio.CancelledError() if future.cancelled() else future.exception()
                if problem is None:
                    metrics.DEADLETTERS.labels(letter.agent, letter.category).inc()
                else:
                    failed.append(letter)
                    error = error or problem
            if not failed:
                continue
            if self.app.should_stop:
                raise DeadLetterUndelivered(f"{len(failed)} dead letters of {agent} undelivered: {error!r}")
            metrics.DEADLETTER_RETRIES.inc(len(failed))
            log.warning("%d dead letters of %s not delivered (%r); again in %.1f s", len(failed), agent, error, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_BACKOFF_S)
            self._pending[agent] = [(letter, await self._produce(letter)) for letter in failed]

    async def guarded(self, agent: str, events: Sequence[EventT[Any]],
                      handle: Callable[[Sequence[EventT[Any]]], Awaitable[None]], max_bytes: int = 0) -> None:
        """Handle one batch and settle its dead letters; acknowledge the batch only if both succeeded.

        Faust's `take_events` acknowledges a batch when the agent's loop moves on, even after an exception, and
        commits its offsets: the extra reference taken here keeps a failed batch unacknowledged instead.
        A record whose key and value exceed `max_bytes` (0: no bound) is refused before the batch is handled
        (`record_too_large`): an agent that stores or forwards what it reads could not write it, and that
        write would fail the whole batch. A batch handled whole counts all its records in
        `aiops_records_consumed_total`, so in = consumed = processed + dead-lettered.
        """
        messages = [event.message for event in events]
        for message in messages:
            message.incref()
        try:
            kept: list[EventT[Any]] = []
            for event in events:
                if max_bytes and _size(event) > max_bytes:
                    await self.send(agent, event, f"a record of {_size(event)} bytes is larger than {agent} can "
                                    f"store or send on ({max_bytes})", RecordTooLarge.category)
                else:
                    kept.append(event)
            if kept:
                await handle(kept)
            await self.settle(agent)
        except Exception as exc:  # noqa: BLE001 - a batch that failed as a whole: never acked, agent goes on
            self._pending.pop(agent, None)
            self._abandon(agent, messages, exc)
            return
        except BaseException as exc:  # cancelled (rebalance, stop): unacknowledged, then let it through
            self._pending.pop(agent, None)
            self._abandon(agent, messages, exc, log_it=False)
            raise
        # Counted here, once a batch is handled whole, for all its records: processed, refused by a decoder and
        # refused for size alike (counted by the agent, the last were missed and letters could outnumber it).
        metrics.RECORDS_CONSUMED.labels(agent).inc(len(messages))
        consumer = self.app.consumer
        for message in messages:
            message.ack(consumer)

    def release(self, messages: Iterable[Any]) -> None:
        """Stop Faust's rebalance and stop from waiting for these messages to be acknowledged (they never will
        be: whoever owns the partition after the rebalance, this worker included, reads them again)."""
        release(self.app.consumer, messages)  # nor commit past them until they are read again

    def _abandon(self, agent: str, messages: list[Any], exc: BaseException, log_it: bool = True) -> None:
        """Leave a failed batch unacknowledged for good, without stalling the next rebalance.

        Released (`stream.consumer.release`), the partition commits nothing past the batch until it is read again,
        so whoever owns the partition next, this worker included, reads it again. Faust's rebalance and stop wait
        until every message it handed out is acknowledged (`Consumer.wait_empty`, a weak set the traceback would
        keep these in): they are taken out of that set, and the traceback's frames are cleared.
        """
        self.release(messages)
        if log_it:
            metrics.BATCHES_UNACKED.labels(agent).inc()
            log.error("%s: batch of %d records failed and is not acknowledged (%s); its partitions commit no "
                      "further until their next owner reads them again: %r", agent, len(messages),
                      first_offsets(messages), exc, exc_info=exc)
        if exc.__traceback__ is not None:
            traceback.clear_frames(exc.__traceback__)
