"""Whether a child incident and a group are related: the entities of an incident, and the relation rules.

Rules, strongest first (the rank orders candidate groups; a lower rank wins):

* CONTINUES (rank -1): the child continues, after a stage-1 cap, a child of the group.
* ENTITY (rank 0): the child and the group share an entity: the service, or a value of an entity label
  (host, node, instance, pod, caller, callee), compared across labels (a callee `redisservice1` is the
  instance `redisservice1`), `host:port` also counting as `host`, and aliases mapped to topology nodes.
* TOPOLOGY (rank = hops, 1..max_hops): an entity of the child and one of the group are at most max_hops
  apart in the topology, on a path that touches no shared machine (a node of `shared_node_types`). The
  engine takes it only from a child that started with the group, as a shared machine (`engine._admits`).
  A path of calls (`_call_path`, `GroupingConfig.path_chains`): a child naming a failed call whose own name has an
  edge to a name of the group, in the edge's direction, ranks 1 too, and the engine takes it near the group's onsets
  as a caller name while the group alerts (`Link.upstream`).
  A name the group knows only as a caller (`CALLER_LABELS`; `ChildView.callers`, `GroupState.callers`) still
  ranks 0, but the engine takes it only from a child that starts within caller_window_s of the group's latest
  onset (`Link.caller`); so does a name the child carries only as a caller (`Link.victim`, `GroupingConfig.victims`).
* Weak ENTITY or TOPOLOGY (rank max_hops + 1 + hops): the only relation is a shared machine: a value of a
  `shared_labels` label (host, node) or a topology path through a host. A host named beside one of its own
  tenants (an instance's metric carrying its host label) is the tenant's address, not a path's end: from
  there the host's other tenants are two hops away, not one (`_tenant_address`). Every tenant of a host shares it, so
  the engine takes it only from a child that started with the group (`weak`; see `engine`), while a service,
  an instance or a call relate across the group's whole time gap. With a topology and
  `GroupingConfig.tenants_apart`, a group related to a child that names a tenant the file knows (`tenant`) by a shared
  machine alone is never the child's target, only folded into its best group (`engine._tenants_apart`).
* CALL CHAIN (rank 0, `chains`): the child's failed call went into a service (its `callee`'s service) that the
  group holds a failed call out of (a `caller` of that service): the failure climbing the call graph, U -> H -> X.
  The service of an instance is its name less a trailing ordinal (`webservice1`, `svc5-2`, `redis-0`:
  `service_of`), so another instance of the same service counts. Like a name known only as a caller, the engine
  takes it only within caller_window_s of the group's latest onset, and never folds two groups with it. A caller
  shared by two groups (one victim of two failing callees) relates nothing by this rule: that is what two
  concurrent faults look like from upstream (issue 17, session 31; `GroupingConfig.call_chains`, off by default).
* SCOPE (rank 2 * max_hops + 2 + i): a shared value of the i-th scope label (a namespace, by default); the
  fallback when there is no topology, or when it knows the entities of neither side or of one side only
  (when it knows both and finds no path, that is taken as evidence that they are unrelated).

* BURST (rank 2 * max_hops + 2 + len(scope_labels), the weakest): no shared name at all, only time: a child that
  names one entity only (a host's own metric) and relates to no open group joins the one group whose child started
  within burst_s before it, when no other group's did (`engine._burst`, `burst_link`; issue 17, session 31).

Two boundaries come before any rule. The scope of the stage-1 key (`keys.scope_of`: cluster, environment,
region) is a hard one: a child joins only groups of exactly its scope (checked by the engine). And a veto: when
both sides know their values of a `separate_labels` label (cluster) and share none, they are never related,
whatever the topology or the names say (two clusters, two failures); it still matters for a scope label that
is not configured as one.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

from ..models import IncidentEvent
from ..topology import Topology
from .config import GroupingConfig
from .models import Relation

__all__ = ["CALLEE_LABELS", "CALLER_LABELS", "ChildView", "Link", "burst_link", "labelled_tenant", "names_call", "machine_burst_link",
           "machine_only", "relate", "service_of", "tenant", "time_gap", "trace_link", "view_of"]

CALLER_LABELS = frozenset({"caller"})
"""Labels naming the calling side of a failed call (a trace error): a victim of the call, not where it failed."""

CALLEE_LABELS = frozenset({"callee"})
"""Labels naming the called side of a failed call: where the call failed."""

CALLS_OUT = ">"
"""Suffix of a group's name for a service that made a failed call (`chains`); no label value is matched with it."""

_ORDINAL = re.compile(r"^([A-Za-z][\w.-]*?[A-Za-z0-9])(?:[-_]\d+|(?<=[A-Za-z]{3})\d+)$")


