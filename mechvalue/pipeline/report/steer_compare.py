"""Section: which steering method? Prompting, DiffMean, CAA and SAE features on held-out values,
each row beside its value's status under the one pass rule."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from mechvalue.pipeline.report.blocks import MISSING, figures, fmt, fmt_ci, note, table, text, warning
from mechvalue.pipeline.report.common import Page, Section, flat_warning, mark_measured, sae_warning

STAGE, ORDER = "steer_compare", 80
TITLE = "Which steering method? Prompting, DiffMean, CAA and SAE features"


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


def build(p: Page) -> Section:
    from mechvalue.analysis.steer_compare import report_section

    ws, gr = p.ws, p.gr
    c = report_section(ws.out / "steer_compare")
    best = pd.DataFrame(c["best"])
    if best.empty:
        return {"title": TITLE, "blocks": [warning(c["verdict"])]}
    design = ws.out / "steer_compare" / "design.json"
    test_roles = len(ws.read_json("steer_compare", "design.json")["test_roles"]) if design.exists() else None
    min_roles = c.get("min_roles", 0)
    blocks = [
        note(
            f"Stands on: test items and {fmt(test_roles)} test roles only; each method at its best strength "
            f"whose mean KL on neutral text stays under {fmt(c.get('kl_bound'))} nats/token. Efficacy is in "
            f"units of the value's between-role SD on the unsteered test roles. {c.get('design', '')}"
        )
    ]
    blocks += flat_warning(gr, "Efficacy in between-role SD units divides by a spread that is noise.")
    blocks += sae_warning(gr, "The rows of the SAE-feature method steer this SAE's features.")
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
                mark_measured(
                    cmp[cols].rename(
                        columns=COMPARE_COLUMNS | {"admissible": f"KL <= {fmt(c.get('kl_bound'))}"}
                    ),
                    gr,
                ),
                3,
            ),
        ]
        return {"title": TITLE, "blocks": blocks}
    for k in ("efficacy", "selectivity"):
        if f"{k}_lo" in best:
            best[f"{k}_ci"] = [fmt_ci(lo, hi) for lo, hi in zip(best[f"{k}_lo"], best[f"{k}_hi"])]
    cols = [
        k for k in COMPARE_COLUMNS if k in best and best[k].map(lambda x: fmt(x) not in (MISSING, "")).any()
    ]
    blocks.append(table(mark_measured(best[cols].rename(columns=COMPARE_COLUMNS), gr), 2))
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
        blocks.append(figures(*plots))
    return {"title": TITLE, "blocks": blocks}
