"""Questionnaires in ValueBench format: load, validate, select, split.

A file has columns questionnaire, item, value, agreement (+1/-1) and question. Bad rows raise
`MechValueError` naming the file, row (1-based, header = row 1) and column.
"""

from __future__ import annotations

import math
import random
from importlib import resources
from pathlib import Path

import pandas as pd

from mechvalue.errors import MechValueError
from mechvalue.inputs import read_csv

COLUMNS = ("questionnaire", "item", "value", "agreement", "question")
SCHWARTZ_VALUES = (  # in their order around Schwartz's circle
    "Self-Direction",
    "Stimulation",
    "Hedonism",
    "Achievement",
    "Power",
    "Security",
    "Conformity",
    "Tradition",
    "Benevolence",
    "Universalism",
)


def default_inventory_path() -> Path:
    """The small original inventory shipped with mechvalue (10 Schwartz values, 4 items each)."""
    return Path(str(resources.files("mechvalue.data") / "mechvalue_values.csv"))


def value_definitions() -> dict[str, str]:
    """value -> its short definition (mechvalue/data/value_definitions.json), for the prompts that
    name a value: the hard-prompt baseline and value anchoring."""
    import json

    d = json.loads((resources.files("mechvalue.data") / "value_definitions.json").read_text())
    d.pop("_about", None)
    return d


def load_inventory(path: str | Path | None = None) -> pd.DataFrame:
    """Read and validate a ValueBench-format CSV (default: the shipped inventory)."""
    path = Path(path) if path is not None else default_inventory_path()
    df = read_csv(path, "inventory", dtype=str, keep_default_na=False)
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise MechValueError(f"{path}: missing column(s) {', '.join(missing)}; need {COLUMNS}")
    for i, row in enumerate(df.itertuples(index=False), start=2):
        if str(row.agreement).strip() not in ("1", "-1", "1.0", "-1.0", "+1"):
            raise MechValueError(f"{path}: row {i}, column 'agreement': {row.agreement!r} is not +1 or -1")
        for col in ("question", "value", "questionnaire", "item"):
            if not str(getattr(row, col)).strip():
                raise MechValueError(f"{path}: row {i}, column {col!r} is empty")
    df = df[list(COLUMNS)].copy()
    df["agreement"] = df["agreement"].astype(float).astype(int)
    df.attrs["path"] = str(path)
    return df


def select(
    df: pd.DataFrame,
    questionnaires: list[str] | None = None,
    values: list[str] | None = None,
    min_items: int = 0,
) -> pd.DataFrame:
    """Keep the given questionnaires and values, then values with at least `min_items` items."""
    src = df.attrs.get("path", "inventory")
    if questionnaires:
        _known(questionnaires, df["questionnaire"], "questionnaire", src)
        df = df[df["questionnaire"].isin(questionnaires)]
    if values:
        _known(values, df["value"], "value", src)
        df = df[df["value"].isin(values)]
    counts = df.groupby("value")["item"].transform("size")
    out = df[counts >= min_items].reset_index(drop=True)
    if out.empty:
        raise MechValueError(f"{src}: no items left after selection")
    out.attrs["path"] = src
    return out


def _known(names: list[str], column: pd.Series, what: str, src: str) -> None:
    """Every name is in `column`; else one error naming the unknown ones and listing those there are
    ("unknown questionnaire 'PVQ4' in <file>; it has: MVI10")."""
    have = sorted(set(column))
    unknown = [n for n in dict.fromkeys(names) if n not in have]
    if unknown:
        plural = "s" if len(unknown) > 1 else ""
        shown = ", ".join(repr(n) for n in unknown)
        raise MechValueError(f"unknown {what}{plural} {shown} in {src}; it has: {', '.join(have)}")


def split(df: pd.DataFrame, seed: int = 0, train_frac: float = 0.7) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The study's per-value split, seeded: shuffle each value's items, first int(0.7 n) train."""
    rng = random.Random(seed)
    train, test = [], []
    for value in sorted(df["value"].unique()):
        idx = list(df.index[df["value"] == value])
        rng.shuffle(idx)
        k = int(train_frac * len(idx))
        train += idx[:k]
        test += idx[k:]
    return df.loc[sorted(train)].reset_index(drop=True), df.loc[sorted(test)].reset_index(drop=True)


def role_subset(df: pd.DataFrame, role_name: str | None, rate: float = 0.4) -> pd.DataFrame:
    """The study's per-role item subset: ceil(rate * n) items per value, seeded by role + value.

    Uses Python's `random` exactly as the study did, so subsets match its released runs.
    """
    keep = []
    for value, group in df.groupby("value", sort=True):
        rng = random.Random((role_name or "None") + value)
        picks = sorted(rng.sample(range(len(group)), math.ceil(len(group) * rate)))
        keep += [group.index[i] for i in picks]
    return df.loc[sorted(keep)]
