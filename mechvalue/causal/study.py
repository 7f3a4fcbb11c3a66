"""The study's graph protocol, exactly: PC (Fisher-z, alpha 0.05) on unsteered + kept-feature
rows, every undirected or bidirected edge as two directed edges, then a greedy transitive
reduction whose result depends on the order in which edges are visited.
"""

from __future__ import annotations

import networkx as nx
import pandas as pd

from mechvalue.causal.discovery import learn_graph
from mechvalue.causal.graph import Edge, ValueGraph
from mechvalue.study.schema import select_rows, value_matrix


def split_bidirectional(graph: ValueGraph) -> list[Edge]:
    """The study's step 2: undirected/bidirected -> two directed edges, deduplicated, in order."""
    out: list[Edge] = []
    for e in graph.edges:
        pairs = (
            [(e.source, e.target)] if e.kind == "directed" else [(e.source, e.target), (e.target, e.source)]
        )
        for s, t in pairs:
            if Edge(s, t) not in out:
                out.append(Edge(s, t))
    return out


def greedy_transitive_reduction(nodes: list[str], edges: list[Edge]) -> list[Edge]:
    """Visit edges in order; drop one when its target stays reachable from its source without it.

    Unlike the unique reduction of a DAG, on graphs with cycles the result depends on the
    visiting order; this is the study's order (the order PC's edges were listed in).
    """
    g = nx.DiGraph()
    g.add_nodes_from(nodes)
    g.add_edges_from((e.source, e.target) for e in edges)
    for e in edges:
        g.remove_edge(e.source, e.target)
        if not nx.has_path(g, e.source, e.target):
            g.add_edge(e.source, e.target)
    return [e for e in edges if g.has_edge(e.source, e.target)]


def study_graph(
    table: pd.DataFrame, features: list | None, alpha: float = 0.05
) -> tuple[ValueGraph, ValueGraph]:
    """Return (PC's graph, the study's final graph). Gemma: 44 PC edges -> 28 edges."""
    x = value_matrix(select_rows(table, features))
    learned = learn_graph(x, "pc", alpha, "fisherz")
    return learned, reduce_like_study(learned)


def reduce_like_study(graph: ValueGraph) -> ValueGraph:
    """Steps 2 and 3 of the protocol on an already learned graph."""
    return ValueGraph(graph.nodes, greedy_transitive_reduction(graph.nodes, split_bidirectional(graph)))
