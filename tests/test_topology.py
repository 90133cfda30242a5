"""Topology: both file shapes, distances as a table, content versions, and every refusal naming its place."""

from __future__ import annotations

import re

import orjson
import pytest

from correlator.topology import Edge, Topology, TopologyError, parse_topology

from .paths import MICROSS

SHOP = """
# a shop: frontend -> checkout -> payments -> db, and an unrelated batch job
services:
  frontend: {depends_on: [checkout], hosts: [web-1]}
  checkout: {depends_on: [payments], hosts: [app-1]}
  payments: {depends_on: [db], hosts: [app-2]}
  db: {hosts: [db-1]}
  reports: {depends_on: [warehouse]}
nodes:
  - {id: db-1, type: Host, aliases: ["10.0.0.5", db-1.example.org]}
edges:
  - [warehouse, warehouse-host, hosted_on]
"""


@pytest.fixture(scope="module")
def shop() -> Topology:
    return parse_topology(SHOP, max_hops=3)


@pytest.mark.parametrize(("a", "b", "hops"), [
    ("db", "db", 0),
    ("payments", "db", 1),
    ("db", "payments", 1),  # relatedness ignores direction
    ("checkout", "db", 2),
    ("frontend", "db", 3),
    ("web-1", "checkout", 2),  # frontend's host, two edges from checkout
    ("frontend", "db-1", None),  # four edges: beyond max_hops
    ("frontend", "reports", None),  # no path at all
    ("frontend", "nowhere", None),  # unknown node
])
def test_hops(shop: Topology, a: str, b: str, hops: int | None) -> None:
    assert shop.hops(a, b) == hops
    assert shop.related(a, b, 2) == (hops is not None and hops <= 2)


def test_paths_and_aliases(shop: Topology) -> None:
    assert shop.path("frontend", "db") == ["frontend", "checkout", "payments", "db"]
    assert shop.path("frontend", "reports") == []
    assert shop.node_of("10.0.0.5") == "db-1" and shop.node_of("db-1.example.org") == "db-1"
    assert shop.node_of("db") == "db" and shop.node_of("10.9.9.9") is None
    assert "10.0.0.5" in shop and "10.9.9.9" not in shop
    assert shop.nodes["db-1"] == "Host" and shop.nodes["checkout"] == "Service"
    assert Edge("warehouse", "warehouse-host", "hosted_on") in shop.edges


def test_the_data_sets_topology() -> None:
    topo = parse_topology((MICROSS / "topology.json").read_text(), max_hops=2)
    assert len(topo) == 24 and len(topo.edges) == 69
    assert topo.nodes["redisservice1"] == "Service_Instance"
    topo.precompute()
    assert topo.hops("webservice1", "redisservice1") == 2  # both on host1
    assert topo.hops("dbservice", "mysql") == 1
    assert topo.hops("mysql", "webservice2") is None  # farther than two edges


def test_edge_label_filter() -> None:
    text = (MICROSS / "topology.json").read_text()
    everything = parse_topology(text, max_hops=2)
    no_registry = parse_topology(text, max_hops=2, edge_labels={"control_flow", "data_flow", "hosted_on", "hosts",
                                                                "instance_of", "has_instance"})
    assert everything.hops("frontend", "dbservice") == 2  # via zookeeper, which every service registers with
    assert no_registry.hops("frontend", "dbservice") is None
    assert no_registry.version != everything.version


def test_version_follows_content_not_text() -> None:
    doc = {"nodes": [{"id": "a", "type": "Service"}, {"id": "b", "type": "Service"}],
           "edges": [{"source": "a", "target": "b", "label": "calls"}]}
    compact = parse_topology(orjson.dumps(doc))
    pretty = parse_topology(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode())
    as_yaml = parse_topology("nodes: [{id: b, type: Service}, {id: a, type: Service}]\n"
                             "edges: [{source: a, target: b, label: calls}]\n", fmt="yaml")
    assert compact.version == pretty.version == as_yaml.version
    doc["edges"].append({"source": "b", "target": "c", "label": "calls"})
    assert parse_topology(orjson.dumps(doc)).version != compact.version


@pytest.mark.parametrize(("text", "fmt", "message"), [
    ("{not json", "json", "malformed JSON"),
    ("nodes: [a, b\n", "yaml", "malformed YAML"),
    ("[1, 2]", None, "expected a mapping at the top"),
    ('{"nodes": {"a": 1}}', None, "nodes: wrong type: Input should be a valid list, got object"),
    ('{"nodes": [{"type": "Host"}]}', None, "nodes[0].id: missing required field"),
    ('{"nodes": [{"id": ""}]}', None, "nodes[0].id: expected a non-empty name, got ''"),
    ('{"edges": [{"source": "a"}]}', None, "edges[0].target: missing required field"),
    ('{"edges": [["a", true]]}', None, "edges[0].target: expected a non-empty name, got True"),
    ('{"edges": [["a"]]}', None, "edges[0]: expected {source, target, label}"),
    ('{"services": {"a": {"depends_on": "b"}}}', None, "services.a.depends_on: wrong type: Input should be a valid list"),
    ('{"services": ["a"]}', None, "services: wrong type: Input should be a valid dictionary, got array"),
    # typos are refused, never read as an empty topology (stage 2 would quietly fall back to labels)
    ('{"edgse": [["a", "b"]]}', None, "edgse: unknown key (known here: nodes, services, edges)"),
    ("nodes: [{id: a, typ: Host}]\n", "yaml", "nodes[0].typ: unknown key (known here: id, type, aliases)"),
    ('{"edges": [{"source": "a", "traget": "b"}]}', None, "edges[0].traget: unknown key"),
    ('{"services": {"a": {"depend_on": ["b"]}}}', None,
     "services.a.depend_on: unknown key (known here: depends_on, calls, hosts, instances)"),
    ("{}", "toml", "unknown topology format"),
])
def test_refusals_name_the_place(text: str, fmt: str | None, message: str) -> None:
    with pytest.raises(TopologyError, match=re.escape(message)):
        parse_topology(text, fmt=fmt)


def test_reach_avoiding_a_host_does_not_pass_through_it() -> None:
    """Two instances on one host are two hops apart through it; avoiding hosts, they are unrelated (stage 2 then
    weighs that relation as a shared machine: `correlator/stage2/relations.py`)."""
    topo = parse_topology('{"nodes": [{"id": "h1", "type": "Host"}, {"id": "a-1"}, {"id": "b-1"}, {"id": "a"}], '
                          '"edges": [["a-1", "h1"], ["b-1", "h1"], ["a-1", "a"]]}')
    hosts = frozenset({"host"})
    assert topo.hops("a-1", "b-1") == 2
    assert "b-1" not in topo.reach_avoiding("a-1", hosts)
    assert topo.reach_avoiding("a-1", hosts) == {"a-1": 0, "a": 1}
    assert topo.reach_avoiding("h1", hosts) == {}  # a host itself relates nothing directly
    assert topo.path("a-1", "b-1") == ["a-1", "h1", "b-1"] and topo.path("a-1", "b-1", hosts) == []
    assert topo.shared("h1", hosts) and not topo.shared("a-1", hosts)
