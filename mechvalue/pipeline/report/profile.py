"""Section: the value profile across roles, judged against the noise model.

What a persona changes is shown in noise units: each role's score minus the value's mean over
roles, divided by the noise of one such score (mechvalue.analysis.noise.score_noise); a cell
within the noise is grey, so only differences the measurement can tell apart carry colour."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mechvalue.analysis.noise import score_noise, spread_threshold
from mechvalue.analysis.status import label
from mechvalue.pipeline.report.blocks import figures, note, table, warning
from mechvalue.pipeline.report.common import STATUS_COLUMN, Page, Section

STAGE, ORDER = "measure", 10
TITLE = "Value profile across roles"


def in_noise_units(prof: pd.DataFrame, noise: dict) -> pd.DataFrame:
    """Roles x values: score minus the value's mean over the roles, over the noise of one score;
    NaN (masked) where that is within the noise (|x| <= 1)."""
    centred = prof - prof.mean()
    z = centred / pd.Series({v: score_noise(noise, v) for v in prof.columns})
    return z.where(z.abs() > 1)


def build(p: Page) -> Section:
    from mechvalue.analysis.plots import heatmap
    from mechvalue.study.schema import by_role

    gr = p.gr
    prof = by_role(p.ws.read_csv("measure", "values.csv")).astype(float)
    named = prof.drop(index="", errors="ignore")
    per_value = pd.DataFrame(
        {
            "value": prof.columns,
            "mean over roles": named.mean().to_numpy(),
            "between-role SD": [gr.role_sd.get(v) for v in prof.columns],
            "SD noise alone reaches (95%)": [spread_threshold(gr.noise, v) for v in prof.columns],
            "varies between roles": [v in gr.varying for v in prof.columns],
        }
    )
    if gr.status:
        per_value[STATUS_COLUMN] = [label(gr.status, v) for v in prof.columns]
    blocks = [note(f"Stands on: {gr.scores_text()}"), table(per_value, 3)]
    if gr.no_role_variance:
        return {
            "title": TITLE,
            "blocks": [
                *blocks,
                warning(
                    "No value's between-role SD exceeds what the measurement noise alone reaches, so a "
                    "heatmap would colour noise; it is not drawn."
                ),
            ],
        }
    z = in_noise_units(named, gr.noise)
    lim = float(np.nanmax(np.abs(z.to_numpy(float)), initial=2.0))
    heatmap(
        z,
        p.d / "profile_centred.png",
        "role's score minus the value's mean over roles, in noise units",
        vmin=-lim,
        vmax=lim,
        label="(score - mean) / noise of one score",
    )
    blocks.append(
        figures(
            (
                p.d / "profile_centred.png",
                "what the persona changes, in units of the noise of one score (item resampling, 95%): "
                "red below the value's mean over roles, blue above; grey: within the noise (|x| <= 1)",
            )
        )
    )
    if gr.flat:
        blocks.append(
            warning(
                f"No between-role variance beyond the noise in {', '.join(gr.flat)}: their columns differ "
                "between roles only by as much as noise does."
            )
        )
    return {"title": TITLE, "blocks": blocks}
