"""Simulation check: how many rows (roles) PC needs to recover a linear-Gaussian DAG."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mechvalue.causal.compare import compare
from mechvalue.causal.discovery import learn_graph
from mechvalue.causal.graph import Edge, ValueGraph


def random_dag(n_nodes: int, n_edges: int, rng: np.random.Generator) -> tuple[ValueGraph, np.ndarray]:
    """A random DAG (edges respect a random order) and its weights, |w| in [0.5, 1.5]."""
    names = [f"V{i}" for i in range(n_nodes)]
    order = rng.permutation(n_nodes)
    pairs = [(order[i], order[j]) for i in range(n_nodes) for j in range(i + 1, n_nodes)]
    pick = rng.choice(len(pairs), size=min(n_edges, len(pairs)), replace=False)
    w = np.zeros((n_nodes, n_nodes))
    for p in pick:
        i, j = pairs[p]
        w[i, j] = rng.uniform(0.5, 1.5) * rng.choice([-1, 1])
    edges = [Edge(names[i], names[j]) for i, j in zip(*np.nonzero(w))]
    return ValueGraph(names, edges), w


def sample(w: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    k = w.shape[0]
    # x = x W + e  =>  x = e (I - W)^-1
    return rng.standard_normal((n, k)) @ np.linalg.inv(np.eye(k) - w)


def recovery_curve(
    sizes: list[int], n_nodes: int = 10, n_edges: int = 15, reps: int = 5, alpha: float = 0.05, seed: int = 0
) -> pd.DataFrame:
    """Mean skeleton F1 and SHD of PC against the true DAG for each sample size."""
    rng = np.random.default_rng(seed)
    rows = []
    for n in sizes:
        for r in range(reps):
            truth, w = random_dag(n_nodes, n_edges, rng)
            x = pd.DataFrame(sample(w, n, rng), columns=truth.nodes)
            m = compare(learn_graph(x, "pc", alpha), truth)
            rows.append({"n": n, "rep": r, "skeleton_f1": m["skeleton_f1"], "shd": m["shd"]})
    return pd.DataFrame(rows).groupby("n", as_index=False)[["skeleton_f1", "shd"]].mean()
