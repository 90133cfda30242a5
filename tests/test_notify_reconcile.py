"""Notify's reconciliation after a broker loss: a stage-1 `Census` closes what it no longer holds (session 39).

The memory broker takes with it the closes stage 1 published and notify had not read; neither stage says a close
again, so notify rebuilt after the restart held those incidents firing, paged them alone at the cause wait and never
resolved them (session 38's chaos soak, mechanism 1b: 153 such pages). After the loss each stage-1 partition says
which incidents it holds open (`Census`): notify closes each open incident of that partition, last said before the
census's state, that it does not name: a page out is resolved with the reason, one never sent dropped quietly.
"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from correlator.models import Census, IncidentEvent
from correlator.notify import RECONCILED, Delivery, NotifyPolicy, NotifyRecord, NotifyState, on_record, parse_notify

from stream.notify.stage import notify_policy
from stream.sends import key_partition
from stream.settings import Settings

from .notifying import T0, fold_timeline, incident
from .test_grouping_settings import clean_env

ROUTES = parse_notify("""
defaults: {hold: {for: 30s}}
receivers:
  - {name: hook, type: webhook, url: "http://127.0.0.1:9/hook"}
routes:
  - {receiver: hook}
""")
"""One webhook route holding a page 30 s, as the soak's."""


def _source(key: str) -> int:
    """Stage-1 partition 0 holds checkout's keys, 1 everything else (the stream hashes the key instead)."""
    return 0 if "/checkout/" in key else 1


POLICY = NotifyPolicy(page_causes=False, source_of=_source)
"""Every incident pages itself: the rule under test is the census's, not the cause wait's."""


def _inc(incident_id: str, seq: int = 1, service: str = "checkout", **extra: object) -> IncidentEvent:
    return incident(incident_id, seq, service=service, **extra)  # type: ignore[arg-type]


def _run(records: list[tuple[float, NotifyRecord | None]], policy: NotifyPolicy = POLICY,
         state: NotifyState | None = None) -> tuple[NotifyState, list[Delivery]]:
    state = state if state is not None else NotifyState()
    made, _ = fold_timeline(state, records, ROUTES, policy)
    return state, made


def test_the_setting_gives_notify_the_partitioning_of_alerts(monkeypatch: pytest.MonkeyPatch) -> None:
    """On by default (again since census41): a census's source is the partition of `alerts` an incident's key is
    hashed to (as normalize sends its alerts there); `AIOPS_RECONCILE_AFTER_LOSS=false`: no census closes anything."""
    clean_env(monkeypatch)
    settings = Settings()
    source_of, alerts = notify_policy(settings).source_of, settings.partitions_for("alerts")
    keys = [f"cluster=c{i}/svc{i}/Down" for i in range(12)]
    assert source_of is not None and [source_of(k) for k in keys] == [key_partition(k.encode(), alerts) for k in keys]
    assert len({source_of(k) for k in keys}) > 1
    monkeypatch.setenv("AIOPS_RECONCILE_AFTER_LOSS", "false")
    assert notify_policy(Settings()).source_of is None


def _acts(made: list[Delivery]) -> list[tuple[str, str]]:
    return [(d.subject_id, d.action) for d in made]


def test_a_census_closes_the_open_incidents_of_its_partition_it_does_not_name() -> None:
    state, made = _run([(T0, _inc("inc-gone")), (T0, _inc("inc-open")), (T0 + 1, Census(source=0, at=T0 + 50,
                                                                                           open=["inc-open"]))])
    assert state.subjects["inc-gone"].status == "resolved" and state.subjects["inc-gone"].reason == RECONCILED
    assert state.subjects["inc-open"].open
    assert made == []  # neither had paged: the one closed goes quietly, the one named still holds


def test_a_paged_incident_is_resolved_with_the_reason_and_an_unpaged_one_dropped_without_a_page() -> None:
    state = NotifyState()
    _, paged = _run([(T0, _inc("inc-paged")), (T0 + 31, None)], state=state)  # its hold ended: paged
    assert _acts(paged) == [("inc-paged", "trigger")]
    on_record(state, _inc("inc-held"), T0 + 40, ROUTES, (), POLICY)  # held (30 s) when the census comes
    step = on_record(state, Census(source=0, at=T0 + 100, open=[]), T0 + 45, ROUTES, (), POLICY)
    assert _acts(step.deliveries) == [("inc-paged", "resolve")]
    assert json.loads(step.deliveries[0].body)["reason"] == "closed by reconciliation after broker loss"
    assert sorted(step.reconciled) == [("inc-held", "dropped"), ("inc-paged", "resolved")]
    assert {"inc-held", "inc-paged"} <= step.changed
    _, later = _run([(T0 + 80, None), (T0 + 200, None)], state=state)
    assert later == []  # the held one never pages: its hold ending finds it closed


