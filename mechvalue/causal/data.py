"""Value tables (the study's schema, or `mechvalue measure` output) to analysis matrices."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import MechValueError

BOOKKEEPING = ("steer_dim", "player_name", "stds", "scstds")


def load_table(path: str | Path) -> pd.DataFrame:
    """Read a value table; `steer_dim` becomes float (NaN = unsteered) where numeric."""
    try:
        df = pd.read_csv(path)
    except (OSError, pd.errors.ParserError) as e:
        raise MechValueError(f"{path}: cannot read value table ({e})") from None
    for col in ("steer_dim", "player_name"):
        if col not in df.columns:
            raise MechValueError(f"{path}: missing column {col!r}")
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
