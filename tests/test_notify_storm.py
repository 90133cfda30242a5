"""The lab storm through both stages and the notify fold, with the routes of issue 18: one PagerDuty trigger per
paged cause (dedup_key = its id), one resolve when it resolves, nothing for a silenced one, nothing for a child;
and after a crash (the state restored from JSON as it was at the last checkpoint, the input since then read
again), only the deliveries of that re-read input are made again, identical, so PagerDuty's dedup_key absorbs
them: no other second trigger."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence

from correlator.models import IncidentEvent
from correlator.notify import Delivery, NotifyPolicy, NotifyRecord, NotifyState, Silence, on_record, on_tick
from correlator.replay import replay
from correlator.sources.generic import parse
from correlator.stage2 import DEFAULT_GROUPING, Assignment, ParentEvent, Progress

from .notifying import routes
from .paths import ROOT

STORM = ROOT / "benchmarks" / "storms" / "lab-m32.ndjson"
REPLAYED = 10
"""Records delivered again after the simulated restart."""
DEFAULT_POLICY = NotifyPolicy()


def storm_records() -> list[NotifyRecord]:
    """Every event both stages publish for the lab storm, its alerts all resolving two minutes after the last."""
    alerts = parse(STORM.read_bytes(), max_bytes=None)
    end = max(a.starts_at for a in alerts) + 120
    resolved = [a.model_copy(update={"status": "resolved", "ends_at": end + i}) for i, a in enumerate(alerts)]
    records: list[NotifyRecord] = []
    replay(alerts + resolved, grouping=DEFAULT_GROUPING, listener=records.append)
    return records


def _time(record: NotifyRecord) -> float:
    if isinstance(record, Assignment):
        return record.assigned_at
    assert isinstance(record, IncidentEvent | ParentEvent | Progress)
    return record.emitted_at  # a replayed Progress's is event time


def run(records: list[NotifyRecord], silences: Sequence[Silence] = (), *, restart_at: int | None = None,
        policy: NotifyPolicy = DEFAULT_POLICY) -> tuple[list[Delivery], list[tuple[str, str]]]:
    """Fold the records with a tick before each (the clock is their event time); every delivery and silence.
    Records a step forwards (to another partition in the stream: handovers, acknowledgements) are folded next."""
    config = routes()
    state, checkpoint, resume = NotifyState(), "", 0
    made: list[Delivery] = []
    silenced: list[tuple[str, str]] = []
    i, now = 0, 0.0
    while i < len(records):
        if restart_at is not None and i == max(0, restart_at - REPLAYED):
            checkpoint, resume = json.dumps(state.to_dict()), i  # the table as the changelog has it
        if i == restart_at:
            state = NotifyState.from_dict(json.loads(checkpoint))
            i, restart_at = resume, None
        now = max(now, _time(records[i]))
        steps = [on_tick(state, now, config, silences, policy), on_record(state, records[i], now, config, silences,
                                                                        policy)]
        while steps:
            step = steps.pop(0)
            made += step.deliveries
            silenced += step.silenced
            steps += [on_record(state, f, now, config, silences, policy) for f in step.forward]
        i += 1
    made += on_tick(state, now + 3600, config, silences, policy).deliveries
    return made, silenced


def _pagerduty(made: list[Delivery]) -> Counter[tuple[str, str]]:
    """(event_action, dedup_key) to PagerDuty; a trigger that updates a carrying page with its cause is `update`."""
    return Counter(("update" if d.action == "update" else json.loads(d.body)["event_action"],
                    json.loads(d.body)["dedup_key"]) for d in made if d.receiver == "oncall")


def test_one_trigger_and_one_resolve_per_paged_cause() -> None:
    records = storm_records()
    causes = {r.parent_id: r.max_severity for r in records if isinstance(r, ParentEvent)}
    critical = sorted(p for p, severity in causes.items() if severity == "critical")
    assert len(causes) == 3 and len(critical) == 2
    made, _ = run(records)
    assert _pagerduty(made) == Counter({("trigger", p): 1 for p in critical} | {("resolve", p): 1 for p in critical})
    assert {d.subject_id for d in made} == set(causes)  # every cause paged somewhere, no child ever
    hook = Counter((d.action, d.subject_id) for d in made if d.receiver == "hook")
    assert hook == Counter({(a, p): 1 for p in causes for a in ("trigger", "resolve")})
    assert not [d for d in made if d.action == "renotify"]  # the storm is over in an hour: no 4 h renotify


def test_a_silenced_cause_is_not_paged_and_the_others_are() -> None:
    records = storm_records()
    replicas = next(r.parent_id for r in records if isinstance(r, ParentEvent) and r.services == ["replicas"])
    first = min(_time(r) for r in records)
    silence = Silence.model_validate({
        "id": "s1", "matchers": [{"name": "service", "value": "replicas"}], "startsAt": first,
        "endsAt": first + 86400, "createdBy": "alice", "comment": "replica rebuild"})
    made, silenced = run(records, [silence])
    assert replicas not in {d.subject_id for d in made}
    assert silenced == [(replicas, "silence")]
    assert len({d.subject_id for d in made}) == 2


def _identity(d: Delivery) -> tuple[str, str, str, int, str | None]:
    """What makes a delivery the same one: receiver, action, subject, order, and PagerDuty's dedup_key."""
    return d.receiver, d.action, d.subject_id, d.order, json.loads(d.body).get("dedup_key") if d.receiver == "oncall" \
        else None


def test_a_crash_repeats_only_identical_deliveries() -> None:
    records = storm_records()
    whole, _ = run(records)
    opened = [i for i, r in enumerate(records) if isinstance(r, ParentEvent) and r.kind == "opened"]
    last_cause = records[opened[-1]]
    assert isinstance(last_cause, ParentEvent)
    for restart_at in (opened[0] + 3, opened[-1] + 1, len(records) - 2):
        again, _ = run(records, restart_at=restart_at)
        # nothing new, nothing different: every delivery after the crash is one of the uninterrupted run's
        assert sorted(set(map(_identity, again))) == sorted(map(_identity, whole)), restart_at
        if restart_at == opened[-1] + 1:  # the last cause's trigger was in the re-read input: made again, the same
            assert _pagerduty(again)[("trigger", last_cause.parent_id)] == 2
            assert _pagerduty(again) - _pagerduty(whole) == Counter({("trigger", last_cause.parent_id): 1})
