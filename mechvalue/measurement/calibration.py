"""Contextual calibration of yes/no answers (Zhao, Wallace, Feng, Klein & Singh 2021, "Calibrate
Before Use: Improving Few-Shot Performance of Language Models", ICML).

A prompt has a yes/no bias of its own, which the role's wording shifts: ask the same prompt with
a content-free question ("N/A", "", "[MASK]"), take the mean of its (p(yes), p(no)) renormalised
over the two, and divide it out of every real item's answer: q = p / p_cf, renormalised. A role
that says "yes" to anything then scores as one that does not; what is left is the item's content.
"""

from __future__ import annotations

import pandas as pd

from mechvalue.measurement.logprob import LogProb
from mechvalue.measurement.protocol import ProtocolMeasurer
from mechvalue.measurement.scorer import Scorer
from mechvalue.study.roles import Role

CONTENT_FREE = ("N/A", "", "[MASK]")  # Zhao et al.'s content-free inputs


def content_free_items(values: list[str], texts: tuple[str, ...] = CONTENT_FREE) -> pd.DataFrame:
    """One content-free item per text and value (the value picks its hard prompt, if any)."""
    rows = [
        {"questionnaire": "content-free", "item": t, "value": v, "agreement": 1, "question": t}
        for v in values
        for t in texts
    ]
    return pd.DataFrame(rows)


def content_free_prior(p_yes: list[float], p_no: list[float]) -> tuple[float, float]:
    """Mean over content-free prompts of (p(yes), p(no)) renormalised over the two."""
    y = [a / (a + b) for a, b in zip(p_yes, p_no)]
    cf_yes = sum(y) / len(y)
    return cf_yes, 1.0 - cf_yes


def calibrate(p_yes: float, p_no: float, cf_yes: float, cf_no: float) -> tuple[float, float]:
    """(q_yes, q_no): p divided by the content-free prior, renormalised over yes and no."""
    a, b = p_yes / cf_yes, p_no / cf_no
    return a / (a + b), b / (a + b)


class Calibrated:
    """The study's yes/no prompt and log-prob answer, contextually calibrated per role (and per
    value under hard prompts): raw = q(yes) - q(no) after dividing out the content-free prior."""

    name = "calibrated"
    description = (
        "agreement x (q(yes) - q(no)), p(yes), p(no) divided by the role's content-free p, renormalised"
    )
    source = "Zhao et al. (2021), Calibrate Before Use, ICML: contextual calibration"

    def __init__(self, scorer: Scorer | None = None):
        self.scorer = scorer or LogProb()

    def rows(self, m: ProtocolMeasurer, items: pd.DataFrame, role: Role | None, cond) -> list[dict]:
        values = list(dict.fromkeys(items["value"])) if cond.hard else [items["value"].iloc[0]]
        cf = content_free_items(values)
        got = m.ask(cf, role, cond, self.scorer)
        prior = {
            v: content_free_prior(
                [r["p_yes"] for r, x in zip(got, cf["value"]) if x == v],
                [r["p_no"] for r, x in zip(got, cf["value"]) if x == v],
            )
            for v in values
        }
        out = []
        for r, v in zip(m.ask(items, role, cond, self.scorer), items["value"]):
            cf_yes, cf_no = prior[v if cond.hard else values[0]]
            q_yes, q_no = calibrate(r["p_yes"], r["p_no"], cf_yes, cf_no)
            out.append(
                {
                    "p_yes": r["p_yes"],
                    "p_no": r["p_no"],
                    "cf_yes": cf_yes,
                    "cf_no": cf_no,
                    "q_yes": q_yes,
                    "q_no": q_no,
                    "answer": "yes" if q_yes > q_no else "no",
                    "raw": q_yes - q_no,
                }
            )
        return out
