"""One protocol's item table through the validity battery, and the protocols side by side.

Pure functions on long item tables (`measure`'s items.csv): per value, alpha and omega on raw
and respondent-centred scores with respondent-bootstrap CIs and ICC(1) with its CI
(`mechvalue.analysis.validity`); the matrix correlation and the circle ordering against the human
PVQ-40 data; known groups; the rank agreement between protocols; and the goal of issue 29: a value
*passes* when its centred alpha >= .70 and the lower end of its ICC(1) CI is above .05, and a
protocol meets the goal when at least 5 of the 10 values pass and its value correlations match
the human ones at r >= .6.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from mechvalue.analysis.noise import item_table_noise, noise_for
from mechvalue.analysis.status import ALPHA_MIN, ICC1_MIN, value_status
from mechvalue.analysis.validity import (
    center_scores,
    known_groups,
    reliability,
    structure,
    value_scores,
)

GOAL_VALUES = 5  # values that must pass
GOAL_MATRIX_R = 0.6
_REL = ["alpha", "alpha_lo", "alpha_hi", "omega", "omega_lo", "omega_hi", "icc1", "icc1_lo", "icc1_hi"]


def per_value(long: pd.DataFrame, n_boot: int, seed: int, noise: float | dict) -> pd.DataFrame:
    """Per value: raw and centred (suffix `_c`) alpha, omega, ICC(1) with CIs, and `passes`."""
    raw = reliability(long, n_boot, seed, noise)[
        ["value", "n_items", "n_respondents", *_REL, "role_sd", "varies"]
    ]
    cen = reliability(center_scores(long), n_boot, seed, noise)[["value", *_REL, "varies"]]
    out = raw.merge(cen[["value", *_REL]].rename(columns={c: f"{c}_c" for c in _REL}), on="value", how="left")
    status = value_status(raw, cen)
    out["passes"] = [status[v] == "" for v in out["value"]]
    return out


def battery(
    long: pd.DataFrame,
    human: pd.DataFrame | None,
    groups: dict | None,
    n_boot: int = 200,
    n_perm: int = 2000,
    seed: int = 0,
    dtype: str = "float32",
) -> tuple[dict, pd.DataFrame]:
    """(summary, per-value table) of one item table. The respondents are the named unsteered roles
    outside `groups`, unless every named role is a known-group persona (the known-groups persona
    set): then they are the respondents too. `human`: persons x values scores (or None)."""
    noise = item_table_noise(long, dtype)
    named = long[long["player_name"].notna()]
    resp = named
    if groups is not None and not named["player_name"].isin(list(groups)).all():
        resp = named[~named["player_name"].isin(list(groups))]
    vals = per_value(resp, n_boot, seed, noise)
    st = structure(resp, human, n_perm, seed)
    mh, circ = st.get("model_vs_human", {}), st["model_circle"]
    s = {"respondents": int(resp["player_name"].nunique()), "noise": noise_for(noise)}
    for k in ("alpha", "alpha_c", "omega", "omega_c", "icc1", "icc1_c"):
        s[f"median_{k}"] = float(vals[k].median()) if vals[k].notna().any() else float("nan")
    s["n_alpha_c"] = int((vals["alpha_c"] >= ALPHA_MIN).sum())
    s["n_icc1"] = int((vals["icc1_lo"] > ICC1_MIN).sum())
    s["n_pass"] = int(vals["passes"].sum())
    s["passing"] = ", ".join(vals.loc[vals["passes"], "value"])
    s |= {
        "matrix_r": mh.get("r", float("nan")),
        "matrix_p": mh.get("p", float("nan")),
        "circle_rho": circ.get("rho", float("nan")),
        "circle_p": circ.get("p", float("nan")),
    }
    if groups is not None and named["player_name"].isin(list(groups)).any():
        _, kg = known_groups(long, groups, noise)
        s |= {"kg_hits": kg["hits"], "kg_predictions": kg["predictions"], "kg_p": kg["p_sign"]}
    s["goal"] = bool(
        s["n_pass"] >= GOAL_VALUES and np.isfinite(s["matrix_r"]) and s["matrix_r"] >= GOAL_MATRIX_R
    )
    return s, vals


def rank_agreement(longs: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Label x label: the median over values of the Spearman correlation, across the respondents
    both share, between the two tables' value scores (NaN where under 3 shared or constant)."""
    scores = {k: value_scores(v[v["player_name"].notna()]) for k, v in longs.items()}
    names = list(scores)
    out = pd.DataFrame(np.nan, index=names, columns=names)
    for a in names:
        for b in names:
            x, y = scores[a], scores[b]
            rows = [r for r in x.index if r in set(y.index)]
            rhos = []
            for v in [c for c in x.columns if c in set(y.columns)]:
                xa, yb = x.loc[rows, v].to_numpy(float), y.loc[rows, v].to_numpy(float)
                if len(rows) >= 3 and xa.std() > 0 and yb.std() > 0:
                    rhos.append(stats.spearmanr(xa, yb)[0])
            out.loc[a, b] = float(np.median(rhos)) if rhos else np.nan
    return out


COLUMNS = {  # summary column -> markdown header
    "protocol": "protocol",
    "persona": "persona",
    "respondents": "roles",
    "median_alpha": "alpha",
    "median_alpha_c": "alpha c",
    "median_omega": "omega",
    "median_omega_c": "omega c",
    "median_icc1": "ICC(1)",
    "n_alpha_c": "alpha c>=.70",
    "n_icc1": "ICC lo>.05",
    "n_pass": "pass",
    "matrix_r": "matrix r",
    "matrix_p": "p",
    "circle_rho": "circle rho",
    "kg": "known groups",
    "items_per_s": "items/s",
    "goal": "goal",
}


def markdown(summary: pd.DataFrame) -> str:
    """The summary table in markdown (medians over the ten values; counts of values out of ten)."""
    df = summary.copy()
    if "kg_hits" in df:
        df["kg"] = [
            f"{int(h)}/{int(n)} (p {p:.2f})" if pd.notna(h) else "n/a"
            for h, n, p in zip(df["kg_hits"], df["kg_predictions"], df["kg_p"])
        ]
    cols = [c for c in COLUMNS if c in df.columns]

    def fmt(c, x):
        if isinstance(x, bool | np.bool_):
            return "**met**" if x else "no"
        if isinstance(x, float | np.floating):
            return "n/a" if not np.isfinite(x) else f"{x:.1f}" if c == "items_per_s" else f"{x:.2f}"
        return str(x)

    lines = ["| " + " | ".join(COLUMNS[c] for c in cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(c, r[c]) for c in cols) + " |" for r in df.to_dict("records")]
    return "\n".join(lines)
