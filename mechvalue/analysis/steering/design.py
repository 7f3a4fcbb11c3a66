"""The comparison's design: which method x value x strength conditions are measured on how many
test roles, what that costs in forward tokens, and what 95% CI half-widths it buys.

- `exhaustive`: every method at every strength of its unit, for every target value, on every test
  role, each condition with the whole fluency cost (perplexity, KL, speed).
- `powered`: one strength per method and value, the largest whose KL(unsteered || steered) on the
  neutral text is within the fluency bound (`CompareSpec.kl_bound`; the probe needs no roles and no
  value items, so the choice never sees the test); `plan` picks the fewest test roles whose
  per-value CI and power meet `Targets` at the pilot's effects and per-role variances
  (`RoleVariance`), then the most target values (a seeded sample) that fit the time budget; speed
  is timed once per method and strength. The best table then reads
  the same rule as the exhaustive sweep's (the largest admissible efficacy) wherever efficacy
  grows with strength inside the bound, as it did in the pilot.

Costs are forward tokens (a prefix-cached continuation counts its new tokens, padded; a backward
pass two forwards of the layers above the hook), and minutes at `TokenSizes.tokens_per_s` (the
test measurement's tokens `TokenSizes.measured` times slower: its small batches and bookkeeping). CI half-widths
are t approximations of the bootstrap intervals `stats.effect_metrics` reports, the between-role
SD unit held fixed as there (`halfwidths`).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, replace
from typing import Literal

from mechvalue.errors import MechValueError

SteerDesign = Literal["powered", "exhaustive"]


@dataclass(frozen=True)
class TokenSizes:
    """Forward tokens of the comparison's parts; the defaults are SmolLM2-135M's chat prompt with
    the shipped inventory and the study's 40 personas (measured with its tokenizer)."""

    role_prefix: float = 190.0  # a role's prompt up to its first item-specific token (run once per batch)
    item: float = 21.0  # an item's rest of the prompt through the prefix cache, padded to the batch's longest
    hard: float = 18.0  # the hard prompt's tokens
    train_prompt: float = 207.0  # one whole item prompt (vectors, correlation, attribution)
    neutral: float = 39.0  # one neutral prompt or text (the fluency cost)
    hook_depth: float = 16 / 30  # share of the layers up to the hook (residual reads stop there)
    tokens_per_s: float = 590.0  # SmolLM2-135M on this machine's 2 cores, quiet
    measured: float = 1.4  # time per token of a role's prefix-cached measurement over a plain forward's


@dataclass(frozen=True)
class RoleVariance:
    """The size and per-role spread of the effects, in between-role SD units of the unsteered test
    roles: the SD across roles of one condition's target change (`sd_effect`) and of the paired
    difference of two methods' target changes on a value (`sd_diff`); the median |efficacy|
    (`effect`) and |efficacy difference of two methods on a value| (`diff`).

    The defaults are the pilot's: SmolLM2-135M, the quick recipe SAE, 40 personas (12 test
    roles), targets Achievement and Benevolence, prompting, DiffMean and CAA at 0.25 / 0.5 / 1
    residual norms, the correlation and gradient SAE features at 4 / 8 typical activations.
    `sd_effect` and `effect` are over the best admissible conditions (2.5 and 23; all 20
    conditions: median 1.6, range 0.8 to 3.3), `sd_diff` and `diff` the medians over the 78 pairs
    of two methods' conditions on a value (range of the SD 0.2 to 4.6). `role_variance`
    recomputes them from a finished comparison."""

    sd_effect: float = 2.5
    sd_diff: float = 2.3
    effect: float = 23.0
    diff: float = 18.0


@dataclass(frozen=True)
class Targets:
    """What the powered design must reach: a value's efficacy CI half-width at most `precision`
    x the median efficacy, and `power` to find the median difference of two methods on a value
    (two-sided 5%); then as many target values as fit `minutes` (at least two, so that the
    overall winner is a mean over values)."""

    precision: float = 0.25
    power: float = 0.8
    minutes: float = 4.0


@dataclass(frozen=True)
class Plan:
    """What a design measures: the target values, the test roles, every value's test items."""

    design: SteerDesign
    values: int
    test_roles: int
    test_items: int


