"""The console's read model (correlator/readmodel.py), pure: folding in any order, causes with their children,
acknowledgements, silences matching an incident, server-side filters and paging, the headline, the bound."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from correlator.models import IncidentEvent
from correlator.notify.silences import Silence
from correlator.readmodel import Filters, ReadModel, headline_of, page_of, series_of, silences_of
from correlator.stage2 import Assignment, ParentEvent
from correlator.stage2.models import Relation
from correlator.triage.incident_sla import IncidentClock
from stream.views import cluster_facts

T0 = 1_772_420_400.0


def event(incident_id: str, seq: int = 1, *, service: str = "web", status: str = "firing", at: float = T0,
          scope: str = "cluster=a", severity: str = "warning", alerts: int = 3) -> IncidentEvent:
    kind = "opened" if seq == 1 else ("resolved" if status == "resolved" else "updated")
    return IncidentEvent(kind=kind, incident_id=incident_id, seq=seq, key=f"{scope}/{service}/Down",
                         service=service, symptom="Down", scope=scope, status=status,  # type: ignore[arg-type]
                         first_seen=at, last_seen=at + seq, window_start=at, alert_count=alerts,
                         distinct_fingerprints=alerts, firing_count=alerts if status == "firing" else 0,
                         duplicates=1, max_severity=severity, emitted_at=at + seq)  # type: ignore[arg-type]


def parent(parent_id: str, children: list[str], seq: int = 1, status: str = "firing") -> ParentEvent:
    return ParentEvent(kind="opened" if seq == 1 else "updated", parent_id=parent_id, seq=seq,
                       status=status, first_seen=T0, last_seen=T0 + 10, children=children,  # type: ignore[arg-type]
                       alert_count=6, max_severity="critical", services=["db", "web"], first_child=children[0],
                       emitted_at=T0 + 10)


def assignment(child: str, parent_id: str, why: str) -> Assignment:
    return Assignment(child_id=child, child_key="k", parent_id=parent_id, relation=Relation.FIRST, gap_s=0.0,
                      explanation=why, assigned_at=T0 + 5)


def clock(incident_id: str, acked_by: str | None = None) -> IncidentClock:
    return IncidentClock(incident_id=incident_id, key="k", service="web", symptom="Down", severity="warning",
                         seq=1, phase="acknowledged" if acked_by else "open", opened_at=T0, tier="L2",
                         due_at=T0 + 3600, acked_by=acked_by, acked_at=T0 + 60 if acked_by else None)


def silence(silence_id: str, matchers: list[dict[str, Any]], start: float = T0, end: float = T0 + 3600) -> Silence:
    return Silence.model_validate({"id": silence_id, "matchers": matchers, "startsAt": start, "endsAt": end,
                                   "createdBy": "bob", "comment": "maintenance"})


def test_an_older_or_repeated_event_changes_nothing() -> None:
    model = ReadModel()
    assert model.apply_incident(event("i1", 2, alerts=5))
    assert not model.apply_incident(event("i1", 1, alerts=3))  # a re-read of an older record
    assert not model.apply_incident(event("i1", 2, alerts=9))
    assert model.rows["i1"].alert_count == 5


def test_a_cause_folds_its_children_in_any_order_with_why_they_joined() -> None:
    model = ReadModel()
    model.apply_assignment(assignment("i2", "p1", "same host db-1"))  # before anything else is known
    model.apply_parent(parent("p1", ["i1", "i2"]))
    model.apply_incident(event("i1", service="web"))
    model.apply_incident(event("i2", service="db"))
    model.apply_incident(event("i3", service="cache"))
    tops = model.top_rows()
    assert {r.id for r in tops} == {"p1", "i3"}  # the children are folded under their cause
    cause = model.rows["p1"]
    assert [c.id for c in model.children_of(cause)] == ["i1", "i2"]
    assert model.why(model.rows["i2"]) == "same host db-1"
    assert model.why(model.rows["i1"]) == "opened cause p1"
    model.apply_parent(parent("p1", ["i1"], seq=2, status="merged"))  # merged away: its children stand alone
    assert {r.id for r in model.top_rows()} == {"i1", "i2", "i3"}


@pytest.mark.parametrize("assignment_first", [True, False])
def test_a_child_assigned_before_its_causes_next_event_is_under_it(assignment_first: bool) -> None:
    """Stage 2 publishes the assignment when a child joins, the cause's `updated` only after its throttle: the
    assignment is enough, whichever of the cause's event and the assignment the feed reads first."""
    model = ReadModel()
    for i in ("i1", "i2"):
        model.apply_incident(event(i))
    steps: list[Callable[[], bool]] = [lambda: model.apply_assignment(assignment("i2", "p1", "same host db-1")),
             lambda: model.apply_parent(parent("p1", ["i1"]))]  # the cause's list does not name i2 yet
    for step in steps if assignment_first else steps[::-1]:
        step()
    assert model.rows["p1"].children == ["i1", "i2"]
    assert model.parent(model.rows["i2"]) == "p1" and [r.id for r in model.top_rows()] == ["p1"]
    model.apply_parent(parent("p1", ["i1", "i2"], seq=2))  # the throttled update: nothing doubles
    assert model.rows["p1"].children == ["i1", "i2"] and model.why(model.rows["i2"]) == "same host db-1"


