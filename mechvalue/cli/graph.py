"""CLI: `graph`, `graph-compare`, `human-graph`."""

from __future__ import annotations

import argparse
from pathlib import Path

from mechvalue.cli.common import csv_list
from mechvalue.distributed.executor import add_executor_args, executor_from_args
from mechvalue.errors import MechValueError


def cmd_graph(a: argparse.Namespace) -> None:
    from mechvalue.analysis.plots import draw_graph
    from mechvalue.causal.discovery import learn_graph
    from mechvalue.causal.stability import bootstrap_edges, edges_recurring, stable_graph
    from mechvalue.causal.study import study_graph
    from mechvalue.io import write_csv, write_json
    from mechvalue.study.schema import load_table, select_rows, value_matrix

    table = load_table(a.table)
    out = Path(a.out)
    feats = csv_list(a.features)
    if a.protocol == "study":
        if a.method != "pc":
            raise MechValueError("--protocol study runs PC; drop --method or use --protocol default")
        learned, graph = study_graph(table, feats, a.alpha)
        summary = {"pc_edges": len(learned.edges), "final_edges": len(graph.edges)}
        learned.save(out / "pc_graph.json")
    else:
        rows = select_rows(table, feats)
        x = value_matrix(rows, drop_constant=a.drop_constant)
        graph = learn_graph(x, a.method, a.alpha, a.test)
        summary = {"edges": len(graph.edges)}
    graph.save(out / "graph.json")
    freqs = None
    if a.bootstrap:
        rows = select_rows(table, feats)
        x = value_matrix(rows, drop_constant=a.drop_constant)
        with executor_from_args(a) as ex:
            f = bootstrap_edges(
                x, rows["player_name"], a.bootstrap, a.method, a.alpha, a.seed, a.workers, executor=ex
            )
            if ex.kind == "ray":
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
        from mechvalue.analysis.validity import flagged_values, graph_warnings, read_items, reliability

        flagged = flagged_values(reliability(read_items(items), n_boot=0))
        edges = [(e.source, e.target) for e in graph.edges]
        summary["validity_warnings"] = {"items": str(items), **graph_warnings(graph.nodes, edges, flagged)}
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


def register(sub) -> None:
    g = sub.add_parser("graph", help="learn a causal value graph from a value table")
    g.add_argument("--table", required=True)
    g.add_argument("--features", default=None, help="steer_dim values to keep besides unsteered rows")
    g.add_argument("--method", choices=["pc", "fci", "ges"], default="pc")
    g.add_argument("--test", choices=["fisherz", "kci"], default="fisherz")
    g.add_argument("--alpha", type=float, default=0.05)
    g.add_argument("--protocol", choices=["study", "default"], default="default")
    g.add_argument("--bootstrap", type=int, default=0)
    g.add_argument("--stable-at", type=float, default=0.8, help="edge frequency for stable_graph.json")
    g.add_argument("--workers", type=int, default=None, help="local processes for --bootstrap")
    add_executor_args(g)
    g.add_argument("--drop-constant", action="store_true")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument(
        "--items",
        default=None,
        help="item table for validity warnings (default: items.csv beside --table, if there)",
    )
    g.add_argument("--out", required=True)
    g.set_defaults(fn=cmd_graph)

    c = sub.add_parser("graph-compare", help="compare two graphs, with a null distribution")
    c.add_argument("a")
    c.add_argument("b")
    c.add_argument("--null", type=int, default=1000)
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--out", required=True)
    c.set_defaults(fn=cmd_compare)

    h = sub.add_parser(
        "human-graph", help="learn the human graph from PVQ-40 answers or a correlation matrix"
    )
    h.add_argument("--pvq40", default=None, help="raw PVQ-40 answers (one row per person)")
    h.add_argument("--corr", default=None, help="CSV correlation matrix over the values (index = columns)")
    h.add_argument("--n", type=int, default=None, help="sample size behind --corr")
    h.add_argument("--alpha", type=float, default=0.05)
    h.add_argument("--out", required=True)
    h.set_defaults(fn=cmd_human)
