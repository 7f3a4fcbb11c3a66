"""What every report section shares: the page it is built for, and the sentences that repeat a
run-wide caveat where it applies (no role variance, no steered change beyond the noise, an SAE
below the quality bar, each value's pass/fail status under the one rule)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from mechvalue.analysis.status import SAE_RULE, label
from mechvalue.pipeline.grounds import Grounds
from mechvalue.pipeline.report.blocks import fmt, warning
from mechvalue.pipeline.workspace import Workspace

Section = dict
SCORE_UNITS = "agreement x (p(yes) - p(no)), in [-1, 1]"
STATUS_COLUMN = "status (one rule: see the top)"


@dataclass(frozen=True)
class Page:
    """What a section is built from: the run folder, the report's folder (figures go there), the
    run's grounds, and the pipeline's stage names in order."""

    ws: Workspace
    d: Path
    gr: Grounds
    stages: tuple[str, ...] = ()


def flat_warning(gr: Grounds, what: str) -> list[dict]:
    """The degenerate case, repeated in a section: `what` cannot mean anything."""
    if not gr.no_role_variance:
        return []
    return [
        warning(
            f"{what} No value varies between roles beyond the measurement noise (see the top of the page), "
            "so this rests on scores that carry no between-role variance."
        )
    ]


def moves_warning(gr: Grounds) -> str:
    return (
        f"No steered change exceeds the measurement noise of its value: the largest |steered - unsteered| "
        f"score over every steered condition, role and value is {fmt(gr.steer_change)} ({gr.noise_text()})."
    )


def sae_warning(gr: Grounds, what: str) -> list[dict]:
    """The SAE below the quality bar, repeated wherever its features are used."""
    why = gr.sae_problem
    if not why:
        return []
    return [
        warning(
            f"The SAE is below the quality bar ({SAE_RULE}): it {why}. It reconstructs too little of the "
            f"model's activations for its features to stand for what the model computes. {what}"
        )
    ]


def mark_measured(df: pd.DataFrame, gr: Grounds) -> pd.DataFrame:
    """Each row's value status (mechvalue.analysis.status) beside its value: steering effects on a
    value that fails are not findings."""
    if not gr.status or "value" not in df:
        return df
    return df.assign(**{STATUS_COLUMN: df["value"].map(lambda v: label(gr.status, v))})
