"""The top of the page: the banner when no value varies between roles, each value's status under
the one pass rule (mechvalue.analysis.status, stated here once and repeated with the same words
wherever a section shows a value), and the SAE's quality."""

from __future__ import annotations

from mechvalue.analysis.status import RULE, SAE_RULE, failing, passing
from mechvalue.pipeline.grounds import Grounds
from mechvalue.pipeline.report.blocks import fmt


def measured(gr: Grounds, protocol: str) -> str | None:
    """Which values pass the one rule and which fail, with why; None before the validity stage."""
    status = gr.status
    if not status:
        return None
    ok, bad = passing(status), failing(status)
    fails = "; ".join(f"{v} ({why})" for v, why in bad.items())
    return (
        f"Values measured here (protocol {protocol}; {RULE}): {len(ok)} of {len(status)} pass"
        f"{': ' + ', '.join(ok) if ok else ''}. "
        + (
            f"Fail: {fails}. Graph edges and steering effects on failing values are not findings."
            if bad
            else ""
        )
    )


def caution(gr: Grounds) -> str | None:
    """A weaker warning for the top: scores vary, but every value fails the rule."""
    s = gr.validity
    if gr.no_role_variance or s is None or not gr.status:
        return None
    if not passing(gr.status):
        return (
            f"Every value fails the pass rule (median ICC(1) {fmt(s.get('median_icc1'), 2)}, median centred "
            f"alpha {fmt(s.get('median_alpha_centered'), 2)}): roles move the scores little against what the "
            "items disagree on. The graph, the correlations and the effects in between-role SD units rest on "
            "failing values; read them as the machinery working, not as findings."
        )
    return None


def sae(gr: Grounds) -> str | None:
    """The SAE below the quality bar, for the top."""
    why = gr.sae_problem
    if not why:
        return None
    return (
        f"The SAE is below the quality bar ({SAE_RULE}): it {why}. Its features mean little; every section "
        "that uses them (features, generations, tables 1 and 2, the SAE rows of the steering comparison) "
        "says so again."
    )
