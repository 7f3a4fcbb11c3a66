"""The measurement protocols, by name: one entry each (`mechvalue.measurement.protocol.Protocol`),
grown from the scorer registry (`mechvalue.measurement.scorers.SCORERS`, the answer formats).

- `study`: the study's yes/no prompt, agreement x (p(yes) - p(no)) after "Answer:" (the baseline);
- `anchoring`: value anchoring (Rozen et al., ICLR 2025), portrait format, each role anchored;
- `portrait`: the PVQ's own format (Schwartz et al. 2001), six options, expected answer;
- `calibrated`: the study's yes/no, contextually calibrated per role (Zhao et al. 2021);
- `balanced`: the study's yes/no asked with the options in both orders, averaged;
- `portrait-balanced`: the portrait format with the numbering in both directions, averaged.

Who answers (the persona strength: one line, a biography, the known-group personas) is an axis
of its own, `mechvalue.study.personas`.
"""

from __future__ import annotations

from mechvalue.errors import MechValueError
from mechvalue.measurement.anchoring import AnchoredLikert
from mechvalue.measurement.calibration import Calibrated
from mechvalue.measurement.likert import Likert
from mechvalue.measurement.logprob import LogProb
from mechvalue.measurement.protocol import Balanced, Plain, Protocol
from mechvalue.measurement.scorer import Scorer

# both orders of the options: yes/no 'yes' or 'no' / 'no' or 'yes'; portrait 1 = very much / 1 = not at all
BOTH_ORDERS = ("study", "swapped")
STUDY = "Kang et al. (2025), ACL Findings, the study reproduced: its yes/no prompt, first-token log-probs"
PROTOCOLS: dict[str, Protocol] = {
    p.name: p
    for p in (
        Plain("study", LogProb(), STUDY + " (cf. Wang et al. 2024, 'My Answer is C')"),
        Plain("anchoring", AnchoredLikert(), "Rozen et al. (2025), Do LLMs have Consistent Values?, ICLR"),
        Plain("portrait", Likert(), "Schwartz et al. (2001), the PVQ's portrait format, six options"),
        Calibrated(),
        Balanced(
            "balanced", LogProb(), BOTH_ORDERS, "option-order counterbalancing (Zheng et al. 2024, ICLR)"
        ),
        Balanced("portrait-balanced", Likert(), BOTH_ORDERS, "the PVQ's portrait format numbered both ways"),
    )
}


def get_protocol(name: str) -> Protocol:
    if name not in PROTOCOLS:
        raise MechValueError(f"protocol={name!r}: expected one of {', '.join(PROTOCOLS)}")
    return PROTOCOLS[name]


def scorer_protocol(scorer: Scorer) -> Protocol:
    """A scorer asked plainly, as a protocol (what `--scoring` alone means)."""
    return Plain(scorer.name, scorer, "", scorer.description)