def test_a_merge_assignment_wins_over_the_old_causes_list_read_after_it() -> None:
    model = ReadModel()
    for i in ("i1", "i2", "i3"):
        model.apply_incident(event(i))
    model.apply_parent(parent("p2", ["i3"]))
    model.apply_assignment(assignment("i2", "p2", "merged in from p1"))  # the move, read first
    model.apply_parent(parent("p1", ["i1", "i2"]))  # p1's older list, from another partition
    assert model.parent(model.rows["i2"]) == "p2" and model.rows["p1"].children == ["i1", "i2"]
    model.apply_parent(parent("p1", ["i1", "i2"], seq=2, status="merged"))
    assert model.parent(model.rows["i2"]) == "p2" and model.why(model.rows["i2"]) == "merged in from p1"
    assert model.rows["p2"].children == ["i3", "i2"]


def test_an_ack_on_a_child_shows_on_its_cause_and_in_the_filters() -> None:
    model = ReadModel()
    model.apply_parent(parent("p1", ["i1", "i2"]))
    for i in ("i1", "i2", "i3"):
        model.apply_incident(event(i))
    model.apply_clock("i2", clock("i2", acked_by="alice"))
    acked = model.acked(model.rows["p1"])
    assert acked is not None and acked.acked_by == "alice"
    assert [r.id for r in page_of(model, Filters(status="acknowledged")).rows] == ["p1"]
    assert [r.id for r in page_of(model, Filters(status="open")).rows] == ["i3"]
    assert any(e.what == "acknowledged" and "alice" in e.detail for e in model.rows["i2"].timeline)


@pytest.mark.parametrize(("matchers", "silenced"), [
    ([{"name": "incident_id", "value": "i1"}], True),
    ([{"name": "service", "value": "web"}], True),
    ([{"name": "cluster", "value": "a"}, {"name": "severity", "value": "critical"}], False),
    ([{"name": "service", "value": "db.*", "isRegex": True}], False),
])
def test_an_incident_shows_the_silences_that_match_it(matchers: list[dict[str, Any]], silenced: bool) -> None:
    model = ReadModel()
    model.apply_incident(event("i1", service="web"))
    model.put_silence(silence("s1", matchers))
    facts = cluster_facts(model, "i1", T0 + 60)
    assert bool(facts["silenced"]) is silenced
    if silenced:
        assert facts["silenced"][0] == {"id": "s1", "by": "bob", "until": T0 + 3600, "comment": "maintenance"}
    assert cluster_facts(model, "i1", T0 + 7200)["silenced"] == []  # ended


