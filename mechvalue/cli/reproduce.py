"""CLI: `reproduce table1|table2|pies` from the study's (or mechvalue's) value tables."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from mechvalue.cli.common import csv_list
from mechvalue.cli.options import add_dataclass_args
from mechvalue.errors import MechValueError


def cmd_table1(a: argparse.Namespace) -> None:
    from mechvalue.analysis.tables import table1
    from mechvalue.io import write_csv, write_json
    from mechvalue.study.schema import load_table

    res = table1(
        load_table(a.train), load_table(a.test), csv_list(a.features) or [], csv_list(a.exclude_values) or []
    )
    out = Path(a.out)
    write_csv(res["cells"], out / "table1.csv")
    write_json(
        {"mean_similarity": res["mean_similarity"], "noise_ratio": res["noise_ratio"]}, out / "table1.json"
    )
    print({k: round(v, 2) for k, v in res["mean_similarity"].items()})


def cmd_table2(a: argparse.Namespace) -> None:
    from mechvalue.analysis.tables import table2, table2_improved
    from mechvalue.causal.graph import load_graph
    from mechvalue.io import write_json
    from mechvalue.study.schema import load_table

    test = load_table(a.test)
    if a.role not in set(test["player_name"].dropna()):
        raise MechValueError(f"{a.test}: no role {a.role!r} in column 'player_name'")
    feats = csv_list(a.features)
    learned, ref = load_graph(a.graph), load_graph(a.reference)
    res = table2(test, learned, ref, a.role, feats)
    res["improved"] = {
        "learned": table2_improved(test, learned, feats, a.boot, a.null, a.seed),
        "reference": table2_improved(test, ref, feats, a.boot, a.null, a.seed),
    }
    write_json(res, Path(a.out) / "table2.json")
    print(json.dumps({k: res[k] for k in ("prompt", "sae")}))


def cmd_pies(a: argparse.Namespace) -> None:
    from mechvalue.analysis.plots import pie
    from mechvalue.analysis.tables import pies
    from mechvalue.io import write_json
    from mechvalue.study.schema import load_table

    test = load_table(a.test)
    out = Path(a.out)
    res = {}
    for sign, cmp_path, feat_path in (
        ("positive", a.positive_compare, a.positive_features),
        ("negative", a.negative_compare, a.negative_features),
    ):
        try:
            chosen = json.loads(Path(feat_path).read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise MechValueError(f"{feat_path}: cannot read feature map ({e})") from None
        res[sign] = pies(test, pd.read_csv(cmp_path), chosen)
        for method, shares in res[sign].items():
            pie(shares, out / f"pie_{sign}_{method}.png", f"{sign}: {method}")
    write_json(res, out / "pies.json")
    print(res)


@dataclass(kw_only=True)
class Table1Options:
    """The options of `mechvalue reproduce table1`."""

    train: str
    """value table of the train roles"""
    test: str
    """value table of the test roles"""
    features: str
    """comma-separated steer_dim values (the steered features)"""
    exclude_values: str | None = None
    """comma-separated values left out"""
    out: str


@dataclass(kw_only=True)
class Table2Options:
    """The options of `mechvalue reproduce table2`."""

    test: str
    """value table of the test roles"""
    graph: str
    """graph JSON, or reference_graphs.json:key"""
    reference: str
    """the reference graph, as --graph"""
    role: str
    """the role (player_name) whose steering is predicted"""
    features: str | None = None
    """steering features kept (default: all)"""
    boot: int = 200
    """bootstrap resamples of the improved table"""
    null: int = 200
    """null draws of the improved table"""
    seed: int = 0
    out: str


@dataclass(kw_only=True)
class PiesOptions:
    """The options of `mechvalue reproduce pies`."""

    test: str
    """value table of the test roles"""
    positive_compare: str
    """comparison CSV of the positive steering"""
    negative_compare: str
    """comparison CSV of the negative steering"""
    positive_features: str
    """JSON feature map of the positive steering"""
    negative_features: str
    """JSON feature map of the negative steering"""
    out: str


def register(sub) -> None:
    r = sub.add_parser("reproduce", help="the study's tables from value tables")
    rs = r.add_subparsers(dest="what", required=True)
    for name, options, fn, what in (
        ("table1", Table1Options, cmd_table1, "Table 1: train vs test similarity of the steering directions"),
        (
            "table2",
            Table2Options,
            cmd_table2,
            "Table 2: value changes along graph edges, learned and reference graph",
        ),
        ("pies", PiesOptions, cmd_pies, "the direction pies"),
    ):
        p = rs.add_parser(name, help=what)
        add_dataclass_args(p, options)
        p.set_defaults(fn=fn)
