"""Bootstrap stability of a learned graph, resampling whole roles (a role's rows stay together)."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pandas as pd

from mechvalue.causal.discovery import GraphMethod
from mechvalue.causal.graph import Edge, ValueGraph
from mechvalue.errors import MechValueError


def _one(args) -> list[tuple[str, str, str]] | None:
    x, how = args
    try:
        g = how.learn(x)
    except ValueError as e:  # a resample with too few distinct rows: singular correlation
        if "singular" in str(e):
            return None
        raise
    return [(e.source, e.target, e.kind) for e in g.edges]


def _one_resample(shared, idx) -> list[tuple[str, str, str]] | None:
    """`_one` on rows `idx` of the shared matrix (Ray: the matrix is sent once, the indices per task)."""
    x, how = shared
    return _one((x.iloc[idx].reset_index(drop=True), how))


def bootstrap_edges(
    x: pd.DataFrame,
    groups: pd.Series,
    n_boot: int = 100,
    how: GraphMethod = GraphMethod(),
    seed: int = 0,
    workers: int | None = None,
    executor=None,
) -> pd.DataFrame:
    """Edge frequencies over `n_boot` resamples of the groups (roles), with replacement, each
    graph learned `how` the full one was.

    Returns one row per (source, target, kind) seen, with `freq` in [0, 1] over the resamples
    whose correlation matrix was not singular (their count: `attrs["failed_resamples"]`). An undirected
    edge is counted under its sorted node pair; `skeleton_freq` counts the pair of any kind.
    A Ray `executor` (mechvalue.distributed) runs blocks of resamples on its workers: same resamples,
    same table.
    """
    rng = np.random.default_rng(seed)
    labels = groups.fillna("<no role>").to_numpy()
    uniq = np.unique(labels)
    rows_of = {g: np.flatnonzero(labels == g) for g in uniq}
    idxs = []
    for _ in range(n_boot):
        pick = rng.choice(uniq, size=len(uniq), replace=True)
        idxs.append(np.concatenate([rows_of[g] for g in pick]))
    if getattr(executor, "kind", "local") != "local":
        results = executor.map("bootstrap", _one_resample, (x, how), idxs)
    else:
        jobs = [(x.iloc[idx].reset_index(drop=True), how) for idx in idxs]
        if workers == 1:
            results = [_one(j) for j in jobs]
        else:
            with ProcessPoolExecutor(max_workers=workers) as ex:
                results = list(ex.map(_one, jobs))
    failed = sum(r is None for r in results)
    results = [r for r in results if r is not None]
    n_ok = len(results)
    if not n_ok:
        raise MechValueError(
            f"all {n_boot} bootstrap resamples had a singular correlation matrix: "
            f"too few rows ({len(x)}) for {x.shape[1]} values; measure more roles"
        )
    edges, skel = Counter(), Counter()
    for res in results:
        for s, t, k in res:
            if k != "directed":
                s, t = sorted((s, t))
            edges[(s, t, k)] += 1
        for pair in {frozenset((s, t)) for s, t, _ in res}:
            skel[pair] += 1
    out = pd.DataFrame(
        [(s, t, k, c / n_ok, skel[frozenset((s, t))] / n_ok) for (s, t, k), c in edges.items()],
        columns=["source", "target", "kind", "freq", "skeleton_freq"],
    )
    out = out.sort_values(["skeleton_freq", "freq"], ascending=False).reset_index(drop=True)
    out.attrs["failed_resamples"] = failed
    return out


def stable_graph(freqs: pd.DataFrame, nodes: list[str], threshold: float = 0.8) -> ValueGraph:
    """Edges whose node pair recurs in at least `threshold` of resamples, in their commonest kind."""
    keep = freqs[freqs["skeleton_freq"] >= threshold].sort_values("freq", ascending=False)
    seen, edges = set(), []
    for r in keep.itertuples():
        pair = frozenset((r.source, r.target))
        if pair not in seen:
            seen.add(pair)
            edges.append(Edge(r.source, r.target, r.kind))
    return ValueGraph(nodes, edges)


def edges_recurring(graph: ValueGraph, freqs: pd.DataFrame, threshold: float = 0.8) -> int:
    """How many of `graph`'s edges (as node pairs) recur in at least `threshold` of resamples."""
    skel = {frozenset((r.source, r.target)): r.skeleton_freq for r in freqs.itertuples()}
    return sum(skel.get(p, 0.0) >= threshold for p in graph.skeleton())