def test_a_census_of_another_partition_touches_nothing() -> None:
    state, made = _run([(T0, _inc("inc-a", service="checkout")), (T0, _inc("inc-b", service="payments")),
                        (T0 + 1, Census(source=1, at=T0 + 50, open=["inc-b"]))])
    assert state.subjects["inc-a"].open and state.subjects["inc-b"].open and made == []


def test_a_census_older_than_the_last_event_read_does_not_close_it() -> None:
    """An engine rebuilt from an older checkpoint (or a census read late) counts a state before the incident's last
    event here: it cannot say that incident closed."""
    newer = _inc("inc-new", 3)  # emitted at T0 + 3
    state, _ = _run([(T0, newer), (T0 + 1, Census(source=0, at=T0 + 3, open=[]))])
    assert state.subjects["inc-new"].open
    state, _ = _run([(T0, newer), (T0 + 1, Census(source=0, at=T0 + 3.5, open=[]))])
    assert not state.subjects["inc-new"].open


def test_what_a_census_does_not_close_and_what_it_cannot_know() -> None:
    """Causes, closed incidents, incidents known by name only or from a table without their key stay as they are;
    without `source_of` (`Settings.reconcile_after_loss` off) a census closes nothing."""
    state, _ = _run([(T0, _inc("inc-closed", 2, status="resolved")), (T0, _inc("inc-keyless"))])
    state.subjects["inc-keyless"].key = ""  # as a subject written back before the key was kept
    resolved_at = state.subjects["inc-closed"].closed_at
    _run([(T0 + 2, Census(source=0, at=T0 + 50, open=[]))], state=state)
    assert state.subjects["inc-keyless"].open and state.subjects["inc-closed"].closed_at == resolved_at
    assert state.subjects["inc-closed"].reason == ""
    state, _ = _run([(T0, _inc("inc-x")), (T0 + 1, Census(source=0, at=T0 + 50, open=[]))],
                    policy=replace(POLICY, source_of=None))
    assert state.subjects["inc-x"].open


def test_the_close_read_after_the_census_changes_nothing_more() -> None:
    """Stage 1's own close of an incident the census closed (published again after a rollback) sends nothing."""
    state = NotifyState()
    _run([(T0, _inc("inc-1")), (T0 + 31, None), (T0 + 40, Census(source=0, at=T0 + 50, open=[]))], state=state)
    _, made = _run([(T0 + 41, _inc("inc-1", 2, status="resolved")), (T0 + 100, None)], state=state)
    assert made == []


def test_children_whose_close_the_broker_took_do_not_page_alone_after_the_restart() -> None:
    """Session 38's mechanism 1b as notify saw it: three children of a cause, read before the loss, whose closes
    and whose cause the broker took; the state rebuilt from the table pages each alone once the cause wait and its
    hold end, and never resolves them. With the census read before that (stage 1 holds none of them open): no page."""
    policy = NotifyPolicy(cause_wait_s=30.0, lone_causes=False, stage2_partitions=1, source_of=_source)
    before = NotifyState()
    for child in ("inc-db", "inc-api", "inc-web"):
        on_record(before, _inc(child), T0 + 1, ROUTES, (), policy)

    def rebuilt() -> NotifyState:
        return NotifyState.from_dict(json.loads(json.dumps(before.to_dict())))  # the table, as the restart reads it

    ticks: list[tuple[float, NotifyRecord | None]] = [(T0 + 40 + s, None) for s in range(0, 120, 5)]
    alone, _ = fold_timeline(rebuilt(), ticks, ROUTES, policy)
    assert sorted(_acts(alone)) == [("inc-api", "trigger"), ("inc-db", "trigger"), ("inc-web", "trigger")]
    census: list[tuple[float, NotifyRecord | None]] = [(T0 + 42, Census(source=0, at=T0 + 60, open=[]))]
    state = rebuilt()
    quiet, _ = fold_timeline(state, sorted([*ticks, *census], key=lambda r: r[0]), ROUTES, policy)
    assert quiet == [] and not any(s.open for s in state.subjects.values())
