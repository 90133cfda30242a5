"""The deliverer against loopback receivers that keep each API's documented contract (tests/receivers.py):
PagerDuty's 202 with dedup_key, its 400 and 429; Slack's ok, 400 and 429; the signed webhook's HMAC check.
Retries, Retry-After, the bound and lane order, with the waits recorded instead of slept."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from prometheus_client import REGISTRY

from correlator.notify import (
    Delivery,
    NotifyPolicy,
    NotifyRecord,
    NotifyState,
    on_record,
)
from correlator.notify.retry import DEFAULT_RETRY, backoff_s, retry_after_s, verdict_of
from stream.notify.delivery import Deliverer, Outcome, dispatch

from .notifying import ISSUE_ROUTES, T0, incident, routes
from .receivers import Receiver, start_receiver

STAGE1 = NotifyPolicy(page_causes=False)


def metric(name: str, **labels: str) -> float:
    """A sample's value now (0 when absent)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


class Recorder:
    """The deliverer's injected sleep and outcome handler: waits and outcomes are recorded, nothing sleeps."""

    def __init__(self) -> None:
        self.waits: list[float] = []
        self.outcomes: list[Outcome] = []

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        await asyncio.sleep(0)

    async def outcome(self, outcome: Outcome) -> None:
        self.outcomes.append(outcome)


def run(test: Callable[..., Awaitable[None]], *kinds: str, secret: str = "s3cret") -> None:
    """Start one receiver per kind, run the test with them and a Deliverer, stop everything."""

    async def main() -> None:
        receivers = [await start_receiver(kind, secret=secret) for kind in kinds]
        recorder = Recorder()
        deliverer = Deliverer(on_outcome=recorder.outcome, sleep=recorder.sleep, draw=lambda: 0.0)
        try:
            await test(deliverer, recorder, *receivers)
        finally:
            await deliverer.close()
            for receiver in receivers:
                await receiver.stop()

    asyncio.run(main())


def _delivery(receiver: Receiver, body: Any, *, order: int = 1, action: str = "trigger", retries: int = 3,
              timeout_s: float = 5.0, subject: str = "inc-1") -> Delivery:
    return Delivery(receiver=receiver.kind, receiver_type=receiver.kind, action=action, subject_id=subject,
                    order=order, url=receiver.url, body=json.dumps(body), headers={"Content-Type": "application/json"},
                    timeout_s=timeout_s, retries=retries, created_at=T0)


def _pd_event(action: str = "trigger", key: str = "inc-1") -> dict[str, Any]:
    event: dict[str, Any] = {"routing_key": "R0UTINGKEY", "event_action": action, "dedup_key": key}
    if action == "trigger":
        event["payload"] = {"summary": "checkout/5xx", "source": "db1", "severity": "critical"}
    return event


def test_the_issue_routes_reach_pagerduty_slack_and_the_signed_webhook() -> None:
    async def test(deliverer: Deliverer, rec: Recorder, pd: Receiver, slack: Receiver, hook: Receiver) -> None:
        config = routes(ISSUE_ROUTES.replace("{receiver: hook}", "{receiver: hook, hold: {for: 0}}"),
                        oncall=pd.url, chat=slack.url, hook=hook.url)
        state, now = NotifyState(), time.time()  # the receiver checks the signature's time against its clock
        records: list[tuple[float, NotifyRecord]] = [
            (now, incident("inc-1", severity="critical")), (now, incident("inc-2", service="search")),
            (now + 0.1, incident("inc-1", 2, status="resolved", severity="critical"))]
        queued = [dispatch(on_record(state, record, now, config, policy=STAGE1), deliverer)
                  for now, record in records]
        assert queued == [2, 1, 2]  # oncall and chat; hook; the two resolves
        await deliverer.drain()
        assert all(o.delivered for o in rec.outcomes), [o.reason for o in rec.outcomes]
        assert [(e["event_action"], e["dedup_key"]) for e in pd.accepted] == [("trigger", "inc-1"),
                                                                                ("resolve", "inc-1")]
        assert [o.status for o in rec.outcomes if o.delivery.receiver == "oncall"] == [202, 202]
        assert [m["text"].split("]")[0] for m in slack.accepted] == ["*[FIRING", "*[RESOLVED"]
        assert [(b["incident_id"], b["action"]) for b in hook.accepted] == [("inc-2", "trigger")]
        assert not pd.refused and not slack.refused and not hook.refused

    run(test, "pagerduty", "slack", "webhook")