def test_an_incident_answer_carries_its_cause_and_sla_clock_from_the_model() -> None:
    """`GET /incidents/{id}` takes cause and clock from the read model: the same answer on every worker."""
    model = ReadModel()
    for i in ("i1", "i2", "i3"):
        model.apply_incident(event(i))
    model.apply_parent(parent("p1", ["i1", "i2"]))
    model.apply_assignment(assignment("i2", "p1", "same host db-1"))
    model.apply_clock("i2", clock("i2", acked_by="alice"))
    facts = cluster_facts(model, "i2", T0 + 60)
    assert (facts["parent_id"], facts["joined_because"]) == ("p1", "same host db-1")
    assert facts["cause"] == {"parent_id": "p1", "children": ["i1", "i2"], "alert_count": 6, "first_seen": T0,
                              "last_seen": T0 + 10, "status": "firing"}
    assert (facts["sla"]["phase"], facts["sla"]["acked_by"], facts["acknowledged_by"]) == \
        ("acknowledged", "alice", "alice")
    alone = cluster_facts(model, "i3", T0 + 60)
    assert (alone["cause"], alone["sla"], alone["parent_id"]) == (None, None, None)
    model.apply_parent(parent("p1", ["i1", "i2"], seq=2, status="merged"))  # merged away: no cause any more
    assert cluster_facts(model, "i2", T0 + 60)["cause"] is None
    assert cluster_facts(model, "nope", T0)["cause"] is None


def test_an_expired_silence_ends_and_one_not_started_is_dropped() -> None:
    model = ReadModel()
    model.put_silence(silence("s1", [{"name": "service", "value": "web"}]))
    model.put_silence(silence("s2", [{"name": "service", "value": "web"}], start=T0 + 100, end=T0 + 200))
    model.expire_silence("s1", T0 + 10)
    model.expire_silence("s2", T0 + 10)
    assert model.silences["s1"].ends_at == T0 + 10 and "s2" not in model.silences
    assert [s.id for s in silences_of(model, T0 + 20, keep_s=3600)] == ["s1"]
    assert silences_of(model, T0 + 20 + 3600, keep_s=3600) == []


def test_filters_and_paging_happen_on_the_server_at_a_thousand_incidents() -> None:
    model = ReadModel()
    for k in range(1000):
        model.apply_incident(event(f"i{k:04d}", service=f"svc-{k % 10}", scope=f"cluster=c{k % 4}",
                                   severity=("critical", "warning")[k % 2], at=T0 + k))
    first = page_of(model, Filters(), 0, 50)
    assert (first.total, len(first.rows), first.rows[0].id) == (1000, 50, "i0999")  # newest first
    last = page_of(model, Filters(), 980, 50)
    assert [r.id for r in last.rows][-1] == "i0000" and len(last.rows) == 20
    narrowed = page_of(model, Filters(service="svc-3", scope="cluster=c1", severity="warning"), 0, 50)
    assert narrowed.total == 50 and all(r.services == ["svc-3"] and r.scope == "cluster=c1" for r in narrowed.rows)
    head = headline_of(model)
    assert (head.alerts, head.incidents, head.groups) == (3000, 1000, 1000)
    assert head.reduction == pytest.approx(1 - 1000 / 3000)
    start, width, counts = series_of(model, 10)
    assert start == T0 and sum(a for a, _ in counts) == 3000 and sum(i for _, i in counts) == 1000


def test_finished_incidents_are_bounded_open_ones_never() -> None:
    model = ReadModel(keep_finished=10)
    for k in range(200):
        model.apply_incident(event(f"done{k:03d}", status="resolved", at=T0 + k))
    for k in range(30):
        model.apply_incident(event(f"open{k:03d}", at=T0 + k))
    assert sum(r.open for r in model.rows.values()) == 30
    assert sum(not r.open for r in model.rows.values()) <= 10 * 1.1 + 100
    assert "done199" in model.rows and "done000" not in model.rows  # the newest finished ones stay