def halfwidths(n_roles: int, n_values: int, var: RoleVariance) -> dict[str, float]:
    """95% CI half-widths (t quantile) of a value's efficacy on `n_roles` test roles and of two
    methods' difference on a value (paired on the roles) and in their mean over `n_values` values,
    with the power to find the median method difference (`var.diff`) on one value and over the
    values. As the report's bootstrap intervals, the between-role SD unit is held fixed (a common
    scale of both methods: it cannot change which one moved the value more), and the values are
    the ones measured (their spread is not sampled)."""
    if n_roles < 2 or n_values < 1:
        raise MechValueError(f"halfwidths: need 2+ roles and 1+ value (got {n_roles}, {n_values})")
    from scipy import stats

    t = float(stats.t.ppf(0.975, n_roles - 1))
    se = var.sd_diff / math.sqrt(n_roles)
    return {
        "per_value": t * var.sd_effect / math.sqrt(n_roles),
        "difference": t * se,
        "overall": t * se / math.sqrt(n_values),
        "power": float(stats.norm.cdf(var.diff / se - t)),
        "power_overall": float(stats.norm.cdf(var.diff / se * math.sqrt(n_values) - t)),
    }


def _measured(spec, method: str, design: SteerDesign) -> int:
    """Strengths of `method` measured on the test roles."""
    return len(spec.strengths(method)) if design == "exhaustive" else 1


def train_cost(spec, n_values: int, sizes: TokenSizes = TokenSizes()) -> float:
    """Forward tokens of the train side for `n_values` targets (two train items each, as the
    shipped split): the unit, the vectors, the span activation, the correlation's roles and the
    gradient attribution (shared by the span and gradient choices)."""
    z, items = sizes, 2 * n_values
    half = z.hook_depth * z.train_prompt  # residual reads stop at the hook
    roles = spec.vector_roles + 1  # with the no-role prompt
    parts = {
        "diffmean": 2 * roles * items * z.hook_depth * (z.train_prompt + z.hard),
        "caa": 2 * roles * items * half,
        "sae_span": roles * half,
        "sae_corr": spec.corr_roles * (z.role_prefix + z.item * items + items * half),
    }
    grad = spec.grad_roles * items * z.train_prompt * (1 + 2 * (1 - z.hook_depth))
    uses_grad = bool({"sae_span", "sae_grad"} & set(spec.methods))
    return items * half + sum(parts.get(m, 0.0) for m in spec.methods) + (grad if uses_grad else 0.0)


