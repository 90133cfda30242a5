"""Broker faults: the recovery rule, the state that forgets a lost broker's offsets, readiness as the ingest's
gate, and the embedded broker restarted under a live worker (its own Tansu, stopped and started by pid)."""

from __future__ import annotations

import asyncio
import contextlib
import time
import urllib.error
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from aiokafka.admin import AIOKafkaAdminClient

from correlator.state import KeyState
from stream.broker import EmbeddedBroker, start_broker
from stream.commands.worker import EMBEDDED_NOTE
from stream.checkpoint import Checkpointer
from stream.incident_records import is_incident_event, is_stage2_record
from stream.insight import Side
from stream.ingest import Readiness, ReadyState
from stream.recovery import REJOIN_RETRY_S, REJOINING, Probe, Recovery, Step, commit_fresh
from stream.state import TableStore

from .test_ingest import FakeSender, _post, am_body, fake_ingest, read_all, request, run_client, wait_ready
from .ticketing import REQUEST, sla_env, ticket, wait_events
from .workers import Deployment, WorkerProc, _read_so_far

WANTED = ["a", "b", "c"]
ALL = Probe(True, frozenset(WANTED))
NONE = Probe(True, frozenset())
DOWN = Probe(False, error="ConnectionError('refused')")
BROKER_DOWN = "broker unreachable"  # the same words as the ingest's broker check, so /readyz shows them once


# ---------------------------------------------------------------- the recovery rule (pure)


def started(agents: bool = True, recreate: bool = True) -> Recovery:
    """A rule past start-up: every topic seen, one rebalance finished."""
    rule = Recovery(WANTED, recreate=recreate, agents=agents)
    assert rule.observe(ALL, 1, False, 0.0).reasons == ()
    return rule


def test_start_creates_missing_topics_without_calling_it_a_loss() -> None:
    rule = Recovery(WANTED, recreate=True, agents=True)
    assert rule.check(0, False) == ["no broker check yet"]
    step = rule.observe(Probe(True, frozenset({"a"})), 0, False, 0.0)
    assert (step.create, step.lost, step.rejoin) == (("b", "c"), False, False)
    step = rule.observe(ALL, 0, True, 1.0)
    assert step.reasons == ("agents starting: no partition assignment finished yet",)
    assert rule.check(1, True) == list(step.reasons)
    assert rule.check(1, False) == []  # the rebalance ended since the probe: ready at once, not a probe later
    assert rule.observe(ALL, 1, False, 2.0).reasons == ()
    assert rule.observe(ALL, 2, True, 3.0).reasons == ()  # an ordinary rebalance later is no reason


def test_outage_is_a_reason_and_no_loss() -> None:
    rule = started()
    step = rule.observe(DOWN, 1, False, 5.0)
    assert step.reasons == (BROKER_DOWN,) and not step.lost
    assert rule.observe(ALL, 1, False, 6.0) == type(step)()  # a durable broker came back whole: nothing to do


def test_lost_topics_are_recreated_once_then_the_agents_rejoin_and_resume() -> None:
    rule = started()
    first = rule.observe(NONE, 1, False, 10.0)
    assert (first.create, first.lost, first.rejoin) == (tuple(WANTED), True, False)
    assert "broker lost 3 topics (a, b, c); re-creating them" in first.reasons[0]
    again = rule.observe(Probe(True, frozenset({"a"})), 1, False, 11.0)
    assert (again.create, again.lost) == (("b", "c"), False)  # the hooks ran once per loss
    back = rule.observe(ALL, 1, False, 12.0)
    assert back.rejoin and back.reasons == ("agents rejoining their group after the broker lost its topics",)
    assert not rule.observe(ALL, 2, True, 13.0).rejoin  # the rejoin's rebalance is under way
    assert rule.observe(ALL, 2, True, 14.0).reasons
    assert rule.check(2, True) != []
    assert rule.check(2, False) == []  # it finished: resumed, seen live
    assert rule.observe(ALL, 2, False, 15.0).reasons == ()
    assert rule.losses == 1


def test_a_rebalance_under_way_when_the_topics_return_counts_and_is_not_interrupted() -> None:
    rule = started()
    rule.observe(NONE, 1, False, 10.0)
    step = rule.observe(ALL, 2, True, 11.0)  # the consumer rejoined by itself (the broker forgot the member)
    assert not step.rejoin and step.reasons
    assert rule.observe(ALL, 2, False, 12.0).reasons == ()


