"""How large a score difference must be to be more than measurement noise, and how much the
scores vary between roles.

A log-prob score is a difference of two probabilities computed in floating point; the same
prompt scored in another batch (other padding, other batch shape) comes back a little different.
Two estimates of that noise, of which the larger is used:
- rounding: `ROUNDING[dtype]` x the largest answer probability (p(yes) or p(no); |score| when
  the probabilities are not at hand). Measured on SmolLM2-135M-Instruct, the same 20 prompts
  scored in batches of 1, 7 and 20 differ by up to 2.6e-6 of the largest probability in float32
  and 3.3e-2 in bfloat16; `ROUNDING` is about 1.5-4x that (float16 scaled by its precision);
- repeats: the largest difference between two scorings of the same prompts (in `mechvalue run`,
  the steering grid's unsteered rows against the measure stage's rows of the same roles).

A difference (between two roles, or steered minus unsteered) counts only when it exceeds this
noise; a value whose between-role spread does not exceed it carries no between-role variance.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mechvalue.study.schema import by_role, value_columns

ROUNDING = {"float32": 1e-5, "float16": 6e-3, "bfloat16": 5e-2}  # x the largest answer probability


def rounding_floor(magnitudes, dtype: str = "float32") -> float:
    """ROUNDING[dtype] x the largest finite |magnitude| (answer probabilities, or scores); 0 for none."""
    a = np.abs(np.asarray(magnitudes, dtype=float))
    a = a[np.isfinite(a)]
    return float(ROUNDING.get(dtype, ROUNDING["float32"]) * a.max()) if a.size else 0.0


def repeat_difference(a: pd.DataFrame, b: pd.DataFrame) -> float | None:
    """The largest |difference| between two wide value tables' unsteered rows of the same roles
    and values (None when they share none)."""
    x, y = by_role(a), by_role(b)
    roles = [r for r in x.index.unique() if r in set(y.index)]
    cols = [c for c in x.columns if c in set(y.columns)]
    if not roles or not cols:
        return None
    x = x[~x.index.duplicated()].loc[roles, cols].astype(float)
    y = y[~y.index.duplicated()].loc[roles, cols].astype(float)
    d = (x - y).abs().to_numpy()
    return float(np.nanmax(d)) if np.isfinite(d).any() else None


def measurement_noise(
    values: pd.DataFrame, dtype: str = "float32", repeat: pd.DataFrame | None = None, probabilities=None
) -> dict:
    """The noise level of a wide value table's scores: {"noise", "rounding", "repeat", "dtype"}.
    `repeat`: another wide table scoring some of the same roles again (optional); `probabilities`:
    the answer probabilities behind the scores (default: the scores' own size)."""
    mags = values[value_columns(values)].to_numpy(float) if probabilities is None else probabilities
    rounding = rounding_floor(mags, dtype)
    rep = repeat_difference(values, repeat) if repeat is not None else None
    return {"noise": max(rounding, rep or 0.0), "rounding": rounding, "repeat": rep, "dtype": dtype}


def role_spread(values: pd.DataFrame) -> pd.Series:
    """Per value: the standard deviation of the unsteered scores across the named roles."""
    d = by_role(values).drop(index="", errors="ignore").astype(float)
    return d.std(ddof=1) if len(d) > 1 else pd.Series(0.0, index=d.columns)


def varying_values(values: pd.DataFrame, noise: float) -> list[str]:
    """The values whose between-role spread exceeds `noise` (file order)."""
    sd = role_spread(values)
    return [v for v in sd.index if sd[v] > noise]


def describe_noise(n: dict) -> str:
    """One sentence on how the noise level was set, for reports."""
    rep = (
        f"the largest difference between two scorings of the same prompts, {n['repeat']:.2g}"
        if n.get("repeat") is not None
        else "no repeated scoring to compare"
    )
    return (
        f"measurement noise {n['noise']:.2g} score units: the larger of {n['dtype']} rounding "
        f"({ROUNDING.get(n['dtype'], ROUNDING['float32']):g} x the largest answer probability = {n['rounding']:.2g}) and "
        f"{rep}"
    )