@dataclass(frozen=True, slots=True)
class ChildView:
    """What stage 2 matches on for one child: entity -> (label, value) it came from, and scope values."""

    entities: dict[str, tuple[str, str]]
    scopes: dict[str, frozenset[str]]
    callers: frozenset[str] = frozenset()
    """Names among `entities` the child carries only as a `caller`: the side of a failed call that suffered it."""
    chains: frozenset[str] = frozenset()
    """Names looked up, never kept: `H>` for each service H the child's failed calls went into (`CALLS_OUT`)."""

    def without(self, names: Collection[str]) -> ChildView:
        """The view less some names: a group's borrowed and caller-only names are matched apart (`engine`)."""
        return ChildView({n: e for n, e in self.entities.items() if n not in names}, self.scopes,
                         self.callers.difference(names), self.chains)


@dataclass(frozen=True, slots=True)
class Link:
    """One relation found between a child and a group: its kind, rank, what it went through, and hops."""

    relation: Relation
    rank: int
    via: str
    hops: int = 0
    weak: bool = False
    """Only a shared machine relates them (see the module docstring)."""
    chain: bool = False
    """Only a call chain relates them: a failed call into a service the group holds a failed call out of."""
    borrowed: bool = False
    """Only a name the group has through a topology path relates them (`GroupState.borrowed`): weak too."""
    caller: bool = False
    """Only a name the group knows only as a caller relates them (`GroupState.callers`): near its onsets only."""
    victim: bool = False
    """Only a name the child carries only as a caller relates them (`ChildView.callers`): near its onsets only."""
    follows: bool = False
    """Time alone: a child naming a failed call follows the one cause of its scope alerting when it starts."""
    upstream: bool = False
    """A path of calls: the child's failed call went into a service that calls the group's (`_call_path`)."""
    machine: bool = False
    """A host's own metric taken by its shared machine while the group alerts (`GroupingConfig.machine_follow`)."""
    climbs: bool = False
    """A failed call into a service whose calls failed in the group, taken while it alerts (`GroupingConfig.climb_s`)."""

    def describe(self) -> str:
        """The relation as a phrase: `shares host 10.0.0.1`, `topology a~b~c (2 hops)`."""
        if self.relation is Relation.TOPOLOGY:
            return f"topology {self.via} ({self.hops} hop{'s' if self.hops != 1 else ''})"
        if self.relation is Relation.CONTINUES:
            return f"continues {self.via} after a stage-1 cap"
        if self.relation is Relation.SCOPE:
            return f"same {self.via}"
        if self.machine:
            return f"names only its machine, shares {self.via} and started while this cause alerted"
        if self.climbs:
            return f"its failed call went into the service of {self.via}, whose own calls failed in this cause while it alerted"
        if self.follows:
            return f"its failed call into {self.via} started while this cause alone alerted in its scope"
        if self.relation is Relation.BURST:
            return f"names only {self.via}, started in its burst of onsets and no other cause's"
        if self.chain:
            return f"its failed call went into {self.via}, whose own calls failed in this cause, near its latest onset"
        if self.borrowed:
            return f"shares {self.via}, which it has through a topology path"
        if self.victim:
            return f"shares {self.via}, which suffered the child's failed call, near its latest onset"
        if self.caller:
            return f"shares {self.via}, which it knows only as a caller, near its latest onset"
        return f"shares {self.via}"


def _names(value: str) -> list[str]:
    """A label value and, for `host:port`, the host alone."""
    head, sep, tail = value.rpartition(":")
    if sep and tail.isdigit() and head and ":" not in head:
        return [value, head]
    return [value]


def service_of(instance: str) -> str | None:
    """The service an instance belongs to by the usual naming: the name less a trailing ordinal (`webservice1`,
    `svc5-2`, `redis-0`), or None when it has none (`redis`, an address such as `0.0.0.1`)."""
    m = _ORDINAL.match(instance)
    return m.group(1) if m else None


def _chain_names(ev: IncidentEvent, labels: frozenset[str]) -> set[str]:
    """`H>` for the service H of each instance the event names under `labels`."""
    return {svc + CALLS_OUT for label in labels for v in ev.entities.get(label, ())
            if (svc := service_of(v)) is not None}


