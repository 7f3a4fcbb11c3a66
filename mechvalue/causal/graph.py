"""A small typed graph over value names, with the JSON format `mechvalue graph` writes."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import networkx as nx

from mechvalue.errors import MechValueError
from mechvalue.inputs import read_json
from mechvalue.io import write_json

KINDS = ("directed", "undirected", "bidirected", "partially_directed", "nondirected")
_STUDY_KINDS = {"single-arrow": "directed", "no-arrow": "undirected", "double-arrow": "bidirected"}


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    kind: str = "directed"


@dataclass
class ValueGraph:
    nodes: list[str]
    edges: list[Edge] = field(default_factory=list)

    def digraph(self) -> nx.DiGraph:
        """Directed view: a directed edge once, any other kind both ways (the study's reading)."""
        g = nx.DiGraph()
        g.add_nodes_from(self.nodes)
        for e in self.edges:
            g.add_edge(e.source, e.target)
            if e.kind != "directed":
                g.add_edge(e.target, e.source)
        return g

    def skeleton(self) -> set[frozenset[str]]:
        return {frozenset((e.source, e.target)) for e in self.edges}

    def descendants(self, node: str) -> set[str]:
        """Nodes reachable from `node` along directed edges (none for a node not in the graph)."""
        g = self.digraph()
        return nx.descendants(g, node) if node in g else set()

    def to_dict(self) -> dict:
        return {
            "nodes": list(self.nodes),
            "edges": [{"source": e.source, "target": e.target, "kind": e.kind} for e in self.edges],
        }

    def save(self, path: str | Path) -> None:
        write_json(self.to_dict(), path)


def load_graph(path: str | Path, key: str | None = None) -> ValueGraph:
    """Read a graph JSON written by mechvalue, or one of the study's edge lists.

    The study's `reference_graphs.json` holds {"nodes": [...], "graphs": {name: [[s, t, 1,
    "single-arrow"], ...]}}; pass `key` (e.g. "gemma", "human1"), or "FILE.json:key".
    """
    p = str(path)
    if key is None and ":" in Path(p).name:
        p, key = p.rsplit(":", 1)
    data = read_json(p, "graph")
    try:
        return _graph_from(p, data, key)
    except (KeyError, TypeError, IndexError, AttributeError, ValueError) as e:
        if isinstance(e, MechValueError):
            raise
        raise MechValueError(
            f"{p}: not a graph JSON ({type(e).__name__}: {e}); "
            'expected {"nodes": [...], "edges": [{"source", "target", "kind"}]}'
        ) from None


def _graph_from(p: str, data, key: str | None) -> ValueGraph:
    if not isinstance(data, dict):
        raise MechValueError(
            f"{p}: a graph JSON is an object with 'nodes' and 'edges', not {type(data).__name__}"
        )
    if "graphs" in data:
        if not isinstance(data["graphs"], dict) or key not in data["graphs"]:
            raise MechValueError(f"{p}: give one of the graphs {sorted(data['graphs'])} as FILE:key")
        return from_study_edges(data.get("nodes"), data["graphs"][key], p)
    if "edges" not in data or "nodes" not in data:
        raise MechValueError(f"{p}: a graph JSON needs 'nodes' and 'edges'")
    nodes, edges = _nodes(p, data["nodes"]), []
    if not isinstance(data["edges"], list):
        raise MechValueError(f"{p}: 'edges' must be a list")
    for i, e in enumerate(data["edges"]):
        if isinstance(e, list) and len(e) >= 2:
            edges.append(Edge(e[0], e[1], _STUDY_KINDS.get(e[3], e[3]) if len(e) > 3 else "directed"))
        elif isinstance(e, dict) and "source" in e and "target" in e:
            edges.append(Edge(e["source"], e["target"], e.get("kind", "directed")))
        else:
            raise MechValueError(
                f"{p}: edge {i} is not {{'source', 'target', 'kind'}} nor [source, target, ...]"
            )
        if edges[-1].kind not in KINDS:
            raise MechValueError(f"{p}: edge {i} has unknown kind {edges[-1].kind!r} (one of {KINDS})")
    _check_nodes(p, nodes, edges)
    return ValueGraph(nodes, edges)


def _nodes(src: str, nodes) -> list[str]:
    if not isinstance(nodes, list) or not all(isinstance(n, str) and n for n in nodes):
        raise MechValueError(f"{src}: 'nodes' must be a list of value names")
    dup = sorted({n for n in nodes if nodes.count(n) > 1})
    if dup:
        raise MechValueError(f"{src}: node(s) {dup} listed twice")
    return list(nodes)


def from_study_edges(nodes: list[str], edges: list[list], src: str = "edge list") -> ValueGraph:
    nodes = _nodes(src, nodes)
    out = []
    for i, e in enumerate(edges):
        if not (isinstance(e, list) and len(e) == 4 and e[3] in _STUDY_KINDS):
            raise MechValueError(f"{src}: edge {i} is not [source, target, 1, one of {sorted(_STUDY_KINDS)}]")
        out.append(Edge(e[0], e[1], _STUDY_KINDS[e[3]]))
    _check_nodes(src, nodes, out)
    return ValueGraph(nodes, out)


def _check_nodes(src: str, nodes: list[str], edges: list[Edge]) -> None:
    known = set(nodes)
    for e in edges:
        for n in (e.source, e.target):
            if not isinstance(n, str) or n not in known:
                raise MechValueError(f"{src}: edge {e.source!r} -> {e.target!r} names unknown node {n!r}")