def test_pagerduty_400_is_dead_lettered_at_once_with_its_reason() -> None:
    async def test(deliverer: Deliverer, rec: Recorder, pd: Receiver) -> None:
        before = metric("aiops_notifications_total", receiver="pagerduty", kind="trigger", outcome="dead_letter")
        bad = {**_pd_event(), "payload": {"summary": "x", "source": "db1", "severity": "fatal"}}
        outcome = await deliverer.send(_delivery(pd, bad))
        assert (outcome.delivered, outcome.status, outcome.attempts, rec.waits) == (False, 400, 1, [])
        assert outcome.reason.startswith("refused: http 400: ") and "invalid event" in outcome.reason
        assert pd.refused[0][0] == 400 and "'payload.severity' must be one of" in outcome.reason
        after = metric("aiops_notifications_total", receiver="pagerduty", kind="trigger", outcome="dead_letter")
        assert after == before + 1

    run(test, "pagerduty")


def test_pagerduty_429_is_retried_after_the_wait_it_asks_for() -> None:
    async def test(deliverer: Deliverer, rec: Recorder, pd: Receiver) -> None:
        retries = metric("aiops_notification_retries_total", receiver="pagerduty", reason="http_429")
        pd.fail_with(429, times=2, headers={"Retry-After": "3"})
        pd.fail_with(429)  # no Retry-After: the backoff alone
        outcome = await deliverer.send(_delivery(pd, _pd_event(), retries=3))
        assert (outcome.delivered, outcome.status, outcome.attempts) == (True, 202, 4)
        assert rec.waits == [3.0, 3.0, 1.0]  # Retry-After wins over 0.25 s, 0.5 s; then the backoff's 1.0 s
        assert pd.accepted == [_pd_event()]
        assert metric("aiops_notification_retries_total", receiver="pagerduty", reason="http_429") == retries + 3

    run(test, "pagerduty")


def test_5xx_past_the_bound_is_a_dead_letter_after_exponential_waits() -> None:
    async def test(deliverer: Deliverer, rec: Recorder, slack: Receiver) -> None:
        slack.fail_with(503, times=10)
        outcome = await deliverer.send(_delivery(slack, {"text": "hi"}, retries=3))
        assert (outcome.delivered, outcome.attempts) == (False, 4)
        assert outcome.reason == "gave up after 4 attempts: http 503: failed"
        assert rec.waits == [0.25, 0.5, 1.0]  # base 0.5 s doubling, the jitter's draw at 0 (half of each)

    run(test, "slack")


def test_timeouts_are_retried_then_dead_lettered() -> None:
    async def test(deliverer: Deliverer, rec: Recorder, hook: Receiver) -> None:
        hook.delay_s = 0.5
        outcome = await deliverer.send(_delivery(hook, {"a": 1}, retries=1, timeout_s=0.05))
        assert (outcome.delivered, outcome.status, outcome.reason) == (False, None, "gave up after 2 attempts: timeout")

    run(test, "webhook")


def test_slack_contract_no_text_and_429() -> None:
    async def test(deliverer: Deliverer, rec: Recorder, slack: Receiver) -> None:
        empty = await deliverer.send(_delivery(slack, {"channel": "#ops"}))
        assert (empty.delivered, empty.status, empty.reason) == (False, 400, "refused: http 400: no_text")
        slack.fail_with(429, headers={"Retry-After": "1"})
        ok = await deliverer.send(_delivery(slack, {"text": "hello"}))
        assert (ok.delivered, ok.status, rec.waits, slack.accepted) == (True, 200, [1.0], [{"text": "hello"}])

    run(test, "slack")


def test_a_webhook_with_the_wrong_secret_is_refused_by_the_receiver() -> None:
    async def test(deliverer: Deliverer, rec: Recorder, hook: Receiver) -> None:
        config = routes(ISSUE_ROUTES.replace('secret: "s3cret"', 'secret: "not-it"')
                        .replace("{receiver: hook}", "{receiver: hook, hold: {for: 0}}"), hook=hook.url)
        (delivery,) = on_record(NotifyState(), incident(service="search"), T0, config, policy=STAGE1).deliveries
        outcome = await deliverer.send(delivery)
        assert (outcome.delivered, outcome.status) == (False, 401) and hook.refused[0][0] == 401

    run(test, "webhook")


