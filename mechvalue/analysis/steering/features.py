"""Choosing one SAE feature per target value, from the TRAIN items and roles only, three ways:
the study's top activation at " your values" (span), correlation across roles (corr) and
gradient attribution (grad). Each choice returns one features.csv row per value: the feature,
its statistic, n and 95% CI, or the note saying why there is none (feature -1).

The span activations and the gradient attribution are computed once per build and shared
(`TrainContext.shared`): the span choice ranks its candidates by the attribution.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from scipy import stats
from tqdm.auto import tqdm

from mechvalue.analysis.steering.base import TrainContext
from mechvalue.analysis.steering.stats import fisher_ci, too_few
from mechvalue.interp import vectors as vec
from mechvalue.interp.features import span_activation, span_candidates
from mechvalue.measurement.scoring import Condition, measure


def _row(value: str, method: str, feature: int, statistic: str, estimate: float, n: int) -> dict:
    return {
        "value": value,
        "method": method,
        "feature": feature,
        "statistic": statistic,
        "estimate": estimate,
        "n": n,
        "lo": np.nan,
        "hi": np.nan,
        "note": "",
    }


def _targets_train(ctx: TrainContext) -> pd.DataFrame:
    """The train items of the target values."""
    return ctx.train[ctx.train["value"].isin(ctx.targets)].reset_index(drop=True)


def _span_activation(ctx: TrainContext) -> tuple[torch.Tensor, list[int], int]:
    """Mean SAE activation on the " your values" span (one prompt per role, no role first; the span
    precedes the question), the `candidates` most active features, and the number of prompts."""
    if "span" not in ctx.shared:
        span_roles = [None, *ctx.train_roles[: ctx.spec.vector_roles]]
        ps = [ctx.measurer.prompts(_targets_train(ctx).head(1), r, Condition())[0] for r in span_roles]
        span_mean = span_activation(ctx.model, ctx.sae, ps)
        ctx.shared["span"] = span_mean, span_candidates(span_mean, ctx.spec.candidates), len(span_roles)
    return ctx.shared["span"]


def _attribution(ctx: TrainContext) -> np.ndarray | None:
    """Gradient attribution per typical unit, [roles, d_sae, targets] (None: too few roles)."""
    if "grad" not in ctx.shared:
        from mechvalue.analysis.attribution import gradient_attribution

        groles = ctx.train_roles[: ctx.spec.grad_roles]
        grad = None
        if not too_few(len(groles)):
            sub = _targets_train(ctx)
            per = [
                gradient_attribution(ctx.measurer, ctx.sae, sub, [r], ctx.spec.where).mul(
                    ctx.typical.numpy(), axis=0
                )
                for r in tqdm(groles, desc="gradient attribution", disable=not ctx.progress)
            ]
            grad = np.stack([p[ctx.targets].to_numpy() for p in per])
        ctx.shared["grad"] = grad
    return ctx.shared["grad"]


def span_choice(ctx: TrainContext, method: str) -> list[dict]:
    """The study's rule: among the `candidates` most active on " your values", the one with the
    largest gradient attribution to the value (the single most active without enough roles)."""
    span_mean, cands, n = _span_activation(ctx)
    grad = _attribution(ctx)
    rows = []
    for j, v in enumerate(ctx.targets):
        if grad is not None:
            f = max(cands, key=lambda c: grad[:, c, j].mean())
            why = f"most active on ' your values' among top {ctx.spec.candidates}, largest attribution to {v}"
        else:
            f, why = cands[0], "most active on ' your values' (too few roles to match it to a value)"
        rows.append(_row(v, method, f, "span activation", float(span_mean[f]), n) | {"note": why})
    return rows


def grad_choice(ctx: TrainContext, method: str) -> list[dict]:
    """The feature with the largest mean gradient attribution to the value (per typical unit),
    with a t interval across the train roles."""
    grad = _attribution(ctx)
    n = len(ctx.train_roles[: ctx.spec.grad_roles])
    if grad is None:
        return [_row(v, method, -1, "attribution", np.nan, n) | {"note": too_few(n)} for v in ctx.targets]
    rows = []
    for j, v in enumerate(ctx.targets):
        m = grad[:, :, j].mean(0)
        f = int(np.argmax(m))
        se = grad[:, f, j].std(ddof=1) / np.sqrt(n)
        tq = stats.t.ppf(0.975, n - 1)
        ci = {"lo": float(m[f] - tq * se), "hi": float(m[f] + tq * se)}
        rows.append(_row(v, method, f, "attribution per typical unit", float(m[f]), n) | ci)
    return rows


def corr_choice(ctx: TrainContext, method: str) -> list[dict]:
    """The feature whose answer-position activation correlates most with the value's score across
    the train roles (Pearson r, Fisher interval)."""
    from mechvalue.analysis.attribution import correlation
    from mechvalue.study.schema import wide_table

    croles = ctx.train_roles[: ctx.spec.corr_roles]
    note = too_few(len(croles))
    if note:
        return [_row(v, method, -1, "pearson r", np.nan, len(croles)) | {"note": note} for v in ctx.targets]
    sub = _targets_train(ctx)
    long, _ = measure(ctx.measurer, sub, croles, progress=False)
    ps = [p for r in croles for p in ctx.measurer.prompts(sub, r, Condition())]
    last = vec.residual_rows(
        ctx.model, ctx.sae.cfg.hook_name, [p.tokens for p in ps], [[len(p.tokens) - 1] for p in ps]
    )
    with torch.no_grad():
        feats = ctx.sae.encode(last.to(ctx.sae.W_enc.device)).cpu()
    names = [r.name for r in croles for _ in range(len(sub))]
    corr = correlation(feats, names, list(sub["value"]) * len(croles), wide_table(long))
    rows = []
    for v in ctx.targets:
        f = int(corr[v].idxmax())
        r = float(corr.loc[f, v])
        lo, hi = fisher_ci(r, len(croles))
        rows.append(_row(v, method, f, "pearson r", r, len(croles)) | {"lo": lo, "hi": hi})
    return rows
