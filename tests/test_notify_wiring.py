"""The notify stage's wiring without a broker: its store round-trips through the table, silences are made from
request bodies with the token's name, and `/silences` answers problem documents by the token's role."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from correlator.notify import NotifyPolicy, NotifyState, Silence, incident_mute, on_record
from correlator.replay import replay
from correlator.sources import parse
from correlator.sources.screening import MUTE_LABEL, screen_alerts
from stream.checkpoint import Checkpointer
from stream.notify.stage import ControlRecord, decode_control
from stream.notify.store import NotifyStore
from stream.notify.views import silence_of
from stream.settings import Settings
from stream.topics import topic_specs
from stream.worker import build_worker_app

from .notifying import ISSUE_ROUTES, T0, incident, routes


class FakeTable:
    """A table's local data and its changelog's name, as `NotifyStore` uses them."""

    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}
        self.changelog_topic = SimpleNamespace(get_topic_name=lambda: "notify-state-changelog")


def test_the_store_round_trips_subjects_outbox_and_silences_and_forgets_finished_deliveries() -> None:
    table = FakeTable()
    store = NotifyStore(table, 0)
    step = on_record(store.state, incident("inc-1", severity="critical"), T0, routes(),
                     policy=NotifyPolicy(page_causes=False))
    assert step.deliveries  # critical pages at once: one trigger to oncall
    store.took(step)
    silence = Silence.model_validate({"id": "s1", "matchers": [{"name": "service", "value": "x"}],
                                      "startsAt": T0, "endsAt": T0 + 60, "createdBy": "alice"})
    store.put_silence(silence)
    written = store.write_keys()
    assert {k for k, _ in written} >= {b"0|s|inc-1", b"0|x|s1", b"0|q|"}
    assert store.write_progress() is not None  # the one-record marker after the keys
    again = NotifyStore(table, 0)  # a restarted owner, from the table the changelog restores
    assert again.state.subjects.keys() == {"inc-1"} and again.silences == {"s1": silence}
    assert again.outbox == store.outbox and len(again.outbox) == len(step.deliveries)
    for delivery in step.deliveries:
        again.finished(delivery)
    tombstones = again.write_keys()
    assert all(v is None for k, v in tombstones if k.startswith(b"0|o|")) and tombstones
    assert NotifyStore(table, 0).outbox == {}
    assert NotifyStore(table, 1).state == NotifyState()  # another partition's keys are not this one's


class _Unwritable:
    """A subject no step changed: writing it (or reading it whole) fails the test."""

    def to_dict(self) -> dict[str, Any]:
        raise AssertionError("a subject no step changed was serialized")


def test_a_step_writes_its_subjects_and_the_rate_limits_without_serializing_every_subject_held() -> None:
    """Every fold step marks the rate limits changed, so their record is written after each batch: built from the
    whole state, it serialized every subject held per batch (the notify fold quadratic in open incidents: 40% of a
    worker's samples in a loaded full soak, session 41)."""
    table = FakeTable()
    store = NotifyStore(table, 0)
    store.state.subjects["held"] = _Unwritable()  # type: ignore[assignment]
    step = on_record(store.state, incident("inc-1", severity="critical"), T0, routes(),
                     policy=NotifyPolicy(page_causes=False))
    store.took(step)
    written = dict(store.write_keys())
    assert set(written) == {b"0|s|inc-1", b"0|q|"} | {k for k in table.data if b"|o|" in k}
    assert set(orjson.loads(written[b"0|q|"])) == {"buckets", "queues"}


def test_a_store_built_after_a_broker_loss_writes_everything_it_holds() -> None:
    """`Notify.broker_lost` marks every partition lost; a store built from the table's local data after that (a
    rebalance while the group rejoins the new broker) writes all its keys at its next checkpoint, not only changed
    ones: the re-created changelog holds none of them. A partition not lost writes nothing."""
    table = FakeTable()
    store = NotifyStore(table, 0)
    store.took(on_record(store.state, incident("inc-1", severity="critical"), T0, routes(),
                         policy=NotifyPolicy(page_causes=False)))
    store.write_keys()
    checkpoints = Checkpointer(SimpleNamespace())
    checkpoints.lose(table, [0])
    built = NotifyStore(table, 0)
    assert not built.changed and checkpoints.forget(built) and built.changed
    assert {k for k, _ in built.write_keys()} >= {b"0|s|inc-1", b"0|q|"} | {k for k in table.data if b"|o|" in k}
    assert not checkpoints.forget(NotifyStore(table, 1))


def test_a_silence_is_made_with_the_token_s_name_and_its_errors_name_the_field() -> None:
    body = {"matchers": [{"name": "service", "value": "db"}], "endsAt": T0 + 3600, "comment": "upgrade"}
    made = silence_of(body, "alice", T0)
    assert isinstance(made, Silence) and (made.created_by, made.starts_at, made.comment) == ("alice", T0, "upgrade")
    assert silence_of({**body, "createdBy": "mallory"}, "alice", T0)[0].field == "createdBy"  # type: ignore[index]
    assert isinstance(silence_of({**body, "createdBy": "bob"}, None, T0), Silence)  # no tokens: the body names
    errors = silence_of({**body, "endsAt": T0 - 1}, None, T0)
    assert isinstance(errors, list) and "endsAt must be after startsAt" in errors[0].reason
    assert silence_of({"endsAt": T0 + 1}, None, T0)[0].field == "matchers"  # type: ignore[index]


def test_control_records_round_trip() -> None:
    silence = silence_of({"matchers": [{"name": "a", "value": "b", "isRegex": True}], "endsAt": T0 + 5}, "al", T0)
    assert isinstance(silence, Silence)
    for record in (ControlRecord(kind="silence", silence=silence),
                   ControlRecord(kind="expire", silence_id=silence.id, at=T0 + 1)):
        assert decode_control(record.dump()) == record


@pytest.fixture
def app(tmp_path: Path) -> Any:
    notify = tmp_path / "notify.yaml"
    notify.write_text(ISSUE_ROUTES)
    return build_worker_app(Settings(data_dir=tmp_path, notify_file=notify, operator_tokens="alice=op1",
                                     reader_tokens="carol=rd1"))[0]


def _calls(app: Any, *calls: tuple[str, str, str | None, bytes]) -> list[tuple[int, str, Any]]:
    """(status, content type, JSON) of each call, in one event loop (the web app belongs to one)."""
    async def go() -> list[tuple[int, str, Any]]:
        out = []
        async with TestClient(TestServer(app.web.web_app)) as client:
            for method, path, token, body in calls:
                headers = {"Authorization": f"Bearer {token}"} if token else {}
                resp = await client.request(method, path, data=body, headers=headers)
                out.append((resp.status, resp.content_type, orjson.loads(await resp.read())))
        return out

    return asyncio.run(go())


@pytest.mark.parametrize(("token", "body", "status", "code"), [
    (None, b"{}", 401, "no_token"),
    ("rd1", b"{}", 403, "wrong_role"),
    ("op1", b"{not json", 400, "invalid_body"),
    ("op1", b'{"matchers": [], "endsAt": 1}', 400, "invalid_body"),
])
def test_silences_answer_problems_by_role_and_body(app: Any, token: str | None, body: bytes, status: int,
                                                   code: str) -> None:
    [(got, content_type, doc)] = _calls(app, ("POST", "/silences", token, body))
    assert (got, content_type, doc["error"]) == (status, "application/problem+json", code)


def test_reading_silences_needs_a_reader_and_waits_for_the_state(app: Any) -> None:
    anonymous, reader, delete = _calls(app, ("GET", "/silences", None, b""), ("GET", "/silences", "rd1", b""),
                                       ("DELETE", "/silences/s1", "rd1", b""))
    assert (anonymous[0], delete[0]) == (401, 403)
    assert (reader[0], reader[2]["error"]) == (503, "recovering")  # no partition loaded: not an empty list that lies


def test_the_parse_site_leaves_out_own_incidents_and_marks_source_mutes() -> None:
    """What normalize runs on every parsed body (`screen_alerts`), and how the mark reaches an incident."""
    body = [  # generic alerts keep unknown fields: a forwarder's copy of Alertmanager's `silencedBy` among them
        {"labels": {"alertname": "DiskFull", "service": "db", "host": "h1"}, "starts_at": "2026-03-02T03:00:00Z",
         "silencedBy": ["s1"]},
        {"labels": {"alertname": "CorrelatedIncident", "incident_id": "inc-1", "service": "db"},
         "starts_at": "2026-03-02T03:00:00Z"},
    ]
    alerts = parse("generic", orjson.dumps(body))
    kept, own = screen_alerts(alerts)
    assert own == 1 and len(kept) == 1 and kept[0].labels[MUTE_LABEL] == "silenced"
    events: list[Any] = []
    replay(kept, listener=events.append)
    assert incident_mute(events[-1].entities) == "silenced"  # the incident is muted at its source: not paged


def test_the_notify_topics_exist_only_with_a_notify_file(tmp_path: Path) -> None:
    notify = tmp_path / "notify.yaml"
    notify.write_text(ISSUE_ROUTES)
    on = {s.name: s for s in topic_specs(Settings(app_id="a", notify_file=notify, topic_partitions={"incidents": 3}))}
    off = {s.name for s in topic_specs(Settings(app_id="a"))}
    assert {"a-notify-control", "a-notify-state-changelog"} <= set(on) and not {n for n in off if "notify" in n}
    assert on["a-notify-control"].partitions == on["a-notify-state-changelog"].partitions == 3  # with `incidents`
    assert on["a-notify-state-changelog"].config["cleanup.policy"] == "compact"
