"""Where a stage-1 incident event goes to be grouped: the routing key of stage 2's partitions.

Related incidents must meet on one Grouper, so the key must never part two incidents that could share a
parent. The engine's first boundary does exactly that: a child joins only a group of exactly its scope (the
scope part of its stage-1 key, `keys.split_key`: cluster, environment, region, as the key's scope labels
are configured), so keying by that scope loses no relation at all, and it is the same for every event of an
incident (an incident's key never changes). The label veto of `relations.relate` (`separate_labels`)
applies within a scope and needs no routing of its own.

What it costs: stage 2's parallelism is the number of scopes that alert, and a deployment whose alerts
carry no scope label runs stage 2 on one partition (it groups about 150,000 events/s on one core, well above
what the pipeline feeds it).
"""

from __future__ import annotations

from ..keys import split_key
from ..models import IncidentEvent

__all__ = ["UNSCOPED_ROUTE_KEY", "route_key"]

UNSCOPED_ROUTE_KEY = "-"
"""Routing key of incidents whose key has no scope."""


def route_key(ev: IncidentEvent) -> str:
    """The routing key of a stage-1 event: the scope of its key (the engine's hard boundary), else `-`."""
    return split_key(ev.key)[0] or UNSCOPED_ROUTE_KEY
