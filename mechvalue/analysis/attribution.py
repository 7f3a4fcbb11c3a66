"""Which SAE features drive which values, three ways, and whether their side effects follow
the value graph.

(a) correlation: a feature's activation at the answer position vs the value score, across roles;
(b) interventional: change of value score per unit of steering, from a steer grid;
(c) attribution patching: the gradient of the value score along the feature's decoder
    direction at the steered span, a one-backward-pass linear estimate of (b).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from jaxtyping import Float
from scipy import stats
from torch import Tensor

from mechvalue.causal.graph import ValueGraph
from mechvalue.interp.sae import SAE
from mechvalue.lm.batching import chunks, left_pad
from mechvalue.lm.generation import logits_at
from mechvalue.measurement.scoring import Condition, Measurer, yes_no_probs
from mechvalue.study.roles import Role
from mechvalue.study.schema import by_role, steer_key, value_columns


def correlation(
    last: Float[Tensor, "prompt d_sae"], prompt_roles: list[str], prompt_values: list[str], wide: pd.DataFrame
) -> pd.DataFrame:
    """Pearson r across roles between a feature's mean answer-position activation on a value's
    items and that value's score (rows: features, columns: values; 0 where undefined)."""
    score = by_role(wide)
    meta = pd.DataFrame({"role": prompt_roles, "value": prompt_values})
    out = {}
    for v in value_columns(wide):
        grp = meta[meta["value"] == v].groupby("role", sort=False).indices
        roles = [r for r in grp if r in score.index]
        x = torch.stack([last[torch.as_tensor(grp[r])].mean(0) for r in roles]).double()
        y = torch.tensor(score.loc[roles, v].to_numpy(float)).double()
        xc, yc = x - x.mean(0), y - y.mean()
        den = xc.norm(dim=0) * yc.norm()
        out[v] = torch.where(den > 0, (xc * yc[:, None]).sum(0) / den.clamp(min=1e-30), 0.0).numpy()
    return pd.DataFrame(out)


def gradient_attribution(
    measurer: Measurer, sae: SAE, items: pd.DataFrame, roles: list[Role | None], where: str = "span"
) -> pd.DataFrame:
    """d(value score)/d(steering strength) for adding each feature (raw units) at `where`,
    linearised at the unsteered model: W_dec[f] . mean over the value's prompts of the
    gradient of agreement * (p(yes) - p(no)) w.r.t. the residual, summed over steered positions."""
    model = measurer.model
    cond = Condition(where=where)
    grads: dict[str, list[Tensor]] = {v: [] for v in items["value"].unique()}
    flags = [p.requires_grad for p in model.parameters()]
    model.requires_grad_(False)
    try:
        for role in roles:
            prompts = measurer.prompts(items, role, cond)
            for sl in chunks(len(prompts), measurer.batch_size):
                batch = prompts[sl]
                tokens, attn = left_pad(
                    [p.tokens for p in batch], model.tokenizer.pad_token_id or 0, model.cfg.device
                )
                mask = cond.prompt_masks(batch, tokens.shape[1]).to(tokens.device)
                delta = torch.zeros(
                    *tokens.shape, model.cfg.d_model, device=tokens.device, requires_grad=True
                )

                def add(resid, hook, delta=delta):
                    return resid + delta.to(resid.dtype)  # float32 leaf, any model dtype

                with torch.enable_grad(), model.hooks(fwd_hooks=[(sae.cfg.hook_name, add)]):
                    p_yes, p_no = yes_no_probs(logits_at(model, tokens, attn), measurer.answer_ids)
                    diff = p_yes - p_no
                    agree = torch.tensor(items["agreement"].to_numpy(float)[sl], dtype=diff.dtype)
                    (diff * agree.to(diff.device)).sum().backward()
                g = (delta.grad * mask[..., None]).sum(1).cpu()  # [batch, d_model]
                for gi, v in zip(g, items["value"].iloc[sl]):
                    grads[v].append(gi)
    finally:
        for p, f in zip(model.parameters(), flags):
            p.requires_grad_(f)
    G = torch.stack([torch.stack(grads[v]).mean(0) for v in grads], 1)  # [d_model, values]
    W = sae.W_dec.detach().cpu() / sae.cfg.input_scale
    return pd.DataFrame((W @ G).numpy(), columns=list(grads))


def interventional(grid: pd.DataFrame, conditions: list[dict]) -> pd.DataFrame:
    """Per SAE condition and value: mean over roles of (steered - unsteered) / strength, its
    standard error across roles and t statistic."""
    values = value_columns(grid)
    base = by_role(grid)
    rows = []
    for c in conditions:
        if c.get("kind") != "sae":
            continue
        d = by_role(grid, c["label"]) - base
        d = d.dropna() / c["strength"]
        for v in values:
            x = d[v].to_numpy(float)
            se = x.std(ddof=1) / np.sqrt(len(x)) if len(x) > 1 else np.nan
            mean = x.mean() if len(x) else np.nan
            rows.append(
                {
                    "label": steer_key(c["label"]),
                    "feature": c["feature"],
                    "strength": c["strength"],
                    "value": v,
                    "effect": mean,
                    "se": se,
                    "t": mean / se if se and se > 0 else 0.0,
                    "n_roles": len(x),
                }
            )
    return pd.DataFrame(rows)


def side_effects(effects: pd.DataFrame, graph: ValueGraph, t_min: float = 2.0) -> dict:
    """For each steered feature: its target value (largest |t|), its side effects (other values
    with |t| >= t_min), and how many of them are graph descendants of the target. Pooled over
    features, a hypergeometric p-value for "side effects fall on descendants more than chance"."""
    per, hits, draws, pool_desc, pool_all = [], 0, 0, 0, 0
    for label, e in effects.groupby("label", sort=False):
        e = e.set_index("value")
        target = e["t"].abs().idxmax()
        others = [v for v in e.index if v != target]
        desc = graph.descendants(target) & set(others)
        side = [v for v in others if abs(e.loc[v, "t"]) >= t_min]
        on_desc = [v for v in side if v in desc]
        per.append(
            {
                "label": label,
                "target": target,
                "target_t": float(e.loc[target, "t"]),
                "side_effects": side,
                "descendants": sorted(desc),
                "side_on_descendants": on_desc,
            }
        )
        hits, draws = hits + len(on_desc), draws + len(side)
        pool_desc, pool_all = pool_desc + len(desc), pool_all + len(others)
    p = float(stats.hypergeom.sf(hits - 1, pool_all, pool_desc, draws)) if draws else float("nan")
    return {
        "features": per,
        "side_effects": draws,
        "on_descendants": hits,
        "share_on_descendants": hits / draws if draws else float("nan"),
        "chance_share": pool_desc / pool_all if pool_all else float("nan"),
        "p_value": p,
    }


def attribution_agreement(a: pd.DataFrame, b: pd.DataFrame) -> float:
    """Pearson r between two feature x value effect matrices on their shared cells."""
    x, y = a.to_numpy(float).ravel(), b.to_numpy(float).ravel()
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() <= 2 or x[ok].std() == 0 or y[ok].std() == 0:  # undefined: one side does not vary
        return float("nan")
    return float(np.corrcoef(x[ok], y[ok])[0, 1])
