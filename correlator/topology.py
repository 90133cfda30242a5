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
"""

from __future__ import annotations

import hashlib
import importlib
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

__all__ = ["DEFAULT_MAX_HOPS", "Edge", "Topology", "TopologyError", "parse_topology"]

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
        self._reach: dict[str, dict[str, int]] = {}
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

    def hops(self, a: str, b: str) -> int | None:
        """Edges on a shortest path between nodes `a` and `b`, or None when farther than `max_hops` or unknown."""
        return self.reach(a).get(b)

    def related(self, a: str, b: str, max_hops: int) -> bool:
        """Whether nodes `a` and `b` are at most `max_hops` (capped at the topology's own bound) apart."""
        d = self.hops(a, b)
        return d is not None and d <= max_hops

    def path(self, a: str, b: str) -> list[str]:
        """The nodes on one shortest path from `a` to `b`, both included; empty when farther or unknown."""
        if self.hops(a, b) is None:
            return []
        to_b = self.reach(b)
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

    def _bfs(self, start: str) -> dict[str, int]:
        dist = {start: 0}
        frontier = {start}
        for d in range(1, self.max_hops + 1):
            frontier = {other for node in frontier for other in self._adjacent[node] if other not in dist}
            for other in frontier:
                dist[other] = d
        return dist


def _version(nodes: Mapping[str, str], edges: tuple[Edge, ...], aliases: Mapping[str, str]) -> str:
    canon = orjson.dumps([sorted(nodes.items()), [[e.source, e.target, e.label] for e in edges],
                          sorted(aliases.items())])
    return "topo-" + hashlib.blake2b(canon, digest_size=8).hexdigest()


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
    nodes: dict[str, str] = {}
    aliases: dict[str, str] = {}
    edges: list[Edge] = []
    _read_nodes(doc.get("nodes", []), nodes, aliases)
    _read_services(doc.get("services", {}), nodes, edges)
    edges.extend(_edge_of(e, f"edges[{i}]") for i, e in enumerate(_as_list(doc.get("edges", []), "edges")))
    if edge_labels is not None:
        keep = set(edge_labels)
        edges = [e for e in edges if e.label in keep]
    return Topology(nodes, edges, aliases, max_hops=max_hops)


def _load(text: str | bytes, fmt: str | None) -> Any:
    raw = text.encode() if isinstance(text, str) else text
    if fmt is None:
        fmt = "json" if raw.lstrip()[:1] in (b"{", b"[") else "yaml"
    if fmt == "json":
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise TopologyError(f"malformed JSON: {exc}") from None
    if fmt != "yaml":
        raise TopologyError(f"unknown topology format {fmt!r} (json or yaml)")
    # imported only when a YAML topology is given: the JSON path needs nothing beyond orjson
    yaml: Any = importlib.import_module("yaml")
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise TopologyError(f"malformed YAML: {exc}".splitlines()[0]) from None


def _as_list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise TopologyError(f"{where}: expected a list, got {type(value).__name__}")
    return value


def _name(value: Any, where: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)) or value == "":
        raise TopologyError(f"{where}: expected a non-empty name, got {value!r}")
    return str(value)


def _read_nodes(items: Any, nodes: dict[str, str], aliases: dict[str, str]) -> None:
    for i, item in enumerate(_as_list(items, "nodes")):
        if not isinstance(item, dict):
            nodes[_name(item, f"nodes[{i}]")] = ""
            continue
        node = _name(item.get("id"), f"nodes[{i}].id")
        nodes[node] = str(item.get("type", ""))
        for alias in _as_list(item.get("aliases", []), f"nodes[{i}].aliases"):
            aliases[_name(alias, f"nodes[{i}].aliases")] = node


_SERVICE_LINKS = {"depends_on": "depends_on", "calls": "depends_on", "hosts": "hosted_on",
                  "instances": "has_instance"}


def _read_services(services: Any, nodes: dict[str, str], edges: list[Edge]) -> None:
    if not isinstance(services, dict):
        raise TopologyError(f"services: expected a mapping, got {type(services).__name__}")
    for name, spec in services.items():
        service = _name(name, "services")
        nodes.setdefault(service, "Service")
        if spec is None:
            continue
        if not isinstance(spec, dict):
            raise TopologyError(f"services.{service}: expected a mapping, got {type(spec).__name__}")
        for field, label in _SERVICE_LINKS.items():
            for other in _as_list(spec.get(field, []), f"services.{service}.{field}"):
                edges.append(Edge(service, _name(other, f"services.{service}.{field}"), label))


def _edge_of(item: Any, where: str) -> Edge:
    if isinstance(item, dict):
        label = item.get("label", "related")
        return Edge(_name(item.get("source"), f"{where}.source"), _name(item.get("target"), f"{where}.target"),
                    str(label))
    if isinstance(item, list) and len(item) in (2, 3):
        return Edge(*(_name(v, where) for v in item))
    raise TopologyError(f"{where}: expected {{source, target, label}} or [source, target(, label)]")