def test_a_rejoin_that_started_no_rebalance_is_asked_again() -> None:
    rule = started()
    rule.observe(NONE, 1, False, 10.0)
    assert rule.observe(ALL, 1, False, 11.0).rejoin
    assert not rule.observe(ALL, 1, False, 11.0 + REJOIN_RETRY_S / 2).rejoin
    assert rule.observe(ALL, 1, False, 12.0 + REJOIN_RETRY_S).rejoin


def epoch(name: str) -> Probe:
    """Every topic there, and the broker epoch `name`."""
    return Probe(True, frozenset(WANTED), epoch=name)


def test_a_changed_epoch_is_a_loss_though_no_topic_was_seen_missing() -> None:
    """Another worker re-created the topics before this one looked: the epoch it sees differs, and that is the same
    loss (hooks once, a rejoin, not ready until a rebalance that ends after the request)."""
    rule = started()
    assert rule.observe(epoch("e1"), 1, False, 1.0).reasons == ()  # the first epoch seen is adopted
    assert rule.observe(epoch("e1"), 1, False, 2.0) == Step()
    step = rule.observe(epoch("e2"), 1, False, 10.0)
    assert (step.lost, step.rejoin, step.create) == (True, True, ())
    assert "epoch changed" in step.loss and step.reasons == REJOINING
    again = rule.observe(epoch("e2"), 1, False, 11.0)
    assert not again.lost and not again.rejoin and again.reasons == REJOINING
    assert rule.check(1, False) == list(REJOINING)  # no rebalance since the request: not ready
    assert rule.check(2, True) == list(REJOINING)
    assert rule.check(2, False) == []
    assert rule.observe(epoch("e2"), 2, False, 12.0) == Step() and rule.losses == 1


def test_a_changed_epoch_seen_inside_a_rebalance_counts_that_rebalance() -> None:
    rule = started()
    rule.observe(epoch("e1"), 1, False, 1.0)
    step = rule.observe(epoch("e2"), 2, True, 10.0)  # the new broker forgot the member: the rejoin is under way
    assert step.lost and not step.rejoin
    assert rule.check(2, False) == []


def test_the_worker_that_saw_the_topics_missing_adopts_the_new_epoch_without_a_second_loss() -> None:
    rule = started()
    rule.observe(epoch("e1"), 1, False, 1.0)
    assert rule.observe(NONE, 1, False, 10.0).lost
    back = rule.observe(epoch("e2"), 1, False, 11.0)  # it re-created the epoch topic, then someone wrote e2
    assert not back.lost and back.rejoin
    assert rule.check(2, False) == []
    assert rule.observe(epoch("e2"), 2, False, 12.0) == Step() and rule.losses == 1
    rule.observe(NONE, 2, False, 20.0)  # lost again: resumed before it read the new epoch (the read failed)
    rule.observe(ALL, 2, False, 21.0)
    assert rule.check(3, False) == []
    assert not rule.observe(epoch("e3"), 3, False, 22.0).lost and rule.losses == 2


def test_an_epoch_not_read_changes_nothing() -> None:
    rule = started()
    rule.observe(epoch("e1"), 1, False, 1.0)
    assert rule.observe(ALL, 1, False, 2.0) == Step()
    assert rule.observe(epoch("e1"), 1, False, 3.0) == Step()


def test_recreation_off_names_what_to_do_and_creates_nothing() -> None:
    rule = started(recreate=False)
    step = rule.observe(NONE, 1, False, 10.0)
    assert step.create == () and step.lost and "re-creation is off (recreate_topics)" in step.reasons[0]


def test_ingest_role_has_no_agents_to_wait_for() -> None:
    rule = Recovery(WANTED, recreate=True, agents=False)
    assert rule.observe(ALL, 0, False, 0.0).reasons == ()
    rule.observe(NONE, 0, False, 1.0)
    assert rule.observe(ALL, 0, False, 2.0).reasons == ()


def test_no_commit_vouched_for_by_an_epoch_seen_before_a_pause() -> None:
    """A worker resumed after a pause across a broker restart runs its overdue commit before its first probe: the
    epoch it saw before the pause must not vouch for it (the new broker took old offsets from a forgotten member)."""
    assert not commit_fresh(None, 100.0, 1.0)  # never confirmed: no commit yet
    assert commit_fresh(100.0, 102.5, 1.0)  # probes come every second: a commit between two is fine
    assert not commit_fresh(100.0, 130.0, 1.0)  # stopped for 30 s: a probe first
    assert commit_fresh(100.0, 101.9, 0.25) and not commit_fresh(100.0, 102.1, 0.25)  # at least 2 s


