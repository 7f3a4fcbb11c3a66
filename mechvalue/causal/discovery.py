"""Structure learning through causal-learn: PC, FCI and GES, returning `ValueGraph`s."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from mechvalue.causal.graph import Edge, ValueGraph


def _edges_from_matrix(g, names: list[str]) -> list[Edge]:
    """Read causal-learn's endpoint matrix (G.graph) in the study's (n1 < n2) order.

    Endpoints: -1 tail, 1 arrow, 2 circle. graph[i, j] is the mark at i of the i-j edge.
    """
    m = g.graph
    out = []
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            a, b = m[i, j], m[j, i]
            if a == 0 and b == 0:
                continue
            if a == -1 and b == 1:
                out.append(Edge(names[i], names[j], "directed"))
            elif a == 1 and b == -1:
                out.append(Edge(names[j], names[i], "directed"))
            elif a == -1 and b == -1:
                out.append(Edge(names[i], names[j], "undirected"))
            elif a == 1 and b == 1:
                out.append(Edge(names[i], names[j], "bidirected"))
            elif a == 2 and b == 1:
                out.append(Edge(names[i], names[j], "partially_directed"))
            elif a == 1 and b == 2:
                out.append(Edge(names[j], names[i], "partially_directed"))
            else:
                out.append(Edge(names[i], names[j], "nondirected"))
    return out


Method = Literal["pc", "fci", "ges"]
CITest = Literal["fisherz", "kci"]


def learn_graph(
    data: pd.DataFrame,
    method: Method = "pc",
    alpha: float = 0.05,
    indep_test: CITest = "fisherz",
    context: list[str] | None = None,
) -> ValueGraph:
    """Learn a graph over the columns of `data`.

    `context` columns (e.g. steering indicators) get no parents: background knowledge forbids
    every edge into them, so interventions are not pooled blindly with observations.
    """
    names = [str(c) for c in data.columns]
    x = data.to_numpy(dtype=float)
    if method in ("pc", "fci"):
        bk = _context_knowledge(names, context) if context else None
        if method == "pc":
            from causallearn.search.ConstraintBased.PC import pc

            res = pc(x, alpha, indep_test, node_names=names, background_knowledge=bk, show_progress=False)
            g = res.G
        else:
            from causallearn.search.ConstraintBased.FCI import fci

            g, _ = fci(x, indep_test, alpha, node_names=names, background_knowledge=bk, show_progress=False)
    elif method == "ges":
        from causallearn.search.ScoreBased.GES import ges

        g = ges(x, node_names=names)["G"]
    else:
        raise ValueError(f"unknown method {method!r}: use pc, fci or ges")
    return ValueGraph(names, _edges_from_matrix(g, names))


@dataclass(frozen=True)
class GraphMethod:
    """How one graph is learned from a value matrix (the same for every bootstrap resample)."""

    method: Method = "pc"
    alpha: float = 0.05
    """the independence tests' level (PC, FCI)"""
    test: CITest = "fisherz"
    context: tuple[str, ...] = ()
    """columns that get no parents (e.g. steering indicators)"""

    def learn(self, data: pd.DataFrame) -> ValueGraph:
        return learn_graph(data, self.method, self.alpha, self.test, list(self.context) or None)


def _context_knowledge(names: list[str], context: list[str]):
    from causallearn.graph.GraphNode import GraphNode
    from causallearn.utils.PCUtils.BackgroundKnowledge import BackgroundKnowledge

    bk = BackgroundKnowledge()
    nodes = {n: GraphNode(n) for n in names}
    for c in context:
        for n in names:
            if n != c:
                bk.add_forbidden_by_node(nodes[n], nodes[c])
    return bk


def fisherz_from_correlation(corr: np.ndarray, n: int, names: list[str], alpha: float = 0.05) -> ValueGraph:
    """PC fed a correlation matrix and sample size (e.g. published human value correlations).

    Draws `n` rows from a Gaussian with exactly that sample correlation, which gives the
    Fisher-z test the same partial correlations the matrix implies.
    """
    k = len(names)
    rng = np.random.default_rng(0)
    z = rng.standard_normal((n, k))
    z -= z.mean(0)
    # whiten, then colour with the target correlation: sample correlation equals `corr` exactly
    cov = z.T @ z / (n - 1)
    w = np.linalg.cholesky(np.linalg.inv(cov))
    x = z @ w @ np.linalg.cholesky(corr).T
    return learn_graph(pd.DataFrame(x, columns=names), "pc", alpha)
