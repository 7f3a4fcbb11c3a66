"""CLI: `compare-runs` (finished `mechvalue run` folders side by side, e.g. one per model)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

from mechvalue.cli.options import add_dataclass_args


def cmd_compare_runs(a: argparse.Namespace) -> None:
    from mechvalue.pipeline.compare_runs import compare_runs

    print(compare_runs(a.runs, a.out, a.null, a.seed), end="")


@dataclass(kw_only=True)
class CompareRunsOptions:
    """The options of `mechvalue compare-runs`."""

    runs: list[str] = field(metadata={"positional": True})
    """finished `mechvalue run` folders (two or more)"""
    out: str
    """folder for compare.md, compare.csv and compare.json"""
    null: int = 1000
    """null draws for the graph-to-graph distance"""
    seed: int = 0


def register(sub) -> None:
    p = sub.add_parser("compare-runs", help="runs side by side: validity, graphs, steering winners, times")
    add_dataclass_args(p, CompareRunsOptions)
    p.set_defaults(fn=cmd_compare_runs)
