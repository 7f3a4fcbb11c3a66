"""CLI: `reproduce table1|table2|pies` from the study's (or mechvalue's) value tables."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from mechvalue.cli.common import csv_list
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


def register(sub) -> None:
    r = sub.add_parser("reproduce", help="the study's tables from value tables")
    rs = r.add_subparsers(dest="what", required=True)
    t1 = rs.add_parser("table1")
    t1.add_argument("--train", required=True)
    t1.add_argument("--test", required=True)
    t1.add_argument("--features", required=True)
    t1.add_argument("--exclude-values", default=None)
    t1.add_argument("--out", required=True)
    t1.set_defaults(fn=cmd_table1)
    t2 = rs.add_parser("table2")
    t2.add_argument("--test", required=True)
    t2.add_argument("--graph", required=True, help="graph JSON, or reference_graphs.json:key")
    t2.add_argument("--reference", required=True)
    t2.add_argument("--role", required=True)
    t2.add_argument("--features", default=None, help="steering features kept (default: all)")
    t2.add_argument("--boot", type=int, default=200)
    t2.add_argument("--null", type=int, default=200)
    t2.add_argument("--seed", type=int, default=0)
    t2.add_argument("--out", required=True)
    t2.set_defaults(fn=cmd_table2)
    p = rs.add_parser("pies")
    p.add_argument("--test", required=True)
    p.add_argument("--positive-compare", required=True)
    p.add_argument("--negative-compare", required=True)
    p.add_argument("--positive-features", required=True)
    p.add_argument("--negative-features", required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(fn=cmd_pies)