# ---------------------------------------------------------------- the state forgets a lost broker's offsets


class FakeTable:
    """What TableStore uses of a Faust table: its local data."""

    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}


def test_forget_input_reapplies_offsets_of_a_fresh_topic_and_rewrites_every_key() -> None:
    table = FakeTable()
    store = TableStore(table, 0)
    key = "s/x"
    store.put(key, KeyState(key))
    store.advance_progress((2, 40))
    store.write_keys()
    store.watermark = 100.0
    store.write_progress()
    reloaded = TableStore(table, 0)  # as an engine is rebuilt after a rebalance
    assert reloaded.seen((2, 7))  # offset 7 of the new alerts.raw would be skipped as applied
    reloaded.forget_input()
    assert not reloaded.seen((2, 7))
    assert [k for k, _ in reloaded.write_keys()] == [f"0|{key}".encode()]  # rewritten to the new changelog


def test_hours_built_after_a_loss_forget_the_offsets_they_name_and_are_written_whole() -> None:
    """`Insight.broker_lost`: a store of hours built from local data while its partition is lost counts records of
    the re-created topic below its old `through` (before, it skipped them as counted) and writes every hour; the
    mark goes with the checkpoint that writes it (`Checkpointer.write`)."""
    table = FakeTable()
    table.changelog_topic = SimpleNamespace(get_topic_name=lambda: "hours-changelog")  # type: ignore[attr-defined]
    side = Side(table, True, checkpoints=Checkpointer(SimpleNamespace()))
    store = side.store(0)
    for hour, through in ((10, 40), (11, 7)):
        agg = side.hour(store, hour)
        agg.through = through
        store.put(str(hour), agg)
    store.write_keys()
    assert side.store(0) is store and not store.write_keys()
    assert side.checkpoints is not None
    side.checkpoints.lose(table, range(2))
    del side.stores[0]  # revoked and assigned again while the group rejoins the new broker
    built = side.store(0)
    assert {hour: agg.through for hour, agg in built.items()} == {"10": -1, "11": -1}
    assert {k for k, _ in built.write_keys()} >= {b"0|10", b"0|11"}


# ---------------------------------------------------------------- readiness is the ingest's gate


async def _state(reasons: list[str]) -> ReadyState:
    return ReadyState(not reasons, {}, tuple(reasons))


def test_a_failing_check_makes_readyz_and_the_ingest_say_why() -> None:
    ingest, sender = fake_ingest()
    reasons = ["agents rejoining their group after the broker lost its topics"]
    ingest.checks.append(lambda: _state(reasons))
    status, answer, headers = run_client(ingest, lambda c: _post(c, "/ingest/alertmanager", am_body()))
    assert (status, answer["error"], answer["detail"]) == (503, "not_ready", reasons[0])
    assert int(headers["Retry-After"]) > 0 and sender.sent == []
    ready = asyncio.run(ingest.ready())
    assert (ready.status, ready.body["reasons"]) == (503, reasons)
    reasons.clear()
    status, answer, _ = run_client(ingest, lambda c: _post(c, "/ingest/alertmanager", am_body()))
    assert status == 202 and len(sender.sent) == answer["records"] > 0
    assert asyncio.run(ingest.ready()).status == 200


def test_a_bad_body_still_gets_its_400_while_not_ready() -> None:
    ingest, _ = fake_ingest()
    ingest.checks.append(lambda: _state(["broker lost 7 topics"]))
    status, answer, _ = run_client(ingest, lambda c: _post(c, "/ingest/alerts", b"{"))
    assert status == 400, answer


def test_after_a_failed_send_readyz_is_not_ready_until_the_next_check() -> None:
    now = [0.0]
    sender = FakeSender({"a"})
    readiness = Readiness(sender, ["a"], ttl_s=1.0, clock=lambda: now[0])
    assert asyncio.run(readiness.state()).ready
    readiness.send_failed("send_timeout")
    state = asyncio.run(readiness.state())
    assert not state.ready and state.reasons == ("ingest send failed: send_timeout",)
    now[0] += 1.1
    assert asyncio.run(readiness.state()).ready


def test_aiops_up_says_the_embedded_broker_keeps_data_in_memory() -> None:
    assert "keeps every topic in memory" in EMBEDDED_NOTE and "real Kafka" in EMBEDDED_NOTE


