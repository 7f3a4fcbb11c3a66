"""The one rule that says whether a value's score is a measurement, and the one quality bar an
SAE must clear for its features to mean something. The report's banner, every report section,
`validity`, `graph`, `protocols` and `compare-runs` call these functions and nothing else.

A value *passes* when
- its scores vary between roles beyond the measurement noise (mechvalue.analysis.noise),
- its respondent-centred Cronbach's alpha is at least ALPHA_MIN (Nunnally 1978: .70 for
  research instruments; centring removes a role-wide yes-saying that passes for consistency), and
- the lower end of its ICC(1) 95% CI is above ICC1_MIN (LeBreton & Senter 2008: .01/.10/.25 are
  small/medium/large shares of between-group variance; below .05 roles barely move the value).
Otherwise it *fails*, and its status says why.
"""

from __future__ import annotations

import math

import pandas as pd

ALPHA_MIN = 0.70
ICC1_MIN = 0.05
NO_VARIANCE = "no role variance beyond the noise"
RULE = (
    f"a value passes when its between-role SD exceeds the measurement noise, its respondent-centred "
    f"alpha is at least {ALPHA_MIN:g} and the lower end of its ICC(1) 95% CI is above {ICC1_MIN:g}"
)
# an SAE that explains less of the activations' variance, or costs the model more loss when
# spliced in, reconstructs too little for its features to stand for what the model computes
SAE_FVE_MIN = 0.7
SAE_DELTA_LOSS_MAX = 0.5  # nats/token
SAE_RULE = (
    f"an SAE is usable when it explains at least {SAE_FVE_MIN:g} of the activations' variance and "
    f"adds at most {SAE_DELTA_LOSS_MAX:g} nats/token to the LM loss when spliced in"
)


def _finite(x) -> bool:
    try:
        return x is not None and math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def value_status(rel: pd.DataFrame, centred: pd.DataFrame | None) -> dict[str, str]:
    """value -> "" when it passes, else why it fails (comma-separated). `rel`: the raw reliability
    table (`validity.reliability`: value, icc1_lo and, where it has it, `varies`); `centred`:
    the same on respondent-centred scores (value, alpha and, where it has it, `varies`), or None."""
    alpha_c = {} if centred is None else dict(zip(centred["value"], centred["alpha"]))
    flat_c = (
        set()
        if centred is None or "varies" not in centred
        else {v for v, f in zip(centred["value"], centred["varies"]) if not _truthy(f)}
    )
    out = {}
    for r in rel.to_dict("records"):
        v = str(r["value"])
        if "varies" in r and not _truthy(r["varies"]):
            out[v] = NO_VARIANCE
            continue
        a, lo, why = alpha_c.get(r["value"]), r.get("icc1_lo"), []
        if r["value"] in flat_c:
            why.append("centred: no role variance beyond the noise")
        elif not (_finite(a) and float(a) >= ALPHA_MIN):
            why.append(f"centred alpha {float(a):.2f}" if _finite(a) else "centred alpha n/a")
        if not (_finite(lo) and float(lo) > ICC1_MIN):
            why.append(f"ICC(1) CI from {float(lo):.2f}" if _finite(lo) else "ICC(1) n/a")
        out[v] = ", ".join(why)
    return out


def _truthy(x) -> bool:
    return str(x).strip().lower() in ("true", "1", "yes") if isinstance(x, str) else bool(x)


def passing(status: dict[str, str]) -> list[str]:
    """The values that pass, in the status's order."""
    return [v for v, why in status.items() if not why]


def failing(status: dict[str, str]) -> dict[str, str]:
    """value -> why, for the values that fail."""
    return {v: why for v, why in status.items() if why}


def label(status: dict[str, str], value: str) -> str:
    """How a value's status reads wherever it is shown: "pass", "fail: why", or "not checked"."""
    if value not in status:
        return "not checked"
    return "pass" if not status[value] else f"fail: {status[value]}"


def sae_quality(metrics: dict | None) -> str | None:
    """ "" when an SAE's metrics (sae.json's "metrics": fve, delta_loss) clear the bar, else why
    not; None when neither was measured (an SAE given by path, not trained here)."""
    m = metrics or {}
    fve, dl = m.get("fve"), m.get("delta_loss")
    if not (_finite(fve) or _finite(dl)):
        return None
    why = []
    if _finite(fve) and float(fve) < SAE_FVE_MIN:
        why.append(f"explains {float(fve):.3f} of the activations' variance (bar: {SAE_FVE_MIN:g})")
    if _finite(dl) and float(dl) > SAE_DELTA_LOSS_MAX:
        why.append(f"adds {float(dl):.2f} nats/token to the LM loss (bar: {SAE_DELTA_LOSS_MAX:g})")
    return "; ".join(why)
