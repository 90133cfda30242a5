"""When to retry a delivery and how long to wait: pure functions of the answer, the attempt and a random draw.

A 2xx is delivered. A timeout, a connection failure, a 5xx, a 408 or a 429 is worth another attempt: the
receiver may be back in a moment. Any other 4xx is the receiver refusing this request (PagerDuty's 400 for a
bad routing key or payload): retrying would only repeat it, so it is dead-lettered at once, with the answer's
start as the reason. The wait is exponential (`base_s` * `factor` ** attempt, at most `max_backoff_s`) with
full jitter on its upper `jitter` part, so receivers coming back are not hit by every worker at once; a
`Retry-After` (seconds or an HTTP date) wins when it asks for longer, up to `max_retry_after_s`.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from enum import Enum

__all__ = ["DEFAULT_RETRY", "RetryPolicy", "Verdict", "backoff_s", "retry_after_s", "verdict_of"]


class Verdict(str, Enum):
    """What an attempt's answer means."""

    DELIVERED = "delivered"
    RETRY = "retry"
    REFUSED = "refused"


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """Backoff between attempts (the attempts themselves are bounded per receiver, `retries`)."""

    base_s: float = 0.5
    factor: float = 2.0
    max_backoff_s: float = 60.0
    jitter: float = 0.5
    max_retry_after_s: float = 300.0


DEFAULT_RETRY = RetryPolicy()


def verdict_of(status: int | None) -> Verdict:
    """The verdict on an HTTP status; None (a timeout or a connection failure) is worth a retry."""
    if status is None or status in (408, 429) or status >= 500:
        return Verdict.RETRY
    if 200 <= status < 300:
        return Verdict.DELIVERED
    return Verdict.REFUSED


def backoff_s(attempt: int, draw: float, policy: RetryPolicy = DEFAULT_RETRY) -> float:
    """The wait before attempt `attempt + 1` (attempt counts from 0); `draw` is uniform in [0, 1)."""
    ceiling = min(policy.max_backoff_s, policy.base_s * policy.factor ** attempt)
    return ceiling * (1.0 - policy.jitter) + ceiling * policy.jitter * draw


def retry_after_s(header: str | None, now: float, policy: RetryPolicy = DEFAULT_RETRY) -> float | None:
    """Seconds a `Retry-After` header asks for (delta seconds or an HTTP date), capped; None when absent or bad."""
    if not header:
        return None
    text = header.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(text).timestamp() - now
        except (TypeError, ValueError):
            return None
    return min(max(seconds, 0.0), policy.max_retry_after_s)
