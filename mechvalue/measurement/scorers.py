"""The scorers a measurement can use, by name: one entry each (see `mechvalue.measurement.scorer`).

- `logprob`: one forward pass, agreement x (p(yes) - p(no)) at the answer position (default);
- `generate`: the study's greedy completion and parse rule;
- `likert`: the PVQ's six-point portrait format, the expected answer centred to [-1, 1].
"""

from __future__ import annotations

from mechvalue.errors import MechValueError
from mechvalue.measurement.generate import Generate
from mechvalue.measurement.likert import Likert
from mechvalue.measurement.logprob import LogProb
from mechvalue.measurement.scorer import Scorer

SCORERS: dict[str, Scorer] = {s.name: s for s in (LogProb(), Generate(), Likert())}


def get_scorer(name: str) -> Scorer:
    if name not in SCORERS:
        raise MechValueError(f"scoring={name!r}: expected one of {', '.join(SCORERS)}")
    return SCORERS[name]
