"""The human side: PVQ-40 answers (smacof's PVQ40 data) to Schwartz value scores and a graph."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from mechvalue.causal.discovery import learn_graph
from mechvalue.causal.graph import ValueGraph
from mechvalue.errors import MechValueError
from mechvalue.inputs import numeric, read_csv
from mechvalue.study.inventory import SCHWARTZ_VALUES

CODES = {
    "sd": "Self-Direction",
    "st": "Stimulation",
    "he": "Hedonism",
    "ac": "Achievement",
    "po": "Power",
    "se": "Security",
    "co": "Conformity",
    "tr": "Tradition",
    "be": "Benevolence",
    "un": "Universalism",
}


def pvq40_value_scores(path: str | Path) -> pd.DataFrame:
    """Per-person importance of the 10 values: 7 - mean of that value's items.

    Answers run 1 ("very much like me") .. 6 ("not like me at all"), so 7 - x makes higher
    mean more important. Empty cells and the off-scale 0s are treated as missing.
    """
    raw = read_csv(path, "PVQ-40 answers")
    items = [c for c in raw.columns if c[:2] in CODES and c[2:].isdigit()]
    if len(items) != 40:
        raise MechValueError(f"{path}: expected 40 PVQ item columns like 'sd1', found {len(items)}")
    x = raw[items].apply(pd.to_numeric, errors="coerce")
    x = x.where((x >= 1) & (x <= 6))
    unanswered = [c for c in items if x[c].isna().all()]
    if unanswered:
        raise MechValueError(f"{path}: item column(s) {unanswered} hold no answer on the 1-6 scale")
    scores = pd.DataFrame(
        {v: 7 - x[[c for c in items if CODES[c[:2]] == v]].mean(axis=1) for v in SCHWARTZ_VALUES}
    ).dropna()
    if len(scores) < len(SCHWARTZ_VALUES) + 2:
        raise MechValueError(
            f"{path}: only {len(scores)} people answered every value's items on the 1-6 scale; "
            f"a graph needs at least {len(SCHWARTZ_VALUES) + 2}"
        )
    const = [v for v in SCHWARTZ_VALUES if scores[v].nunique() <= 1]
    if const:
        raise MechValueError(
            f"{path}: value score(s) {const} are the same for everyone; no graph can be learned"
        )
    return scores


def human_graph(path: str | Path, alpha: float = 0.05, method: str = "pc") -> ValueGraph:
    return learn_graph(pvq40_value_scores(path), method, alpha)


def correlation_file(path: str | Path) -> tuple[np.ndarray, list[str]]:
    """A square, symmetric correlation matrix saved as CSV with the value names as index and header."""
    df = read_csv(path, "correlation matrix", index_col=0)
    names = [str(c) for c in df.columns]
    if [str(i).strip() for i in df.index] != names:
        raise MechValueError(f"{path}: row names {list(df.index)} differ from column names {names}")
    corr = numeric(df, names, path).to_numpy(dtype=float)
    if not np.allclose(corr, corr.T, atol=1e-6) or not np.allclose(np.diag(corr), 1, atol=1e-6):
        raise MechValueError(f"{path}: not a correlation matrix (asymmetric or diagonal != 1)")
    return corr, names
