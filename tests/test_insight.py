"""The analytics store's pure parts (`correlator.insight`): folding events into hourly aggregates, retention, the
trend rule, recurring blockers, the weekly summary and its rendering. Tables with fixed times; no broker."""

from __future__ import annotations

import asyncio
import random
from types import SimpleNamespace
from typing import Any

import pytest

from correlator.insight import (
    BY,
    HourAggregate,
    Trend,
    TrendRule,
    build_summary,
    expired,
    fold_ack,
    fold_incident,
    fold_incidents,
    fold_ticket,
    hour_of,
    iso_week,
    merge,
    parse_week,
    recurring,
    render_html,
    render_markdown,
    ticket_fact,
    trend_of,
    week_containing,
)
from correlator.models import IncidentEvent
import stream.checkpoint
from stream.checkpoint import COMMIT_HEADER, CommitGate
from stream.insight import Insight, Side

W49 = 1795996800.0  # Monday 2026-11-30 00:00 UTC, the start of 2026-W49
H = 3600


def incident(kind: str, seq: int, alerts: int, dups: int = 0, *, iid: str = "i1", first: float = W49 + 60,
             last: float | None = None, service: str = "api", symptom: str = "Down", scope: str = "cluster=a",
             severity: str = "warning") -> IncidentEvent:
    status = {"opened": "firing", "updated": "firing"}.get(kind, kind)
    return IncidentEvent(kind=kind, incident_id=iid, seq=seq, key=f"{scope}/{service}/{symptom}", service=service,
                         symptom=symptom, scope=scope, status=status, first_seen=first,
                         last_seen=last if last is not None else first, window_start=first, alert_count=alerts,
                         distinct_fingerprints=alerts, firing_count=alerts, duplicates=dups,
                         max_severity=severity, emitted_at=first)


# (events, expected counts, expected still open)
FOLDS: list[tuple[str, list[IncidentEvent], dict[str, int], set[str]]] = [
    ("opened then updated: alerts counted once, by difference",
     [incident("opened", 1, 3, 1), incident("updated", 2, 5, 4)],
     {"incidents_opened": 1, "opened_warning": 1, "alerts": 5, "duplicates": 4}, {"i1"}),
    ("the same event again changes nothing",
     [incident("opened", 1, 3), incident("updated", 2, 5), incident("updated", 2, 5), incident("opened", 1, 3)],
     {"incidents_opened": 1, "opened_warning": 1, "alerts": 5}, {"i1"}),
    ("resolved: counted, time to resolve, no longer open",
     [incident("opened", 1, 2), incident("resolved", 2, 6, 1, last=W49 + 60 + 900)],
     {"incidents_opened": 1, "opened_warning": 1, "alerts": 6, "duplicates": 1, "incidents_resolved": 1}, set()),
    ("a duplicate resolution after it closed is not a second one",
     [incident("opened", 1, 2), incident("resolved", 2, 2), incident("resolved", 2, 2)],
     {"incidents_opened": 1, "opened_warning": 1, "alerts": 2, "incidents_resolved": 1}, set()),
    ("expired: counted apart, no time to resolve",
     [incident("opened", 1, 2), incident("expired", 2, 2)],
     {"incidents_opened": 1, "opened_warning": 1, "alerts": 2, "incidents_expired": 1}, set()),
    ("an update of an incident never seen opened (its hour purged) is not counted",
     [incident("updated", 4, 9)], {}, set()),
    ("two incidents, two services",
     [incident("opened", 1, 2), incident("opened", 1, 3, iid="i2", service="db", severity="critical")],
     {"incidents_opened": 2, "opened_warning": 1, "opened_critical": 1, "alerts": 5}, {"i1", "i2"}),
]


@pytest.mark.parametrize(("events", "counts", "still_open"), [f[1:] for f in FOLDS], ids=[f[0] for f in FOLDS])
def test_fold_incident(events: list[IncidentEvent], counts: dict[str, int], still_open: set[str]) -> None:
    agg = HourAggregate(hour=hour_of(W49 + 60))
    for event in events:
        fold_incident(agg, event)
    assert agg.counts == counts
    assert set(agg.open) == still_open


