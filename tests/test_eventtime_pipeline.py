"""The event-time rule on the embedded broker: a poison timestamp blinds nothing, a long-firing alert re-sent shows
once and marked, a too-old alert is dead-lettered with the rest of its body correlated, and tickets with impossible
times are dead-lettered by the triage agent."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timezone
from pathlib import Path

import orjson

from correlator.eventtime import CLAMP_LABEL, FIRING_SINCE_LABEL
from correlator.models import IncidentEvent
from stream.broker import EmbeddedBroker
from stream.feed import follow_until

from .workers import Deployment, WorkerProc


def generic(*alerts: dict[str, object]) -> bytes:
    return b"\n".join(orjson.dumps(a) for a in alerts)


def test_a_poison_timestamp_blinds_nothing_and_too_old_is_dead_lettered(
        broker: EmbeddedBroker, tmp_path: Path, workers: list[WorkerProc]) -> None:
    # One partition: the poison and the alerts after it share one watermark, as the did.
    dep = Deployment(broker, tmp_path, partitions=1,
                     extra_env={"AIOPS_IDLE_ADVANCE": "300", "AIOPS_EVENT_HORIZON": "7d"})  # the default horizon
    dep.create_topics()
    worker = dep.start_worker()
    workers.append(worker)
    now = time.time()
    webhook = orjson.dumps({"version": "4", "groupKey": "g", "status": "firing", "alerts": [
        {"status": "firing", "labels": {"alertname": "Up", "job": "clockwrong"}, "startsAt": "9999-12-31T23:59:59Z"},
        {"status": "firing", "labels": {"alertname": "Up", "job": "api"}, "startsAt": datetime.fromtimestamp(now - 30, timezone.utc).isoformat()},
    ]})
    too_old = generic({"starts_at": now - 9 * 86400, "ends_at": now - 8 * 86400, "status": "resolved",
                       "service": "old", "symptom": "disk"},
                      {"starts_at": now - 20, "service": "fresh", "symptom": "disk"})
    since = datetime.fromtimestamp(now - 30 * 86400, timezone.utc).replace(microsecond=0)
    long_firing = orjson.dumps({"version": "4", "groupKey": "g2", "status": "firing", "alerts": [
        {"status": "firing", "labels": {"alertname": "DiskFull", "job": "longfire"}, "startsAt": since.isoformat()}]})
    bodies: list[tuple[bytes | None, bytes]] = [
        (b"generic", generic(*({"starts_at": now - 60 + i, "fingerprint": f"g{i}", "service": "before",
                                "symptom": "latency"} for i in range(5)))),
        (b"alertmanager", webhook),
        (b"generic", generic({"starts_at": 9.9e10, "service": "genfuture", "symptom": "cpu"})),
        (b"generic", too_old),
        (b"generic", generic(*({"starts_at": now - 10 + i, "fingerprint": f"a{i}", "service": "after",
                                "symptom": "latency"} for i in range(3)))),
        (b"alertmanager", long_firing), (b"alertmanager", long_firing),  # firing for a month, re-sent
    ]
    tickets: list[tuple[bytes | None, bytes]] = [(f"T-{n}".encode(), orjson.dumps({"ticket_id": f"T-{n}", "text": "link down", "created_at": v}))
               for n, v in enumerate([-1e9, 1e300, True])]
    dep.produce("alerts_raw", bodies)
    dep.produce("tickets_raw", tickets)

    def done(latest: dict[str, IncidentEvent]) -> bool:
        return sum(e.alert_count for e in latest.values()) >= 13

    latest = asyncio.run(follow_until(broker.bootstrap, done, topic=dep.topic("incidents"), timeout=60, quiet_s=2.0))
    by_key = {e.service: e for e in latest.values()}  # by service, one symptom each: keys may grow a scope
    assert {k: e.alert_count for k, e in by_key.items()} == {
        "before": 5, "clockwrong": 1, "api": 1, "genfuture": 1, "fresh": 1, "after": 3, "longfire": 1}
    assert {e.status for e in latest.values()} == {"firing"}  # nothing opened and expired at once: nobody blinded
    assert by_key["clockwrong"].entities[CLAMP_LABEL] == ["starts_at=9999-12-31T23:59:59Z"]
    assert by_key["genfuture"].first_seen <= time.time()
    assert CLAMP_LABEL not in by_key["api"].entities
    assert by_key["longfire"].entities[FIRING_SINCE_LABEL] == [since.isoformat().replace("+00:00", "Z")]
    assert by_key["longfire"].first_seen >= now - 60  # shown now, not a month ago (where it would expire unseen)
    assert worker.get("/incidents/")["incidents"]  # a person sees them

    letters = dep.read("deadletter", 4, timeout=20)
    by_category = {dict(r.headers)["category"]: r for r in letters}
    assert set(by_category) == {b"too_old", b"invalid_ticket"} and len(letters) == 4
    old = by_category[b"too_old"]
    assert old.value == too_old  # the original bytes: a redrive after raising the horizon loses nothing
    assert dict(old.headers)["reason"].startswith(b"too old: 1 alert(s)")
    reasons = sorted(dict(r.headers)["reason"] for r in letters if dict(r.headers)["agent"] == b"triage")
    assert len(reasons) == 3 and all(b"created_at" in r for r in reasons)
    assert worker.metric("aiops_alert_time_adjusted_total", source="alertmanager", reason="future") == 1
    assert worker.metric("aiops_alert_time_adjusted_total", source="generic", reason="future") == 1
    assert worker.metric("aiops_alert_time_adjusted_total", source="generic", reason="too_old") == 1
    assert worker.metric("aiops_alert_time_adjusted_total", source="alertmanager", reason="long_firing") == 2
    assert worker.metric("aiops_deadletters_total", agent="normalize", reason="too_old") == 1
    assert worker.metric("aiops_deadletters_total", agent="triage", reason="invalid_ticket") == 3
