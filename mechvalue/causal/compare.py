"""Distances between two graphs over the same nodes, and how they compare with chance.

SHD convention: one per node pair whose status differs (missing, extra, or a different edge
mark: a directed edge reversed, or directed vs undirected), as in causal-learn's SHD.
"""

from __future__ import annotations

import numpy as np

from mechvalue.causal.graph import Edge, ValueGraph


def _marks(g: ValueGraph) -> dict[frozenset, tuple]:
    out = {}
    for e in g.edges:
        key = frozenset((e.source, e.target))
        out[key] = (e.source, e.target) if e.kind == "directed" else ("~",)
    return out


def _arrowheads(g: ValueGraph) -> set[tuple[str, str]]:
    """(u, v): an arrowhead at v on the u-v edge (directed u->v, or bidirected)."""
    heads = set()
    for e in g.edges:
        if e.kind in ("directed", "partially_directed"):
            heads.add((e.source, e.target))
        elif e.kind == "bidirected":
            heads |= {(e.source, e.target), (e.target, e.source)}
    return heads


def _prf(pred: set, true: set) -> tuple[float, float, float]:
    tp = len(pred & true)
    p = tp / len(pred) if pred else 0.0
    r = tp / len(true) if true else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f


def compare(learned: ValueGraph, reference: ValueGraph) -> dict[str, float]:
    """SHD, skeleton precision/recall/F1 and arrowhead precision/recall of `learned` vs `reference`."""
    if set(learned.nodes) != set(reference.nodes):
        missing = sorted(set(learned.nodes) ^ set(reference.nodes))
        raise ValueError(f"graphs have different nodes: {missing}")
    a, b = _marks(learned), _marks(reference)
    shd = sum(a.get(k) != b.get(k) for k in set(a) | set(b))
    sp, sr, sf = _prf(set(a), set(b))
    ap, ar, _ = _prf(_arrowheads(learned), _arrowheads(reference))
    return {
        "shd": shd,
        "skeleton_precision": sp,
        "skeleton_recall": sr,
        "skeleton_f1": sf,
        "arrowhead_precision": ap,
        "arrowhead_recall": ar,
        "n_edges_learned": len(learned.edges),
        "n_edges_reference": len(reference.edges),
    }


def random_graph_like(g: ValueGraph, rng: np.random.Generator) -> ValueGraph:
    """Same nodes and edge count, each kind kept, endpoints drawn uniformly without repeats."""
    n = len(g.nodes)
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
    pick = rng.choice(len(pairs), size=min(len(g.edges), len(pairs)), replace=False)
    edges = []
    for e, p in zip(g.edges, pick):
        i, j = pairs[p]
        if rng.random() < 0.5:
            i, j = j, i
        edges.append(Edge(g.nodes[i], g.nodes[j], e.kind))
    return ValueGraph(list(g.nodes), edges)


def permute_labels(g: ValueGraph, rng: np.random.Generator) -> ValueGraph:
    perm = dict(zip(g.nodes, rng.permutation(g.nodes)))
    return ValueGraph(list(g.nodes), [Edge(perm[e.source], perm[e.target], e.kind) for e in g.edges])


def compare_with_null(
    learned: ValueGraph, reference: ValueGraph, n_null: int = 1000, seed: int = 0
) -> dict[str, object]:
    """Metrics plus p-values for "closer to the reference than chance" under two nulls.

    p = (1 + #null draws at least as close) / (1 + n_null), for SHD (lower is closer) and
    skeleton F1 (higher is closer), with nulls of random same-size graphs and of `learned`
    with its node labels permuted.
    """
    obs = compare(learned, reference)
    rng = np.random.default_rng(seed)
    out: dict[str, object] = {"observed": obs, "n_null": n_null}
    for name, draw in (("random_graph", random_graph_like), ("permuted_labels", permute_labels)):
        shd, f1 = [], []
        for _ in range(n_null):
            m = compare(draw(learned, rng), reference)
            shd.append(m["shd"])
            f1.append(m["skeleton_f1"])
        shd, f1 = np.array(shd), np.array(f1)
        out[name] = {
            "shd_mean": float(shd.mean()),
            "skeleton_f1_mean": float(f1.mean()),
            "p_shd": float((1 + (shd <= obs["shd"]).sum()) / (1 + n_null)),
            "p_skeleton_f1": float((1 + (f1 >= obs["skeleton_f1"]).sum()) / (1 + n_null)),
        }
    return out
