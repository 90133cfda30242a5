"""Which receivers a subject goes to: its labels, and the routes walked in order. Pure.

A subject's labels are what a route or silence can match: `severity`, `service` (a cause has one value per
service it spans; a matcher holds when any value does), `symptom`, `scope` and each scope label (`cluster`, ...),
`kind` (`incident` or `cause`), `incident_id`, and on an SLA escalation `tier`. Routes are walked in the
file's order: the first that matches takes the subject, and unless it says `continue: true` the walk ends
there. A route with no matchers matches everything: put it last, as the default.
"""

from __future__ import annotations

from correlator.keys import scope_pairs
from correlator.notify.config import NotifyConfig, Route
from correlator.notify.models import Subject

__all__ = ["Labels", "labels_of", "routes_for"]

Labels = dict[str, tuple[str, ...]]
"""Label name -> its values (one for most labels; a cause's services are several)."""


def labels_of(subject: Subject) -> Labels:
    """What routes and silences match on (see the module docstring)."""
    labels: Labels = {name: (value,) for name, value in scope_pairs(subject.scope).items()}
    labels.update({
        "severity": (subject.severity,), "service": tuple(subject.services) or ("",), "symptom": (subject.symptom,),
        "scope": (subject.scope,), "kind": (subject.kind,), "incident_id": (subject.id,),
    })
    if subject.escalated_tier:
        labels["tier"] = (subject.escalated_tier,)
    return labels


def routes_for(config: NotifyConfig, labels: Labels, *, escalation: bool = False) -> list[tuple[int, Route]]:
    """(index, route) of every route the labels take, in order; a receiver appears once (its first route).

    On an escalation, routes with `escalations: false` are passed over as if they did not match.
    """
    taken: list[tuple[int, Route]] = []
    seen: set[str] = set()
    for index, route in enumerate(config.routes):
        if escalation and not route.escalations:
            continue
        if not route.matches(labels):
            continue
        if route.receiver not in seen:
            seen.add(route.receiver)
            taken.append((index, route))
        if not route.continue_:
            break
    return taken

