"""Reading the files a user hands mechvalue: CSV and JSON, with every way they can be broken
(missing, empty, not UTF-8, unparsable, duplicated or blank column names, non-numeric or missing
numbers) turned into one `MechValueError` line naming the file, and the column and row at fault."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mechvalue.errors import MechValueError


def read_text(path: str | Path, what: str) -> str:
    """The file's text (UTF-8, BOM allowed), or an error saying why it cannot be read."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise MechValueError(f"{p}: no such {what} file") from None
    except IsADirectoryError:
        raise MechValueError(f"{p}: is a folder, not a {what} file") from None
    except OSError as e:
        raise MechValueError(f"{p}: cannot read {what} ({e.strerror})") from None
    if not data.strip():
        raise MechValueError(f"{p}: the {what} file is empty")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise MechValueError(
            f"{p}: the {what} file is not UTF-8 text (byte {e.start}); save it as UTF-8"
        ) from None
    if "\x00" in text:
        raise MechValueError(
            f"{p}: the {what} file holds NUL bytes (binary, or UTF-16); save it as UTF-8 CSV/JSON"
        )
    return text


def read_csv(path: str | Path, what: str, **kw: Any) -> pd.DataFrame:
    """A CSV whose header names are present, unique and non-blank; `kw` go to `pandas.read_csv`."""
    text = read_text(path, what)
    try:
        rows = csv.reader(io.StringIO(text))
        header = next(rows)
        for i, row in enumerate(rows, start=2):  # a row with more or fewer fields than the header
            if row and len(row) != len(header):
                raise MechValueError(
                    f"{path}: {what} row {i} has {len(row)} fields, the header {len(header)}"
                )
    except (csv.Error, StopIteration) as e:
        raise MechValueError(f"{path}: {what} is not CSV ({e})") from None
    names = [h.strip() for h in header[1:]] if kw.get("index_col") == 0 else [h.strip() for h in header]
    blank = [i + 1 for i, h in enumerate(names) if not h]
    if blank:
        raise MechValueError(f"{path}: {what} column {blank[0]} has no name in the header")
    dup = sorted({h for h in names if names.count(h) > 1})
    if dup:
        raise MechValueError(f"{path}: {what} has duplicated column(s) {dup}")
    try:
        df = pd.read_csv(io.StringIO(text), **kw)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError, csv.Error) as e:
        msg = " ".join(str(e).split())[:200]
        raise MechValueError(f"{path}: {what} is not a readable CSV ({msg})") from None
    if df.empty:
        raise MechValueError(f"{path}: the {what} file has a header but no rows")
    df.columns = [str(c).strip() for c in df.columns]
    return df


def numeric(df: pd.DataFrame, columns: list[str], path: str | Path, allow_nan: bool = False) -> pd.DataFrame:
    """`columns` as floats; a non-number (or, unless allowed, an empty cell or NaN) is an error
    naming the column and the file's row (header = row 1)."""
    out = df.copy()
    for c in columns:
        x = pd.to_numeric(df[c], errors="coerce")
        given = df[c].notna() & (df[c].astype(str).str.strip() != "")
        bad = given & x.isna() & ~df[c].astype(str).str.strip().str.lower().isin(["nan", "na", "n/a"])
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise MechValueError(f"{path}: column {c!r}, row {i + 2}: {df[c].iloc[i]!r} is not a number")
        if not allow_nan and x.isna().any():
            i = int(np.flatnonzero(x.isna().to_numpy())[0])
            raise MechValueError(f"{path}: column {c!r}, row {i + 2} is empty or NaN")
        if np.isinf(x.to_numpy(dtype=float)).any():
            i = int(np.flatnonzero(np.isinf(x.to_numpy(dtype=float)))[0])
            raise MechValueError(f"{path}: column {c!r}, row {i + 2} is infinite")
        out[c] = x.astype(float)
    return out


def read_json(path: str | Path, what: str) -> Any:
    text = read_text(path, what)
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise MechValueError(
            f"{path}: {what} is not valid JSON ({e.msg} at line {e.lineno}, column {e.colno})"
        ) from None
    except RecursionError:
        raise MechValueError(f"{path}: {what} is nested too deeply") from None
