"""The comparison's statistics: bootstrap and Fisher intervals, the effect metrics of one
condition on the test roles (efficacy, share moved up, off-target change, selectivity, the
descendants gap against random graphs), and the value graph those side effects are checked on.

Statistics need at least `MIN_ROLES` roles; below that they are NaN with the note "too few roles".
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from mechvalue.causal.compare import random_graph_like
from mechvalue.causal.graph import Edge, ValueGraph
from mechvalue.study.inventory import SCHWARTZ_VALUES

MIN_ROLES = 8  # below this many roles a statistic is "too few roles", not a number


def too_few(n: int) -> str:
    """The note for a statistic over `n` roles ("" when there are enough)."""
    return f"too few roles (n={n} < {MIN_ROLES})" if n < MIN_ROLES else ""


def bootstrap_ci(x: np.ndarray, rng: np.random.Generator, n_boot: int, stat=np.mean) -> tuple[float, float]:
    """95% percentile interval of `stat` over `n_boot` resamples of `x` (NaN below 2 points)."""
    if len(x) < 2:
        return float("nan"), float("nan")
    b = np.array([stat(x[rng.integers(0, len(x), len(x))]) for _ in range(n_boot)])
    return tuple(float(v) for v in np.nanpercentile(b, [2.5, 97.5]))


def fisher_ci(r: float, n: int) -> tuple[float, float]:
    """95% interval of a Pearson r over `n` pairs (Fisher z; NaN for n <= 3)."""
    if n <= 3 or not np.isfinite(r):
        return float("nan"), float("nan")
    z, se = np.arctanh(np.clip(r, -0.999999, 0.999999)), 1 / np.sqrt(n - 3)
    return float(np.tanh(z - 1.96 * se)), float(np.tanh(z + 1.96 * se))


def _desc_gap(d: pd.DataFrame, target: str, graph: ValueGraph) -> float:
    """Mean |change| on the target's graph descendants minus on the other values (SD units)."""
    others = [v for v in d.columns if v != target]
    desc = [v for v in others if v in graph.descendants(target)]
    rest = [v for v in others if v not in desc]
    if not desc or not rest:
        return float("nan")
    a = d.abs()
    return float(a[desc].to_numpy().mean() - a[rest].to_numpy().mean())


def effect_metrics(
    base: pd.DataFrame,
    steered: pd.DataFrame,
    target: str,
    graph: ValueGraph | None = None,
    n_boot: int = 500,
    n_null: int = 200,
    seed: int = 0,
) -> dict:
    """Efficacy, share moved up, off-target change, selectivity and the descendants gap for one
    condition; `base`/`steered`: test roles x values (same roles). Score changes are divided by
    each value's between-role SD of `base` (fixed in the bootstrap); CIs resample roles."""
    roles = [r for r in base.index if r in steered.index]
    n = len(roles)
    out = {"n_roles": n, "note": too_few(n)}
    nan = float("nan")
    keys = [
        "efficacy",
        "efficacy_lo",
        "efficacy_hi",
        "share_up",
        "share_up_lo",
        "share_up_hi",
        "off_target",
        "off_target_lo",
        "off_target_hi",
        "selectivity",
        "selectivity_lo",
        "selectivity_hi",
        "desc_gap",
        "desc_gap_null",
        "desc_gap_p",
        "target_change",
        "sd_target",
    ]
    out |= dict.fromkeys(keys, nan)
    if out["note"]:
        return out
    b, s = base.loc[roles].astype(float), steered.loc[roles].astype(float)
    sd = b.std(ddof=1)
    if not sd[target] > 0:
        out["note"] = f"{target} does not vary across the unsteered test roles"
        return out
    d = (s - b) / sd.where(sd > 0)
    d = d.dropna(axis=1, how="all")
    others = [v for v in d.columns if v != target]
    t, off = d[target].to_numpy(), d[others].abs().to_numpy()
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, (n_boot, n))
    eff_b, off_b = t[idx].mean(1), off[idx].mean((1, 2))
    k = int(((s - b)[target] > 0).sum())
    ci = stats.binomtest(k, n).proportion_ci(method="wilson")
    out |= {"target_change": float((s - b)[target].mean()), "sd_target": float(sd[target])}  # score units
    out |= {
        "efficacy": float(t.mean()),
        "share_up": k / n,
        "share_up_lo": ci.low,
        "share_up_hi": ci.high,
        "off_target": float(off.mean()),
        "selectivity": float(t.mean() / off.mean()) if off.mean() > 0 else nan,
    }
    with np.errstate(divide="ignore", invalid="ignore"):
        sel_b = eff_b / off_b  # NaN where nothing moved at all (strength 0)
    for name, bs in (("efficacy", eff_b), ("off_target", off_b), ("selectivity", sel_b)):
        if np.isfinite(bs).any():
            out[f"{name}_lo"], out[f"{name}_hi"] = (float(v) for v in np.nanpercentile(bs, [2.5, 97.5]))
    if graph is not None:
        g = graph if set(d.columns) <= set(graph.nodes) else None
        if g is not None:
            gap = _desc_gap(d, target, g)
            null = np.array([_desc_gap(d, target, random_graph_like(g, rng)) for _ in range(n_null)])
            out["desc_gap"] = gap
            if np.isfinite(gap) and np.isfinite(null).any():
                null = null[np.isfinite(null)]
                out["desc_gap_null"] = float(null.mean())
                out["desc_gap_p"] = float((1 + (null >= gap).sum()) / (1 + len(null)))
    return out


def value_graph(
    values: list[str], human: str | None = None, graph: str | None = None
) -> tuple[ValueGraph, str]:
    """The graph whose descendants the side effects are checked against: a saved graph, the human
    PVQ-40 graph, or Schwartz's circle (neighbours linked)."""
    from mechvalue.causal.graph import load_graph

    if graph:
        return load_graph(graph), str(graph)
    if human:
        from mechvalue.causal.human import human_graph

        g = human_graph(human)
        return ValueGraph(
            values, [e for e in g.edges if e.source in values and e.target in values]
        ), "human PVQ-40"
    ring = [v for v in SCHWARTZ_VALUES if v in values]
    edges = [Edge(a, b, "undirected") for a, b in zip(ring, ring[1:] + ring[:1])] if len(ring) > 2 else []
    return ValueGraph(values, edges), "Schwartz's circle"
