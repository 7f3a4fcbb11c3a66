"""Section: are the scores measurements? Reliability, structure, known groups and forms, with each
value's status under the one pass rule (mechvalue.analysis.status)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from mechvalue.analysis.status import RULE, failing, label
from mechvalue.pipeline.report.blocks import (
    MISSING,
    figures,
    fmt,
    fmt_ci,
    heading,
    kv,
    note,
    table,
    text,
    warning,
)
from mechvalue.pipeline.report.common import STATUS_COLUMN, Page, Section, flat_warning

STAGE, ORDER = "validity", 70
TITLE = "Are the scores measurements? Reliability and validity"

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


def reliability_table(rows: list[dict], status: dict[str, str]) -> pd.DataFrame:
    """The per-value table; its status column is the one rule's (mechvalue.analysis.status)."""
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
        row[STATUS_COLUMN] = label(status, r["value"])
        out.append(row)
    return pd.DataFrame(out)


def build(p: Page) -> Section | None:
    from mechvalue.analysis.validity_report import report_section

    ws, gr = p.ws, p.gr
    v = report_section(ws.out / "validity", gr.validity)
    if v is None:
        return None
    s = v["summary"]
    blocks = [
        text(
            "Roles are the respondents: internal consistency of each value's items (Cronbach's alpha, "
            "McDonald's omega), the share of score variance between roles (ICC(1)), the value structure "
            "against human PVQ-40 answers and Schwartz's circle, contrasting personas, and the same scores "
            "under other forms of the instrument."
        ),
        note(
            f"Stands on: {s['respondents']} roles; {gr.scores_text()} The one pass rule, used by every part "
            f"of this page and by compare-runs: {RULE} (alpha: Nunnally 1978, ICC(1): LeBreton & Senter "
            "2008). A value without role variance beyond the noise gets no alpha, omega or ICC(1): they "
            "would describe noise. Omega needs at least 3 items per value."
        ),
    ]
    blocks += flat_warning(gr, "Reliability, structure and known groups are all undefined.")
    if not gr.no_role_variance:
        blocks += [
            kv([(SUMMARY_LABELS[k], s[k]) for k in SUMMARY_LABELS if fmt(s.get(k)) != MISSING]),
            figures(
                (
                    Path(v["figure"]),
                    "per value: model alpha, omega, ICC(1) with 95% CI bars; human alpha "
                    "and omega as triangles; dashed: the thresholds",
                )
            ),
        ]
    status = gr.status or {r["value"]: r.get("status", "") for r in v["table"]}
    bad = failing(status)
    if bad:
        blocks.append(
            warning(
                f"{len(bad)} of {len(status)} values fail the pass rule (listed at the top and in the status "
                "column below). Graph nodes and edges resting on them are listed in "
                "validity/graph_warnings.json."
            )
        )
    blocks += [
        heading("Per value"),
        table(reliability_table(v["table"], status), 2),
        note(
            f"{MISSING}: not computable. Omega needs at least 3 items per value; alpha and ICC(1) need "
            "between-role variance beyond the noise (status 'no role variance beyond the noise'); the centred figures also "
            "leave out values with none left after each role's mean is removed."
        ),
    ]
    if v.get("known_groups"):
        kg, ks = pd.DataFrame(v["known_groups"]), s.get("known_groups", {})
        kg["difference"] = kg["score_higher"] - kg["score_lower"]
        kg["result"] = np.where(
            kg.get("within_noise", False), "tie (within noise)", np.where(kg["hit"], "hit", "miss")
        )
        kg = kg[
            [
                c
                for c in (
                    "pair",
                    "value",
                    "higher",
                    "lower",
                    "score_higher",
                    "score_lower",
                    "difference",
                    "noise",
                )
                if c in kg
            ]
            + ["result"]
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
                "Rule: a prediction is a hit only when the persona predicted higher scores higher by more "
                "than the measurement noise of that value (column 'noise': two scores this close are a tie, "
                "as the top of the page says); a smaller difference is a tie, and ties count as misses."
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
    return {"title": TITLE, "blocks": blocks}