# ---------------------------------------------------------------- the embedded broker restarted under a live worker


def _alert(service: str, i: int) -> bytes:
    return orjson.dumps({"starts_at": time.time(), "fingerprint": f"{service}-{i}",
                         "labels": {"alertname": "DiskFull", "service": service}})


def _incidents(worker: WorkerProc) -> dict[str, int]:
    """Alert count per correlation key of the incidents the worker holds."""
    return {i["key"]: i["alert_count"] for i in worker.get("/incidents/")["incidents"]}


def _wait_for(what: str, check: Any, worker: WorkerProc, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            got = check()
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            got = None
        if got:
            return got
        time.sleep(0.3)
    raise TimeoutError(f"{what}:\n{worker.tail()}")


@pytest.mark.integration
def test_embedded_broker_restart_under_a_live_worker(tmp_path: Path) -> None:
    """Kill the broker by pid under a worker, start an empty one on the same port: readiness is false (with the
    reason) and ingest 503s while it is down; the worker re-creates its topics and resumes its agents by itself,
    readiness turns true, and every alert answered 202 becomes part of an incident, old keys and new alike."""
    first = start_broker(log_path=tmp_path / "tansu-1.log")
    brokers = [first]
    dep = Deployment(first, tmp_path, extra_env={"AIOPS_IDLE_ADVANCE": "300", "AIOPS_INGEST_SEND_TIMEOUT": "1",
                                                 "AIOPS_STAGE2_LONE_CAUSES": "true"})  # a cause for each key
    dep.create_topics()
    worker = dep.start_worker()
    workers = [worker]
    try:
        worker.wait_web()
        wait_ready(worker)
        before = [request(worker.web_port, "POST", "/ingest/alerts", _alert("db", i))[0] for i in range(3)]
        assert before == [202] * 3
        _wait_for("3 alerts in one incident", lambda: _incidents(worker).get("db/DiskFull") == 3, worker)

        first.stop()  # SIGTERM by pid; the broker's memory goes with it
        down = _wait_for("readyz to see the broker gone", lambda: (lambda r: r[0] == 503 and r[1])(
            request(worker.web_port, "GET", "/readyz")), worker, timeout=5)  # within the 1 s cache and a probe
        assert BROKER_DOWN in down["reasons"], down
        status, answer, headers = request(worker.web_port, "POST", "/ingest/alerts", _alert("db", 99))
        assert status == 503 and int(headers["Retry-After"]) > 0, answer

        second = start_broker(port=first.port, log_path=tmp_path / "tansu-2.log")
        brokers.append(second)
        seen: list[list[str]] = []
        started = time.monotonic()

        def ready() -> bool:
            status, answer, _ = request(worker.web_port, "GET", "/readyz")
            seen.append(answer["reasons"])
            if status != 200:  # while not ready the ingest refuses too: no 202 that could not reach correlation
                assert request(worker.web_port, "POST", "/ingest/alerts", _alert("db", 98))[0] == 503
            return status == 200

        _wait_for("ready again after the broker restart", ready, worker, timeout=60)
        recovered_s = time.monotonic() - started
        assert any("broker lost" in r or "rejoining" in r for reasons in seen for r in reasons), seen
        landed = asyncio.run(_topics(second.bootstrap))
        assert {dep.topic(f) for f in ("alerts_raw", "alerts", "incidents")} <= landed  # re-created by the worker

        after = [request(worker.web_port, "POST", "/ingest/alerts", body)[0]
                 for body in [_alert("db", i) for i in range(3, 6)] + [_alert("web", i) for i in range(3)]]
        assert after == [202] * 6
        # the old key's incident goes on (its state lived in the worker), the new key opens its own
        _wait_for("db at 6 alerts and web at 3", lambda: _incidents(worker) == {"db/DiskFull": 6, "web/DiskFull": 3},
                  worker)
        # every 202, nothing refused, was folded exactly once (parsed at the ingest: the hop, no normalize)
        assert worker.metric("aiops_alert_records_correlated_total") == 3 + 6
        records = read_all(second.bootstrap, dep.topic("incidents"))
        events = [orjson.loads(r.value) for r in records if is_incident_event(r.headers)]  # no census
        assert {e["key"] for e in events} >= {"web/DiskFull", "db/DiskFull"}  # published on the new broker
        # stage 2 groups again too: its routing offsets start at 0 on the new broker and must not look applied
        web = {e["incident_id"] for e in events if e["key"] == "web/DiskFull"}
        _wait_for("a stage-2 cause for the new key on the new broker", lambda: any(
            set(orjson.loads(r.value).get("children", ())) & web
            for r in read_all(second.bootstrap, dep.topic("incidents")) if is_stage2_record(r.headers)), worker)
        assert worker.metric("aiops_broker_recoveries_total", action="topics_lost") == 1
        print(f"ready again {recovered_s:.1f} s after the broker restart")

        # A worker restart on the recovered broker: while it starts, /readyz and the ingest agree at every
        # probe (never ready and 503), and it restores the state the first worker rewrote to the new changelog.
        worker.stop()
        workers.append(worker := dep.start_worker("w2"))
        worker.wait_web()
        answers: list[tuple[int, int]] = []

        def agree() -> bool:
            ready = request(worker.web_port, "GET", "/readyz")[0]
            posted = request(worker.web_port, "POST", "/ingest/alerts", _alert("db", 100 + len(answers)))[0]
            answers.append((ready, posted))
            assert (ready, posted) != (200, 503), answers  # readiness only turns true while starting
            return ready == 200 and posted == 202

        _wait_for("the restarted worker ready", agree, worker, timeout=60)
        accepted = sum(p == 202 for _, p in answers)
        assert all(p in (202, 503) for _, p in answers), answers
        _wait_for(f"db at {6 + accepted} alerts after the worker restart",
                  lambda: _incidents(worker).get("db/DiskFull") == 6 + accepted, worker)
    finally:
        for w in workers:
            w.stop()
        for b in brokers:
            b.stop()


async def _topics(bootstrap: str) -> set[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


@pytest.mark.integration
def test_the_desk_s_open_tickets_reach_the_ticket_changelog_a_broker_loss_re_created(tmp_path: Path) -> None:
    """After a broker loss the desk writes every document again to the re-created changelogs, as stage 1 and stage 2
    write their keys (`stream.checkpoint.Checkpointer.lose`, `Desk.broker_lost`). Eight tickets routed with an hour's
    SLA are on the ticket changelog before the restart and, before `Desk.broker_lost`, none was after it: a worker
    that took their partition next (a second worker, or this one restarted) restored none of their SLA clocks."""
    ids = {f"P-{i}" for i in range(8)}
    with _on_own_broker(tmp_path, env=sla_env(L1="1h")) as (dep, worker, brokers):
        changelog = f"{dep.app_id}-ticket-sla-changelog"
        dep.produce("tickets_raw", [ticket(i, REQUEST) for i in sorted(ids)])
        for i in ids:
            wait_events(dep, i, bool, 60, worker)
        assert ids <= _documents(dep, changelog)
        _restart_empty(dep, worker, brokers, tmp_path)
        assert _within(20, lambda: ids <= _documents(dep, changelog))  # the desk's SLA timer ticks every second


@contextlib.contextmanager
def _on_own_broker(tmp_path: Path, partitions: int = 4, env: dict[str, str] | None = None
                   ) -> Iterator[tuple[Deployment, WorkerProc, list[EmbeddedBroker]]]:
    """A broker of the test's own (`_restart_empty` replaces it), a deployment on it with `env` added to the
    default worker environment, and one worker, up and ready; the worker and every broker stopped by pid after."""
    brokers = [start_broker(log_path=tmp_path / "tansu-1.log")]
    worker: WorkerProc | None = None
    try:
        dep = Deployment(brokers[0], tmp_path, partitions=partitions)
        dep.extra_env.update(env or {})
        dep.create_topics()
        worker = dep.start_worker()
        worker.wait_web()
        wait_ready(worker)
        yield dep, worker, brokers
    finally:
        if worker is not None:
            worker.stop()
        for b in brokers:
            b.stop()


def _restart_empty(dep: Deployment, worker: WorkerProc, brokers: list[EmbeddedBroker], tmp_path: Path) -> None:
    """Stop the last broker by pid (its memory goes with it), start an empty one on its port, and wait until the
    worker saw it gone, re-created the topics and is ready again."""
    old = brokers[-1]
    old.stop()
    _wait_for("readyz to see the broker gone", lambda: request(worker.web_port, "GET", "/readyz")[0] == 503,
              worker, timeout=10)
    brokers.append(start_broker(port=old.port, log_path=tmp_path / f"tansu-{len(brokers) + 1}.log"))
    dep.broker = brokers[-1]
    _wait_for("the topics re-created", lambda: worker.metric(
        "aiops_broker_recoveries_total", action="topics_created") > 0, worker, timeout=30)
    wait_ready(worker)


def _within(seconds: float, check: Callable[[], bool]) -> bool:
    """Whether `check` holds within `seconds`, asked once a second (a timer's tick): its last answer."""
    deadline = time.monotonic() + seconds
    while not check() and time.monotonic() < deadline:
        time.sleep(1)
    return check()


def _documents(dep: Deployment, changelog: str) -> set[str]:
    """Ids of the documents a desk changelog holds (keys `<partition>|<id>`)."""
    records = asyncio.run(_read_so_far(dep.broker.bootstrap, changelog, 20))
    return {r.key.decode().partition("|")[2] for r in records if r.key and b"|" in r.key and r.value is not None}


@pytest.mark.integration
def test_notify_s_open_page_reaches_the_notify_changelog_a_broker_loss_re_created(tmp_path: Path) -> None:
    """After a broker loss notify writes its whole state again to the re-created changelog (`Notify.broker_lost`),
    as the desk does. A lone critical incident paged before the restart is a subject on notify's changelog before it
    and, before `Notify.broker_lost`, was not after it: a worker that took its partition next (a second worker, or
    this one restarted) restored no subject, so the open page's resolve never went out, or it paged again."""
    from .test_notify_pipeline import T0, Receivers, failure, ndjson, notify_file, pages

    receivers = Receivers()
    env = {"AIOPS_NOTIFY_FILE": str(notify_file(tmp_path / "notify.yaml", receivers)),
           "AIOPS_CHECKPOINT_INTERVAL": "0.2"}
    try:
        with _on_own_broker(tmp_path, partitions=2, env=env) as (dep, worker, brokers):
            changelog = f"{dep.app_id}-notify-state-changelog"
            dep.produce("alerts_raw", [(b"generic", ndjson(failure("db", "DBDown", T0)))])
            [page] = _wait_for("the lone incident's page", lambda: [k for a, k in pages(receivers.oncall)
                                                                  if a == "trigger"], worker)
            _wait_for("the page's subject on notify's changelog", lambda: page in _subjects(dep, changelog), worker)
            _restart_empty(dep, worker, brokers, tmp_path)
            assert _within(20, lambda: page in _subjects(dep, changelog))  # the notify timer ticks every second
    finally:
        receivers.stop()


def _subjects(dep: Deployment, changelog: str) -> set[str]:
    """Ids of the subjects notify's changelog holds (keys `<partition>|s|<id>`)."""
    records = asyncio.run(_read_so_far(dep.broker.bootstrap, changelog, 20))
    keys = [r.key.decode().split("|", 2) for r in records if r.key and r.value is not None]
    return {k[2] for k in keys if len(k) == 3 and k[1] == "s"}


@pytest.mark.integration
def test_insight_s_hours_reach_their_changelog_and_count_new_incidents_after_a_broker_loss(tmp_path: Path) -> None:
    """After a broker loss the hours are written again to their re-created changelog and forget the offsets they
    name (`Insight.broker_lost`). One partition: incidents opened before the restart are counted in this hour, whose
    `through` is past the first offsets of the re-created `incidents`; before, the hour never reached the new
    changelog and an incident opened after the restart was skipped as counted."""
    with _on_own_broker(tmp_path, partitions=1) as (dep, worker, brokers):
        changelog = f"{dep.app_id}-insight-incidents-changelog"
        posted = [request(worker.web_port, "POST", "/ingest/alerts", _alert(f"s{i}", 0))[0] for i in range(4)]
        assert posted == [202] * 4
        _wait_for("4 incidents counted", lambda: _opened(worker) == 4, worker)
        hours = _wait_for("the hours on their changelog", lambda: _documents(dep, changelog), worker)
        _restart_empty(dep, worker, brokers, tmp_path)
        assert _within(20, lambda: hours <= _documents(dep, changelog))  # the insight timer ticks every second
        assert request(worker.web_port, "POST", "/ingest/alerts", _alert("late", 0))[0] == 202
        _wait_for("the incident opened after the restart counted", lambda: _opened(worker) == 5, worker, timeout=30)


def _opened(worker: WorkerProc) -> int:
    """Incidents opened, over the hours the worker holds."""
    return sum(h["counts"].get("incidents_opened", 0) for h in worker.get("/insight/hours")["hours"])
