"""CLI: `validity` (are the value scores measurements? reliability, structure, known groups, form)."""

from __future__ import annotations

import argparse
from pathlib import Path

from mechvalue.cli.common import csv_list
from mechvalue.errors import MechValueError


def _forms(spec: str | None) -> dict[str, str]:
    out = {}
    for part in csv_list(spec) or []:
        name, sep, path = part.partition("=")
        if not sep or not name or not path:
            raise MechValueError(f"--forms: {part!r} is not NAME=items.csv")
        out[name] = path
    return out


def _noise(long, a: argparse.Namespace) -> float:
    """--noise, or the rounding floor of --dtype on the items' answer probabilities (their scores
    without them): known-group differences within it are ties, values that vary no more are flagged."""
    from mechvalue.analysis.noise import rounding_floor

    if a.noise is not None:
        return a.noise
    cols = [c for c in ("p_yes", "p_no") if c in long.columns]
    return rounding_floor(long[cols].to_numpy(float) if cols else long["score"].to_numpy(float), a.dtype)


def cmd_validity(a: argparse.Namespace) -> None:
    import pandas as pd

    from mechvalue.analysis.validity import load_known_groups, read_items, validity
    from mechvalue.analysis.validity_report import save

    if a.bootstrap < 0 or a.permutations < 0:
        raise MechValueError("--bootstrap and --permutations must be >= 0")
    if a.human and not Path(a.human).is_file():
        raise MechValueError(f"{a.human}: no such PVQ-40 answers file (--human)")
    long = read_items(a.items)
    forms = {name: read_items(p) for name, p in _forms(a.forms).items()}
    groups = load_known_groups(a.groups)
    if a.known_groups:
        long = pd.concat([long, read_items(a.known_groups)], ignore_index=True)
    if not long["player_name"].isin(list(groups)).any():
        groups = None  # no known-group personas measured
    res = validity(long, a.human, forms, groups, a.bootstrap, a.permutations, a.seed, _noise(long, a))
    items = Path(a.items).resolve()
    s = save(
        res, a.out, f"{items.parent.name}/{items.name}: alpha, omega, ICC(1) per value; dashed: .70, .05"
    )
    flagged = ", ".join(f"{v} ({f})" for v, f in s["flagged"].items()) or "none"
    med = ", ".join(f"{k} {s[f'median_{k}']:.3f}" if s[f"median_{k}"] is not None else f"{k} n/a"
                    for k in ("alpha", "omega", "icc1"))  # fmt: skip
    print(f"median {med}; flagged: {flagged} -> {Path(a.out) / 'validity.json'}")


def register(sub) -> None:
    v = sub.add_parser("validity", help="reliability and validity of value scores (roles as respondents)")
    v.add_argument("--items", required=True, help="long item table (measure's items.csv)")
    v.add_argument("--human", default=None, help="PVQ-40 answers CSV: human alpha/omega and structure")
    v.add_argument("--forms", default=None, help="other forms' items.csv as NAME=PATH,... (robustness)")
    v.add_argument("--known-groups", default=None,
                   help="items.csv measured on the known-group personas (measure --players GROUPS)")  # fmt: skip
    v.add_argument("--groups", default=None, help="known-group personas JSON (default: shipped)")
    v.add_argument("--bootstrap", type=int, default=200, help="respondent resamples for alpha/omega CIs")
    v.add_argument("--permutations", type=int, default=5000)
    v.add_argument("--seed", type=int, default=0)
    v.add_argument("--noise", type=float, default=None,
                   help="measurement noise in score units (default: the --dtype rounding floor of the answer probabilities)")  # fmt: skip
    v.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default="float32",
                   help="the dtype the items were scored in (sets the default --noise)")  # fmt: skip
    v.add_argument("--out", required=True)
    v.set_defaults(fn=cmd_validity)
