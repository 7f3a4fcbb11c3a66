"""SAE features of questionnaire prompts, read from the activation cache or run now.

Each prompt is cached at its " your values" span and its last token (the answer position);
from these come the study's candidate rule (features most active on the span), per-prompt
answer-position features (for correlating with value scores), and each feature's typical
activation, the unit in which steering strengths are given. `span_activation` and
`typical_from_prompts` compute the same from prompts run through the model now.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from mechvalue.interp.cache import ActivationStore, CachePrompt
from mechvalue.interp.sae import SAE
from mechvalue.interp.vectors import residual_rows
from mechvalue.study.prompts import RenderedPrompt


def cache_prompts(prompts: list[RenderedPrompt]) -> list[CachePrompt]:
    """Cache positions of each prompt: the steering span and the last token."""
    out = []
    for p in prompts:
        mask = [False] * len(p.tokens)
        mask[p.span[0] : p.span[1]] = [True] * (p.span[1] - p.span[0])
        mask[-1] = True
        out.append(CachePrompt(p.tokens, p.span, mask))
    return out


@torch.no_grad()
def prompt_features(
    store: ActivationStore, sae: SAE, hook: str, n_prompts: int
) -> tuple[Float[Tensor, "prompt d_sae"], Float[Tensor, "prompt d_sae"]]:
    """(mean activation over the span, activation at the last token) per prompt."""
    x = store.rows(hook)
    pid = torch.from_numpy(store.prompt_id.astype(np.int64))
    pos = torch.from_numpy(store.f["position"][: store.n].astype(np.int64))
    f = sae.encode(x.to(sae.W_enc.device)).cpu()
    last_pos = torch.full((n_prompts,), -1, dtype=torch.long).scatter_reduce(0, pid, pos, "amax")
    is_last = pos == last_pos[pid]
    span = torch.zeros(n_prompts, f.shape[1]).index_add_(0, pid[~is_last], f[~is_last])
    count = torch.zeros(n_prompts).index_add_(0, pid[~is_last], torch.ones(int((~is_last).sum())))
    last = torch.zeros(n_prompts, f.shape[1]).index_copy_(0, pid[is_last], f[is_last])
    return span / count.clamp(min=1)[:, None], last


@torch.no_grad()
def typical_activation(sae: SAE, x: Float[Tensor, "rows d_in"], chunk: int = 4096) -> Float[Tensor, " d_sae"]:
    """Mean activation of each feature where it fires; features that never fire get the median."""
    total = torch.zeros(sae.cfg.d_sae)
    count = torch.zeros(sae.cfg.d_sae)
    for i in range(0, len(x), chunk):
        f = sae.encode(x[i : i + chunk].to(sae.W_enc.device)).cpu()
        total += f.sum(0)
        count += (f > 0).sum(0)
    typ = total / count.clamp(min=1)
    fired = count > 0
    typ[~fired] = typ[fired].median() if fired.any() else 1.0
    return typ


def typical_from_store(sae: SAE, path, limit: int = 20000) -> Float[Tensor, " d_sae"]:
    """Typical activations from the first `limit` rows of an activation cache (e.g. the SAE's own)."""
    store = ActivationStore(path)
    try:
        return typical_activation(sae, store.rows(sae.cfg.hook_name, 0, min(store.n, limit)))
    finally:
        store.close()


@torch.no_grad()
def typical_from_prompts(
    model, sae: SAE, prompts: Sequence[RenderedPrompt], limit: int | None = None
) -> Float[Tensor, " d_sae"]:
    """Typical activations over every position of `prompts` but 0 (the attention sink), run now
    (the first `limit` rows)."""
    seqs = [p.tokens for p in prompts]
    rows = residual_rows(model, sae.cfg.hook_name, seqs, [list(range(1, len(s))) for s in seqs])
    return typical_activation(sae, rows[:limit])


@torch.no_grad()
def span_activation(model, sae: SAE, prompts: Sequence[RenderedPrompt]) -> Float[Tensor, " d_sae"]:
    """Mean activation of each feature over the " your values" spans of `prompts`, run now."""
    x = residual_rows(
        model, sae.cfg.hook_name, [p.tokens for p in prompts], [list(range(*p.span)) for p in prompts]
    )
    return sae.encode(x.to(sae.W_enc.device)).cpu().mean(0)


def span_candidates(span_mean: Float[Tensor, " d_sae"], k: int) -> list[int]:
    """The study's rule: the `k` features with the highest mean activation on the span."""
    return span_mean.topk(k).indices.tolist()