def test_a_batch_folds_to_the_figures_of_each_event_in_turn() -> None:
    # `fold_incidents` folds a run of plain updates as its last: every count, split, time, open incident and
    # longest incident must be what `fold_incident` of each event gives, from aggregates already holding some
    # incidents, over redelivered, stale, shrinking, moving (another service or scope) and closing events.
    shrinking = [incident("opened", 1, 4, 2), incident("updated", 2, 2, 0, service="db"),
                 incident("updated", 3, 4, 2, service="db")]  # db's split back to 0: the key stays, as in turn
    each, batch = HourAggregate(hour=hour_of(W49)), HourAggregate(hour=hour_of(W49))
    for event in shrinking:
        fold_incident(each, event)
    fold_incident(batch, shrinking[0])
    fold_incidents(batch, shrinking[1:])
    assert batch == each and each.split("alerts", "service") == {"api": 4, "db": 0}
    rng = random.Random(19)
    for _ in range(1500):
        start = HourAggregate(hour=hour_of(W49))
        for iid in rng.sample(["i1", "i2", "i3"], rng.randint(0, 3)):
            fold_incident(start, incident("opened", rng.randint(1, 3), rng.randint(1, 4), rng.randint(0, 2), iid=iid))
        events = []
        for _ in range(rng.randint(1, 12)):
            kind = rng.choice(["opened", "updated", "updated", "updated", "resolved", "expired"])
            events.append(incident(kind, rng.randint(1, 9), rng.randint(0, 9), rng.randint(0, 4),
                                   iid=rng.choice(["i1", "i2", "i3"]), service=rng.choice(["api", "api", "db"]),
                                   scope=rng.choice(["cluster=a", "cluster=a", ""]), last=W49 + rng.randint(60, 9000)))
        each, batch = start.copied(), start.copied()
        for event in events:
            fold_incident(each, event)
        fold_incidents(batch, events)
        assert batch == each, events


def test_incident_splits_and_longest() -> None:
    agg = HourAggregate(hour=hour_of(W49))
    fold_incident(agg, incident("opened", 1, 4, 2))
    fold_incident(agg, incident("resolved", 2, 4, 2, last=W49 + 60 + 1800))
    fold_incident(agg, incident("opened", 1, 1, iid="i2", service="db", scope=""))
    fold_incident(agg, incident("resolved", 2, 1, iid="i2", service="db", scope="", last=W49 + 60 + 60))
    assert agg.split("alerts", "service") == {"api": 4, "db": 1}
    assert agg.split("alerts", "scope") == {"cluster=a": 4, "-": 1}
    assert agg.split("duplicates", "service") == {"api": 2}
    assert [(i.incident_id, i.duration_s) for i in agg.longest] == [("i1", 1800.0), ("i2", 60.0)]
    assert (agg.times["resolve"].count, agg.times["resolve"].mean_s, agg.times["resolve"].max_s) == (2, 930.0, 1800.0)


def ticket_value(status: str = "routed", seq: int = 1, **more: Any) -> dict[str, Any]:
    value = {"ticket_id": "T-1", "status": status, "severity": "sev2", "confidence": 0.9,
             "taxonomy_code": "network.dns", "tags": ["lang:en", "scope:wide"], "tier": "L2", "decided_at": W49 + 10,
             "seq": seq, "subject": "ticket"}
    return {**value, **more}


REVIEW = {"action": "override", "who": "ana", "at": W49, "severity": "sev1", "taxonomy_code": "network.routing",
          "predicted_severity": "sev2", "predicted_taxonomy_code": "network.dns", "predicted_confidence": 0.3}
INCIDENT = {"incident_id": "i1", "key": "k", "service": "api", "symptom": "Down", "max_severity": "critical",
            "opened_at": W49}

