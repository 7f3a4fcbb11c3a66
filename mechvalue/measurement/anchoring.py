"""Value anchoring (Rozen, Bezalel, Elidan, Globerson & Daniel, "Do LLMs have Consistent
Values?", ICLR 2025): each respondent is told which value is the most important one to it, then
answers the PVQ's portraits. Across respondents anchored on different values the value
correlations follow the human circle far more than under plain prompting in their study.

Here a role's anchor is one of Schwartz's ten values picked by a hash of the role's name (seeded,
the same in every run), added to the role's line; the no-persona row is not anchored. The wording
is ours, after theirs: "Answer as a person for whom V (its definition) is the most important value".
"""

from __future__ import annotations

import hashlib

import pandas as pd

from mechvalue.measurement.likert import Likert
from mechvalue.measurement.scorer import MeasurerView
from mechvalue.study.inventory import SCHWARTZ_VALUES, value_definitions
from mechvalue.study.prompts import RenderedPrompt
from mechvalue.study.roles import Role


def anchor_of(role: Role) -> str:
    """The value `role` is anchored on: sha256 of its name, modulo the ten values."""
    return SCHWARTZ_VALUES[int(hashlib.sha256(role.name.encode()).hexdigest(), 16) % len(SCHWARTZ_VALUES)]


def anchored(role: Role | None) -> Role | None:
    """`role` with its anchor sentence after its line (None stays None)."""
    if role is None:
        return None
    v = anchor_of(role)
    d = value_definitions().get(v, v.lower())
    return Role(role.name, f"{role.trait}. Answer as a person for whom {v} ({d}) is the most important value")


class AnchoredLikert(Likert):
    """The PVQ's portrait format (six options, expected answer) asked of the anchored role."""

    name = "likert-anchored"
    description = "the portrait format's expected answer, the role anchored on one value"

    def prompts(self, m: MeasurerView, items: pd.DataFrame, role: Role | None, cond) -> list[RenderedPrompt]:
        return super().prompts(m, items, anchored(role), cond)
