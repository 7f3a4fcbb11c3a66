"""The study's result tables from value tables: Table 1 (steering consistency), Table 2 (side
effects against a graph) and the direction pies, each exactly as the study computed it, plus
the improved versions (all roles, a random-graph baseline, bootstrap CIs, permutation p-values).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mechvalue.causal.compare import random_graph_like
from mechvalue.causal.graph import ValueGraph
from mechvalue.study.schema import by_role, steer_key, value_columns


def _nanmean(a) -> float:
    """Mean of the finite entries; NaN (without a warning) when there are none."""
    a = np.asarray(a, float)
    return float(np.nanmean(a)) if np.isfinite(a).any() else float("nan")


def _mean_shares(shares: pd.DataFrame) -> tuple[float, float]:
    """Mean over values of the expected and of the unexpected change share."""
    return _nanmean(shares.loc["expected"]), _nanmean(shares.loc["unexpected"])


def _score_grid(df: pd.DataFrame, value: str) -> pd.DataFrame:
    """Scores of one value: rows = steering condition key, columns = role ('' = no role)."""
    d = df.assign(_s=df["steer_dim"].map(steer_key), _p=df["player_name"].fillna(""))
    return d.pivot_table(index="_s", columns="_p", values=value, aggfunc="first")


def direction_counts(df: pd.DataFrame, features: list, values: list[str]) -> pd.DataFrame:
    """Per (feature, value): roles whose score rose / fell / stayed versus the same role unsteered."""
    rows = []
    for v in values:
        grid = _score_grid(df, v)
        base = grid.loc[""]
        for f in features:
            d = (grid.loc[steer_key(f)] - base).dropna()
            rows.append(
                {
                    "feature": steer_key(f),
                    "value": v,
                    "up": int((d > 0).sum()),
                    "down": int((d < 0).sum()),
                    "same": int((d == 0).sum()),
                }
            )
    return pd.DataFrame(rows, columns=["feature", "value", "up", "down", "same"])


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    pa, pb = a / a.sum(), b / b.sum()
    return float(pa @ pb / (np.linalg.norm(pa) * np.linalg.norm(pb)))


def table1(train: pd.DataFrame, test: pd.DataFrame, features: list, exclude_values: list[str] = ()) -> dict:
    """Cell similarity = cosine of train and test up/down/same proportions; mean per feature;
    noise ratio per value = mean over features of the smallest train proportion. Values with items
    on one side of the split only (a small inventory) are left out."""
    values = [v for v in value_columns(train) if v in set(value_columns(test)) - set(exclude_values)]
    a, b = direction_counts(train, features, values), direction_counts(test, features, values)
    m = a.merge(b, on=["feature", "value"], suffixes=("_train", "_test"))
    cols = ["up", "down", "same"]
    tr = m[[c + "_train" for c in cols]].to_numpy(float)
    te = m[[c + "_test" for c in cols]].to_numpy(float)
    m["similarity"] = [_cos(x, y) for x, y in zip(tr, te)]
    m["train_min_share"] = (tr / tr.sum(1, keepdims=True)).min(1)
    mean_sim = m.groupby("feature", sort=False)["similarity"].mean()
    noise = m.groupby("value", sort=False)["train_min_share"].mean()
    return {"cells": m, "mean_similarity": mean_sim.to_dict(), "noise_ratio": noise.to_dict()}


def change_shares(changes: pd.DataFrame, graph: ValueGraph) -> pd.DataFrame:
    """The study's side-effect statistic per value v, from a table of score changes.

    Among rows where v changed, the share of rows where u also changed, averaged over u that
    are descendants of v ("expected") and over all other u ("unexpected").
    """
    values = list(changes.columns)
    out = {}
    for v in values:
        desc = graph.descendants(v) & set(values)
        others = set(values) - desc - {v}
        moved = changes[changes[v] != 0]
        share = moved.astype(bool).mean(axis=0)
        exp = [share[u] for u in values if u in desc]
        une = [share[u] for u in values if u in others]
        out[v] = {"expected": np.mean(exp) if exp else np.nan, "unexpected": np.mean(une) if une else np.nan}
    return pd.DataFrame(out)


def prompt_changes(test: pd.DataFrame, baseline_role: str | None = None) -> pd.DataFrame:
    """Unsteered rows with a role, as changes against the first role (or `baseline_role`)."""
    d = by_role(test).drop(index="", errors="ignore").astype(float)
    base = d.loc[baseline_role] if baseline_role else d.iloc[0]
    return d - base


def sae_changes(test: pd.DataFrame, role: str | None, features: list | None = None) -> pd.DataFrame:
    """One role's rows, steered by each feature, as changes against that role unsteered."""
    values = value_columns(test)
    who = test["player_name"].isna() if role is None else test["player_name"].eq(role)
    d = test[who].assign(_s=test["steer_dim"].map(steer_key))
    if d.empty:
        raise ValueError(f"no rows for role {role!r}")
    if features is not None:
        d = d[d["_s"].isin({""} | {steer_key(f) for f in features})]
    d = d.set_index("_s")[values].astype(float)
    return d - d.loc[""]


