"""CLI: `graph`, `graph-compare`, `human-graph`."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from mechvalue.causal.discovery import CITest, Method
from mechvalue.cli.common import add_executor_args, csv_list, executor_from_args
from mechvalue.cli.options import add_dataclass_args
from mechvalue.errors import MechValueError


def cmd_graph(a: argparse.Namespace) -> None:
    from mechvalue.analysis.plots import draw_graph
    from mechvalue.causal.discovery import GraphMethod
    from mechvalue.causal.stability import bootstrap_edges, edges_recurring, stable_graph
    from mechvalue.causal.study import study_graph
    from mechvalue.io import write_csv, write_json
    from mechvalue.study.schema import load_table, select_rows, value_matrix

    table = load_table(a.table)
    out = Path(a.out)
    feats = csv_list(a.features)
    how = GraphMethod(a.method, a.alpha, a.test)
    if a.protocol == "study":
        if a.method != "pc" or a.test != "fisherz":
            raise MechValueError(
                "--protocol study runs PC with Fisher-z tests; drop --method and --test or use --protocol default"
            )
        learned, graph = study_graph(table, feats, a.alpha)
        summary = {"pc_edges": len(learned.edges), "final_edges": len(graph.edges)}
        learned.save(out / "pc_graph.json")
    else:
        rows = select_rows(table, feats)
        x = value_matrix(rows, drop_constant=a.drop_constant)
        graph = how.learn(x)
        summary = {"edges": len(graph.edges)}
    graph.save(out / "graph.json")
    freqs = None
    if a.bootstrap:
        rows = select_rows(table, feats)
        x = value_matrix(rows, drop_constant=a.drop_constant)
        with executor_from_args(a) as ex:
            f = bootstrap_edges(x, rows["player_name"], a.bootstrap, how, a.seed, a.workers, executor=ex)
            if ex.kind != "local":
                ex.log.write(out)
        write_csv(f, out / "edge_frequencies.csv")
        freqs = {frozenset((r.source, r.target)): r.skeleton_freq for r in f.itertuples()}
        summary["edges_recurring_80pct"] = edges_recurring(graph, f, 0.8)
        summary["bootstrap"] = a.bootstrap
        stable = stable_graph(f, list(x.columns), a.stable_at)
        stable.save(out / "stable_graph.json")
        summary[f"stable_edges_{a.stable_at:g}"] = len(stable.edges)
    draw_graph(graph, out / "graph.png", f"{Path(a.table).name}: {len(graph.edges)} edges", freqs)
    items = Path(a.items) if a.items else Path(a.table).with_name("items.csv")
    if a.items or items.exists():  # flag nodes and edges resting on unreliable value scores
        from mechvalue.analysis.noise import item_table_noise
        from mechvalue.analysis.status import value_status
        from mechvalue.analysis.validity import center_scores, graph_warnings, read_items, reliability

        long = read_items(items)
        noise = item_table_noise(long)
        status = value_status(
            reliability(long, 0, noise=noise), reliability(center_scores(long), 0, noise=noise)
        )
        edges = [(e.source, e.target) for e in graph.edges]
        summary["validity_warnings"] = {"items": str(items), **graph_warnings(graph.nodes, edges, status)}
    write_json(summary, out / "summary.json")
    print(summary)


def cmd_compare(a: argparse.Namespace) -> None:
    from mechvalue.causal.compare import compare_with_null
    from mechvalue.causal.graph import load_graph
    from mechvalue.io import write_json

    g1, g2 = load_graph(a.a), load_graph(a.b)
    common = [n for n in g1.nodes if n in set(g2.nodes)]
    if set(g1.nodes) != set(g2.nodes):
        raise MechValueError(f"graphs differ in nodes: {sorted(set(g1.nodes) ^ set(g2.nodes))}")
    res = compare_with_null(g1, g2, a.null, a.seed)
    res["nodes"] = common
    write_json(res, Path(a.out) / "compare.json")
    print(res["observed"], {k: res[k]["p_shd"] for k in ("random_graph", "permuted_labels")})


def cmd_human(a: argparse.Namespace) -> None:
    from mechvalue.analysis.plots import draw_graph
    from mechvalue.causal.discovery import fisherz_from_correlation
    from mechvalue.causal.human import correlation_file, human_graph
    from mechvalue.io import write_json

    if (a.pvq40 is None) == (a.corr is None):
        raise MechValueError("give either --pvq40 (raw answers) or --corr with --n (a correlation matrix)")
    if a.corr is not None:
        if a.n is None:
            raise MechValueError("--corr needs --n, the sample size behind the correlations")
        corr, names = correlation_file(a.corr)
        g = fisherz_from_correlation(corr, a.n, names, a.alpha)
    else:
        g = human_graph(a.pvq40, a.alpha)
    out = Path(a.out)
    g.save(out / "graph.json")
    draw_graph(g, out / "graph.png", f"human PVQ-40: {len(g.edges)} edges")
    write_json({"edges": len(g.edges)}, out / "summary.json")
    print(f"{len(g.edges)} edges -> {out / 'graph.json'}")


@dataclass(kw_only=True)
class GraphOptions:
    """The options of `mechvalue graph`."""

    table: str
    """value table in the study's schema (a run's values.csv, a grid's steer.csv, a paper table)"""
    features: str | None = None
    """steer_dim values to keep besides unsteered rows"""
    method: Method = "pc"
    """causal-learn's search: PC, FCI or GES"""
    test: CITest = "fisherz"
    """PC's and FCI's conditional-independence test"""
    alpha: float = 0.05
    """the tests' significance level"""
    protocol: Literal["study", "default"] = "default"
    """study: the paper's PC and its edge pruning (study_graph); default: `--method` as it is"""
    bootstrap: int = 0
    """role resamples for edge frequencies and stable_graph.json (0: none)"""
    stable_at: float = 0.8
    """edge frequency for stable_graph.json"""
    drop_constant: bool = False
    """drop values that never vary (else a constant value is an error)"""
    seed: int = 0
    items: str | None = None
    """item table for validity warnings (default: items.csv beside --table, if there)"""
    out: str


@dataclass(kw_only=True)
class GraphCompareOptions:
    """The options of `mechvalue graph-compare`."""

    a: str = field(metadata={"positional": True})
    """a graph JSON"""
    b: str = field(metadata={"positional": True})
    """another graph JSON over the same nodes"""
    null: int = 1000
    """draws of each null (random graphs, permuted labels)"""
    seed: int = 0
    out: str


@dataclass(kw_only=True)
class HumanGraphOptions:
    """The options of `mechvalue human-graph`."""

    pvq40: str | None = None
    """raw PVQ-40 answers (one row per person)"""
    corr: str | None = None
    """CSV correlation matrix over the values (index = columns)"""
    n: int | None = None
    """sample size behind --corr"""
    alpha: float = 0.05
    out: str


def register(sub) -> None:
    g = sub.add_parser("graph", help="learn a causal value graph from a value table")
    add_dataclass_args(g, GraphOptions)
    add_executor_args(g)
    g.set_defaults(fn=cmd_graph)

    c = sub.add_parser("graph-compare", help="compare two graphs, with a null distribution")
    add_dataclass_args(c, GraphCompareOptions)
    c.set_defaults(fn=cmd_compare)

    h = sub.add_parser(
        "human-graph", help="learn the human graph from PVQ-40 answers or a correlation matrix"
    )
    add_dataclass_args(h, HumanGraphOptions)
    h.set_defaults(fn=cmd_human)
