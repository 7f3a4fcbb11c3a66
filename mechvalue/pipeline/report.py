"""The self-contained HTML report of a `mechvalue run` folder (images embedded as base64)."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

import pandas as pd

from mechvalue.io import atomic_path

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;color:#222;line-height:1.45}
h1{font-size:1.6em}h2{border-bottom:2px solid #4a6d8c;padding-bottom:.2em;margin-top:2em;font-size:1.25em}
table{border-collapse:collapse;margin:.6em 0;font-size:.85em}td,th{border:1px solid #ccc;padding:.25em .55em;text-align:right}
th{background:#eef3f8}td:first-child,th:first-child{text-align:left}.row{display:flex;gap:1em;flex-wrap:wrap}
.row figure{flex:1;min-width:320px;margin:0}img{max-width:100%}figcaption{font-size:.85em;color:#555}
.note{color:#555;font-size:.9em}.gen td{text-align:left;vertical-align:top;max-width:420px;white-space:pre-wrap;overflow-wrap:anywhere}
code{background:#f3f3f3;padding:0 .25em}
"""


def _img(path: Path, caption: str = "") -> str:
    if not path.exists():
        return ""
    b64 = base64.b64encode(path.read_bytes()).decode()
    return f'<figure><img src="data:image/png;base64,{b64}" alt="{html.escape(caption)}"><figcaption>{html.escape(caption)}</figcaption></figure>'


def _table(df: pd.DataFrame, digits: int = 3) -> str:
    return df.to_html(float_format=lambda x: f"{x:.{digits}f}", border=0, na_rep="")


def _fmt(x) -> str:
    return f"{x:.3f}" if isinstance(x, float) else html.escape(str(x))


def _kv(d: dict) -> str:
    return (
        "<table>"
        + "".join(f"<tr><th>{html.escape(str(k))}</th><td>{_fmt(v)}</td></tr>" for k, v in d.items())
        + "</table>"
    )