def table2(
    test: pd.DataFrame, learned: ValueGraph, reference: ValueGraph, role: str, features: list | None = None
) -> dict:
    """The study's Table 2: per-value shares and their mean over values, both halves, both graphs."""
    halves = {"prompt": prompt_changes(test), "sae": sae_changes(test, role, features)}
    out: dict = {"per_value": {}}
    for half, ch in halves.items():
        out[half] = {}
        for gname, g in (("learned", learned), ("reference", reference)):
            t = change_shares(ch, g)
            out["per_value"][f"{half}_{gname}"] = t.to_dict()
            out[half][gname] = dict(zip(("expected", "unexpected"), _mean_shares(t)))
    return out


def _settle(changes: pd.DataFrame, tol: float) -> pd.DataFrame:
    return changes.where(changes.abs() > tol, 0.0)


def _gap(changes: pd.DataFrame, g: ValueGraph) -> float:
    expected, unexpected = _mean_shares(change_shares(changes, g))
    return expected - unexpected


def table2_improved(
    test: pd.DataFrame,
    graph: ValueGraph,
    features: list | None = None,
    n_boot: int = 200,
    n_null: int = 200,
    seed: int = 0,
    tol: float = 0.0,
) -> dict:
    """Table 2 done properly: SAE changes pooled over all roles; bootstrap CI over roles of the
    expected-minus-unexpected gap; p-value of that gap against random graphs with the same
    edge count ("expected changes more often than unexpected", beyond what any graph gives).
    `tol`: changes of at most this size count as unchanged (for continuous log-prob scores,
    where every value moves a little under any edit)."""
    rng = np.random.default_rng(seed)
    roles = list(test["player_name"].dropna().unique())
    per_role = {r: _settle(sae_changes(test, r, features).iloc[1:], tol) for r in roles}
    pooled = pd.concat(per_role.values(), ignore_index=True)
    prompt = _settle(prompt_changes(test), tol)
    res: dict = {}
    for half, ch, groups in (("sae", pooled, per_role), ("prompt", prompt, None)):
        exp, une = _mean_shares(change_shares(ch, graph))
        gap = exp - une
        boots = []
        for _ in range(n_boot):
            if groups:
                pick = rng.choice(roles, size=len(roles), replace=True)
                sample = pd.concat([groups[r] for r in pick], ignore_index=True)
            else:
                sample = ch.iloc[rng.integers(0, len(ch), len(ch))]
            boots.append(_gap(sample, graph))
        null = np.array([_gap(ch, random_graph_like(graph, rng)) for _ in range(n_null)])
        boots = np.array(boots)
        lo, hi = np.nanpercentile(boots, [2.5, 97.5]) if np.isfinite(boots).any() else (np.nan, np.nan)
        defined = np.isfinite(gap)  # no value ever changed: no gap, no p-values
        res[half] = {
            "expected": exp,
            "unexpected": une,
            "gap": gap,
            "gap_ci95": [float(lo), float(hi)],
            "random_graph_gap_mean": _nanmean(null),
            "p_vs_random_graph": float((1 + (null >= gap).sum()) / (1 + n_null)) if defined else float("nan"),
            "p_gap_positive": float((1 + (boots <= 0).sum()) / (1 + n_boot)) if defined else float("nan"),
            "n_rows": int(len(ch)),
            "tol": tol,
        }
    return res


def pies(test: pd.DataFrame, compare: pd.DataFrame, chosen: dict[str, object]) -> dict:
    """Direction of change of each targeted value: SAE steering (its chosen feature) and the
    hard prompt, versus the unsteered rows of the same roles, pooled over values, in %."""
    out = {"sae": np.zeros(3), "hard_prompt": np.zeros(3)}
    none = by_role(test)
    cmp = compare.set_index(compare["player_name"].fillna(""))
    for value, feat in chosen.items():
        steered = by_role(test, feat)
        for name, other in (("sae", steered), ("hard_prompt", cmp)):
            d = (other[value] - none[value]).dropna()
            out[name] += [(d > 0).sum(), (d == 0).sum(), (d < 0).sum()]
    return {
        k: dict(zip(("up", "unchanged", "down"), (100 * v / v.sum()).round(1).tolist())) | {"n": int(v.sum())}
        for k, v in out.items()
    }
