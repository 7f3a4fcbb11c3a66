"""The report's building blocks and how numbers read on its page.

A section is a title and a list of typed blocks (text, note, warning, heading, figures, table,
key-value pairs, generations) that `mechvalue/pipeline/templates/report.html.j2` renders. Every value reaches the
page through `fmt`: rounded, missing values as an em dash (never "nan" or "None"), lists and
mappings as plain text (never a Python literal). Tables carry no index column; the template puts
each in a box that scrolls sideways inside the page when it is wider than the page.
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

Block = dict
MISSING = "—"  # an undefined or missing number; each section says why
NUMBERISH = re.compile(r"^(—|\[[-+\d.e]+, [-+\d.e]+\])$")  # a cell that is an interval or missing


def fmt(x, digits: int = 3) -> str:
    """A value as people read it: floats to `digits` decimals (tiny ones in 2 significant digits,
    whole ones as integers), integers plainly, booleans as yes/no, missing or non-finite as MISSING, lists joined with
    commas, mappings as "key: value" pairs."""
    if x is None:
        return MISSING
    if isinstance(x, (bool, np.bool_)):
        return "yes" if x else "no"
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    if isinstance(x, (float, np.floating)):
        x = float(x)
        if not math.isfinite(x):
            return MISSING
        if x.is_integer() and abs(x) < 1e15:
            return str(int(x))
        return f"{x:.2g}" if abs(x) < 0.5 * 10**-digits else f"{x:.{digits}f}"
    if isinstance(x, Mapping):
        return "; ".join(f"{k}: {fmt(v, digits)}" for k, v in x.items()) or MISSING
    if isinstance(x, (list, tuple, set, np.ndarray)):
        return ", ".join(fmt(v, digits) for v in x) or MISSING
    if isinstance(x, str):
        return x if x.strip() else MISSING
    return str(x)


def fmt_ci(lo, hi, digits: int = 2) -> str:
    """A confidence interval as "[lo, hi]" (fixed decimals, more where `digits` would print two
    different ends alike), "none: every resample gave x" when both ends are the same number, or
    MISSING when either end is undefined."""
    if any(v is None or not math.isfinite(float(v)) for v in (lo, hi)):
        return MISSING
    lo, hi = float(lo), float(hi)
    if lo == hi:
        return f"none: every resample gave {fmt(lo, digits + 1)}"
    while digits < 8 and f"{lo:.{digits}f}" == f"{hi:.{digits}f}":
        digits += 1
    end = lambda x: f"{x:.{digits}f}" if abs(x) >= 0.5 * 10**-digits or x == 0 else f"{x:.2g}"  # noqa: E731
    return f"[{end(lo)}, {end(hi)}]"


def text(s: str) -> Block:
    return {"kind": "text", "text": s}


def note(s: str) -> Block:
    return {"kind": "note", "text": s}


def warning(s: str) -> Block:
    """A result that is undefined or rests on too little, said plainly where it would have been."""
    return {"kind": "warning", "text": s}


def heading(s: str) -> Block:
    return {"kind": "heading", "text": s}


def figures(*paths_captions: tuple[Path, str]) -> Block:
    """PNG files embedded as base64 (missing files are left out)."""
    figs = [
        {"b64": base64.b64encode(Path(p).read_bytes()).decode(), "caption": c}
        for p, c in paths_captions
        if Path(p).exists()
    ]
    return {"kind": "figures", "figures": figs}


def table(df: pd.DataFrame, digits: int | Mapping[str, int] = 3, caption: str = "") -> Block:
    """A table without its index (reset it first to keep it), each cell through `fmt`; `digits`
    per column where a mapping (default 3). Text columns are left-aligned, numbers right."""
    per = digits if isinstance(digits, Mapping) else {}
    default = 3 if isinstance(digits, Mapping) else digits
    cols = [str(c) for c in df.columns]
    rows = [[fmt(v, per.get(c, default)) for c, v in zip(cols, r)] for r in df.itertuples(index=False)]
    numeric = [  # numbers, and columns of intervals: right-aligned, never wrapped
        (pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c]))
        or all(NUMBERISH.match(row[j]) for row in rows)
        for j, c in enumerate(df.columns)
    ]
    return {"kind": "table", "columns": cols, "rows": rows, "numeric": numeric, "caption": caption}


def kv(pairs: Mapping | Iterable[tuple[str, object]], digits: int = 3) -> Block:
    """Label -> value rows (values through `fmt`)."""
    items = pairs.items() if isinstance(pairs, Mapping) else pairs
    return {"kind": "kv", "pairs": [(str(k), fmt(v, digits)) for k, v in items]}


def generations(rows: list[dict]) -> Block:
    """Model-written text: unsteered and steered continuations of the same question."""
    return {"kind": "generations", "rows": rows}