def view_of(ev: IncidentEvent, config: GroupingConfig, topology: Topology | None) -> ChildView:
    """The entities and scopes of a stage-1 incident event, canonical names from the topology when known."""
    entities: dict[str, tuple[str, str]] = {}
    callers: set[str] = set()
    others: set[str] = set()
    chains: set[str] = set()
    if config.call_chains:  # kept as the group's (caller side), looked up by later children (callee side)
        entities.update((name, ("calls", name[:-1])) for name in sorted(_chain_names(ev, CALLER_LABELS)))
        chains = _chain_names(ev, CALLEE_LABELS)
    placeholders = config.placeholder_values
    pairs = [("service", ev.service)] + [
        (label, v) for label in config.entity_labels for v in ev.entities.get(label, ())]
    for label, value in pairs:
        if value.lower() in placeholders:
            continue
        for name in _names(value):
            node = topology.node_of(name) if topology is not None else None
            entities.setdefault(node or name, (label, value))
            (callers if label in CALLER_LABELS else others).add(node or name)
    scopes = {label: frozenset(v for v in ev.entities.get(label, ()) if v.lower() not in placeholders)
              for label in config.scope_labels + config.separate_labels}
    return ChildView(entities, {k: v for k, v in scopes.items() if v}, frozenset(callers - others), frozenset(chains))


def time_gap(t: float, first_seen: float, last_seen: float, gap_s: float) -> float | None:
    """Seconds from a group's reach (`last_seen`) to `t` (0 inside it), or None when farther than gap_s."""
    if t < first_seen - gap_s or t > last_seen + gap_s:
        return None
    return max(0.0, t - last_seen)


def relate(
    view: ChildView,
    entities: set[str],
    scopes: Mapping[str, set[str]],
    topology: Topology | None,
    config: GroupingConfig,
) -> Link | None:
    """The strongest relation between a child and a group's entities and scopes, or None (CONTINUES aside)."""
    for label in config.separate_labels:
        mine, theirs = view.scopes.get(label), scopes.get(label)
        if mine and theirs and mine.isdisjoint(theirs):
            return None
    weak_rank = config.max_hops + 1
    machine: Link | None = None
    for name, (label, value) in view.entities.items():
        if label == "calls":
            continue  # a caller side matches only a callee side (`chains`), never another caller side
        if name in entities:
            if label in config.shared_labels or (topology is not None
                                                 and topology.shared(name, config.shared_node_types)):
                machine = machine or Link(Relation.ENTITY, weak_rank, f"{label} {value}", weak=True)
                continue
            return Link(Relation.ENTITY, 0, f"{label} {value}")
    chain = min(view.chains & entities, default=None)
    if chain is not None and (topology is None or chain[:-1] not in topology):  # else its paths decide
        return Link(Relation.ENTITY, 0, chain[:-1], chain=True, caller=True)
    if topology is not None and config.max_hops > 0:
        link = _call_path(view, entities, topology, config) if config.path_chains else None
        link = link or _topology_link(view, entities, topology, config.max_hops, config.shared_node_types)
        if link is not None:
            return link
        if machine is None:  # no direct path: one through a shared machine, if any, is the weak relation
            machine = _topology_link(view, entities, topology, config.max_hops, frozenset(), weak_rank,
                                     config.shared_node_types)
    if machine is not None:
        return machine
    if topology is not None and _known(view.entities, topology) and _known(entities, topology):
        return None  # the topology knows both sides and finds no path: a shared namespace is no evidence
    for i, label in enumerate(config.scope_labels):
        shared = sorted(view.scopes.get(label, frozenset()) & scopes.get(label, set()))
        if shared:
            return Link(Relation.SCOPE, 2 * weak_rank + i, f"{label} {shared[0]}")
    return None


def machine_only(view: ChildView, topology: Topology | None, config: GroupingConfig) -> bool:
    """Whether a child names nothing but machines beside its own service, and no call: a host's own metric
    (`GroupingConfig.machine_follow`)."""
    service = 0
    for name, (label, _) in view.entities.items():
        if label in CALLER_LABELS or label in CALLEE_LABELS or label == "calls":
            return False
        if label in config.shared_labels or (topology is not None
                                             and topology.shared(name, config.shared_node_types)):
            continue
        if label != "service":
            return False
        service += 1
    return service <= 1


def burst_link(view: ChildView, config: GroupingConfig) -> Link | None:
    """The time-only relation of a child that names exactly one entity (its service: a host's own metric, whose
    service and instance are the host), or None when it names more. Such a child carries nothing a cause could
    share, so the engine relates it by its start alone (`engine._burst`); a child naming two or more things is a
    cause of its own as likely as a piece of one (on MicroSS x2, a renamed twin failing 30 s later in one scope,
    up to two names cost 0.05 of F1; issue 17, session 31)."""
    if len(view.entities) != 1:
        return None
    label, value = next(iter(view.entities.values()))
    return Link(Relation.BURST, 2 * (config.max_hops + 1) + len(config.scope_labels), f"{label} {value}")


