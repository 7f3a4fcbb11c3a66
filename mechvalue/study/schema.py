"""The value-table schema, in one place: the study's wide tables (`steer_dim`, `player_name`, one
column per value) and mechvalue's long item tables; condition labels (unsteered = NaN / '',
SAE features, hard prompts `hard:+` / `hard:-`); readers and the selections every analysis uses."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from mechvalue.errors import MechValueError
from mechvalue.inputs import numeric, read_csv

BOOKKEEPING = ("steer_dim", "player_name", "stds", "scstds")
HARD_LABELS = {1: "hard:+", -1: "hard:-"}  # hard-prompt conditions: "inclined to V" / "disinclined to V"


def load_table(path: str | Path) -> pd.DataFrame:
    """Read a value table; `steer_dim` becomes float (NaN = unsteered) where numeric."""
    df = read_csv(path, "value table")
    for col in ("steer_dim", "player_name"):
        if col not in df.columns:
            raise MechValueError(
                f"{path}: missing column {col!r} (a value table has steer_dim, player_name, values)"
            )
    if df["player_name"].isna().all():
        raise MechValueError(f"{path}: column 'player_name' is empty")
    cols = value_columns(df)
    if not cols:
        raise MechValueError(f"{path}: no value columns besides {list(BOOKKEEPING)}")
    df = numeric(df, cols, path, allow_nan=True)  # NaN: a value the study did not measure there
    empty = [c for c in cols if df[c].isna().all()]
    if empty:
        raise MechValueError(f"{path}: value column(s) {empty} are empty")
    df.attrs["path"] = str(path)
    return df


def value_columns(df: pd.DataFrame) -> list[str]:
    """Value columns in file order: everything but bookkeeping and `*:scstd` columns."""
    return [c for c in df.columns if c not in BOOKKEEPING and not str(c).endswith(":scstd")]


def steer_key(v) -> str:
    """Canonical label of a steering condition ('' = unsteered)."""
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return ""
    try:
        f = float(v)
        return str(int(f)) if f.is_integer() else str(f)
    except (TypeError, ValueError):
        return str(v)


def select_rows(df: pd.DataFrame, features: list | None = None, unsteered: bool = True) -> pd.DataFrame:
    """Unsteered rows plus rows steered by `features` (None: every condition)."""
    keys = df["steer_dim"].map(steer_key)
    if features is None:
        keep = keys.notna()
    else:
        want = {steer_key(f) for f in features}
        missing = want - set(keys)
        if missing:
            src = df.attrs.get("path", "table")
            raise MechValueError(f"{src}: steer_dim has no rows for feature(s) {sorted(missing)}")
        keep = keys.isin(want | ({""} if unsteered else set()))
    return df[keep]


def value_matrix(df: pd.DataFrame, drop_constant: bool = False) -> pd.DataFrame:
    """The numeric value columns, checked: missing cells, constant and duplicate columns."""
    src = df.attrs.get("path", "table")
    cols = value_columns(df)
    if not cols:
        raise MechValueError(f"{src}: no value columns")
    x = df[cols].apply(pd.to_numeric, errors="coerce")
    bad = [c for c in cols if x[c].isna().any()]
    if bad:
        raise MechValueError(f"{src}: missing or non-numeric cells in column(s) {bad}")
    const = [c for c in cols if x[c].nunique() <= 1]
    if const:
        if not drop_constant:
            raise MechValueError(f"{src}: constant column(s) {const}; pass drop_constant to drop them")
        x = x.drop(columns=const)
    dup = x.T.duplicated()
    if dup.any():
        raise MechValueError(f"{src}: column(s) {list(x.columns[dup.values])} duplicate another column")
    return x


def hard_label(direction: int) -> str:
    """The `steer_dim` label of the hard-prompt condition in `direction` (+1 or -1)."""
    return HARD_LABELS[direction]


def is_hard(labels: pd.Series) -> pd.Series:
    """Which `steer_dim` labels are hard-prompt conditions."""
    return labels.astype(str).isin(HARD_LABELS.values())


def by_role(df: pd.DataFrame, label=None) -> pd.DataFrame:
    """The value columns of one condition's rows (default: unsteered), indexed by role ('' = no role)."""
    sel = df["steer_dim"].map(steer_key).eq(steer_key(label))
    return df[sel].set_index(df["player_name"].fillna("")[sel])[value_columns(df)]


def wide_table(long: pd.DataFrame) -> pd.DataFrame:
    """Long item table -> the study's wide table: mean item score per (steer_dim, player_name) and
    value, rows in first-seen order."""
    key = long["steer_dim"].map(str) + "\x00" + long["player_name"].map(str)
    order = pd.unique(key)
    w = long.assign(_k=key).pivot_table(index="_k", columns="value", values="score", aggfunc="mean")
    w = w.loc[order]
    firsts = long.assign(_k=key).drop_duplicates("_k").set_index("_k")
    w.insert(0, "player_name", firsts.loc[order, "player_name"].values)
    w.insert(0, "steer_dim", firsts.loc[order, "steer_dim"].values)
    w.columns.name = None
    return w.reset_index(drop=True)


def item_table(items: pd.DataFrame, rows: list[dict]) -> pd.DataFrame:
    """The items with each scorer's per-item columns beside them, and score = agreement x raw."""
    out = items.reset_index(drop=True).copy()
    res = pd.DataFrame(rows)
    for c in res.columns:
        out[c] = res[c].values
    out["score"] = out["agreement"] * out["raw"]
    return out
