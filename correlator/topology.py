"""A topology of entities (services, instances, hosts, databases...) and the edges between them.

Parsed from text (JSON or YAML; reading the file is the caller's business), in either shape:

* the data set's `topology.json`: `{"nodes": [{"id", "type", "aliases"?}], "edges": [{"source", "target",
  "label"}]}`; `aliases` are label values that name the node too (an IP, an FQDN, a pod name);
* a hand-written one: `{"services": {"checkout": {"depends_on": [...], "hosts": [...], "instances": [...]}},
  "edges": [...]}`; edges may also be written `[source, target]` or `[source, target, label]`.

Relatedness is undirected: a caller suffers from its callee and a host from its tenants alike. Distances are
found by breadth-first search up to `max_hops` and memoized per node, so a question costs a dict lookup after
the first one about each node. `version` fingerprints the content, not the text, so a stream can reload the
file on change and only rebuild when the graph itself changed.

The file is validated by `TopologyFile` (pydantic, unknown keys refused): a typo such as `edgse` would
otherwise read as an empty topology, and stage 2 would silently fall back to labels.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

import orjson
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from correlator.configfiles import file_error_line, load_document

__all__ = ["DEFAULT_MAX_HOPS", "Edge", "EdgeSpec", "NodeSpec", "ServiceSpec", "Topology", "TopologyError",
           "TopologyFile", "parse_topology"]

DEFAULT_MAX_HOPS = 3
"""How far `Topology` looks at most; stage 2 asks for fewer hops than this, never more."""


class TopologyError(ValueError):
    """The topology text cannot be read: the message names the place and the reason."""


@dataclass(frozen=True, slots=True, order=True)
class Edge:
    """One edge, kept with its direction and label for explanations; relatedness ignores the direction."""

    source: str
    target: str
    label: str = "related"


class Topology:
    """Nodes, edges and memoized distances up to `max_hops`; build it with `parse_topology`."""

    def __init__(
        self,
        nodes: Mapping[str, str],
        edges: Iterable[Edge],
        aliases: Mapping[str, str] | None = None,
        *,
        max_hops: int = DEFAULT_MAX_HOPS,
    ) -> None:
        if max_hops < 0:
            raise TopologyError("max_hops must not be negative")
        self.max_hops = max_hops
        self.edges: tuple[Edge, ...] = tuple(sorted(set(edges)))
        self.nodes: dict[str, str] = dict(nodes)
        for e in self.edges:
            self.nodes.setdefault(e.source, "")
            self.nodes.setdefault(e.target, "")
        self.aliases: dict[str, str] = {a: n for a, n in (aliases or {}).items() if a not in self.nodes}
        self._adjacent: dict[str, set[str]] = {n: set() for n in self.nodes}
        for e in self.edges:
            self._adjacent[e.source].add(e.target)
            self._adjacent[e.target].add(e.source)
        self._callees: dict[str, set[str]] = {}
        for e in self.edges:
            if e.source != e.target:
                self._callees.setdefault(e.source, set()).add(e.target)
        self._reach: dict[str, dict[str, int]] = {}
        self._avoiding: dict[frozenset[str], dict[str, dict[str, int]]] = {}
        self.version = _version(self.nodes, self.edges, self.aliases)

    def __len__(self) -> int:
        return len(self.nodes)

    def __contains__(self, value: object) -> bool:
        return value in self.nodes or value in self.aliases

    def node_of(self, value: str) -> str | None:
        """The node a label value names (its id or an alias), or None when the topology does not know it."""
        if value in self.nodes:
            return value
        return self.aliases.get(value)

    def reach(self, node: str) -> Mapping[str, int]:
        """Every node within `max_hops` of `node` (itself at 0), with its distance; empty for an unknown node."""
        found = self._reach.get(node)
        if found is None:
            found = self._reach[node] = self._bfs(node) if node in self.nodes else {}
        return found

    def reach_avoiding(self, node: str, types: frozenset[str]) -> Mapping[str, int]:
        """Like `reach`, but along paths that touch no node of one of `types` (lower case), ends included.

        Stage 2 asks it for direct relations: two instances on one host are two hops apart through the host, and
        a shared machine is weaker evidence than a call or an instance of the service (`relations`).
        """
        if not types or self.nodes.get(node, "").lower() in types:
            return {} if types else self.reach(node)
        memo = self._avoiding.setdefault(types, {})
        found = memo.get(node)
        if found is None:
            found = memo[node] = self._bfs(node, types) if node in self.nodes else {}
        return found

    def shared(self, node: str, types: frozenset[str]) -> bool:
        """Whether `node` is of one of `types` (lower case): a machine that many tenants share."""
        return self.nodes.get(node, "").lower() in types

    def callees(self, node: str) -> frozenset[str]:
        """The nodes an edge runs to from `node` (its direction: `node` calls, depends on or runs on them)."""
        return frozenset(self._callees.get(node, ()))

    def hops(self, a: str, b: str) -> int | None:
        """Edges on a shortest path between nodes `a` and `b`, or None when farther than `max_hops` or unknown."""
        return self.reach(a).get(b)

    def related(self, a: str, b: str, max_hops: int) -> bool:
        """Whether nodes `a` and `b` are at most `max_hops` (capped at the topology's own bound) apart."""
        d = self.hops(a, b)
        return d is not None and d <= max_hops

    def path(self, a: str, b: str, avoiding: frozenset[str] = frozenset()) -> list[str]:
        """The nodes on one shortest path from `a` to `b`, both included; empty when farther or unknown.

        With `avoiding`, a shortest one among the paths that touch no node of those types (`reach_avoiding`).
        """
        to_b = self.reach_avoiding(b, avoiding)
        if a not in to_b:
            return []
        nodes = [a]
        while nodes[-1] != b:
            # the smallest-named neighbour one step closer to b, so the path does not depend on dict order
            here = nodes[-1]
            nodes.append(min(n for n in self._adjacent[here] if to_b.get(n) == to_b[here] - 1))
        return nodes

    def precompute(self) -> None:
        """Fill the distance table for every node now, so that no later question pays for a search."""
        for node in self.nodes:
            self.reach(node)

    def _bfs(self, start: str, avoid: frozenset[str] = frozenset()) -> dict[str, int]:
        dist = {start: 0}
        frontier = {start}
        nodes = self.nodes
        for d in range(1, self.max_hops + 1):
            frontier = {other for node in frontier for other in self._adjacent[node]
                        if other not in dist and (not avoid or nodes[other].lower() not in avoid)}
            for other in frontier:
                dist[other] = d
        return dist


def _version(nodes: Mapping[str, str], edges: tuple[Edge, ...], aliases: Mapping[str, str]) -> str:
    canon = orjson.dumps([sorted(nodes.items()), [[e.source, e.target, e.label] for e in edges],
                          sorted(aliases.items())])
    return "topo-" + hashlib.blake2b(canon, digest_size=8).hexdigest()


def _name(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int) or value == "":
        raise ValueError(f"expected a non-empty name, got {value!r}")
    return str(value)


Name = Annotated[str, BeforeValidator(_name)]
"""A node name: a non-empty string, or an integer read as one (YAML turns `- 42` into a number)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NodeSpec(_Strict):
    """A node in the data set's shape; `aliases` are label values that name it too (an IP, an FQDN, a pod)."""

    id: Name
    type: str = ""
    aliases: list[Name] = Field(default_factory=list)


def _node_shorthand(value: Any) -> Any:
    """A bare name in `nodes` is a node of no type."""
    return value if isinstance(value, dict) else {"id": value}


class EdgeSpec(_Strict):
    """An edge; direction and label are kept for explanations, relatedness ignores the direction."""

    source: Name
    target: Name
    label: str = "related"


def _edge_shorthand(value: Any) -> Any:
    """`[source, target]` or `[source, target, label]` is an edge too."""
    if isinstance(value, dict):
        return value
    if isinstance(value, list) and len(value) in (2, 3):
        return dict(zip(("source", "target", "label"), value, strict=False))
    raise ValueError("expected {source, target, label} or [source, target(, label)]")


class ServiceSpec(_Strict):
    """A hand-written service: what it depends on (or calls), the hosts it runs on, its instances."""

    depends_on: list[Name] = Field(default_factory=list)
    calls: list[Name] = Field(default_factory=list)
    hosts: list[Name] = Field(default_factory=list)
    instances: list[Name] = Field(default_factory=list)


class TopologyFile(_Strict):
    """The topology file: `nodes` and `edges` (the data set's shape), `services` (hand-written), or both."""

    nodes: list[Annotated[NodeSpec, BeforeValidator(_node_shorthand)]] = Field(default_factory=list)
    services: dict[Name, ServiceSpec | None] = Field(default_factory=dict)
    edges: list[Annotated[EdgeSpec, BeforeValidator(_edge_shorthand)]] = Field(default_factory=list)


def _known_keys(loc: tuple[int | str, ...]) -> list[str]:
    """The keys allowed where an unknown one was found: at the top, or inside a node, edge or service."""
    inner: dict[str, type[BaseModel]] = {"nodes": NodeSpec, "edges": EdgeSpec, "services": ServiceSpec}
    model = inner[str(loc[0])] if len(loc) > 1 else TopologyFile
    return list(model.model_fields)


_SERVICE_LINKS = {"depends_on": "depends_on", "calls": "depends_on", "hosts": "hosted_on",
                  "instances": "has_instance"}


def parse_topology(
    text: str | bytes,
    *,
    fmt: str | None = None,
    max_hops: int = DEFAULT_MAX_HOPS,
    edge_labels: Collection[str] | None = None,
) -> Topology:
    """A topology from JSON or YAML text (`fmt` "json" or "yaml"; guessed from the text when None).

    `edge_labels` keeps only edges with those labels (e.g. leave out `registers_with` to a registry that
    every service talks to, which would otherwise put every pair of services two hops apart).
    """
    doc = _load(text, fmt)
    if not isinstance(doc, dict):
        raise TopologyError(f"expected a mapping at the top, got {type(doc).__name__}")
    try:
        spec = TopologyFile.model_validate(doc)
    except ValidationError as exc:
        raise TopologyError(file_error_line(exc, "topology", _known_keys)) from None
    nodes = {n.id: n.type for n in spec.nodes}
    aliases = {alias: n.id for n in spec.nodes for alias in n.aliases}
    edges = [Edge(e.source, e.target, e.label) for e in spec.edges]
    for service, links in spec.services.items():
        nodes.setdefault(service, "Service")
        for field, label in _SERVICE_LINKS.items():
            edges.extend(Edge(service, other, label) for other in getattr(links, field, ()))
    if edge_labels is not None:
        keep = set(edge_labels)
        edges = [e for e in edges if e.label in keep]
    return Topology(nodes, edges, aliases, max_hops=max_hops)


def _load(text: str | bytes, fmt: str | None) -> Any:
    try:
        return load_document(text, fmt)
    except ValueError as exc:
        raise TopologyError(str(exc).replace("unknown format", "unknown topology format")) from None
