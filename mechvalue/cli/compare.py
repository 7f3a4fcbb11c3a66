"""CLI: `compare-runs` (finished `mechvalue run` folders side by side, e.g. one per model)."""

from __future__ import annotations

import argparse


def cmd_compare_runs(a: argparse.Namespace) -> None:
    from mechvalue.pipeline.compare_runs import compare_runs

    print(compare_runs(a.runs, a.out, a.null, a.seed), end="")


def register(sub) -> None:
    p = sub.add_parser("compare-runs", help="runs side by side: validity, graphs, steering winners, times")
    p.add_argument("runs", nargs="+", help="finished `mechvalue run` folders (two or more)")
    p.add_argument("--out", required=True, help="folder for compare.md, compare.csv and compare.json")
    p.add_argument("--null", type=int, default=1000, help="null draws for the graph-to-graph distance")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(fn=cmd_compare_runs)
