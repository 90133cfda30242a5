"""A sample weekly report from generated traffic: five weeks of alert storms and tickets through the project's
own decision functions, folded into the analytics store's hourly aggregates, then `aiops summary`'s report
for the last week, as Markdown and HTML (benchmarks/weekly_report/).

Nothing here is hand-written into the figures: alerts come from `storms.py` (a Zipf-skewed storm generator) and
are correlated by the offline replay (the engine the worker runs); every incident event is folded by
`correlator.insight.fold_incident`, as the insight stage folds `incidents`. Incidents get an SLA clock
(`correlator.triage.incident_sla`) and are acknowledged after a drawn delay, or escalate when nobody does in
time. Tickets are drawn from a small list of texts, triaged by the rules and gated (`open_ticket`); some held
for review are approved or overridden, some routed ones breach their SLA (`check_ticket`). Every resulting
`tickets.triaged` value is folded by `ticket_fact`/`fold_ticket`. Login-failure tickets grow in the last weeks,
so the recurring blockers show something rising. Seeded: the same bytes every run.

    python benchmarks/weekly_report.py [--out benchmarks/weekly_report] [--week 2026-W49]
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

import orjson
from storms import StormSpec, generate

from correlator.config import DEFAULT_CONFIG
from correlator.insight import (
    HourAggregate,
    build_summary,
    fold_ack,
    fold_incident,
    fold_ticket,
    hour_of,
    parse_week,
    ticket_fact,
)
from correlator.insight.trends import WEEK_S
from correlator.models import IncidentEvent, Ticket
from correlator.replay import replay
from correlator.sources import parse
from correlator.triage import DEFAULT_ROUTING, RuleClassifier
from correlator.triage.incident_sla import check_incident, incident_event_value, on_incident_event
from correlator.triage.lifecycle import ReviewRequest, approve, check_ticket, event_of, open_ticket, override
from stream.commands.summary import write_report

OUT = Path(__file__).resolve().parent / "weekly_report"
WEEKS = 5
TEXTS = [
    "DNS resolution fails for all hosts in the office",
    "BGP session flapping on the core router",
    "Please increase our bandwidth to 1 Gbit",
    "Disk is full on the NAS, backups failing",
    "Fiber link down between sites",
    "Power outage in the server room, UPS on battery",
    "Suspicious logins from abroad, possible breach",
    "Packet loss on the uplink",
    "Website is slow since this morning",
    "Hmm, something feels off",
]
LOGIN = "Users cannot log in, authentication fails with invalid token"


class Week:
    """The aggregates being built, by hour (one partition: the report adds partitions up anyway)."""

    def __init__(self) -> None:
        self.hours: dict[int, HourAggregate] = {}

    def at(self, t: float) -> HourAggregate:
        return self.hours.setdefault(hour_of(t), HourAggregate(hour=hour_of(t)))


def alerts_of(week_start: float, seed: int) -> list[object]:
    """A week of storms: about 6,000 alerts (re-sends and resolutions included) over 7 days."""
    spec = StormSpec(alerts=6000, services=40, seed=seed, start=week_start + 600, storm_rate_per_s=300 / WEEK_S,
                     mean_storm_size=18.0, clusters=3)
    body = b"\n".join(orjson.dumps(record) for record, _ in generate(spec))
    return list(parse("generic", body))


def incidents(store: Week, week_start: float, rng: random.Random) -> None:
    """Correlate the week's alerts; fold every event; run each incident's SLA clock (ack, or escalation)."""
    events: list[IncidentEvent] = []
    replay(alerts_of(week_start, int(week_start)), DEFAULT_CONFIG,  # type: ignore[arg-type]
           listener=lambda ev: events.append(ev) if isinstance(ev, IncidentEvent) else None)
    for ev in events:
        fold_incident(store.at(ev.first_seen), ev)
        if ev.kind != "opened":
            continue
        clock = on_incident_event(None, ev, ev.first_seen, DEFAULT_ROUTING)
        if clock is None:
            continue
        delay = rng.expovariate(1 / 600.0)  # people acknowledge in ten minutes on average
        if ev.first_seen + delay > clock.due_at and rng.random() < 0.7:
            checked = check_incident(clock, clock.due_at + 1, DEFAULT_ROUTING)
            if checked is not None:
                after, escalation, _ = checked
                fold_ticket(store.at(clock.due_at + 1), ticket_fact(incident_event_value(after, escalation)))
        fold_ack(store.at(ev.first_seen), delay, ev.service)


def tickets(store: Week, week_start: float, week: int, rng: random.Random) -> None:
    """The week's tickets: triaged and gated by the rules, some reviewed, some past their SLA."""
    rules = RuleClassifier()
    texts = TEXTS * 6 + [LOGIN] * (2 + 4 * week * week)  # login failures recur more every week
    for n, text in enumerate(texts):
        now = week_start + rng.uniform(0, WEEK_S - 7200)
        ticket = Ticket(ticket_id=f"W{week}-{n}", text=text, created_at=now)
        record = open_ticket(ticket, rules.classify(text), now, DEFAULT_ROUTING)
        fold_ticket(store.at(now), ticket_fact(event_of(record)))
        if record.latest.status == "human_review" and rng.random() < 0.8:
            at = now + rng.uniform(300, 7200)
            if rng.random() < 0.4:
                review = ReviewRequest(who="duty-manager", severity="sev2", taxonomy_code="security.incident")
                record = override(record, review, at, DEFAULT_ROUTING)
            else:
                record = approve(record, ReviewRequest(who="duty-manager"), at, DEFAULT_ROUTING)
            fold_ticket(store.at(at), ticket_fact(event_of(record, review=record.reviews[-1])))
        due = record.latest.due_at
        if due is not None and rng.random() < 0.15:  # nobody took it in time
            checked = check_ticket(record, due + 1, DEFAULT_ROUTING)
            if checked is not None:
                fold_ticket(store.at(due + 1), ticket_fact(event_of(checked[0])))


def main(argv: list[str] | None = None) -> int:
    """Generate the weeks and write the report of the last one."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--week", default="2026-W49", help="the week reported (the last generated)")
    args = parser.parse_args(argv)
    last = parse_week(args.week)
    store, rng = Week(), random.Random(49)
    for week in range(WEEKS):
        start = last - (WEEKS - 1 - week) * WEEK_S
        incidents(store, start, rng)
        tickets(store, start, week, rng)
    summary = build_summary(store.hours.values(), last)
    for fmt in ("md", "html"):
        path = write_report(summary, args.out, fmt)
        print(f"wrote {path} ({len(store.hours)} hourly aggregates)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