# (value, expected counts after folding it, one expected split)
TICKETS: list[tuple[str, dict[str, Any], dict[str, int], tuple[str, dict[str, int]]]] = [
    ("first decision, routed (no lang: tag)", ticket_value(), {"tickets": 1}, ("tickets|tag", {"scope:wide": 1})),
    ("first decision, held for review", ticket_value("human_review", tier=None),
     {"tickets": 1, "tickets_review": 1}, ("tickets|route", {"review": 1})),
    ("a later routing is not a new ticket", ticket_value(seq=2), {}, ("tickets|route", {})),
    ("an override", ticket_value(seq=2, review=REVIEW), {"overrides": 1}, ("overrides|predicted", {"network.dns": 1})),
    ("an approval", ticket_value(seq=2, review={**REVIEW, "action": "approve"}), {"approves": 1},
     ("approves|taxonomy", {"network.dns": 1})),
    ("a ticket breach that escalated", ticket_value("escalated", 2, reason="escalated: L2 -> L3", tier="L3"),
     {"ticket_breaches": 1, "ticket_escalations": 1}, ("ticket_breaches|tier", {"L3": 1})),
    ("a breach at the top tier escalates nothing", ticket_value("escalated", 3, reason="at_top_tier", tier="L3"),
     {"ticket_breaches": 1}, ("ticket_breaches|severity", {"sev2": 1})),
    ("an incident's breach, by service", ticket_value("escalated", 1, reason="escalated", subject="incident",
                                                      incident=INCIDENT, ticket_id="incident:i1"),
     {"incident_breaches": 1, "incident_escalations": 1}, ("incident_breaches|service", {"api": 1})),
    ("a resolution", ticket_value("resolved", 3), {"tickets_resolved": 1}, ("tickets_resolved|severity", {"sev2": 1})),
]


@pytest.mark.parametrize(("value", "counts", "split"), [t[1:] for t in TICKETS], ids=[t[0] for t in TICKETS])
def test_fold_ticket(value: dict[str, Any], counts: dict[str, int], split: tuple[str, dict[str, int]]) -> None:
    agg = HourAggregate(hour=hour_of(W49))
    fact = ticket_fact(value)
    fold_ticket(agg, fact)
    assert fact.decided_at == W49 + 10
    assert agg.counts == counts
    assert agg.by.get(split[0], {}) == split[1]


@pytest.mark.parametrize("value", [{"ticket_id": "x"}, {**ticket_value(), "confidence": 2.0},
                                   {**ticket_value(), "status": "lost"}, {**ticket_value(), "decided_at": 1e300},
                                   {**ticket_value(), "decided_at": -1.0}])
def test_a_value_that_is_not_a_countable_triaged_ticket_is_refused(value: dict[str, Any]) -> None:
    with pytest.raises(ValueError):  # pydantic's ValidationError, or NotCountable: both name the field
        ticket_fact(value)


def test_ack_and_merge() -> None:
    a, b = HourAggregate(hour=0), HourAggregate(hour=0)
    fold_ack(a, 120.0, "api")
    fold_ack(b, 60.0, "db")
    fold_ack(b, -5.0, "db")  # a clock skewed behind the ack: never a negative time
    merged = merge([a, b, HourAggregate(hour=H)])
    assert sorted(merged) == [0, H]
    assert merged[0].counts == {"acks": 3}
    assert merged[0].split("acks", "service") == {"api": 1, "db": 2}
    assert (merged[0].times["ack"].count, merged[0].times["ack"].total_s, merged[0].times["ack"].max_s) == (3, 180, 120)


@pytest.mark.parametrize(("hour", "horizon", "gone"), [
    (0, H - 1, False), (0, H, True), (10 * H, 0, False), (0, 90 * 86400, True),
])
def test_retention(hour: int, horizon: float, gone: bool) -> None:
    assert expired(hour, horizon) is gone


# weekly counts oldest first -> trend, with the default rule (factor 1.5, a change of at least 2)
TRENDS: list[tuple[list[int], Trend]] = [
    ([], Trend.STEADY),
    ([0, 0, 0, 5], Trend.NEW),
    ([0, 0, 0, 1], Trend.STEADY),  # one is not a blocker
    ([5], Trend.NEW),
    ([2, 2, 2, 6], Trend.RISING),
    ([2, 2, 2, 3], Trend.STEADY),  # 1.5x but only one more
    ([10, 10, 10, 14], Trend.STEADY),  # more, but not 1.5x
    ([10, 10, 10, 15], Trend.RISING),
    ([10, 10, 10, 7], Trend.STEADY),  # fewer, but not down to 1/1.5
    ([10, 10, 10, 6], Trend.FALLING),
    ([9, 9, 9, 6], Trend.FALLING),
    ([1, 1, 1, 0], Trend.STEADY),  # a drop of one
    ([4, 0, 0, 3], Trend.STEADY),  # mean 1.33 before: only 1.67 more
    ([4, 0, 0, 4], Trend.RISING),
]


