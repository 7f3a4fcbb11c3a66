"""The study's published Gemma settings (from its paper and released files): kept SAE features,
values left out of Table 1, the Table 2 role, and the value -> feature maps behind its pies; and
where the human PVQ-40 answers are found when a run is not told."""

import os
from pathlib import Path

KEPT_FEATURES = [14351, 1025, 2965, 10096, 1341, 1975, 10605, 14049, 1312, 4752]
TABLE1_EXCLUDED = [
    "Anxiety Disorder",
    "Achievement",
    "Empathy",
    "Organization",
    "Political",
    "Economic",
    "Social Complexity",
]
TABLE2_ROLE = "Mary Holt"
PIE_POSITIVE = {
    "Positive coping": 1975,
    "Theoretical": 10096,
    "Uncertainty Avoidance": 1312,
    "Aesthetic": 1312,
    "Breadth of Interest": 10096,
    "Religious": 1312,
    "Social": 14049,
    "Understanding": 4752,
    "Resilience": 1341,
    "Social Cynicism": 14049,
}
PIE_NEGATIVE = {
    "Aesthetic": 10605,
    "Resilience": 4752,
    "Social Cynicism": 4752,
    "Positive coping": 10096,
    "Religious": 1341,
    "Breadth of Interest": 14049,
    "Understanding": 1975,
    "Theoretical": 1975,
    "Uncertainty Avoidance": 4752,
    "Social": 1975,
}


def default_human_answers() -> str | None:
    """The human PVQ-40 answers for `mechvalue run` without --human: `$MECHVALUE_HUMAN`, else
    `shared/data/human/PVQ40.csv` beside the source checkout (as the project's data lives), else
    None (Schwartz's circle is the reference)."""
    env = os.environ.get("MECHVALUE_HUMAN")
    if env:
        return env
    p = Path(__file__).resolve().parents[3] / "shared" / "data" / "human" / "PVQ40.csv"
    return str(p) if p.exists() else None
