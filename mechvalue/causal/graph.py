"""A small typed graph over value names, with the JSON format `mechvalue graph` writes."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import networkx as nx

from mechvalue.errors import MechValueError
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
    try:
        data = json.loads(Path(p).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise MechValueError(f"{p}: cannot read graph ({e})") from None
    if "graphs" in data:
        if key not in data["graphs"]:
            raise MechValueError(f"{p}: give one of the graphs {sorted(data['graphs'])} as FILE:key")
        return from_study_edges(data["nodes"], data["graphs"][key])
    if "edges" not in data or "nodes" not in data:
        raise MechValueError(f"{p}: a graph JSON needs 'nodes' and 'edges'")
    edges = []
    for i, e in enumerate(data["edges"]):
        if isinstance(e, list):
            edges.append(Edge(e[0], e[1], _STUDY_KINDS.get(e[3], e[3]) if len(e) > 3 else "directed"))
            continue
        if e.get("kind", "directed") not in KINDS:
            raise MechValueError(f"{p}: edge {i} has unknown kind {e.get('kind')!r}")
        edges.append(Edge(e["source"], e["target"], e.get("kind", "directed")))
    _check_nodes(p, data["nodes"], edges)
    return ValueGraph(list(data["nodes"]), edges)


def from_study_edges(nodes: list[str], edges: list[list]) -> ValueGraph:
    out = [Edge(s, t, _STUDY_KINDS[k]) for s, t, _, k in edges]
    _check_nodes("edge list", nodes, out)
    return ValueGraph(list(nodes), out)


def _check_nodes(src: str, nodes: list[str], edges: list[Edge]) -> None:
    known = set(nodes)
    for e in edges:
        for n in (e.source, e.target):
            if n not in known:
                raise MechValueError(f"{src}: edge {e.source} -> {e.target} names unknown node {n!r}")
