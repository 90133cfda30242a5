"""Sends the deliveries `correlator.notify` decides: in order per lane, at least once, bounded, counted.

* Order: deliveries of one lane (one subject at one receiver) go one at a time in their `order`, so a resolve
  never overtakes its trigger; lanes run side by side. A delivery whose order the lane has already finished is
  ignored when submitted again (the outbox re-submitting after a restart), and so is one already waiting.
* At least once: a delivery is finished only by a 2xx or by its dead letter; `on_outcome` hears of each one,
  which is when the caller may forget it (until then it stays in the caller's outbox, and a restart sends it
  again: PagerDuty absorbs that by `dedup_key`, Alertmanager by the alert's labels).
* Retries: timeouts, connection failures, 5xx, 408 and 429 are tried again after an exponential backoff with
  jitter, longer when `Retry-After` asks for it (`correlator.notify.retry`); after the receiver's `retries`, or
  at once for any other 4xx, the outcome is a dead letter with its reason (the answer's status and start).
* Metrics: `aiops_notifications_total{receiver,kind,outcome}`, `aiops_notification_retries_total`, and the
  latency from the delivery's `created_at` (the incident event that made it due) to the 2xx.

The clock, the sleep and the jitter's random draw are injected, so a test sees the waits without waiting.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Self

import aiohttp

from correlator import metrics
from correlator.notify.models import Delivery
from correlator.notify.retry import (
    DEFAULT_RETRY,
    RetryPolicy,
    Verdict,
    backoff_s,
    retry_after_s,
    verdict_of,
)
from correlator.notify.state import Step

__all__ = ["Deliverer", "Outcome", "OutcomeHandler", "count_step", "dispatch"]

log = logging.getLogger(__name__)

REASON_BYTES = 200
"""How much of a refusing answer's body a dead letter's reason keeps."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one delivery ended: delivered (2xx), or a dead letter with its reason."""

    delivery: Delivery
    delivered: bool
    attempts: int
    status: int | None
    reason: str
    finished_at: float