def test_a_lane_keeps_order_and_ignores_what_it_finished() -> None:
    async def test(deliverer: Deliverer, rec: Recorder, pd: Receiver) -> None:
        pd.fail_with(503)  # the trigger's first attempt fails: the resolve must still wait for it
        trigger = _delivery(pd, _pd_event(), order=1)
        resolve = _delivery(pd, _pd_event("resolve"), order=2, action="resolve")
        other = _delivery(pd, _pd_event(key="inc-2"), order=1, subject="inc-2")
        assert deliverer.submit(resolve) and deliverer.submit(trigger) and deliverer.submit(other)
        assert not deliverer.submit(trigger)  # already waiting
        await deliverer.drain()
        lane = [e["event_action"] for e in pd.accepted if e["dedup_key"] == "inc-1"]
        assert lane == ["trigger", "resolve"]
        assert not deliverer.submit(trigger) and not deliverer.submit(resolve)  # finished: a restart's resend
        assert deliverer.pending() == [] and len(rec.outcomes) == 3

    run(test, "pagerduty")


def test_latency_is_observed_from_the_delivery_creation_to_the_2xx() -> None:
    async def test(deliverer: Deliverer, rec: Recorder, slack: Receiver) -> None:
        def bucket(le: str) -> float:
            return metric("aiops_notification_latency_seconds_bucket", receiver="slack", le=le)

        before = bucket("1.0"), bucket("2.5")
        deliverer.clock = lambda: T0 + 2.0
        await deliverer.send(_delivery(slack, {"text": "x"}))
        assert (bucket("1.0"), bucket("2.5")) == (before[0], before[1] + 1)  # 2 s: above 1, within 2.5

    run(test, "slack")


@pytest.mark.parametrize(("status", "verdict"), [(200, "delivered"), (202, "delivered"), (400, "refused"),
                                                 (404, "refused"), (408, "retry"), (429, "retry"), (500, "retry"),
                                                 (503, "retry"), (None, "retry")])
def test_verdicts(status: int | None, verdict: str) -> None:
    assert verdict_of(status).value == verdict


def test_backoff_and_retry_after() -> None:
    assert [backoff_s(a, 0.0) for a in range(4)] == [0.25, 0.5, 1.0, 2.0]
    assert [backoff_s(a, 0.999999) for a in range(2)] == pytest.approx([0.5, 1.0])
    assert backoff_s(30, 0.0) == DEFAULT_RETRY.max_backoff_s / 2
    assert retry_after_s("7", T0) == 7.0 and retry_after_s("bogus", T0) is None and retry_after_s(None, T0) is None
    assert retry_after_s("Thu, 28 May 2026 20:27:00 GMT", T0) == 20.0  # an HTTP date, T0 is 20:26:40
    assert retry_after_s("86400", T0) == DEFAULT_RETRY.max_retry_after_s


def test_dispatch_counts_silenced_and_held_back_pages() -> None:
    async def test(deliverer: Deliverer, rec: Recorder, hook: Receiver) -> None:
        config = routes(ISSUE_ROUTES, hook=hook.url)
        silenced = metric("aiops_notifications_silenced_total", reason="source")
        held = metric("aiops_notifications_total", receiver="hook", kind="trigger", outcome="held_back")
        state = NotifyState()
        muted = incident("inc-m", service="search", entities={"aiops_muted": ["maintenance"]})
        assert dispatch(on_record(state, muted, T0, config, policy=STAGE1), deliverer) == 0
        assert dispatch(on_record(state, incident("inc-h", service="search"), T0, config, policy=STAGE1),
                        deliverer) == 0
        resolved = incident("inc-h", 2, status="resolved", service="search")
        assert dispatch(on_record(state, resolved, T0 + 5, config, policy=STAGE1), deliverer) == 0
        assert metric("aiops_notifications_silenced_total", reason="source") == silenced + 1
        assert metric("aiops_notifications_total", receiver="hook", kind="trigger", outcome="held_back") == held + 1
        assert hook.accepted == [] and hook.refused == []

    run(test, "webhook")