@pytest.mark.parametrize(("weekly", "trend"), TRENDS, ids=[str(t[0]) for t in TRENDS])
def test_trend_rule(weekly: list[int], trend: Trend) -> None:
    assert trend_of(weekly) is trend


def test_trend_rule_thresholds_are_settings() -> None:
    assert trend_of([2, 2, 3], TrendRule(factor=1.2, min_change=1)) is Trend.RISING


def tickets_in(hour: float, code: str, n: int, tags: tuple[str, ...] = ()) -> HourAggregate:
    agg = HourAggregate(hour=hour_of(hour))
    for _ in range(n):
        fold_ticket(agg, ticket_fact(ticket_value(taxonomy_code=code, tags=list(tags), decided_at=hour)))
    return agg


def test_recurring_blockers_weeks_and_order() -> None:
    until = W49 + 7 * 86400  # the end of W49: four weeks are W46..W49
    aggs = [tickets_in(W49 - 3 * 7 * 86400, "network.dns", 2), tickets_in(W49 - 7 * 86400, "network.dns", 2),
            tickets_in(W49 + 100, "network.dns", 8, ("auth",)), tickets_in(W49 + 200, "facility.power", 3),
            tickets_in(W49 + 300, "storage.capacity", 3), tickets_in(W49 - 40 * 86400, "network.dns", 50)]
    trends = recurring(aggs, "taxonomy", until, 28 * 86400, top=3)
    assert trends.weeks == [W49 - 21 * 86400, W49 - 14 * 86400, W49 - 7 * 86400, W49]
    assert [(i.item, i.total, i.weekly, i.trend) for i in trends.items] == [
        ("network.dns", 12, [2, 0, 2, 8], Trend.RISING),
        ("facility.power", 3, [0, 0, 0, 3], Trend.NEW),
        ("storage.capacity", 3, [0, 0, 0, 3], Trend.NEW),  # ties by name
    ]
    assert [i.item for i in recurring(aggs, "tag", until, 28 * 86400).items] == ["auth"]
    with pytest.raises(ValueError, match="unknown --by"):
        recurring(aggs, "colour", until)


def test_mcp_trend_choices_are_the_stores() -> None:
    from typing import get_args

    from stream.mcp_server import TrendBy

    assert set(get_args(TrendBy)) == set(BY)


@pytest.mark.parametrize(("text", "start"), [("2026-W49", W49), (" 2026-W01 ", 1766966400.0)])
def test_parse_week(text: str, start: float) -> None:
    assert parse_week(text) == start
    assert iso_week(start) == text.strip()
    assert week_containing(start + 6 * 86400 + 86399) == start


@pytest.mark.parametrize("text", ["2026-49", "2026-W54", "W49", ""])
def test_parse_week_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="not an ISO week"):
        parse_week(text)


def week_of_traffic(start: float, scale: int) -> list[HourAggregate]:
    agg = HourAggregate(hour=hour_of(start + H))
    for n in range(scale):
        iid = f"{start}-{n}"
        fold_incident(agg, incident("opened", 1, 10, 5, iid=iid, first=start + H, service=f"s{n % 2}"))
        fold_incident(agg, incident("resolved", 2, 10, 5, iid=iid, first=start + H, last=start + H + 600 * (n + 1),
                                    service=f"s{n % 2}"))
    fold_ack(agg, 300.0, "s0")
    fold_ticket(agg, ticket_fact(ticket_value(decided_at=start + H)))
    fold_ticket(agg, ticket_fact(ticket_value("human_review", tier=None, decided_at=start + H)))
    fold_ticket(agg, ticket_fact(ticket_value(seq=2, review=REVIEW, decided_at=start + H)))
    return [agg]


