"""Figures: graph drawings, value heatmaps, pies. Matplotlib with the Agg backend, PNG out."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import networkx as nx  # noqa: E402
import numpy as np  # noqa: E402

from mechvalue.causal.graph import ValueGraph  # noqa: E402
from mechvalue.io import atomic_path  # noqa: E402


def _save(fig, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)


def draw_graph(g: ValueGraph, path: str | Path, title: str = "", freqs: dict | None = None) -> None:
    """Circular layout; directed edges as arrows, others as plain lines; width = stability. Each
    label sits outside its node, on the ray from the centre, so no name spills over a circle."""
    fig, ax = plt.subplots(figsize=(7, 7))
    dg = nx.DiGraph()
    dg.add_nodes_from(g.nodes)
    pos = nx.circular_layout(dg)
    nx.draw_networkx_nodes(dg, pos, ax=ax, node_color="#dbe9f6", node_size=300, edgecolors="#4a6d8c")
    for n, (px, py) in pos.items():
        ang = np.arctan2(py, px)
        ax.text(
            1.14 * px,
            1.14 * py,
            str(n),
            fontsize=8,
            ha="left" if np.cos(ang) > 0.3 else "right" if np.cos(ang) < -0.3 else "center",
            va="bottom" if np.sin(ang) > 0.3 else "top" if np.sin(ang) < -0.3 else "center",
        )
    for e in g.edges:
        w = 1.0 + 3.0 * (freqs or {}).get(frozenset((e.source, e.target)), 0.0)
        directed = e.kind in ("directed", "partially_directed")
        nx.draw_networkx_edges(
            nx.DiGraph([(e.source, e.target)]),
            pos,
            ax=ax,
            width=w,
            arrows=True,
            arrowstyle="-|>" if directed else "-",
            arrowsize=14,
            node_size=300,
            edge_color="#c0392b" if e.kind == "bidirected" else "#333333",
            style="dashed" if e.kind in ("undirected", "nondirected") else "solid",
        )
    ax.set_xlim(-1.6, 1.6)
    ax.set_ylim(-1.4, 1.4)
    ax.set_title(title or f"{len(g.edges)} edges")
    ax.axis("off")
    _save(fig, path)


def color_scale(x) -> tuple[str, float, float]:
    """A colour map and limits that fit the data: diverging around 0 (red below, blue above) when
    it has both signs, otherwise sequential over its own range (reds for all-negative data, darker =
    more negative; blues for all-positive), so no part of the bar lies outside the data."""
    a = np.asarray(x, dtype=float)
    a = a[np.isfinite(a)]
    if not a.size:
        return "RdBu", -1.0, 1.0
    lo, hi = float(a.min()), float(a.max())
    if lo < 0 < hi:
        lim = max(-lo, hi)
        return "RdBu", -lim, lim
    if lo == hi:  # one colour: a bar around the single value
        pad = abs(lo) * 0.01 or 1e-12
        lo, hi = lo - pad, hi + pad
    return ("Reds_r" if hi <= 0 else "Blues"), lo, hi


def heatmap(
    df,
    path: str | Path,
    title: str = "",
    vmin: float | None = None,
    vmax: float | None = None,
    label: str = "",
    cmap: str | None = None,
) -> None:
    """Cells coloured by value; without vmin/vmax the scale fits the data (`color_scale`), with
    them (a diverging map around 0 by default) the caller fixes it; `label` names the colour bar.
    Missing (NaN) cells are light grey: a caller masks a cell by setting it NaN."""
    x = df.to_numpy(float)
    fit_cmap, lo, hi = color_scale(x)
    if vmin is not None and vmax is not None:
        lo, hi, fit_cmap = vmin, vmax, "RdBu"
    fig, ax = plt.subplots(figsize=(1.6 + 0.55 * df.shape[1], 1.2 + 0.28 * df.shape[0]))
    cm = matplotlib.colormaps[cmap or fit_cmap].with_extremes(bad="#e6e6e6")
    im = ax.imshow(np.ma.masked_invalid(x), cmap=cm, vmin=lo, vmax=hi, aspect="auto")
    ax.set_xticks(range(df.shape[1]), [str(c) for c in df.columns], rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(df.shape[0]), [str(i) for i in df.index], fontsize=7)
    bar = fig.colorbar(im, ax=ax, shrink=0.6)
    if label:
        bar.set_label(label, fontsize=8)
    ax.set_title(title, fontsize=9)
    _save(fig, path)


def pie(shares: dict, path: str | Path, title: str = "") -> None:
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.pie(
        [shares["up"], shares["unchanged"], shares["down"]],
        labels=["up", "unchanged", "down"],
        colors=["#42A5F5", "#eeeeee", "#FFCA28"],
        autopct="%1.1f%%",
        startangle=140,
    )
    ax.set_title(title)
    _save(fig, path)
