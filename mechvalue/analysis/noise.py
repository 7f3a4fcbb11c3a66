"""How large a score difference must be to be more than measurement noise, and how much the
scores vary between roles: one noise model for every statistic, section and command.

A value's score for a role is the mean over that value's items, so a score is a sample of
items: another set of items for the same value would give another score. The noise is that
sampling error, measured by resampling (`item_noise`): the items of each value are drawn with
replacement (the same draw for every role, with a fixed seed) and each role's score is taken
relative to the mean over roles, so what stays is the role x item disagreement that a
difference between roles is judged against. From its standard error `se` per value:
- a difference between two scores of a value (two roles, steered minus unsteered, two
  known-group personas) is a *tie* when |difference| <= 1.96 sqrt(2) se (`noise_for`, `is_tie`);
- a value *varies between roles* when its between-role SD exceeds what noise alone reaches at
  95%: se sqrt(chi2_.95(n - 1) / (n - 1)) over n roles (`varies`).
Neither is ever below the floor of the scoring itself: float rounding of the dtype (`ROUNDING`
x the largest answer probability; measured on SmolLM2-135M-Instruct, the same 20 prompts scored
in batches of 1, 7 and 20 differ by up to 2.6e-6 of the largest probability in float32 and
3.3e-2 in bfloat16) and, where the same prompts were scored twice (`mechvalue run`: the steering
grid's unsteered rows against the measure stage's), the largest test-retest difference.
A noise given as one number (`as_noise(0.01)`, the `--noise` option) applies to every value.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from mechvalue.study.schema import by_role, value_columns

ROUNDING = {"float32": 1e-5, "float16": 6e-3, "bfloat16": 5e-2}  # x the largest answer probability
Z95 = 1.959963984540054  # two-sided 95% normal quantile
N_BOOT, SEED = 200, 0  # item resamples of the noise model, and their seed


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


def _respondent_items(long: pd.DataFrame) -> pd.DataFrame:
    """The unsteered rows of named roles of a long item table."""
    rows = long
    if "steer_dim" in rows.columns:
        rows = rows[rows["steer_dim"].isna()]
    return rows[rows["player_name"].notna() & (rows["player_name"].astype(str) != "")]


def item_noise(long: pd.DataFrame, n_boot: int = N_BOOT, seed: int = SEED) -> pd.DataFrame:
    """Per value of a long item table (player_name, value, item, score): `se`, the standard error
    of a role's score relative to the mean over roles when the value's items are resampled with
    replacement (one draw for all roles; `n_boot` draws, `seed`), pooled over roles (root mean
    square), scaled
    by sqrt(k / (k - 1)) for k items (the bootstrap's known shrinkage of a mean's SE); with
    `roles` and `items`. A value with one item has no item sampling to resample: se NaN."""
    rng = np.random.default_rng(seed)
    rows = []
    for v, g in _respondent_items(long).groupby("value", sort=False):
        x = g.pivot_table(index="player_name", columns="item", values="score", aggfunc="mean").to_numpy(float)
        x = x[np.isfinite(x).all(axis=1)]
        n, k = x.shape
        se = float("nan")
        if n >= 2 and k >= 2:
            draws = rng.integers(0, k, size=(n_boot, k))
            m = x[:, draws].mean(axis=2)  # roles x draws
            c = m - m.mean(axis=0, keepdims=True)
            # the bootstrap SE of a mean of k draws is sqrt((k-1)/k) of the sampling SE: undone
            se = float(np.sqrt(np.mean(c.var(axis=1, ddof=1)) * k / (k - 1)))
        rows.append({"value": str(v), "se": se, "roles": n, "items": k})
    return pd.DataFrame(rows, columns=["value", "se", "roles", "items"])


def _spread_factor(roles: int) -> float:
    """The between-role SD that pure noise of SE 1 reaches at 95% over `roles` roles."""
    return float(np.sqrt(stats.chi2.ppf(0.95, roles - 1) / (roles - 1))) if roles >= 2 else float("inf")


def measurement_noise(
    values: pd.DataFrame,
    dtype: str = "float32",
    repeat: pd.DataFrame | None = None,
    probabilities=None,
    items: pd.DataFrame | None = None,
) -> dict:
    """The noise model of a run's scores (`values`: the wide value table; `items`: its long item
    table, for the item resampling; `repeat`: another wide table scoring some of the same roles
    again; `probabilities`: the answer probabilities behind the scores, default their own size).
    Returns {"noise": the median over values of the tie threshold, "by_value": value -> tie
    threshold of a difference of two scores, "spread": value -> the between-role SD that noise
    reaches, "se": value -> item-resampling SE, "floor", "rounding", "repeat", "dtype", "n_boot",
    "seed"}; every threshold is at least `floor` (rounding, test-retest)."""
    mags = values[value_columns(values)].to_numpy(float) if probabilities is None else probabilities
    rounding = rounding_floor(mags, dtype)
    rep = repeat_difference(values, repeat) if repeat is not None else None
    floor = max(rounding, rep or 0.0)
    se = item_noise(items) if items is not None else pd.DataFrame(columns=["value", "se", "roles", "items"])
    by_value, spread, ses = {}, {}, {}
    for r in se.itertuples():
        if np.isfinite(r.se):
            ses[r.value] = r.se
            by_value[r.value] = max(Z95 * np.sqrt(2) * r.se, floor)
            spread[r.value] = max(r.se * _spread_factor(r.roles), floor)
    typical = float(np.median(list(by_value.values()))) if by_value else floor
    return {
        "noise": typical,
        "by_value": by_value,
        "spread": spread,
        "se": ses,
        "floor": floor,
        "rounding": rounding,
        "repeat": rep,
        "dtype": dtype,
        "n_boot": N_BOOT if items is not None else 0,
        "seed": SEED,
    }


def item_table_noise(long: pd.DataFrame, dtype: str = "float32") -> dict:
    """The noise model of a long item table alone (`validity`, `graph`, `protocols`): item
    resampling over its unsteered named roles, floored at `dtype` rounding of the answer
    probabilities (columns p_* / q_*; the scores where it has none)."""
    cols = [c for c in long.columns if str(c).startswith(("p_", "q_"))]
    mags = long[cols].to_numpy(float) if cols else long["score"].to_numpy(float)
    empty = pd.DataFrame({"steer_dim": [None], "player_name": [""]})
    return measurement_noise(empty, dtype, probabilities=mags, items=long)


def as_noise(noise: float | dict | None) -> dict:
    """A noise model from one number (the same threshold for every value and difference), or
    the model itself."""
    if isinstance(noise, dict):
        return noise
    x = float(noise or 0.0)
    return {"noise": x, "by_value": {}, "spread": {}, "se": {}, "floor": x, "rounding": x, "repeat": None}


def noise_for(noise: float | dict, value: str | None = None) -> float:
    """The tie threshold of a difference between two scores of `value` (score units): two scores
    this close or closer are a tie."""
    n = as_noise(noise)
    return float(n["by_value"].get(value, max(n["noise"], n["floor"])))


def score_noise(noise: float | dict, value: str | None = None) -> float:
    """The noise of one role's score of `value` relative to the mean over roles (95% half-width,
    score units; a difference of two such scores is tied at `noise_for`)."""
    n = as_noise(noise)
    return max(noise_for(n, value) / np.sqrt(2), n["floor"])


def is_tie(noise: float | dict, value: str | None, difference: float) -> bool:
    """Is `difference` (two scores of `value`) within the noise?"""
    return bool(abs(difference) <= noise_for(noise, value))


def spread_threshold(noise: float | dict, value: str | None = None) -> float:
    """The between-role SD of `value` that noise alone reaches (95%)."""
    n = as_noise(noise)
    return float(n["spread"].get(value, max(n["noise"], n["floor"])))


def varies(noise: float | dict, value: str | None, sd: float) -> bool:
    """Does `value`, with between-role SD `sd`, vary between roles beyond the noise?"""
    return bool(np.isfinite(sd) and sd > spread_threshold(noise, value))


def role_spread(values: pd.DataFrame) -> pd.Series:
    """Per value: the standard deviation of the unsteered scores across the named roles."""
    d = by_role(values).drop(index="", errors="ignore").astype(float)
    return d.std(ddof=1) if len(d) > 1 else pd.Series(0.0, index=d.columns)


def describe_noise(n: dict) -> str:
    """One sentence on how the noise level was set, for reports."""
    n = as_noise(n)
    rep = (
        f"a test-retest difference of {n['repeat']:.2g} (the same prompts scored twice)"
        if n.get("repeat") is not None
        else "no repeated scoring to compare"
    )
    floor = (
        f"never below the floor of {n['floor']:.2g}: the larger of {n.get('dtype', 'float32')} rounding "
        f"({n['rounding']:.2g}) and {rep}"
    )
    if not n["by_value"]:
        return f"measurement noise {n['noise']:.2g} score units, the same for every value ({floor})"
    lo, hi = min(n["by_value"].values()), max(n["by_value"].values())
    return (
        f"measurement noise from resampling each value's items ({n.get('n_boot', N_BOOT)} draws, seed "
        f"{n.get('seed', SEED)}): two scores of a value closer than 1.96 x sqrt(2) x their standard error "
        f"({lo:.2g} to {hi:.2g} score units over the values, median {n['noise']:.2g}) are a tie, "
        f"{floor}"
    )
