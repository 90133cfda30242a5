"""The pipeline on the real embedded broker: worker processes, real topics, real changelogs, real kills."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from correlator.config import DEFAULT_CONFIG
from correlator.models import IncidentEvent
from correlator.replay import replay
from correlator.sources import parse
from stream.broker import EmbeddedBroker
from stream.commands.replay import read_alerts
from stream.feed import follow_until
from stream.incident_records import is_stage2_record

from .paths import LAB_STORM
from .ticketing import wait_until
from .workers import Deployment, WorkerProc

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from storms import StormSpec, generate  # noqa: E402


@pytest.fixture
def deployment(broker: EmbeddedBroker, tmp_path: Path) -> Iterator[Deployment]:
    dep = Deployment(broker, tmp_path)
    dep.create_topics()
    yield dep


def expected_incidents(alerts_file_bodies: list[bytes]) -> dict[str, tuple[str, int]]:
    """Incident id -> (key, alert count) from the offline replay of the same bodies."""
    from correlator.sources import detect_source

    alerts = [a for body in alerts_file_bodies for a in parse(detect_source(body), body)]
    report = replay(alerts, DEFAULT_CONFIG)
    return {i.id: (i.key, i.alert_count) for i in report.incidents}


def follow(dep: Deployment, expected_alerts: int, timeout: float = 90.0) -> dict[str, IncidentEvent]:
    def done(latest: dict[str, IncidentEvent]) -> bool:
        return sum(e.alert_count for e in latest.values()) >= expected_alerts

    return asyncio.run(follow_until(dep.broker.bootstrap, done, topic=dep.topic("incidents"), timeout=timeout,
                                    quiet_s=3.0))


def storm_bodies(alerts: int, seed: int, per_body: int = 100) -> list[bytes]:
    """A generated storm (re-sends and resolutions included) cut into webhook-sized NDJSON bodies."""
    spec = StormSpec(alerts=alerts, services=20, seed=seed, storm_rate_per_s=0.02)
    lines = [orjson.dumps(record) for record, _ in generate(spec)]
    return [b"\n".join(lines[i:i + per_body]) for i in range(0, len(lines), per_body)]


def explain_difference(dep: Deployment, latest: dict[str, tuple[str, int]], expected: dict[str, tuple[str, int]],
                       workers: list[WorkerProc]) -> str:
    """For a failure message: the ids whose (key, alert count) differ from the replay's, every stage-1 event of
    their keys on `incidents` and every record of their keys on the correlation-state changelog (with the
    partitions' progress records), any incident whose seq was published twice with other content (a reader keeps
    the first: hop42's refold), and where the workers' logs are: a takeover that loses or splits an incident under
    load then explains itself."""
    ids = sorted(i for i in set(latest) | set(expected) if latest.get(i) != expected.get(i))
    keys = {pair[0] for i in ids for pair in (latest.get(i), expected.get(i)) if pair is not None}
    lines = [f"{i}: got {latest.get(i)}, replay {expected.get(i)}" for i in ids]
    lines.append("incidents (partition@offset id #seq kind alerts firing first_seen):")
    published: dict[tuple[str, int], set[tuple[str, int, int, int]]] = {}
    for r in dep.read_so_far("incidents", timeout=20):
        if not is_stage2_record(r.headers):
            ev = IncidentEvent.model_validate_json(r.value)
            published.setdefault((ev.incident_id, ev.seq), set()).add(
                (ev.kind, ev.alert_count, ev.firing_count, ev.duplicates))
            if ev.key in keys:
                lines.append(f"  {r.partition}@{r.offset} {ev.incident_id} #{ev.seq} {ev.kind} {ev.alert_count} "
                             f"{ev.firing_count} {ev.first_seen} {ev.key}")
    lines.append("seqs published with other content (id #seq: (kind, alerts, firing, duplicates) ...):")
    lines += [f"  {i} #{seq}: {sorted(contents)}" for (i, seq), contents in sorted(published.items())
              if len(contents) > 1]
    lines.append("correlation-state changelog (partition@offset key [headers] [(id, alerts, seq, phase)] pending):")
    for r in dep.read_so_far(f"{dep.app_id}-correlation-state-changelog", timeout=20, named=True):
        key = (r.key or b"").decode(errors="replace")
        headers = ",".join(h for h, _ in r.headers)
        if "#progress" in key:
            lines.append(f"  {r.partition}@{r.offset} {key} [{headers}] {(r.value or b'').decode(errors='replace')}")
        elif key.partition("|")[2] in keys:
            if r.value is None:
                lines.append(f"  {r.partition}@{r.offset} {key} [{headers}] tombstone")
                continue
            doc = orjson.loads(r.value)
            counts = [(inc["id"], inc["count"], inc["seq"], inc["phase"]) for inc in doc["incidents"]]
            lines.append(f"  {r.partition}@{r.offset} {key} [{headers}] {counts} pending={len(doc['pending'])}")
    for w in workers:  # where each worker took its partitions up, and whether a restore or a fetch went astray
        said = [line for line in w.log.read_text(errors="replace").splitlines() if any(
            mark in line for mark in TAKEOVER_LOG_MARKS)]
        lines += [f"log: {w.log} ({len(said)} lines of note, the last 25):", *(f"  {line[:300]}" for line in said[-25:])]
    return "\n".join(lines)


TAKEOVER_LOG_MARKS = ("correlation engine for partition", "first record read", "no committed offset",
                      "fetch came back", "No event received", "never committed were not restored", "not committing",
                      "passed over by the fetch")
"""Worker log lines `explain_difference` quotes: restores, where reading resumed, and what went astray."""


def test_lab_storm_yields_the_replay_incidents(deployment: Deployment, workers: list[WorkerProc]) -> None:
    workers.append(deployment.start_worker())
    body = LAB_STORM.read_bytes()
    deployment.produce("alerts_raw", [(b"generic", body)])
    latest = follow(deployment, expected_alerts=40)
    assert {i: (e.key, e.alert_count) for i, e in latest.items()} == expected_incidents([body])
    events = deployment.read("incidents", 1000, timeout=5)
    by_id: dict[str, list[int]] = {}
    assert any(is_stage2_record(record.headers) for record in events)  # stage 2 is on by default
    for record in (r for r in events if not is_stage2_record(r.headers)):
        ev = IncidentEvent.model_validate_json(record.value)
        by_id.setdefault(ev.incident_id, []).append(ev.seq)
        assert record.key.decode() == ev.incident_id
        assert (ev.kind == "opened") == (ev.seq == 1)
    assert all(seqs == list(range(1, len(seqs) + 1)) for seqs in by_id.values()), by_id
    view = workers[0].get("/incidents/")
    assert {i["id"] for i in view["incidents"]} == set(latest)
    stats = workers[0].get("/stats")  # what the benchmarks poll instead of /metrics
    assert stats["normalized"] == stats["counters"]["records"] == len(parse("generic", body))
    one = next(iter(latest))
    assert len(workers[0].get(f"/incidents/{one}/")["members"]) == latest[one].alert_count


def test_bad_records_go_to_the_dead_letter_topic_and_the_agent_goes_on(
        deployment: Deployment, workers: list[WorkerProc]) -> None:
    worker = deployment.start_worker()
    workers.append(worker)
    bad = [
        (b"generic", b'{"starts_at": 1772420400, "labels": '),          # malformed JSON
        (b"generic", b'{"hello": "world"}'),                              # unknown shape: no starts_at
        (b"alertmanager", b'{"version": "3", "alerts": [], "groupKey": "x"}'),  # unknown version
    ]
    deployment.produce("alerts_raw", [*bad, (b"generic", LAB_STORM.read_bytes())])
    deployment.produce("alerts", [(b"x/y", b"\xff\xfe not json")])       # straight onto alerts
    latest = follow(deployment, expected_alerts=40)
    assert sum(e.alert_count for e in latest.values()) == 40
    letters = deployment.read("deadletter", 4, timeout=20)
    assert len(letters) == 4
    values = {r.value for r in letters}
    assert {v for _, v in bad} | {b"\xff\xfe not json"} == values  # the original bytes, untouched
    reasons = {r.value: dict(r.headers) for r in letters}
    assert b"malformed JSON" in reasons[bad[0][1]]["reason"]
    assert b"starts_at" in reasons[bad[1][1]]["reason"]
    assert b"version" in reasons[bad[2][1]]["reason"]
    assert reasons[b"\xff\xfe not json"]["agent"] == b"correlate"
    assert worker.metric("aiops_deadletters_total", agent="normalize", reason="malformed_json") == 1
    assert worker.metric("aiops_deadletters_total", agent="normalize", reason="missing_field") == 1
    assert worker.metric("aiops_deadletters_total", agent="normalize", reason="unknown_version") == 1
    assert worker.metric("aiops_deadletters_total", agent="correlate", reason="bad_alert_record") == 1


def test_sigkill_mid_storm_recovers_the_same_incidents(deployment: Deployment, workers: list[WorkerProc]) -> None:
    bodies = storm_bodies(3000, seed=11)
    expected = expected_incidents(bodies)
    total = sum(count for _, count in expected.values())
    first = deployment.start_worker("first")
    workers.append(first)
    half = len(bodies) // 2
    deployment.produce("alerts_raw", [(b"generic", b) for b in bodies[:half]])
    asyncio.run(follow_until(deployment.broker.bootstrap, lambda latest: len(latest) >= 5,
                             topic=deployment.topic("incidents"), timeout=60, quiet_s=0))
    first.kill()
    deployment.produce("alerts_raw", [(b"generic", b) for b in bodies[half:]])
    workers.append(deployment.start_worker("second"))
    latest = follow(deployment, expected_alerts=total)
    assert {i: (e.key, e.alert_count) for i, e in latest.items()} == expected
    # a redelivered event repeats its id and seq; consumers that keep the highest seq see no gap
    seqs: dict[str, set[int]] = {}
    for record in deployment.read("incidents", 100_000, timeout=5):
        if is_stage2_record(record.headers):
            continue
        ev = IncidentEvent.model_validate_json(record.value)
        seqs.setdefault(ev.incident_id, set()).add(ev.seq)
    assert all(s == set(range(1, max(s) + 1)) for s in seqs.values())


# Once a split defect: under load (2 busy loops, or the suite in 3 processes) about 1 run in 6-8 split two keys after
# the takeover (`cluster=c1/svc-0008/PodCrashLooping`: 14 one-alert incidents where the replay has one of 14): A was
# killed before its first offset commit, and B read A's partitions of `alerts` from where the rebalance's dropped
# fetch had left them, past the first half of the storm. Fixed in stream/consumer.py (`seek_to_committed`);
# tests/test_broker.py has the mechanism on its own. It runs with the rest again, so the suite's own load keeps
# testing the fix.
def test_two_workers_share_partitions_and_one_takes_over(deployment: Deployment, workers: list[WorkerProc]) -> None:
    bodies = storm_bodies(3000, seed=12)
    expected = expected_incidents(bodies)
    total = sum(count for _, count in expected.values())
    a, b = deployment.start_worker("a"), deployment.start_worker("b")
    workers += [a, b]
    owned_a, owned_b = a.wait_partitions(1), b.wait_partitions(1)
    assert not set(owned_a) & set(owned_b)
    deployment.produce("alerts_raw", [(b"generic", body) for body in bodies[: len(bodies) // 2]])
    asyncio.run(follow_until(deployment.broker.bootstrap, lambda latest: len(latest) >= 5,
                             topic=deployment.topic("incidents"), timeout=60, quiet_s=0))
    a.kill()
    assert sorted(b.wait_partitions(4, timeout=60)) == [0, 1, 2, 3]
    deployment.produce("alerts_raw", [(b"generic", body) for body in bodies[len(bodies) // 2:]])
    latest = follow(deployment, expected_alerts=total)
    got = {i: (e.key, e.alert_count) for i, e in latest.items()}
    assert got == expected, explain_difference(deployment, got, expected, workers)


def test_a_quiet_partition_still_resolves_its_incidents(broker: EmbeddedBroker, tmp_path: Path,
                                                        workers: list[WorkerProc]) -> None:
    dep = Deployment(broker, tmp_path, extra_env={"AIOPS_IDLE_ADVANCE": "1", "AIOPS_RESOLVE_HOLD": "2"})
    dep.create_topics()
    workers.append(dep.start_worker())
    now = time.time()
    alerts = [{"fingerprint": f"q{i}", "starts_at": now - 30 + i, "labels": {"alertname": "Down", "service": "q"}}
              for i in range(3)]
    resolved = [{**a, "status": "resolved", "ends_at": now - 5} for a in alerts]
    dep.produce("alerts_raw", [(b"generic", b"\n".join(orjson.dumps(a) for a in alerts + resolved))])
    latest = asyncio.run(follow_until(broker.bootstrap, lambda seen: any(e.kind == "resolved" for e in seen.values()),
                                      topic=dep.topic("incidents"), timeout=60, quiet_s=0))
    [event] = latest.values()
    assert (event.kind, event.status, event.alert_count, event.firing_count) == ("resolved", "resolved", 3, 0)


def test_replayed_file_matches_the_offline_figures() -> None:
    """The live tests above compare against this offline replay; make sure it is the lab's."""
    report = replay(read_alerts(LAB_STORM), DEFAULT_CONFIG)
    assert (report.alerts, len(report.incidents)) == (40, 5)


def test_a_batch_that_fails_whole_is_retried_in_the_running_worker(deployment: Deployment,
                                                                   workers: list[WorkerProc]) -> None:
    """The broker refuses `incidents` for a while (the send seam of tests/faulty_worker.py): correlate's batches
    fail whole, are rolled back and folded again with backoff, without a restart; once the topic is back every
    incident is the replay's, and an event published again (output since the last checkpoint is regenerated by
    the refold, as after a crash) is byte for byte the same event: a reader keeping the highest seq sees no
    difference."""
    bodies = storm_bodies(2000, seed=5)
    expected = expected_incidents(bodies)
    flag = deployment.workdir / "incidents-down"
    flag.touch()
    worker = deployment.start_worker(module=("tests.faulty_worker", str(flag), deployment.topic("incidents")))
    workers.append(worker)
    deployment.produce("alerts_raw", [(b"generic", b) for b in bodies])
    wait_until(lambda: worker.metric_or_zero("aiops_batch_retries_total", agent="correlate") >= 2, 60, "retries",
               worker)
    assert deployment.read("incidents", 1, timeout=2) == []  # nothing got out while the topic was refused
    flag.unlink()
    latest = follow(deployment, expected_alerts=sum(count for _, count in expected.values()))
    assert {i: (e.key, e.alert_count) for i, e in latest.items()} == expected
    assert worker.proc.poll() is None  # the same process, never restarted
    # each alert counted once, however often its batch was folded again (stream/tally.py)
    assert worker.metric("aiops_alert_records_correlated_total") == worker.metric("aiops_alerts_received_total",
                                                                                  source="generic") > 0
    seen: dict[tuple[str, int], set[bytes]] = {}
    for record in deployment.read("incidents", 100_000, timeout=5):
        if not is_stage2_record(record.headers):
            ev = IncidentEvent.model_validate_json(record.value)
            seen.setdefault((ev.incident_id, ev.seq), set()).add(record.value)
    assert seen and all(len(values) == 1 for values in seen.values()), "one event per id and seq, never two"
    by_id: dict[str, set[int]] = {}
    for incident_id, seq in seen:
        by_id.setdefault(incident_id, set()).add(seq)
    assert all(s == set(range(1, max(s) + 1)) for s in by_id.values())
