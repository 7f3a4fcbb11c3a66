"""CLI: `validity` (are the value scores measurements? reliability, structure, known groups, form)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from mechvalue.cli.common import csv_list
from mechvalue.cli.options import add_dataclass_args
from mechvalue.errors import MechValueError
from mechvalue.lm.literals import DType


def _forms(spec: str | None) -> dict[str, str]:
    out = {}
    for part in csv_list(spec) or []:
        name, sep, path = part.partition("=")
        if not sep or not name or not path:
            raise MechValueError(f"--forms: {part!r} is not NAME=items.csv")
        out[name] = path
    return out


def _noise(long, a: argparse.Namespace) -> float | dict:
    """--noise, or the noise model of the items (mechvalue.analysis.noise: item resampling, floored
    at --dtype rounding): known-group differences within it are ties, values that vary no more fail."""
    from mechvalue.analysis.noise import item_table_noise

    return a.noise if a.noise is not None else item_table_noise(long, a.dtype)


def cmd_validity(a: argparse.Namespace) -> None:
    import pandas as pd

    from mechvalue.analysis.validity import BatterySettings, load_known_groups, read_items, validity
    from mechvalue.analysis.validity_report import save
    from mechvalue.pipeline.preflight import check_out

    check_out(a.out)
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
    battery = BatterySettings(a.bootstrap, a.permutations, a.seed, _noise(long, a))
    res = validity(long, a.human, forms, groups, battery)
    items = Path(a.items).resolve()
    s = save(
        res, a.out, f"{items.parent.name}/{items.name}: alpha, omega, ICC(1) per value; dashed: .70, .05"
    )
    flagged = ", ".join(f"{v} ({f})" for v, f in s["flagged"].items()) or "none"
    med = ", ".join(
        f"{k} {s[f'median_{k}']:.3f}" if s[f"median_{k}"] is not None else f"{k} n/a"
        for k in ("alpha", "omega", "icc1")
    )
    print(f"median {med}; flagged: {flagged} -> {Path(a.out) / 'validity.json'}")


@dataclass(kw_only=True)
class ValidityOptions:
    """The options of `mechvalue validity`."""

    items: str
    """long item table (measure's items.csv)"""
    human: str | None = None
    """PVQ-40 answers CSV: human alpha/omega and structure"""
    forms: str | None = None
    """other forms' items.csv as NAME=PATH,... (robustness)"""
    known_groups: str | None = None
    """items.csv measured on the known-group personas (measure --players GROUPS)"""
    groups: str | None = None
    """known-group personas JSON (default: shipped)"""
    bootstrap: int = 200
    """respondent resamples for alpha/omega CIs"""
    permutations: int = 5000
    seed: int = 0
    noise: float | None = None
    """measurement noise in score units, for every value (default: resampling each value's items,
    never below the --dtype rounding floor of the answer probabilities)"""
    dtype: DType = "float32"
    """the dtype the items were scored in (sets the default --noise)"""
    out: str


def register(sub) -> None:
    v = sub.add_parser("validity", help="reliability and validity of value scores (roles as respondents)")
    add_dataclass_args(v, ValidityOptions)
    v.set_defaults(fn=cmd_validity)