def test_weekly_summary_figures_against_the_week_before() -> None:
    aggs = week_of_traffic(W49, 4) + week_of_traffic(W49 - 7 * 86400, 2)
    summary = build_summary(aggs, W49)
    figures = {h.name: (h.this_week, h.last_week) for h in summary.headlines}
    assert figures["alerts"] == (40, 20)
    assert figures["records"] == (60, 30)
    assert figures["incidents_opened"] == (4, 2)
    assert figures["noise_reduction"] == (90.0, 90.0)
    assert figures["mttr"] == (25.0, 15.0)  # 10, 20, 30, 40 min
    assert figures["mtta"] == (5.0, 5.0)
    assert figures["review_share"] == (50.0, 50.0)
    assert figures["override_rate"] == (100.0, 100.0)
    assert figures["sla_breaches"] == (0, 0)
    assert [(r.name, r.count) for r in summary.noisy_services] == [("s0", 20), ("s1", 20)]
    assert [i.duration_s for i in summary.longest] == [2400, 1800, 1200, 600]
    assert summary.daily[0][1:] == (40, 4) and summary.daily[1][1:] == (0, 0)
    assert summary.week == "2026-W49"
    assert [i.item for i in summary.blockers["service"].items] == ["s0", "s1"]


def test_rendering_is_deterministic_and_complete() -> None:
    summary = build_summary(week_of_traffic(W49, 3), W49)
    md, html = render_markdown(summary, {"Alerts": "a.png"}), render_html(summary, {"Alerts": "a.png"})
    assert md == render_markdown(build_summary(week_of_traffic(W49, 3), W49), {"Alerts": "a.png"})
    assert md.startswith("# Operations summary 2026-W49 (Mon 30 Nov – 06 Dec 2026)")
    assert "| distinct alerts | 30 | 0 | +30 |" in md
    assert "| mean time to resolve | 20.0 min | – | – |" in md
    assert "![Alerts](a.png)" in md
    assert "## SLA breaches by service\n\nnothing this week" in md
    assert '<img src="a.png" alt="Alerts">' in html and "<td>distinct alerts</td><td>30</td>" in html


@pytest.mark.parametrize(("token", "status"), [(None, 401), ("r-secret", 403), ("o-secret", None)])
def test_mcp_over_http_needs_an_operator_token(token: str | None, status: int | None) -> None:
    from pydantic import SecretStr

    from stream.auth import Principal, TokenBook
    from stream.mcp_http import MCP_PATH

    book = TokenBook({"operator": {"ana": SecretStr("o-secret")}, "reader": {"dash": SecretStr("r-secret")}})
    decided = book.authorize("POST", MCP_PATH, f"Bearer {token}" if token else None)
    if status is None:
        assert isinstance(decided, Principal) and decided.name == "ana"
    else:
        assert getattr(decided, "status", None) == status


class Narrator:
    """A narrator plug-in as `aiops summary --narrator tests.test_insight:Narrator` loads it."""

    def __init__(self, config: object) -> None:
        self.config = config

    def narrate(self, summary: dict[str, Any]) -> str:
        return f"Week {summary['week']}: {summary['headlines'][2]['this_week']} alerts."


def test_the_narrative_comes_through_the_plugin_seam(capsys: pytest.CaptureFixture[str]) -> None:
    from stream.commands.summary import narrate

    summary = build_summary(week_of_traffic(W49, 2), W49)
    told = narrate(summary, "tests.test_insight:Narrator")
    assert told.narrative == "Week 2026-W49: 20 alerts."
    assert render_markdown(told).splitlines()[2] == "Week 2026-W49: 20 alerts."
    assert narrate(summary, "tests.test_insight:nothing").narrative is None  # a broken plug-in: no narrative
    assert "no narrative: plugin 'tests.test_insight:nothing'" in capsys.readouterr().err


def test_the_store_reads_the_same_counts_from_the_wire_and_copies_independently() -> None:
    from stream.incident_records import encode_incident_event
    from stream.insight import incident_counts

    events = [incident("opened", 1, 3, 1), incident("updated", 2, 5, 4), incident("resolved", 3, 6, 4, last=W49 + 960)]
    whole, slim = HourAggregate(hour=hour_of(W49)), HourAggregate(hour=hour_of(W49))
    for event in events:
        fold_incident(whole, event)
        counts = incident_counts(encode_incident_event(event))
        assert counts is not None
        fold_incident(slim, counts)
    assert slim == whole
    copy = whole.copied()
    fold_incident(copy, incident("opened", 1, 2, iid="i2"))
    assert copy.counts["alerts"] == 8 and whole.counts["alerts"] == 6 and "i2" not in whole.open
    assert copy.split("alerts", "service") == {"api": 8} and whole.split("alerts", "service") == {"api": 6}