def cost(plan: Plan, spec, sizes: TokenSizes = TokenSizes()) -> dict[str, float]:
    """Forward tokens per part of a comparison of `spec`'s methods under `plan` (the unsteered and
    the steered test measurements, the fluency cost, the train side), and estimated minutes."""
    z, n, items = sizes, plan.test_roles, plan.test_items
    groups = max(1, items // 2)  # prompting's batches: one per value of the test items
    role = z.role_prefix + z.item * items
    if plan.design == "exhaustive":  # prompting: one batch per value (its own prefix)
        prompting_role = groups * (z.role_prefix + z.hard) + z.item * items
    else:  # one hard prompt for every item: one prefix (`steer_compare.OneHardMeasurer`)
        prompting_role = role + z.hard
    conds = {m: plan.values * _measured(spec, m, plan.design) for m in spec.methods}
    test = n * role + sum(c * n * (prompting_role if m == "prompting" else role) for m, c in conds.items())
    kl = spec.neutral_texts * z.neutral  # steered neutral texts (the base once per run)
    full = 2 * spec.neutral_prompts * z.neutral + spec.neutral_prompts * spec.gen_tokens * 2 + kl
    timing = 6 * kl
    if plan.design == "exhaustive":
        fluency = sum(conds.values()) * (full + timing)
    else:  # the KL probe at every other strength, speed once per method
        probes = sum(plan.values * (len(spec.strengths(m)) - 1) for m in spec.methods) * kl
        fluency = sum(conds.values()) * full + len(spec.methods) * timing + probes
    fluency += full + kl  # the unsteered reference
    train = train_cost(spec, plan.values, sizes)
    total = train + test + fluency
    return {
        "train_tokens": train,
        "test_tokens": test,
        "fluency_tokens": fluency,
        "tokens": total,
        "minutes": (total + (z.measured - 1) * test) / z.tokens_per_s / 60,
    }


def plan(
    spec,
    available: Plan,
    targets: Targets = Targets(),
    var: RoleVariance = RoleVariance(),
    sizes: TokenSizes = TokenSizes(),
) -> Plan:
    """The sizes `spec.design` measures out of `available` (every target value, test role and
    test item). The exhaustive design takes them all. The powered one takes the fewest test roles
    (at least `MIN_ROLES`) whose per-value CI and power meet `targets` at `var` (all of them when
    none does), then the most target values that fit `targets.minutes` at those roles (at least
    two, or all there are)."""
    from mechvalue.analysis.steering.stats import MIN_ROLES

    if spec.design == "exhaustive" or available.test_roles < MIN_ROLES:
        return replace(available, design=spec.design)

    def meets(n: int) -> bool:
        h = halfwidths(n, 1, var)
        return h["per_value"] <= targets.precision * var.effect and h["power"] >= targets.power

    n = next((k for k in range(MIN_ROLES, available.test_roles + 1) if meets(k)), available.test_roles)
    least = min(2, available.values)
    fits = [
        v
        for v in range(least, available.values + 1)
        if cost(Plan("powered", v, n, available.test_items), spec, sizes)["minutes"] <= targets.minutes
    ]
    return Plan("powered", max(fits, default=least), n, available.test_items)


def sample_values(targets: list[str], k: int, seed: int) -> list[str]:
    """A seeded sample of `k` of the target values (all when k covers them), in their order."""
    if k >= len(targets):
        return list(targets)
    pick = set(random.Random(seed).sample(list(targets), k))
    return [v for v in targets if v in pick]


def role_variance(out) -> RoleVariance:
    """`RoleVariance` of a finished comparison (its folder `out`): per value the best admissible
    condition of each method (best.csv), its per-role
    target changes in the unsteered test roles' SD units; medians over those conditions of the SD
    across roles, and over the pairs of methods on a value of the SD of their paired difference
    and of |the difference of their means|. Conditions that move nothing (strength 0) are left out."""
    from pathlib import Path

    import numpy as np
    import pandas as pd

    from mechvalue.study.schema import by_role

    out = Path(out)
    base = by_role(pd.read_csv(out / "parts" / "unsteered.csv"))
    sd = base.std(ddof=1)
    best = pd.read_csv(out / "best.csv").dropna(subset=["efficacy"])
    d: dict[tuple[str, str], pd.Series] = {}
    for r in best.itertuples():
        w = pd.read_csv(out / "parts" / f"{r.method}@{r.strength:g}.csv")
        w = w[w["target"] == r.value]
        w = w.set_index(w["player_name"].fillna(""))
        x = ((w[r.value] - base[r.value]) / sd[r.value]).loc[base.index]
        if x.abs().sum() > 0:
            d[(r.value, r.method)] = x
    pairs = [(d[a] - d[b]) for a in d for b in d if a[0] == b[0] and a[1] < b[1]]
    if not pairs:
        raise MechValueError(f"{out}: best.csv has no value with two methods that moved it")
    return RoleVariance(
        sd_effect=float(np.median([x.std(ddof=1) for x in d.values()])),
        sd_diff=float(np.median([p.std(ddof=1) for p in pairs])),
        effect=float(np.median([abs(x.mean()) for x in d.values()])),
        diff=float(np.median([abs(p.mean()) for p in pairs])),
    )


def describe(record: dict, targets: list[str]) -> str:
    """One sentence on a run's design (design.json's "design" record and its target values)."""
    cost_ = record["cost"]
    how = f"{record['test_roles']} test roles, {record['values']} target value(s) ({', '.join(targets) or 'all'})"
    if record["design"] == "exhaustive":
        what = "Exhaustive design: every method at every strength"
    else:
        what = (
            "Powered design: each method at one strength per value, the largest whose KL on neutral "
            "text is within the bound (chosen before any test item is asked)"
        )
    return (
        f"{what}; {how}; about {cost_['tokens'] / 1e3:.0f}k forward tokens "
        f"({cost_['minutes']:.1f} min at {TokenSizes().tokens_per_s:.0f} tokens/s)."
    )
