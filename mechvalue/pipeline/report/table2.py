"""Section: Table 2, side effects of steering against the learned and the reference graph."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mechvalue.pipeline.report.blocks import MISSING, fmt, fmt_ci, heading, note, table, warning
from mechvalue.pipeline.report.common import Page, Section, flat_warning, moves_warning, sae_warning

STAGE, ORDER = "tables", 60
TITLE = "Table 2: side effects against the graphs"


def gap_rows(t: dict, graphs: list[str]) -> pd.DataFrame:
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
                    "p, one-sided (gap > 0)": r["p_gap_positive"],
                    "rows": r["n_rows"],
                }
            )
    return pd.DataFrame(rows)


def build(p: Page) -> Section:
    ws, gr = p.ws, p.gr
    t = ws.read_json("tables", "tables.json")
    graphs = t.get("graphs", ["learned", "reference"])
    tol = t["table2_reference"]["sae"]["tol"]
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
    if moves:
        blocks += sae_warning(gr, "The SAE half of every statistic steers this SAE's features.")
    else:
        blocks.append(
            warning(moves_warning(gr) + " The SAE half of every statistic is undefined; not shown.")
        )
    if not varies:
        blocks += flat_warning(gr, "The prompting half compares roles with each other; not shown.")
    halves = [h for h, ok in (("sae", moves), ("prompt", varies)) if ok]
    if not halves:
        return {"title": TITLE, "blocks": blocks}
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
    gaps = gap_rows(t, graphs)
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
        blocks.append(
            note(
                "p, one-sided (gap > 0): the share of role-bootstrap resamples whose gap is 0 or below; small "
                "when the gap is reliably positive, near 1 when it is not (a negative gap gives p near 1)."
            )
        )
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
    return {"title": TITLE, "blocks": blocks}
