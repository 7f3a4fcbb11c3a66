"""Validity results to files (CSV, JSON, one PNG) and back: the data of the report's section."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from mechvalue.analysis.status import ALPHA_MIN, ICC1_MIN, RULE, failing, value_status
from mechvalue.io import atomic_path, write_csv, write_json

THRESHOLDS = {
    "alpha_min": ALPHA_MIN,
    "alpha_source": "Nunnally (1978): .70 for research instruments",
    "icc1_min": ICC1_MIN,
    "icc1_source": "LeBreton & Senter (2008): ICC(1) .01/.10/.25 = "
    "small/medium/large between-group variance; < .05 = roles barely move the value",
    "rule": RULE,
}


def _clean(x):
    """JSON-safe: NaN -> None, numpy scalars -> Python."""
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if hasattr(x, "item"):
        x = x.item()
    return None if isinstance(x, float) and not math.isfinite(x) else x


def summary(res: dict) -> dict:
    """The headline numbers: median alpha/omega/ICC(1), flagged values, structure, known groups, forms."""
    rel = res["reliability"]
    status = value_status(rel, res.get("reliability_centered"))
    out = {
        "thresholds": THRESHOLDS,
        "values": len(rel),
        "respondents": int(rel["n_respondents"].max()),
        "median_alpha": float(rel["alpha"].median()),
        "median_omega": float(rel["omega"].median()),
        "median_icc1": float(rel["icc1"].median()),
        "flagged": failing(status),
        "noise": float(res.get("noise", 0.0)),
        "measurements": status,
    }
    if "reliability_centered" in res:
        c = res["reliability_centered"]
        out |= {f"median_{k}_centered": float(c[k].median()) for k in ("alpha", "omega", "icc1")}
    for key in ("human", "human_centered"):
        if key in res:
            sfx = key.removeprefix("human")
            out[f"human_median_alpha{sfx}"] = float(res[key]["alpha"].median())
            out[f"human_median_omega{sfx}"] = float(res[key]["omega"].median())
    st = res["structure"]
    out["circle_rho_model"], out["circle_p_model"] = st["model_circle"]["rho"], st["model_circle"]["p"]
    if "model_vs_human" in st:
        out["circle_rho_human"] = st["human_circle"]["rho"]
        out["matrix_r"], out["matrix_p"] = st["model_vs_human"]["r"], st["model_vs_human"]["p"]
    if "known_groups_summary" in res:
        out["known_groups"] = res["known_groups_summary"]
    if "forms" in res and len(res["forms"]):
        out["forms_median_rho"] = res["forms"].groupby("form")["rho"].median().to_dict()
    return _clean(out)


def save(res: dict, out: str | Path, title: str = "") -> dict:
    """Write reliability.csv, human_reliability.csv (and their _centered twins), structure.json, known_groups.csv, forms.csv,
    validity.json (the summary) and validity.png into `out`; return the summary."""
    out = Path(out)
    for key, name in (
        ("reliability", "reliability"),
        ("reliability_centered", "reliability_centered"),
        ("human", "human_reliability"),
        ("human_centered", "human_reliability_centered"),
    ):
        if key in res:
            write_csv(res[key], out / f"{name}.csv")
    write_json(_clean(res["structure"]), out / "structure.json")
    if "known_groups" in res:
        write_csv(res["known_groups"], out / "known_groups.csv")
    if "forms" in res:
        write_csv(res["forms"], out / "forms.csv")
    s = summary(res)
    write_json(s, out / "validity.json")
    plot(res, out / "validity.png", title)
    return s


def plot(res: dict, path: Path, title: str = "") -> None:
    """Left: per value alpha, omega, ICC(1) (model; CI bars) and human alpha, omega; thresholds
    dashed. Right: mean correlation by distance on Schwartz's circle, model and human."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    rel = res["reliability"]
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(13, 4.8), gridspec_kw={"width_ratios": [2.2, 1]})
    x = np.arange(len(rel))
    for j, (col, color) in enumerate((("alpha", "C0"), ("omega", "C1"), ("icc1", "C2"))):
        if not np.isfinite(rel[col].to_numpy(float)).any():  # no bar to draw: no legend entry either
            continue
        lo, hi = rel.get(f"{col}_lo"), rel.get(f"{col}_hi")
        err = None if lo is None else np.abs(np.vstack([rel[col] - lo, hi - rel[col]]).astype(float))
        err = None if err is None else np.nan_to_num(err)
        ax.bar(
            x + (j - 1) * 0.25,
            rel[col].fillna(0),
            0.25,
            yerr=err,
            color=color,
            label=f"model {col}",
            capsize=2,
        )
    if "human" in res:
        h = res["human"].set_index("value").reindex(rel["value"])
        for off, col, mark in ((-0.25, "alpha", "k^"), (0.0, "omega", "kv")):
            if np.isfinite(h[col].to_numpy(float)).any():
                ax.plot(x + off, h[col], mark, label=f"human {col}")
    ax.axhline(ALPHA_MIN, color="C0", ls="--", lw=0.8)
    ax.axhline(ICC1_MIN, color="C2", ls="--", lw=0.8)
    ax.set_xticks(x, rel["value"], rotation=35, ha="right", fontsize=8)
    ax.set_ylim(min(-0.2, float(np.nanmin(rel[["alpha", "icc1"]].to_numpy(float), initial=0))), 1)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, ncol=5, loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
    fig.suptitle(title or "reliability per value", fontsize=9)
    for key, style, name in (("model_circle", "o-", "model"), ("human_circle", "s--", "human")):
        c = res["structure"].get(key)
        if c and c["mean_r_by_distance"]:
            d = sorted(c["mean_r_by_distance"])
            bx.plot(d, [c["mean_r_by_distance"][k] for k in d], style, label=f"{name} (rho={c['rho']:.2f})")
    bx.set_xlabel("distance on Schwartz's circle")
    bx.set_ylabel("mean correlation")
    if bx.get_legend_handles_labels()[0]:
        bx.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def report_section(folder: str | Path, summary: dict | None = None) -> dict | None:
    """What the report shows for validity (None if the stage did not run): the summary
    (validity.json, or `summary` when the caller has read it), the per-value table (model
    alpha/omega/ICC(1) with CIs and each value's status under the one pass rule, the same centred on each role's mean, human
    alpha/omega raw and centred beside it), known-group hits, form correlations and the figure's path."""
    import json

    folder = Path(folder)
    if not (folder / "validity.json").exists():
        return None
    cols = [
        "value",
        "n_items",
        "n_respondents",
        "alpha",
        "alpha_lo",
        "alpha_hi",
        "omega",
        "omega_lo",
        "omega_hi",
        "icc1",
        "icc1_lo",
        "icc1_hi",
    ]
    rel = pd.read_csv(folder / "reliability.csv", keep_default_na=False, na_values=[""])
    cen = folder / "reliability_centered.csv"
    status = value_status(rel, pd.read_csv(cen) if cen.exists() else None)
    rel = rel[cols].assign(status=[status[str(v)] for v in rel["value"]])
    extra = (
        ("reliability_centered.csv", ["alpha", "omega", "icc1"], "_centered"),
        ("human_reliability.csv", ["alpha", "omega"], "human_"),
        ("human_reliability_centered.csv", ["alpha", "omega"], "human_centered_"),
    )
    for name, keep, tag in extra:
        if (folder / name).exists():
            e = pd.read_csv(folder / name).set_index("value")[keep]
            e.columns = [f"{tag}{c}" if tag.endswith("_") else f"{c}{tag}" for c in keep]
            rel = rel.merge(e, left_on="value", right_index=True, how="left")
    out = {
        "summary": summary if summary is not None else json.loads((folder / "validity.json").read_text()),
        "table": _clean(rel.to_dict("records")),
        "figure": str(folder / "validity.png"),
    }
    for name in ("known_groups", "forms"):
        if (folder / f"{name}.csv").exists():
            out[name] = _clean(pd.read_csv(folder / f"{name}.csv").to_dict("records"))
    if (folder / "graph_warnings.json").exists():
        out["graph_warnings"] = json.loads((folder / "graph_warnings.json").read_text())
    return out


def scorer_table(
    folders: dict[str, str | Path], human: str | Path | None = None, centered: bool = False
) -> pd.DataFrame:
    """Per value alpha, omega, ICC(1) under each scorer (`folders`: scorer -> a `validity` output
    folder) and human alpha, omega (from `human`'s human_reliability.csv, else the first that has one);
    `centered`: the respondent-centred figures."""
    sfx = "_centered" if centered else ""
    parts = []
    for name, folder in folders.items():
        r = pd.read_csv(Path(folder) / f"reliability{sfx}.csv").set_index("value")[["alpha", "omega", "icc1"]]
        parts.append(r.add_prefix(f"{name}_"))
    hfile = Path(human) / f"human_reliability{sfx}.csv" if human else None
    if hfile is None:
        hfile = next(
            (
                Path(f) / f"human_reliability{sfx}.csv"
                for f in folders.values()
                if (Path(f) / f"human_reliability{sfx}.csv").exists()
            ),
            None,
        )
    if hfile is not None and hfile.exists():
        parts.append(pd.read_csv(hfile).set_index("value")[["alpha", "omega"]].add_prefix("human_"))
    return pd.concat(parts, axis=1).reset_index()
