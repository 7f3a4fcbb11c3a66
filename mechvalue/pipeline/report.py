"""The self-contained HTML report of a `mechvalue run` folder (figures embedded as base64).

Each section is a function of the run folder and its grounds (`grounds.Grounds`: measurement
noise, between-role spread, roles and items, the largest steered change) that returns a title and
typed blocks (`report_blocks`). A section checks what its result stands on before it shows it:
a statistic that is undefined, or computed from scores that do not vary beyond the noise, or from
too few roles or items, is replaced by a sentence saying so. When no value varies between roles
the page opens with a banner saying that its numbers mean nothing and why, and every section
repeats it where it applies. The Jinja2 template `templates/report.html.j2` renders the blocks.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import jinja2
import numpy as np
import pandas as pd

from mechvalue.analysis.noise import describe_noise
from mechvalue.io import write_text
from mechvalue.pipeline.grounds import MIN_CORR_ROLES, Grounds, grounds
from mechvalue.pipeline.report_blocks import (
    MISSING,
    fmt,
    fmt_ci,
    generations,
    heading,
    kv,
    note,
    table,
    text,
    warning,
)
from mechvalue.pipeline.report_blocks import figures as figs
from mechvalue.pipeline.workspace import Workspace

Section = dict
SCORE_UNITS = "agreement x (p(yes) - p(no)), in [-1, 1]"


def _flat_warning(gr: Grounds, what: str) -> list[dict]:
    """The degenerate case, repeated in a section: `what` cannot mean anything."""
    if not gr.no_role_variance:
        return []
    return [
        warning(
            f"{what} Every persona scored the same (see the top of the page), so this rests on "
            "scores that carry no between-role variance."
        )
    ]


def _moves_warning(gr: Grounds) -> str:
    return (
        f"No steered change exceeds the measurement noise: the largest |steered - unsteered| score over "
        f"every steered condition, role and value is {fmt(gr.steer_change)} ({gr.noise_text()})."
    )


# ---------------------------------------------------------------- measure
def _profile(ws: Workspace, d: Path, gr: Grounds) -> Section:
    from mechvalue.analysis.plots import heatmap
    from mechvalue.study.schema import by_role

    prof = by_role(ws.read_csv("measure", "values.csv")).astype(float)
    prof.index = [r or "(no role)" for r in prof.index]
    blocks = [note(f"Stands on: {gr.scores_text()}")]
    if gr.no_role_variance:
        shared = pd.DataFrame(
            {
                "value": prof.columns,
                "score (every role)": prof.mean().to_numpy(),
                "between-role SD": [gr.role_sd.get(v) for v in prof.columns],
            }
        )
        return {
            "title": "Value profile across roles",
            "blocks": [
                *blocks,
                warning(
                    "Every persona scored the same: no value's between-role SD exceeds the measurement "
                    "noise, so a heatmap would show identical rows; it is not drawn. The one profile all "
                    "roles share:"
                ),
                table(shared, {"between-role SD": 2}),
            ],
        }
    heatmap(prof, d / "profile.png", "value scores per role", label="score")
    centred = prof.drop(index="(no role)", errors="ignore")
    centred = centred - centred.mean()
    heatmap(
        centred, d / "profile_centred.png", "score minus the value's mean over roles", label="score - mean"
    )
    blocks.append(
        figs(
            (d / "profile.png", "rows: roles, columns: values; colour scale fitted to the scores"),
            (
                d / "profile_centred.png",
                "each value's score minus its mean over the named roles: "
                "what the persona changes (red below the mean, blue above)",
            ),
        )
    )
    if gr.flat:
        blocks.append(
            warning(
                f"No between-role variance beyond the noise in {', '.join(gr.flat)}: their "
                "columns differ between roles only by rounding."
            )
        )
    return {"title": "Value profile across roles", "blocks": blocks}


# ---------------------------------------------------------------- graph
def _graph(ws: Workspace, d: Path, gr: Grounds) -> Section:
    g = ws.read_json("graph", "summary.json")
    title = "Value graph: learned vs reference"
    if not g.get("learned", True):
        return {"title": title, "blocks": [warning(f"No graph: {g['why']}.")]}
    cmp, obs = g["compare"], g["compare"]["observed"]
    vals = g.get("values") or gr.values
    blocks = [
        note(
            f"Stands on: PC (Fisher-z, alpha .05) over {len(vals)} values and {g['rows']} unsteered rows "
            f"(each role once, and the no-role prompt); edges are tested on correlations across roles."
        )
    ]
    blocks += _flat_warning(gr, "The graph is learned from these scores.")
    if g.get("no_role_variance"):
        blocks.append(
            warning(
                f"Left out of the graph (no between-role variance beyond the noise): "
                f"{', '.join(g['no_role_variance'])}."
            )
        )
    warn = ws.out / "validity" / "graph_warnings.json"
    if warn.exists():
        w = ws.read_json("validity", "graph_warnings.json")
        if w.get("nodes"):
            blocks.append(
                warning(
                    f"{len(w['edges'])} of {w['edges_total']} edges rest on values the validity "
                    f"checks flag as unreliable ({', '.join(w['nodes'])})."
                )
            )
    blocks += [
        figs(
            (
                ws.out / "graph" / "learned.png",
                "learned graph; edge width = share of role-bootstrap resamples",
            ),
            (ws.out / "graph" / "reference.png", f"reference: {g['reference']}"),
        ),
        text(
            f"{g['edges']} learned edges, {g['edges_recurring_80pct']} of them in at least 80% of "
            f"{ws.cfg.bootstrap} role-bootstrap resamples."
        ),
        kv(
            [
                ("structural Hamming distance (each differing pair counts 1)", obs["shd"]),
                (
                    "skeleton precision / recall / F1",
                    f"{fmt(obs['skeleton_precision'], 2)} / "
                    f"{fmt(obs['skeleton_recall'], 2)} / {fmt(obs['skeleton_f1'], 2)}",
                ),
                ("p(SHD this small) among random graphs with as many edges", cmp["random_graph"]["p_shd"]),
                ("p(F1 this large) among random graphs", cmp["random_graph"]["p_skeleton_f1"]),
                (
                    "p(SHD this small) with the learned graph's labels permuted",
                    cmp["permuted_labels"]["p_shd"],
                ),
                ("null draws", cmp["n_null"]),
            ]
        ),
    ]
    freqs = ws.read_csv("graph", "edge_frequencies.csv").head(15)
    if len(freqs):
        freqs = freqs.assign(freq=100 * freqs["freq"], skeleton_freq=100 * freqs["skeleton_freq"]).rename(
            columns={
                "kind": "edge kind",
                "freq": "this kind, % of resamples",
                "skeleton_freq": "any kind, % of resamples",
            }
        )
        blocks += [heading("Most stable edges"), table(freqs, 0)]
    return {"title": title, "blocks": blocks}


# ---------------------------------------------------------------- features
def feature_effects(ws: Workspace) -> dict:
    """The features section's data: effects (feature x value), gradient attribution, top correlated
    features per value, and the agreement of attribution patching with the measured effects."""
    from mechvalue.analysis.attribution import attribution_agreement

    eff = ws.read_csv("tables", "interventional.csv")
    emat = eff.pivot_table(index="feature", columns="value", values="effect", sort=False)
    grad = ws.read_csv("features", "gradient_attribution.csv").set_index("feature")[emat.columns]
    corr = ws.read_csv("features", "correlation.csv").set_index("feature")[emat.columns]
    top = pd.DataFrame(
        [
            {"value": v}
            | {
                k: f"feature {f} (r {corr.loc[f, v]:+.2f})"
                for k, f in zip(("1st", "2nd", "3rd"), corr[v].abs().nlargest(3).index)
            }
            for v in corr.columns
        ]
    )
    feats = pd.DataFrame(ws.read_json("features", "features.json")["features"])
    moves = emat.abs().idxmax(axis=1)
    feats["moves most"] = [moves.get(f, "") for f in feats["feature"]]
    return {
        "effects": emat,
        "gradient": grad,
        "top_correlated": top,
        "features": feats,
        "agreement": attribution_agreement(grad.loc[emat.index], emat),
        "n_roles": ws.cfg.grid_roles + 1,
        "strength": float(eff["strength"].iloc[0]) if len(eff) else float("nan"),
    }


def _sae_metrics(m: dict) -> list[tuple[str, object]]:
    labels = {
        "l0": "L0 (features active per token)",
        "fve": "fraction of variance explained",
        "dead_frac": "share of dead features",
        "loss_clean": "LM loss, clean (nats/token)",
        "loss_spliced": "LM loss with the SAE spliced in (nats/token)",
        "delta_loss": "LM loss increase (nats/token)",
        "rows": "training activations",
    }
    got = m.get("metrics", {})
    out = [(labels[k], got[k]) for k in labels if k in got]
    how = f" ({m['reused']}, reused)" if m.get("reused") else "" if m.get("trained") else " (given)"
    out.append(("SAE", m["path"] + how))
    return out


def _features(ws: Workspace, d: Path, gr: Grounds) -> Section:
    from mechvalue.analysis.plots import heatmap

    fe, m = feature_effects(ws), ws.read_json("sae", "sae.json")
    corr_info = ws.read_json("features", "features.json").get("correlation", {})
    n_roles = fe["n_roles"]
    blocks = [kv(_sae_metrics(m))]
    blocks += _flat_warning(
        gr, "Correlations with roles are undefined and feature effects are changes of one shared profile."
    )
    feats = fe["features"].rename(
        columns={
            "reason": "chosen by",
            "typical": "typical activation",
            "span_activation": "mean activation at ' your values'",
        }
    )
    if not gr.steering_moves:
        feats = feats.drop(columns=["moves most"])
    blocks += [heading("Steered features"), table(feats, 2)]
    blocks.append(
        note(
            f"Effects: change of each value score per typical unit of 'add' steering at ' your values' "
            f"(strength {fmt(fe['strength'])}), mean over {n_roles} roles; {gr.noise_text()}."
        )
    )
    if not gr.steering_moves:
        blocks.append(
            warning(
                _moves_warning(gr) + " The effects heatmap is not drawn, the attribution "
                "agreement is not computed, and no feature is said to move a value."
            )
        )
    else:
        heatmap(
            fe["effects"],
            d / "effects.png",
            "interventional effect per typical unit of steering",
            label="score change per typical unit",
        )
        blocks.append(
            figs((d / "effects.png", "rows: steered features, columns: values; red lowers, blue raises"))
        )
        r = fe["agreement"]
        blocks.append(
            text(
                f"Attribution patching (one backward pass, the derivative at strength 0) against the measured "
                f"effects: r = {fmt(r)} over {fe['effects'].size} feature x value cells (a linear estimate; far "
                "from 0 it need not hold)."
            )
            if np.isfinite(r)
            else warning(
                "Attribution patching against the measured effects: undefined (the gradients or the effects "
                "do not vary across features and values)."
            )
        )
    grad = fe["gradient"]
    if np.isfinite(grad.to_numpy(float)).any():
        blocks += [
            heading("Gradient attribution (score change per typical unit, linear estimate)"),
            table(grad.reset_index(), 4),
        ]
    blocks.append(
        heading("Features most correlated with each value across roles (answer-position activation vs score)")
    )
    if corr_info.get("used", n_roles >= MIN_CORR_ROLES and not gr.no_role_variance):
        blocks.append(table(fe["top_correlated"]))
    else:
        why = corr_info.get("why_not") or (
            f"{n_roles} roles" if n_roles < MIN_CORR_ROLES else "no role variance"
        )
        blocks.append(
            warning(
                f"Not shown and not used to choose features: {why}. Correlations need at least "
                f"{MIN_CORR_ROLES} roles and scores that vary between them."
            )
        )
    return {"title": "SAE and the features behind each value", "blocks": blocks}


def _generations(ws: Workspace, d: Path, gr: Grounds) -> Section:
    gens = ws.read_json("generations", "generations.json")
    ex = gens["examples"]
    blocks = [
        note(
            f"Greedy decoding, every position steered, add {fmt(gens['strength'])} x the feature's typical "
            "activation; the cells are the model's own text."
        )
    ]
    blocks += _flat_warning(gr, "The steered features were chosen from these scores.")
    if ex and all(e["steered"] == e["unsteered"] for e in ex):
        blocks.append(warning("No steered generation differs from the unsteered one."))
    blocks.append(generations(ex))
    return {"title": "Steered generations", "blocks": blocks}


# ---------------------------------------------------------------- tables
def _table1(ws: Workspace, d: Path, gr: Grounds) -> Section:
    t = ws.read_json("tables", "tables.json")
    t1 = t["table1"]
    title = "Table 1: are steering effects consistent across item splits?"
    stands = (
        f"Stands on: {t1.get('train_items', '?')} train and {t1.get('test_items', '?')} test items (seeded 0.7 "
        f"split; {len(t1.get('values', [])) or 'the'} values with items on both sides), {t.get('roles', '?')} "
        "roles per feature."
    )
    blocks = [note(stands)]
    if not gr.steering_moves:
        return {
            "title": title,
            "blocks": [
                *blocks,
                warning(
                    _moves_warning(gr)
                    + " Every role's change is then rounding on both splits, so the similarity of "
                    "the up/down/same patterns is undefined; it is not shown."
                ),
            ],
        }
    blocks += _flat_warning(
        gr, "Table 1 compares steering effects, which may still be real; read it with care."
    )
    sims = t1["mean_similarity"]
    if not sims:
        return {
            "title": title,
            "blocks": [*blocks, warning("Not computed: no value has items on both sides of the split.")],
        }
    df = pd.DataFrame(
        {
            "feature": list(sims),
            "mean similarity (cosine of up/down/same shares, train vs test)": list(sims.values()),
        }
    )
    return {"title": title, "blocks": [*blocks, table(df)]}


def _gap_rows(t: dict, graphs: list[str]) -> pd.DataFrame:
    rows = []
    for g in graphs:
        for h, name in (("sae", "SAE features"), ("prompt", "roles (prompting)")):
            r = t[f"table2_{g}"][h]
            rows.append(
                {
                    "graph": g,
                    "change by": name,
                    "expected share": r["expected"],
                    "unexpected share": r["unexpected"],
                    "gap": r["gap"],
                    "gap 95% CI": fmt_ci(*r["gap_ci95"]),
                    "random-graph gap": r["random_graph_gap_mean"],
                    "p vs random graphs": r["p_vs_random_graph"],
                    "p(gap > 0)": r["p_gap_positive"],
                    "rows": r["n_rows"],
                }
            )
    return pd.DataFrame(rows)


def _table2(ws: Workspace, d: Path, gr: Grounds) -> Section:
    t = ws.read_json("tables", "tables.json")
    graphs = t.get("graphs", ["learned", "reference"])
    tol = t["table2_reference"]["sae"]["tol"]
    title = "Table 2: side effects against the graphs"
    blocks = [
        note(
            f"Stands on: {t.get('roles', '?')} steered roles; 'expected' = share of changes on the graph "
            f"descendants of the changed value, 'unexpected' = on the other values; a change of at most "
            f"{fmt(tol)} score units counts as unchanged in the all-roles table."
        )
    ]
    if "learned" not in graphs:
        blocks.append(warning("No learned graph (see the graph section): only the reference graph is used."))
    moves, varies = gr.steering_moves, not gr.no_role_variance
    if not moves:
        blocks.append(
            warning(_moves_warning(gr) + " The SAE half of every statistic is undefined; not shown.")
        )
    if not varies:
        blocks += _flat_warning(gr, "The prompting half compares roles with each other; not shown.")
    halves = [h for h, ok in (("sae", moves), ("prompt", varies)) if ok]
    if not halves:
        return {"title": title, "blocks": blocks}
    study = t["table2_study"]
    rows = [
        {
            "change by": "SAE features (one role)" if h == "sae" else "roles (prompting)",
            "graph": g,
            "expected share": study[h][g]["expected"],
            "unexpected share": study[h][g]["unexpected"],
        }
        for h in halves
        for g in graphs
    ]
    gaps = _gap_rows(t, graphs)
    gaps = gaps[
        gaps["change by"].isin(["SAE features" if h == "sae" else "roles (prompting)" for h in halves])
    ]
    blocks += [
        heading(
            f"The study's statistic (any change counts; SAE half on role {t.get('first_role', 'the first role')})"
        ),
        table(pd.DataFrame(rows)),
        note(
            "With continuous log-prob scores every value moves a little under any edit, so the study's "
            "shares saturate near 1; the all-roles table counts only changes above the tolerance."
        ),
        heading("All roles: the expected - unexpected gap, its bootstrap CI over roles, and p-values"),
    ]
    defined = np.isfinite(gaps["gap"].astype(float))
    if not defined.any():
        blocks.append(
            warning(
                f"Undefined: no value changed by more than {fmt(tol)} score units in any row, so "
                "there are no changes to place on descendants or elsewhere."
            )
        )
    else:
        blocks.append(table(gaps))
        if not defined.all():
            blocks.append(
                note(f"{MISSING}: undefined, because no value changed by more than {fmt(tol)} in those rows.")
            )
    if moves:
        side = pd.DataFrame(
            [
                {
                    "graph": g,
                    **{
                        k: t[f"side_effects_{g}"][k]
                        for k in (
                            "side_effects",
                            "on_descendants",
                            "share_on_descendants",
                            "chance_share",
                            "p_value",
                        )
                    },
                }
                for g in graphs
            ]
        )
        side = side.rename(
            columns={
                "side_effects": "side effects (|t| >= 2)",
                "on_descendants": "on descendants",
                "share_on_descendants": "share on descendants",
                "chance_share": "chance share",
                "p_value": "p (hypergeometric)",
            }
        )
        blocks += [
            heading("Side effects of each feature on graph descendants of its target value"),
            table(side),
        ]
        pies = t.get("pies_positive")
        if not pies and ws.cfg.quick:
            blocks.append(
                note(
                    "No direction shares against the hard prompt: --quick leaves the hard-prompt "
                    "conditions out of the grid."
                )
            )
        if pies:
            p = pd.DataFrame(
                [
                    {
                        "steering": "SAE feature" if k == "sae" else "hard prompt 'inclined to V'",
                        "up, %": v["up"],
                        "unchanged, %": v["unchanged"],
                        "down, %": v["down"],
                        "role x value cells": v["n"],
                    }
                    for k, v in pies.items()
                ]
            )
            blocks += [
                heading("Direction of the targeted value: its strongest SAE feature vs the hard prompt"),
                table(p, 1),
            ]
    return {"title": title, "blocks": blocks}


# ---------------------------------------------------------------- validity
SUMMARY_LABELS = {
    "respondents": "roles (respondents)",
    "values": "values",
    "median_alpha": "median alpha",
    "median_omega": "median omega",
    "median_icc1": "median ICC(1)",
    "median_alpha_centered": "median alpha, centred",
    "median_omega_centered": "median omega, centred",
    "median_icc1_centered": "median ICC(1), centred",
    "human_median_alpha": "humans: median alpha",
    "human_median_omega": "humans: median omega",
    "human_median_alpha_centered": "humans: median alpha, centred",
    "human_median_omega_centered": "humans: median omega, centred",
    "matrix_r": "value correlations vs human (matrix r)",
    "matrix_p": "matrix r, permutation p",
    "circle_rho_model": "correlation vs distance on Schwartz's circle (rho)",
    "circle_p_model": "circle rho, p",
    "circle_rho_human": "humans: circle rho",
}


def _reliability_table(rows: list[dict]) -> pd.DataFrame:
    out = []
    for r in rows:
        row = {"value": r["value"], "items": r["n_items"], "roles": r["n_respondents"]}
        for k, name in (("alpha", "alpha"), ("omega", "omega"), ("icc1", "ICC(1)")):
            row[name] = r.get(k)
            row[f"{name} 95% CI"] = fmt_ci(r.get(f"{k}_lo"), r.get(f"{k}_hi"))
        for k, name in (
            ("alpha_centered", "alpha, centred"),
            ("icc1_centered", "ICC(1), centred"),
            ("human_alpha", "human alpha"),
            ("human_omega", "human omega"),
        ):
            if k in r:
                row[name] = r[k]
        row["flags"] = (r.get("flags") or "").replace(";", ", ") or "none"
        out.append(row)
    return pd.DataFrame(out)


def _validity(ws: Workspace, d: Path, gr: Grounds) -> Section | None:
    from mechvalue.analysis.validity import ALPHA_MIN, ICC1_MIN
    from mechvalue.analysis.validity_report import report_section

    v = report_section(ws.out / "validity", gr.validity)
    if v is None:
        return None
    s = v["summary"]
    title = "Are the scores measurements? Reliability and validity"
    blocks = [
        text(
            "Roles are the respondents: internal consistency of each value's items (Cronbach's alpha, "
            "McDonald's omega), the share of score variance between roles (ICC(1)), the value structure "
            "against human PVQ-40 answers and Schwartz's circle, contrasting personas, and the same scores "
            "under other forms of the instrument."
        ),
        note(
            f"Stands on: {s['respondents']} roles; {gr.scores_text()} A value is flagged when alpha < "
            f"{ALPHA_MIN:g} (Nunnally 1978) or ICC(1) < {ICC1_MIN:g} (LeBreton & Senter 2008), or when its "
            "between-role SD does not exceed the noise ('no role variance': then alpha, omega and ICC(1) "
            "are left undefined, as they would describe rounding). Omega needs at least 3 items per value."
        ),
    ]
    blocks += _flat_warning(gr, "Reliability, structure and known groups are all undefined.")
    if not gr.no_role_variance:
        blocks += [
            kv([(SUMMARY_LABELS[k], s[k]) for k in SUMMARY_LABELS if fmt(s.get(k)) != MISSING]),
            figs(
                (
                    Path(v["figure"]),
                    "per value: model alpha, omega, ICC(1) with 95% CI bars; human alpha "
                    "and omega as triangles; dashed: the thresholds",
                )
            ),
        ]
    if s.get("flagged"):
        blocks.append(
            warning(
                f"Flagged values: {fmt(s['flagged'])}. Graph nodes and edges resting on them are "
                "listed in validity/graph_warnings.json."
            )
        )
    blocks += [
        heading("Per value"),
        table(_reliability_table(v["table"]), 2),
        note(
            f"{MISSING}: not computable. Omega needs at least 3 items per value; alpha and ICC(1) need "
            "between-role variance beyond the noise (flag 'no role variance'); the centred figures also "
            "leave out values with none left after each role's mean is removed."
        ),
    ]
    if v.get("known_groups"):
        kg, ks = pd.DataFrame(v["known_groups"]), s.get("known_groups", {})
        noise = ks.get("min_diff", s.get("noise", 0.0))
        kg["difference"] = kg["score_higher"] - kg["score_lower"]
        kg["result"] = np.where(
            kg.get("within_noise", False), "tie (within noise)", np.where(kg["hit"], "hit", "miss")
        )
        kg = kg[
            ["pair", "value", "higher", "lower", "score_higher", "score_lower", "difference", "result"]
        ].rename(
            columns={
                "higher": "predicted higher",
                "lower": "predicted lower",
                "score_higher": "its score",
                "score_lower": "the other's score",
            }
        )
        blocks += [
            heading("Known groups: contrasting personas, theory's direction"),
            note(
                f"Rule: a prediction is a hit only when the persona predicted higher scores higher by more "
                f"than the measurement noise ({fmt(noise)} score units, set as the top of the page says); "
                "a smaller difference is a tie, and ties count as misses."
            ),
            text(
                f"{ks.get('hits', 0)} hits of {ks.get('predictions', len(kg))} predictions "
                f"({ks.get('within_noise', 0)} ties within the noise); one-sided sign test p = "
                f"{fmt(ks.get('p_sign'))}."
            ),
            table(kg),
        ]
    if v.get("forms"):
        forms = pd.DataFrame(v["forms"]).rename(columns={"rho": "rank correlation with the base form"})
        blocks += [
            heading("Robustness to the instrument's form (rank correlation per value)"),
            table(forms, 2),
        ]
    return {"title": title, "blocks": blocks}


# ---------------------------------------------------------------- steering comparison
COMPARE_COLUMNS = {
    "value": "value",
    "method": "method",
    "strength": "strength",
    "feature": "feature",
    "efficacy": "efficacy (between-role SD)",
    "efficacy_ci": "efficacy 95% CI",
    "target_change": "change (score units)",
    "share_up": "share of roles up",
    "selectivity": "selectivity",
    "selectivity_ci": "selectivity 95% CI",
    "off_target": "off-target |change| (SD)",
    "kl": "KL (nats/token)",
    "ppl_ratio": "perplexity ratio",
    "speed_ratio": "speed ratio",
    "n_roles": "test roles",
    "note": "note",
}


def _steer_compare(ws: Workspace, d: Path, gr: Grounds) -> Section:
    from mechvalue.analysis.steer_compare import report_section

    c = report_section(ws.out / "steer_compare")
    title = "Which steering method? Prompting, DiffMean, CAA and SAE features"
    best = pd.DataFrame(c["best"])
    if best.empty:
        return {"title": title, "blocks": [warning(c["verdict"])]}
    design = ws.out / "steer_compare" / "design.json"
    test_roles = len(ws.read_json("steer_compare", "design.json")["test_roles"]) if design.exists() else None
    min_roles = c.get("min_roles", 0)
    blocks = [
        note(
            f"Stands on: test items and {fmt(test_roles)} test roles only; each method at its best strength "
            f"whose mean KL on neutral text stays under {fmt(c.get('kl_bound'))} nats/token. Efficacy is in "
            "units of the value's between-role SD on the unsteered test roles."
        )
    ]
    blocks += _flat_warning(gr, "Efficacy in between-role SD units divides by a spread that is rounding.")
    if "efficacy" in best and best["efficacy"].notna().any() and not gr.no_role_variance:
        blocks.insert(0, text(c["verdict"]))
    if gr.no_role_variance:
        best = best.drop(
            columns=[
                k
                for k in (
                    "efficacy",
                    "efficacy_lo",
                    "efficacy_hi",
                    "selectivity",
                    "selectivity_lo",
                    "selectivity_hi",
                    "off_target",
                )
                if k in best
            ]
        )
    if test_roles is not None and test_roles < min_roles:
        blocks.append(
            warning(
                f"Efficacy, share of roles up and selectivity need at least {min_roles} test roles; "
                f"this run has {test_roles}, so they are not computed and their columns are left out. "
                "The fluency and speed costs do not depend on roles and are shown."
            )
        )
    ranked = "efficacy" in best and best["efficacy"].notna().any() and not gr.no_role_variance
    cpath = ws.out / "steer_compare" / "compare.csv"
    if not ranked and cpath.exists():  # nothing to rank: show what was measured, the fluency costs
        cmp = pd.read_csv(cpath)
        cols = [
            k
            for k in (
                "method",
                "value",
                "strength",
                "feature",
                "kl",
                "ppl_ratio",
                "speed_ratio",
                "admissible",
                "note",
            )
            if k in cmp and cmp[k].map(lambda x: fmt(x) != MISSING).any()
        ]
        blocks += [
            warning(
                "No method can be ranked: efficacy is undefined at every admissible strength. Measured "
                "for every method and strength, the costs that do not depend on roles:"
            ),
            table(
                _mark_measured(
                    cmp[cols].rename(
                        columns=COMPARE_COLUMNS | {"admissible": f"KL <= {fmt(c.get('kl_bound'))}"}
                    ),
                    _measurement_status(gr),
                ),
                3,
            ),
        ]
        return {"title": title, "blocks": blocks}
    for k in ("efficacy", "selectivity"):
        if f"{k}_lo" in best:
            best[f"{k}_ci"] = [fmt_ci(lo, hi) for lo, hi in zip(best[f"{k}_lo"], best[f"{k}_hi"])]
    cols = [
        k for k in COMPARE_COLUMNS if k in best and best[k].map(lambda x: fmt(x) not in (MISSING, "")).any()
    ]
    blocks.append(
        table(_mark_measured(best[cols].rename(columns=COMPARE_COLUMNS), _measurement_status(gr)), 2)
    )
    plots = []
    for p in map(Path, c["plots"]):
        if p.stem == "tradeoff" and "efficacy" in best and best["efficacy"].notna().any():
            plots.append(
                (p, "efficacy against fluency cost per method; points: strengths; dashed: the KL bound")
            )
        elif p.stem == "selectivity" and "selectivity" in best and best["selectivity"].notna().any():
            plots.append(
                (p, "selectivity at each method's best admissible strength (target / mean off-target)")
            )
    if plots:
        blocks.append(figs(*plots))
    return {"title": title, "blocks": blocks}


# ---------------------------------------------------------------- settings
def _inputs(ws: Workspace) -> list[tuple[str, object]]:
    """Every setting of the run, as what it resolved to (never None for an input the run had)."""
    s = ws.cfg
    got = ws.read_json("measure", "inputs.json") if (ws.out / "measure" / "inputs.json").exists() else {}
    sae = ws.read_json("sae", "sae.json") if ws.done("sae") else {}
    trained = s.sae == "train"
    sae_train = ", ".join(f"{k} {v}" for k, v in s.sae_train.items()) or "the recipe's defaults"
    return [
        ("model", s.model + (f" ({got['model']})" if got.get("model") and got["model"] != s.model else "")),
        ("device, dtype", f"{s.device}, {s.dtype}"),
        (
            "prompt format",
            s.prompt_format
            or (
                f"{got['prompt_format']} (chosen for the model)"
                if got.get("prompt_format")
                else "chosen for the model"
            ),
        ),
        ("scoring", got.get("scoring", "logprob")),
        ("inventory", s.inventory or got.get("inventory", "the shipped inventory (MVI10)")),
        (
            "questionnaire",
            s.questionnaire
            or (
                ", ".join(got["questionnaires"]) + " (every one in the inventory)"
                if got.get("questionnaires")
                else "every one in the inventory"
            ),
        ),
        (
            "items",
            f"{got['items']} over {got['values']} values" + (" (2 per value: --quick)" if s.quick else "")
            if got
            else ("2 per value (--quick)" if s.quick else "all"),
        ),
        ("roles", f"{s.roles} personas (seed {s.seed}) and the no-role prompt"),
        ("steering-grid roles", f"{s.grid_roles} personas and the no-role prompt"),
        (
            "SAE",
            s.sae
            if not trained
            else f"{sae['reused']}, reused: {sae['path']}"
            if sae.get("reused")
            else f"trained by the recipe at layer {s.layer}"
            + (f": {sae['path']}" if sae.get("path") else ""),
        ),
        ("SAE layer", f"blocks.{s.layer}.hook_resid_post"),
        (
            "SAE training",
            sae_train
            if trained and not sae.get("reused")
            else "not used (the recipe SAE was reused)"
            if trained
            else "not used (an SAE was given)",
        ),
        ("features steered", s.features),
        ("grid strength", f"{fmt(s.strength)} x typical activation, added at ' your values'"),
        ("generation strength", f"{fmt(s.gen_strength)} x typical activation, every position"),
        ("graph bootstrap", f"{s.bootstrap} role resamples; {s.null} null draws"),
        ("human reference", s.human or "none given: Schwartz's circle (adjacent values linked)"),
        ("seed", s.seed),
        ("quick", "yes (--quick: fewer items, roles, features and resamples)" if s.quick else "no"),
    ]


def _executor_text(e: dict) -> str:
    kind = e.get("kind", "local")
    if kind == "local":
        return "this process"
    parts = [f"{k.replace('_', ' ')} {fmt(v)}" for k, v in e.items() if k not in ("kind", "resources") and v]
    return f"{kind}: " + ", ".join(parts)


def _threads_text(t: dict | None) -> str:
    """The CPU threads a run had (`mechvalue.threads.thread_settings`), '' for older runs."""
    if not t:
        return ""
    omp = [f"{k}={v}" for k, v in t.items() if k != "torch_threads" and v is not None]
    return f"; {t['torch_threads']} torch threads" + (f", {', '.join(omp)}" if omp else "")


def _settings(ws: Workspace, d: Path, stages: list[str]) -> Section:
    from mechvalue.distributed.timings import time_summary

    conf = ws.read_json(".", "config.json")
    versions = [(k, v or "not installed") for k, v in conf["versions"].items()]
    blocks = [heading("Inputs"), kv(_inputs(ws)), heading("Library versions"), kv(versions)]
    times, spent = ws.timings(stages), time_summary(ws.out)
    if times:
        total = sum(times.values())
        cpu = (spent or {}).get("run_stages_cpu", {})
        df = pd.DataFrame(
            {
                "stage": list(times),
                "wall, s": list(times.values()),
                "CPU, s (this process)": [cpu.get(k) for k in times],
                "share of the wall time, %": [100 * t / total if total else 0.0 for t in times.values()],
            }
        )
        df.loc[len(df)] = [
            "total (before the report)",
            total,
            sum(cpu.get(k) or 0.0 for k in times) or None,
            100.0,
        ]
        if not cpu:
            df = df.drop(columns="CPU, s (this process)")
        blocks += [heading("Time per stage"), table(df, 1)]
    if spent and spent.get("stages"):
        rows = [
            {
                "stage": st,
                "worker": w,
                "tasks": info.get("tasks"),
                "busy, s": info.get("busy_s"),
                "loading, s": info.get("load_s"),
                "utilisation": info.get("utilisation"),
            }
            for st, s in spent["stages"].items()
            for w, info in s["workers"].items()
        ]
        blocks += [
            heading(
                f"Where time went inside stages (executor: {_executor_text(spent.get('executor', {}))}"
                f"{_threads_text(spent.get('threads'))})"
            ),
            table(pd.DataFrame(rows), 2),
        ]
    return {"title": "Settings and timings", "blocks": blocks}


def _caution(gr: Grounds) -> str | None:
    """A weaker warning for the top: scores vary, but validity flags every value."""
    s = gr.validity
    if gr.no_role_variance or s is None:
        return None
    flagged = s.get("flagged") or {}
    if s.get("values") and len(flagged) >= s["values"]:
        return (
            f"Every value is flagged by the validity checks (median ICC(1) {fmt(s.get('median_icc1'), 2)}, "
            f"median alpha {fmt(s.get('median_alpha'), 2)}): roles move the scores little against what the "
            "items disagree on. The graph, the correlations and the effects in between-role SD units rest on "
            "flagged values; read them as the machinery working, not as findings."
        )
    return None


def _measurement_status(gr: Grounds) -> dict[str, str]:
    """value -> "" when it passes as a measurement, else why not (validity.json); {} before validity."""
    return (gr.validity or {}).get("measurements") or {}


def _mark_measured(df: pd.DataFrame, status: dict[str, str]) -> pd.DataFrame:
    """A "value a measurement?" column beside each row's value: steering effects on a value that is
    not measured are not findings."""
    if not status or "value" not in df:
        return df
    marks = df["value"].map(
        lambda v: "yes" if status.get(v) == "" else f"no: {status[v]}" if v in status else "n/a"
    )
    return df.assign(**{"value a measurement?": marks})


def _measured(ws: Workspace, gr: Grounds) -> str | None:
    """For the top: which values pass as measurements (centred alpha, ICC(1) CI) and which do not, why."""
    from mechvalue.analysis.validity import ALPHA_MIN, ICC1_MIN

    status = _measurement_status(gr)
    if not status:
        return None
    ok = [v for v, why in status.items() if not why]
    bad = [f"{v} ({why})" for v, why in status.items() if why]
    return (
        f"Values measured here (protocol {getattr(ws.cfg, 'protocol', 'study')}; a value passes with "
        f"respondent-centred alpha >= {ALPHA_MIN:g} and an ICC(1) 95% CI above {ICC1_MIN:g}): "
        f"{len(ok)} of {len(status)} pass{': ' + ', '.join(ok) if ok else ''}. "
        f"{'Fail: ' + '; '.join(bad) + '. Graph edges and steering effects on failing values are not findings.' if bad else ''}"
    )


SECTIONS: list[tuple[str, Callable[[Workspace, Path, Grounds], Section | None]]] = [
    ("measure", _profile),
    ("graph", _graph),
    ("tables", _features),
    ("generations", _generations),
    ("tables", _table1),
    ("tables", _table2),
    ("validity", _validity),
    ("steer_compare", _steer_compare),
]  # (the stage whose output a section needs, the section)


def write_report(ws: Workspace, d: Path, stages: list[str]) -> Path:
    """Render every section whose stage has finished into `d/report.html`."""
    gr = grounds(ws)
    sections = [fn(ws, d, gr) for stage, fn in SECTIONS if ws.done(stage)]
    sections.append(_settings(ws, d, stages))
    s = ws.cfg
    env = jinja2.Environment(loader=jinja2.PackageLoader("mechvalue.pipeline", "templates"), autoescape=True)
    page = env.get_template("report.html.j2").render(
        title=s.model,
        sections=[x for x in sections if x],
        banner=gr.why_meaningless() if gr.no_role_variance else None,
        caution=_caution(gr),
        measured=_measured(ws, gr),
        reading=f"Scores: {SCORE_UNITS}. {describe_noise(gr.noise).capitalize()}. A difference between roles, or "
        "between steered and unsteered, counts only when it exceeds this noise.",
        subtitle=f"{gr.roles} personas and the no-role prompt x {sum(gr.items.values())} items "
        f"({len(gr.items)} values); SAE at blocks.{s.layer}.hook_resid_post; seed {s.seed}.",
    )
    path = d / "report.html"
    write_text(page, path)
    return path