@pytest.mark.parametrize(("raw", "category"), [
    (b"{nope", "malformed_json"), (b'{"kind": "opened"}', "invalid_incident_event"),
    (b"[1, 2]", "invalid_incident_event"), (None, "malformed_json"),
])
def test_an_incident_record_the_store_cannot_read_is_refused_with_the_sla_agents_reason(raw: bytes | None,
                                                                                         category: str) -> None:
    from correlator.triage.lifecycle import InputError
    from stream.insight import incident_counts

    with pytest.raises(InputError) as refused:
        incident_counts(raw)
    assert refused.value.category == category


def test_counts_and_times_beyond_what_the_store_holds_and_a_cause_without_its_header() -> None:
    import json

    import orjson

    from correlator.triage.lifecycle import InputError
    from stream.incident_records import encode_incident_event
    from stream.insight import incident_counts

    good = orjson.loads(encode_incident_event(incident("opened", 1, 3)))
    for field, value in (("alert_count", -1), ("alert_count", 10**30), ("duplicates", 2**60), ("first_seen", 1e300),
                         ("seq", 10**20)):
        with pytest.raises(InputError, match=field):  # fuzzed: 10**30 once stalled the stage on its commit
            incident_counts(json.dumps({**good, field: value}).encode())  # json: orjson refuses integers > 64 bits
    assert incident_counts(b'{"parent_id": "par-1", "children": ["i1"]}') is None  # stage 2's, unmarked: skipped


@pytest.mark.parametrize("insight", [True, False])
def test_one_faust_agent_reads_incidents_for_the_sla_clocks_and_the_hours(insight: bool, tmp_path: Any) -> None:
    """Each record Faust hands to an agent costs its per-message path once per agent: the SLA clocks and the
    analytics store's hours are folded by one agent on `incidents`, which decodes each event once for both."""
    from stream.settings import Settings
    from stream.worker import build_worker_app

    app, _ = build_worker_app(Settings(data_dir=tmp_path, insight=insight))
    readers = sorted(name for name, agent in app.agents.items() if agent.channel.get_topic_name() == "incidents")
    assert readers == ["incident_sla"]
    assert ("insight_tickets" in app.agents) is insight  # tickets.triaged keeps its own stage



def test_the_marks_of_a_broker_loss_stay_until_this_worker_writes_their_partitions(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """`Insight.broker_lost` marks every partition of both tables (their count read from the tables, session 35). The
    tick writes the owned ones, whose marks go; a partition another worker owns stays marked even once this worker's
    table applied a checkpoint of it (its copy may still hold old offsets: clearing then made engines skip new alerts
    in the real-broker test named in `Insight.tick`), so a store of it built here later still forgets its input."""

    def table(name: str) -> SimpleNamespace:
        return SimpleNamespace(data={}, partitions=2, gate=CommitGate(),
                               changelog_topic=SimpleNamespace(get_topic_name=lambda: name))

    async def refuse(*_: Any) -> None:
        return None

    async def sent(*_: Any) -> list[Any]:
        return []

    monkeypatch.setattr(stream.checkpoint, "send_batches", sent)
    owned = {"incidents": {0}, "tickets_triaged": set()}
    insight = Insight(SimpleNamespace(), Side(table("hours-i"), True), Side(table("hours-t"), True), {}, 3600.0,
                      refuse, SimpleNamespace(ready=lambda: True, owned=owned.__getitem__))  # type: ignore[arg-type]
    insight.broker_lost()
    assert insight.checkpoints.lost == {(n, p) for n in ("hours-i", "hours-t") for p in (0, 1)}
    message = SimpleNamespace(topic="hours-t", partition=1, headers=[(COMMIT_HEADER, b"w-0")])
    assert insight.tickets.table.gate.committed([SimpleNamespace(message=message)])  # the owner's checkpoint, here
    asyncio.run(insight.tick())
    assert insight.checkpoints.lost == {("hours-i", 1), ("hours-t", 0), ("hours-t", 1)}
    assert insight.checkpoints.forget(insight.tickets.store(1))