def test_many_open_incidents_do_not_make_every_change_sort_every_row() -> None:
    """Open rows all stay, so past the bound in open rows alone a trim frees nothing: the next one waits for another
    tenth of the bound in rows, not for the next change (the feed sorted every row on every event)."""
    model = ReadModel(keep_finished=10)
    for k in range(300):
        model.apply_incident(event(f"open{k:03d}", at=T0 + k))
    sorts: list[int] = []
    trim = model._trim

    def counted() -> None:
        sorts.append(len(model.rows))
        trim()

    model._trim = counted  # type: ignore[method-assign]
    for seq in range(2, 12):  # 3,000 updates of open incidents: no new row
        for k in range(300):
            model.apply_incident(event(f"open{k:03d}", seq=seq, at=T0 + k))
    assert len(sorts) <= 1
    for k in range(500):  # finished ones still trimmed back to the newest `keep_finished`
        model.apply_incident(event(f"done{k:03d}", status="resolved", at=T0 + 1000 + k))
    finished = sorted(r.id for r in model.rows.values() if not r.open)
    assert len(model.rows) - len(finished) == 300 and len(finished) <= 10 + 1 + 100 and "done499" in finished
    assert 3 <= len(sorts) <= 8  # one per ~101 new rows, not one per change


def test_the_feed_folds_the_same_model_with_its_one_pass_decoder_as_with_the_models() -> None:
    """The feed decodes stage-1 events with msgspec (`read_incident_record`); what it folds equals what the
    pydantic models give, for the engine's events of the lab storm, stage 2's records, and an event only the
    model reads (a count written as 3.0); a record neither reads raises in both."""
    import orjson
    from aiokafka.structs import ConsumerRecord

    from correlator.config import DEFAULT_CONFIG
    from correlator.engine import Correlator
    from correlator.records import record_of
    from correlator.sources import parse
    from stream.console.feed import FeedTopics, apply_record
    from stream.incident_records import (ASSIGNMENT_HEADERS, PARENT_HEADERS, decode_incident_record,
                                         encode_incident_event, read_incident_record)

    from .paths import LAB_STORM

    alerts = [record_of(a) for a in parse("generic", LAB_STORM.read_bytes())]
    engine = Correlator(DEFAULT_CONFIG)
    events = engine.ingest(alerts) + engine.advance(max(r.starts_at for r in alerts) + 86400)
    odd = {**orjson.loads(encode_incident_event(event("i-odd"))), "alert_count": 3.0}
    values: list[tuple[bytes, list[tuple[str, bytes]]]] = [(encode_incident_event(e), []) for e in events]
    values += [(orjson.dumps(odd), []), (orjson.dumps(parent("p1", [events[0].incident_id]).model_dump()),
               PARENT_HEADERS), (orjson.dumps(assignment("i-odd", "p1", "same host").model_dump()), ASSIGNMENT_HEADERS)]
    topics = FeedTopics("incidents", "clocks", "tickets")

    def record(offset: int, value: bytes, headers: list[tuple[str, bytes]]) -> ConsumerRecord[bytes, bytes]:
        return ConsumerRecord("incidents", 0, offset, 0, 0, b"k", value, None, 1, len(value), headers)

    fast, slow = ReadModel(), ReadModel()
    for offset, (value, headers) in enumerate(values):
        apply_record(fast, topics, record(offset, value, headers))
        apply_record(slow, topics, record(offset, value, headers), decode_incident_record)
    assert len(fast.rows) == len({e.incident_id for e in events}) + 2  # the storm's, i-odd, p1
    assert fast.rows == slow.rows and fast.parent_of == slow.parent_of
    assert fast.rows["i-odd"].alert_count == 3 and fast.parent(fast.rows["i-odd"]) == "p1"
    for model, decode in ((fast, read_incident_record), (slow, decode_incident_record)):
        with pytest.raises(ValueError, match="incident_id"):
            apply_record(model, topics, record(99, b'{"kind": "opened"}', []), decode)