def write_report(ws, d: Path, stages: list[str]) -> Path:
    from mechvalue.analysis.attribution import attribution_agreement
    from mechvalue.analysis.plots import heatmap

    out = ws.out
    load = lambda *p: json.loads(out.joinpath(*p).read_text())  # noqa: E731
    conf, sae, graph, tabs = (
        load("config.json"),
        load("sae", "sae.json"),
        load("graph", "summary.json"),
        load("tables", "tables.json"),
    )
    gens = load("generations", "generations.json")
    feats = load("features", "features.json")["features"]
    values = pd.read_csv(out / "measure" / "values.csv")
    prof = values.set_index(values["player_name"].fillna("(no role)")).drop(
        columns=["steer_dim", "player_name"]
    )
    pl = float(prof.abs().max().max()) or 1.0
    heatmap(prof, d / "profile.png", "value scores: agreement x (p(yes) - p(no)), mean per value", -pl, pl)
    eff = pd.read_csv(out / "tables" / "interventional.csv")
    emat = eff.pivot_table(index="feature", columns="value", values="effect", sort=False)
    lim = float(emat.abs().max().max()) or 1.0
    heatmap(emat, d / "effects.png", "interventional effect per typical unit of steering", -lim, lim)
    grad = pd.read_csv(out / "features" / "gradient_attribution.csv").set_index("feature")[emat.columns]
    corr = pd.read_csv(out / "features" / "correlation.csv").set_index("feature")[emat.columns]
    top_corr = pd.DataFrame({v: [f"{f} ({corr.loc[f, v]:+.2f})" for f in corr[v].abs().nlargest(3).index]
                             for v in corr.columns}, index=["1st", "2nd", "3rd"]).T  # fmt: skip
    agree = attribution_agreement(grad.loc[emat.index], emat)
    cmp = graph["compare"]
    obs = cmp["observed"]
    freqs = pd.read_csv(out / "graph" / "edge_frequencies.csv").head(15)
    t2df = pd.DataFrame(
        {
            f"{h} / {g}": tabs["table2_study"][h][g]
            for h in ("prompt", "sae")
            for g in ("learned", "reference")
        }
    ).T
    imp = pd.DataFrame({f"{h} / {g}": {**{k: v for k, v in tabs[f"table2_{g}"][h].items() if k != "gap_ci95"},
                                       "gap CI95": "[{:.3f}, {:.3f}]".format(*tabs[f"table2_{g}"][h]["gap_ci95"])}
                        for g in ("learned", "reference") for h in ("sae", "prompt")}).T  # fmt: skip
    side = pd.DataFrame({g: {k: tabs[f"side_effects_{g}"][k] for k in ("side_effects", "on_descendants", "share_on_descendants", "chance_share", "p_value")}
                         for g in ("learned", "reference")}).T  # fmt: skip
    gen_rows = "".join(
        f"<tr><td>{e['feature']}</td><td>{html.escape(e['question'])}</td><td>{html.escape(e['unsteered'])}</td><td>{html.escape(e['steered'])}</td></tr>"
        for e in gens["examples"]
    )
    feat_df = pd.DataFrame(feats).set_index("feature")
    top_value = emat.abs().idxmax(axis=1)
    feat_df["moves most"] = [top_value.get(f, "") for f in feat_df.index]
    pies = tabs.get("pies_positive")
    m = sae.get("metrics", {})
    timings = ws.timings(stages)
    parts = [
        f"<h1>mechvalue report: {html.escape(conf['settings']['model'])}</h1>",
        f"<p class=note>{len(prof)} prompts-roles ({len(prof) - 1} personas + no role), questionnaire "
        f"{html.escape(str(conf['settings']['questionnaire'] or 'shipped MVI10'))}; SAE at "
        f"<code>blocks.{conf['settings']['layer']}.hook_resid_post</code>; seed {conf['settings']['seed']}.</p>",
        "<h2>1. Value profile across roles</h2>",
        _img(
            d / "profile.png",
            "rows: roles, columns: values; blue = endorsed, red = rejected (colour scale: the largest |score|)",
        ),
        "<h2>2. Value graph: learned vs reference</h2>",
        '<div class="row">'
        + _img(
            out / "graph" / "learned.png",
            "PC (Fisher-z, alpha .05) on the unsteered rows; edge width = bootstrap frequency",
        )
        + _img(out / "graph" / "reference.png", graph["reference"])
        + "</div>",
        f"<p>{graph['edges']} learned edges, {graph['edges_recurring_80pct']} of them in at least 80% of "
        f"{conf['settings']['bootstrap']} role-bootstrap resamples.</p>",
        _kv(
            {
                "SHD (each differing pair counts 1)": obs["shd"],
                "skeleton precision": obs["skeleton_precision"],
                "skeleton recall": obs["skeleton_recall"],
                "skeleton F1": obs["skeleton_f1"],
                "p(SHD) vs random graphs": cmp["random_graph"]["p_shd"],
                "p(F1) vs random graphs": cmp["random_graph"]["p_skeleton_f1"],
                "p(SHD) vs permuted labels": cmp["permuted_labels"]["p_shd"],
                "null draws": cmp["n_null"],
            }
        ),  # fmt: skip
        "<h3>Most stable edges</h3>" + _table(freqs, 2),
        "<h2>3. SAE and the features behind each value</h2>",
        _kv(
            {
                k: m[k]
                for k in ("l0", "fve", "dead_frac", "loss_clean", "loss_spliced", "delta_loss", "rows")
                if k in m
            }
            | {"path": sae["path"]}
        ),
        _table(feat_df),
        _img(
            d / "effects.png",
            "change of each value score per typical unit of 'add' steering at ' your values' (mean over roles)",
        ),
        f"<p>Attribution patching (one backward pass, the derivative at strength 0) vs the effects measured "
        f"at strength {conf['settings']['strength']:g}: r = {agree:.3f} (a linear estimate; far from 0 it need not hold).</p>",
        "<h3>Gradient attribution (per typical unit)</h3>" + _table(grad, 4),
        "<h3>Features most correlated with each value across roles (answer-position activation vs score)</h3>"
        + _table(top_corr),
        "<h2>4. Steered generations</h2>",
        f"<p class=note>greedy, every position steered, add {gens['strength']:g} x typical activation.</p>",
        f'<table class="gen"><tr><th>feature</th><th>question</th><th>unsteered</th><th>steered</th></tr>{gen_rows}</table>',
        "<h2>5. Table 1: are steering effects consistent across item splits?</h2>",
        _table(pd.DataFrame({"mean similarity": tabs["table1"]["mean_similarity"]})),
        "<h2>6. Table 2: side effects against the graphs</h2>",
        "<h3>The study's statistic (one role for the SAE half)</h3>" + _table(t2df),
        "<p class=note>The study counts any change; with continuous log-prob scores every value moves a "
        "little under any edit, so its shares saturate near 1. The all-roles table below counts changes "
        f"larger than {tabs['table2_learned']['sae']['tol']:g}.</p>",
        "<h3>All roles, bootstrap CI of the expected - unexpected gap, p-values</h3>" + _table(imp),
        "<h3>Side effects of each feature on graph descendants of its target value</h3>" + _table(side),
        "<h3>Targeted value's direction: its strongest SAE feature vs the hard prompt 'inclined to V' (%)</h3>"
        if pies
        else "",
        (
            _kv(
                {f"SAE {k}": v for k, v in pies["sae"].items()}
                | {f"hard prompt {k}": v for k, v in pies["hard_prompt"].items()}
            )
            if pies
            else ""
        ),
        "<h2>7. Settings and timings</h2>",
        _kv(conf["settings"] | {"versions": ", ".join(f"{k} {v}" for k, v in conf["versions"].items())}),
        _kv({f"{k} (s)": float(v) for k, v in timings.items()}),
    ]
    page = f"<!doctype html><html><head><meta charset='utf-8'><title>mechvalue report</title><style>{CSS}</style></head><body>{''.join(parts)}</body></html>"
    path = d / "report.html"
    with atomic_path(path) as tmp:
        tmp.write_text(page)
    return path