def machine_burst_link(view: ChildView, topology: Topology | None, config: GroupingConfig) -> Link | None:
    """The time-only relation of a child that names its service and machines only, and no call (a container's own
    metric: `machine_only`), or None (`engine._burst`, `GroupingConfig.burst_machines`)."""
    if len(view.entities) < 2 or not machine_only(view, topology, config):
        return None
    service = next((value for label, value in view.entities.values() if label == "service"), None)
    if service is None:
        return None
    return Link(Relation.BURST, 2 * (config.max_hops + 1) + len(config.scope_labels),
                f"service {service} and its machine")


def _call_path(view: ChildView, entities: set[str], topology: Topology, config: GroupingConfig) -> Link | None:
    """A path of calls from a child that names a failed call (a `callee`) to the group, or None: one edge, from one
    of the child's own names (not a caller it names: that side suffered the call) to a name of the group, running
    with the edge's direction (the child's side calls the group's). The failure climbing the call graph: R fails,
    so H, which calls R, fails its callers' calls (`Link.upstream`, `GroupingConfig.path_chains`)."""
    if not any(label in CALLEE_LABELS for label, _ in view.entities.values()):
        return None
    ends = sorted((name, other) for name in view.entities if name not in view.callers
                  for other in topology.callees(name) if other in entities
                  and not topology.shared(other, config.shared_node_types))
    if not ends:
        return None
    name, other = ends[0]
    return Link(Relation.TOPOLOGY, 1, f"{name}~{other}", 1, upstream=True)


def trace_link(view: ChildView, config: GroupingConfig) -> Link | None:
    """The time-only relation of a child that names a failed call (a `callee`), or None (`engine._trace_follow`)."""
    callee = min((value for label, value in view.entities.values() if label in CALLEE_LABELS), default=None)
    if callee is None:
        return None
    return Link(Relation.BURST, 2 * (config.max_hops + 1) + len(config.scope_labels), callee, follows=True)


def tenant(view: ChildView, topology: Topology, config: GroupingConfig) -> bool:
    """Whether the child names something the topology knows that is not a machine: a tenant of its host, not the
    host's own metric (`GroupingConfig.tenants_apart`)."""
    return any(label not in config.shared_labels and name in topology
               and not topology.shared(name, config.shared_node_types)
               for name, (label, _) in view.entities.items())


def names_call(ev: IncidentEvent) -> bool:
    """Whether a child names a failed call (a `caller` or `callee` label): a trace error, the view of a failure from a
    call, not a service's own symptom (a metric, a log)."""
    return any(ev.entities.get(label) for label in CALLER_LABELS | CALLEE_LABELS)


def labelled_tenant(view: ChildView, config: GroupingConfig) -> bool:
    """Whether the child names a tenant of a host by its labels (an instance, a pod: `GroupingConfig.tenant_labels`),
    for `GroupingConfig.tenants_apart_labels` where no topology says what is a machine."""
    return any(label in config.tenant_labels for label, _ in view.entities.values())


def _known(names: Iterable[str], topology: Topology) -> bool:
    return any(n in topology for n in names)


def _tenant_address(name: str, names: Collection[str], topology: Topology,
                    machines: frozenset[str]) -> bool:
    """Whether `name` is a machine that `names` hold beside one of its tenants (a node one edge from it)."""
    return topology.shared(name, machines) and any(
        d == 1 and other in names for other, d in topology.reach(name).items())


def _topology_link(
    view: ChildView, entities: set[str], topology: Topology, max_hops: int, avoid: frozenset[str],
    weak_rank: int | None = None, machines: frozenset[str] = frozenset(),
) -> Link | None:
    """The shortest topology relation on paths that avoid machines of the `avoid` types; weak with `weak_rank`.

    A path does not start or end at a machine (a node of the `machines` types) that its side names beside one of
    the machine's tenants: that name is the tenant's address, so the path relates two tenants, one hop further
    than it looks (issue 17, sixth round: on the development cascades a service's own host label put every new
    fault on that host one hop from any cause that had a call to another of its tenants)."""
    best: tuple[int, str, str] | None = None
    for name in view.entities:
        if machines and _tenant_address(name, view.entities, topology, machines):
            continue
        for other, d in topology.reach_avoiding(name, avoid).items():
            if (0 < d <= max_hops and other in entities and (best is None or (d, name, other) < best)
                    and not (machines and _tenant_address(other, entities, topology, machines))):
                best = (d, name, other)
    if best is None:
        return None
    d, name, other = best
    path = "~".join(topology.path(name, other, avoid))
    if weak_rank is None:
        return Link(Relation.TOPOLOGY, d, path, d)
    return Link(Relation.TOPOLOGY, weak_rank + d, path, d, weak=True)
