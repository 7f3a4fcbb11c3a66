"""What a measurement protocol is: a prompt, an answer format and a scoring, as one object.

A protocol turns one role's items into one row per item (`answer`, `raw` in [-1, 1] before the
item's agreement, and whatever it records besides). The simplest asks one scorer
(`mechvalue.measurement.scorer.Scorer`: the prompt and how its answer becomes `raw`) in one wording;
others ask it in several wordings and average (`Balanced`), or rescale its answers by what the
role's prompt gives a content-free item (`mechvalue.measurement.calibration.Calibrated`).
"""

from __future__ import annotations

from typing import Protocol as _Protocol

import pandas as pd

from mechvalue.measurement.scorer import Scorer
from mechvalue.study.roles import Role


class ProtocolMeasurer(_Protocol):
    """What a protocol may use of the `Measurer` running it."""

    form: str

    def ask(
        self,
        items: pd.DataFrame,
        role: Role | None,
        cond,
        scorer: Scorer | None = None,
        form: str | None = None,
    ) -> list[dict]: ...


class Protocol(_Protocol):
    """One way of measuring: `scorer` is its prompt and answer format (what attribution and
    steering read), `rows` its scoring of one role's items under one condition."""

    name: str
    description: str  # how `raw` is computed, recorded with the results
    source: str  # where the protocol comes from
    scorer: Scorer

    def rows(self, m: ProtocolMeasurer, items: pd.DataFrame, role: Role | None, cond) -> list[dict]: ...


class Plain:
    """One scorer in the measurer's wording: the scorer's rows as they are."""

    def __init__(self, name: str, scorer: Scorer, source: str, description: str | None = None):
        self.name, self.scorer, self.source = name, scorer, source
        self.description = description or scorer.description

    def rows(self, m: ProtocolMeasurer, items: pd.DataFrame, role: Role | None, cond) -> list[dict]:
        return m.ask(items, role, cond, self.scorer)


def average_rows(parts: dict[str, list[dict]]) -> list[dict]:
    """Rows of several wordings of the same items merged: every column kept as `column@wording`,
    `raw` their mean, `answer` the shared answer or "unsure" where the wordings disagree."""
    names = list(parts)
    out = []
    for rows in zip(*parts.values()):
        row = {f"{k}@{f}": v for f, r in zip(names, rows) for k, v in r.items()}
        answers = {r["answer"] for r in rows}
        row["answer"] = answers.pop() if len(answers) == 1 else "unsure"
        row["raw"] = sum(r["raw"] for r in rows) / len(rows)
        out.append(row)
    return out


class Balanced:
    """One scorer asked in each of `forms` (the answer options in both orders), `raw` averaged:
    a preference for the first-named option or for a digit cancels."""

    def __init__(self, name: str, scorer: Scorer, forms: tuple[str, ...], source: str):
        self.name, self.scorer, self.forms, self.source = name, scorer, forms, source
        self.description = f"mean over the wordings {', '.join(forms)} of: {scorer.description}"

    def rows(self, m: ProtocolMeasurer, items: pd.DataFrame, role: Role | None, cond) -> list[dict]:
        return average_rows({f: m.ask(items, role, cond, self.scorer, form=f) for f in self.forms})
