"""How numbers reach the report's page: rounded, no "nan"/"None", no Python literals, no index
column; colour scales that fit the data."""

import math

import numpy as np
import pandas as pd

from mechvalue.analysis.plots import color_scale
from mechvalue.pipeline.report.blocks import MISSING, fmt, fmt_ci, kv, table


def test_fmt_never_writes_nan_none_or_a_python_literal():
    assert fmt(float("nan")) == fmt(None) == fmt(math.inf) == fmt(np.float32("nan")) == MISSING
    assert (
        fmt(0.123456) == "0.123"
        and fmt(-4.4e-5) == "-4.4e-05"
        and fmt(30.0) == "30"
        and fmt(np.int64(7)) == "7"
    )
    assert fmt(True) == "yes" and fmt("") == MISSING
    assert fmt({"roles": 1, "d_sae": 512}) == "roles: 1; d_sae: 512"
    assert fmt([0.5, None, "x"]) == "0.500, —, x"
    assert fmt_ci(float("nan"), 0.2) == MISSING and fmt_ci(0.1, 0.25) == "[0.10, 0.25]"
    assert fmt_ci(-0.0191, -0.0188) == "[-0.0191, -0.0188]"  # never two different ends printed alike
    assert fmt_ci(-0.019, -0.019) == "none: every resample gave -0.019"


def test_table_has_no_index_and_formats_each_column():
    df = pd.DataFrame(
        {"value": ["Power", "Tradition"], "alpha": [0.71234, np.nan], "n": [3, 4]}, index=[7, 8]
    )
    t = table(df, {"alpha": 2})
    assert t["columns"] == ["value", "alpha", "n"] and t["rows"] == [
        ["Power", "0.71", "3"],
        ["Tradition", MISSING, "4"],
    ]
    assert t["numeric"] == [False, True, True]
    assert kv({"strength": 30.0, "human": None})["pairs"] == [("strength", "30"), ("human", MISSING)]


def test_colour_scale_fits_the_data():
    cmap, lo, hi = color_scale(np.array([-0.31, -0.30, -0.29]))  # all negative: no bar up to +0.075
    assert cmap == "Reds_r" and lo == -0.31 and hi == -0.29
    cmap, lo, hi = color_scale(np.array([0.1, 0.4]))
    assert cmap == "Blues" and (lo, hi) == (0.1, 0.4)
    cmap, lo, hi = color_scale(np.array([-0.2, 0.05, np.nan]))
    assert cmap == "RdBu" and (lo, hi) == (-0.2, 0.2)
    cmap, lo, hi = color_scale(np.array([-0.3, -0.3]))
    assert lo < -0.3 < hi <= 0
