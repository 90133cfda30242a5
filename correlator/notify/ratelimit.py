"""A receiver's rate limit: a token bucket, and the queue of pages waiting for it. Pure.

The bucket holds at most `count` tokens and refills at `count` per `per` seconds; a page takes one. Pages beyond
it wait in the receiver's queue in the order they were made, and anything later of the same lane (a resolve, an
acknowledgement) waits behind them, so nothing overtakes. A page whose subject ends while it still waits is taken
out of the queue with everything behind it: there is nothing to resolve at a receiver that was never told.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from correlator.notify.config import Receiver
from correlator.notify.models import Delivery

__all__ = ["Bucket", "take_token", "trigger_waits", "without_lane"]


@dataclass(slots=True)
class Bucket:
    """A receiver's token bucket: tokens left at time `at`."""

    tokens: float
    at: float


def take_token(buckets: dict[str, Bucket], receiver: Receiver, now: float) -> bool:
    """Take one token of the receiver's bucket (made full on first use), refilled up to `now`; True without a
    rate limit, False when the bucket is empty."""
    limit = receiver.rate_limit
    if limit is None:
        return True
    bucket = buckets.setdefault(receiver.name, Bucket(tokens=float(limit.count), at=now))
    bucket.tokens = min(float(limit.count), bucket.tokens + (now - bucket.at) * limit.count / limit.per)
    bucket.at = now
    if bucket.tokens < 1.0:
        return False
    bucket.tokens -= 1.0
    return True


def trigger_waits(queue: Sequence[Delivery], subject_id: str) -> bool:
    """Whether the subject's first delivery in the queue is its trigger (the receiver has not been told yet)."""
    lane = [d for d in queue if d.subject_id == subject_id]
    return bool(lane) and lane[0].action == "trigger"


def without_lane(queue: Sequence[Delivery], subject_id: str) -> list[Delivery]:
    """The queue without the subject's deliveries."""
    return [d for d in queue if d.subject_id != subject_id]
