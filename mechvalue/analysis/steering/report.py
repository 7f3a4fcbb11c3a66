"""What the comparison concludes and shows: per value and method the best admissible strength,
the winners and the verdict sentence, the trade-off and selectivity plots, and the report's
section (read back from the run folder)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from mechvalue.analysis.steering.design import describe


def best_table(cmp: pd.DataFrame) -> pd.DataFrame:
    """Per value and method: the admissible strength (KL under the bound) with the largest efficacy."""
    if cmp.empty or "efficacy" not in cmp:
        return pd.DataFrame(columns=["value", "method", "strength", "efficacy"])
    ok = cmp[cmp["admissible"].fillna(False).astype(bool) & cmp["efficacy"].notna()]
    best = ok.sort_values("efficacy", ascending=False).drop_duplicates(["value", "method"])
    miss = (
        cmp[["value", "method"]]
        .drop_duplicates()
        .merge(best[["value", "method"]], how="left", indicator=True)
    )
    miss = miss[miss["_merge"] == "left_only"].drop(columns="_merge").assign(note="no admissible strength")
    return pd.concat([best, miss], ignore_index=True).sort_values(["value", "method"]).reset_index(drop=True)


def winners(best: pd.DataFrame) -> dict:
    """Per value the method with the largest admissible efficacy, and overall the method with the
    largest mean admissible efficacy over values (NaN-free rows only)."""
    b = best.dropna(subset=["efficacy"]) if "efficacy" in best else best.iloc[0:0]
    if b.empty:
        return {"per_value": {}, "overall": None, "mean_efficacy": {}}
    per = b.loc[b.groupby("value")["efficacy"].idxmax()].set_index("value")["method"].to_dict()
    mean = b.groupby("method")["efficacy"].mean().sort_values(ascending=False)
    return {"per_value": per, "overall": mean.index[0], "mean_efficacy": mean.round(3).to_dict()}


def verdict(best: pd.DataFrame) -> str:
    """One sentence: which method won, per value and overall."""
    w = winners(best)
    if w["overall"] is None:
        return "No method had an admissible strength with enough test roles to be ranked."
    per = "; ".join(f"{v}: {m}" for v, m in w["per_value"].items())
    eff = w["mean_efficacy"]
    return (
        f"Overall {w['overall']} moved the targeted value most within the fluency bound "
        f"(mean {eff[w['overall']]:+.2f} between-role SD), winning per value: {per}."
    )


def plot_tradeoff(cmp: pd.DataFrame, bound: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mechvalue.analysis.plots import _save

    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    g = (
        cmp.dropna(subset=["efficacy"])
        .groupby(["method", "strength"])[["kl", "efficacy"]]
        .mean()
        .reset_index()
    )
    for m, d in g.groupby("method"):
        d = d.sort_values("strength")
        ax.plot(d["kl"], d["efficacy"], "o-", label=m)
    ax.axvline(bound, color="grey", ls="--", lw=1, label=f"fluency bound (KL {bound:g})")
    ax.set_xscale("symlog", linthresh=1e-3)
    ax.set_xlabel("fluency cost: mean KL(unsteered || steered), nats/token")
    ax.set_ylabel("efficacy (between-role SD), mean over values")
    ax.legend(fontsize=8)
    ax.set_title("Steering trade-off per method (points: strengths)")
    _save(fig, path)


def plot_selectivity(best: pd.DataFrame, path: Path) -> None:
    from mechvalue.analysis.plots import heatmap

    if "selectivity" not in best or best["selectivity"].notna().sum() == 0:
        return
    t = best.pivot_table(index="method", columns="value", values="selectivity", aggfunc="first")
    lim = float(np.nanmax(np.abs(t.to_numpy()))) or 1.0
    heatmap(
        t, path, "Selectivity at the best admissible strength (target / mean off-target change)", -lim, lim
    )


def report_section(out: str | Path) -> dict:
    """What the report shows: the verdict sentence, the design's sentence, the best-strength table
    and the plot paths."""
    out = Path(out)
    if not (out / "summary.json").exists():
        return {"verdict": "steer-compare has not run", "best": [], "plots": []}
    summ = json.loads((out / "summary.json").read_text())
    if not (out / "best.csv").exists():  # the stage said why it did not run
        return {"verdict": summ["verdict"], "best": [], "plots": []}
    best = pd.read_csv(out / "best.csv")
    cols = [
        c
        for c in (
            "value",
            "method",
            "strength",
            "feature",
            "efficacy",
            "efficacy_lo",
            "efficacy_hi",
            "target_change",
            "share_up",
            "selectivity",
            "selectivity_lo",
            "selectivity_hi",
            "off_target",
            "kl",
            "ppl_ratio",
            "speed_ratio",
            "n_roles",
            "note",
        )
        if c in best
    ]
    design = json.loads((out / "design.json").read_text()) if (out / "design.json").exists() else {}
    return {
        "verdict": summ["verdict"],
        "design": describe(design["design"], design["spec"]["values"] or []) if "design" in design else "",
        "kl_bound": summ["kl_bound"],
        "min_roles": summ["min_roles"],
        "best": best[cols].to_dict("records"),
        "plots": [str(p) for p in (out / "tradeoff.png", out / "selectivity.png") if p.exists()],
    }