OutcomeHandler = Callable[[Outcome], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int | None
    reason: str
    retry_after: str | None = None


def _retry_label(answer: _Answer) -> str:
    if answer.status is None:
        return "timeout" if answer.reason == "timeout" else "connection"
    return "http_5xx" if answer.status >= 500 else f"http_{answer.status}"


class Deliverer:
    """The HTTP side of notify: `submit` deliveries, `drain` to wait for them, `close` at the end."""

    def __init__(self, *, on_outcome: OutcomeHandler | None = None, policy: RetryPolicy = DEFAULT_RETRY,
                 clock: Callable[[], float] = time.time, draw: Callable[[], float] = random.random,
                 sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep) -> None:
        self.on_outcome = on_outcome
        self.policy = policy
        self.clock, self.draw, self.sleep = clock, draw, sleep
        self.finished: dict[str, int] = {}
        """lane -> the highest order finished there (delivered or dead-lettered)."""
        self._lanes: dict[str, list[Delivery]] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        """One client session for every receiver (connection pooling), made on first use inside the loop."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(headers={"User-Agent": "aiops-correlator"})
        return self._session

    def submit(self, delivery: Delivery) -> bool:
        """Queue a delivery on its lane; False when that lane has finished it already or holds it."""
        lane = self._lanes.setdefault(delivery.lane, [])
        if delivery.order <= self.finished.get(delivery.lane, 0) or any(d.order == delivery.order for d in lane):
            return False
        lane.append(delivery)
        lane.sort(key=lambda d: d.order)
        if delivery.lane not in self._tasks:
            self._tasks[delivery.lane] = asyncio.create_task(self._run(delivery.lane), name=f"notify {delivery.lane}")
        return True

    def pending(self) -> list[Delivery]:
        """Deliveries submitted and not finished (the one in flight included), by lane and order."""
        return [d for lane in self._lanes.values() for d in lane]

    async def drain(self) -> None:
        """Wait until every lane is empty."""
        while self._tasks:
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    async def close(self) -> None:
        """Stop the lanes (what they still hold stays with the caller's outbox) and close the session."""
        for task in self._tasks.values():
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        self._tasks.clear()
        if self._session is not None:
            await self._session.close()

    async def _run(self, lane: str) -> None:
        queue = self._lanes[lane]
        try:
            while queue:
                outcome = await self.send(queue[0])
                queue.pop(0)
                self.finished[lane] = max(self.finished.get(lane, 0), outcome.delivery.order)
                if self.on_outcome is not None:
                    await self.on_outcome(outcome)
        finally:
            self._tasks.pop(lane, None)
            if not queue:
                self._lanes.pop(lane, None)

    async def send(self, delivery: Delivery) -> Outcome:
        """One delivery to its end: retried while worth it and allowed, then delivered or dead-lettered."""
        attempt = 0
        while True:
            answer = await self._attempt(delivery)
            verdict = verdict_of(answer.status)
            if verdict is Verdict.DELIVERED:
                return self._finish(delivery, attempt + 1, answer, True)
            if verdict is Verdict.REFUSED or attempt >= delivery.retries:
                tried = "refused" if verdict is Verdict.REFUSED else f"gave up after {attempt + 1} attempts"
                return self._finish(delivery, attempt + 1, _Answer(answer.status, f"{tried}: {answer.reason}"), False)
            metrics.NOTIFICATION_RETRIES.labels(delivery.receiver, _retry_label(answer)).inc()
            wait = backoff_s(attempt, self.draw(), self.policy)
            asked = retry_after_s(answer.retry_after, self.clock(), self.policy)
            await self.sleep(max(wait, asked or 0.0))
            attempt += 1

    async def _attempt(self, delivery: Delivery) -> _Answer:
        timeout = aiohttp.ClientTimeout(total=delivery.timeout_s)
        try:
            async with self.session.post(delivery.url, data=delivery.body.encode(), headers=delivery.headers,
                                         timeout=timeout) as resp:
                text = (await resp.read())[:REASON_BYTES].decode(errors="replace")
                return _Answer(resp.status, f"http {resp.status}: {text}".strip(), resp.headers.get("Retry-After"))
        except TimeoutError:
            return _Answer(None, "timeout")
        except aiohttp.ClientError as exc:
            return _Answer(None, f"connection: {exc}"[:REASON_BYTES])

    def _finish(self, delivery: Delivery, attempts: int, answer: _Answer, delivered: bool) -> Outcome:
        now = self.clock()
        outcome = "delivered" if delivered else "dead_letter"
        metrics.NOTIFICATIONS.labels(delivery.receiver, delivery.action, outcome).inc()
        if delivered:
            metrics.NOTIFICATION_LATENCY.labels(delivery.receiver).observe(max(0.0, now - delivery.created_at))
        else:
            log.warning("notify: %s %s of %s dead-lettered: %s", delivery.receiver, delivery.action,
                        delivery.subject_id, answer.reason)
        return Outcome(delivery, delivered, attempts, answer.status, "" if delivered else answer.reason, now)


def count_step(step: Step) -> None:
    """Count what a fold step held back: silenced subjects, pages dropped by a hold or a rate-limit queue."""
    for _, reason in step.silenced:
        metrics.NOTIFICATIONS_SILENCED.labels(reason).inc()
    for receiver, outcome in step.dropped:
        metrics.NOTIFICATIONS.labels(receiver, "trigger", outcome).inc()
    for _, outcome in step.reconciled:
        metrics.NOTIFY_RECONCILED.labels(outcome).inc()


def dispatch(step: Step, deliverer: Deliverer) -> int:
    """Hand a fold step to the deliverer and count what it held back: the one call after `on_record`/`on_tick`.

    Returns how many deliveries were queued (a delivery its lane already finished or holds is not queued again).
    """
    count_step(step)
    return sum(deliverer.submit(delivery) for delivery in step.deliveries)
