"""Greedy decoding on a HookedTransformer with a KV cache, left padding and position masks.

Unlike `HookedTransformer.generate`, padding is given by an explicit attention mask (so a pad
id that is also a real token, as SmolLM2's <|im_end|>, is never masked by mistake), and every
forward call first tells the installed steering hooks which positions it covers.
"""

from __future__ import annotations

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor
from transformer_lens.cache.key_value_cache import TransformerLensKeyValueCache as KVCache

from mechvalue.lm.batching import left_pad


def set_masks(fwd_hooks: list[tuple[str, object]], mask: Bool[Tensor, "batch pos"] | None) -> None:
    """Tell the position-aware hooks (those with a `mask`) which positions the next call edits."""
    for _, h in fwd_hooks:
        if hasattr(h, "mask"):
            h.mask = mask


def greedy_generate(
    model,
    prompts: list[list[int]],
    max_new_tokens: int = 100,
    stop_ids: set[int] | None = None,
    fwd_hooks: list[tuple[str, object]] | None = None,
    prompt_masks: Bool[Tensor, "batch pos"] | None = None,
    steer_generated: bool = False,
    use_cache: bool = True,
) -> list[list[int]]:
    """Greedy continuation of each prompt (a list of token ids); returns the new tokens.

    `prompt_masks` marks the prompt positions the hooks edit (left-padded layout);
    `steer_generated` also edits every generated token. Without the cache every step reruns
    the whole sequence: the slow reference the cached path is tested against.
    """
    fwd_hooks = fwd_hooks or []
    stop_ids = stop_ids if stop_ids is not None else {model.tokenizer.eos_token_id}
    pad = model.tokenizer.pad_token_id or 0
    tokens, attn = left_pad(prompts, pad, model.cfg.device)
    b = tokens.shape[0]
    masks = prompt_masks if prompt_masks is not None else torch.zeros_like(tokens, dtype=torch.bool)
    masks = masks.to(tokens.device)
    done = torch.zeros(b, dtype=torch.bool, device=tokens.device)
    out: list[list[int]] = [[] for _ in range(b)]
    cache = KVCache.init_cache(model.cfg, model.cfg.device, b) if use_cache else None

    def run(toks, mask_attn, edit_mask):
        set_masks(fwd_hooks, edit_mask)
        with model.hooks(fwd_hooks=fwd_hooks):
            return logits_at(model, toks, mask_attn, cache)

    with torch.no_grad():
        logits = run(tokens, attn, masks)
        seq, seq_attn, seq_mask = tokens, attn, masks
        for _ in range(max_new_tokens):
            nxt = logits.argmax(-1)
            nxt = torch.where(done, torch.full_like(nxt, pad), nxt)
            for i in range(b):
                if not done[i]:
                    out[i].append(int(nxt[i]))
            done |= torch.tensor([int(t) in stop_ids for t in nxt], device=done.device)
            if (
                bool(done.all())
                or len(out[0]) >= max_new_tokens
                and all(len(o) >= max_new_tokens for o in out)
            ):
                break
            new_mask = torch.full((b, 1), steer_generated, dtype=torch.bool, device=tokens.device)
            ones = torch.ones((b, 1), dtype=attn.dtype, device=tokens.device)
            if use_cache:
                logits = run(nxt[:, None], ones, new_mask)
            else:
                seq = torch.cat([seq, nxt[:, None]], 1)
                seq_attn = torch.cat([seq_attn, ones], 1)
                seq_mask = torch.cat([seq_mask, new_mask], 1)
                logits = run(seq, seq_attn, seq_mask)
    return [o[:-1] if o and o[-1] in stop_ids else o for o in out]


def logits_at(
    model,
    tokens: Int[Tensor, "batch pos"],
    attn: Int[Tensor, "batch pos"],
    cache: KVCache | None = None,
    at: Int[Tensor, " batch"] | None = None,
) -> Float[Tensor, "batch vocab"]:
    """Logits at one position per row (default: the last), unembedding only those positions:
    with a 49k vocabulary the full unembedding is ~30% of a small model's forward pass."""
    resid = model(tokens, attention_mask=attn, past_kv_cache=cache, stop_at_layer=model.cfg.n_layers)
    rows = torch.arange(tokens.shape[0], device=tokens.device)
    x = resid[rows, at if at is not None else -1][:, None]
    return model.unembed(model.ln_final(x))[:, 0]


def last_logits(
    model,
    prompts: list[list[int]],
    fwd_hooks: list[tuple[str, object]] | None = None,
    edit_masks: Bool[Tensor, "batch pos"] | None = None,
) -> torch.Tensor:
    """Next-token logits after each prompt (one left-padded forward pass)."""
    tokens, attn = left_pad(prompts, model.tokenizer.pad_token_id or 0, model.cfg.device)
    fwd_hooks = fwd_hooks or []
    set_masks(fwd_hooks, edit_masks)
    with torch.no_grad(), model.hooks(fwd_hooks=fwd_hooks):
        return logits_at(model, tokens, attn)


def prefix_last_logits(
    model,
    prefix: list[int],
    suffixes: list[list[int]],
    fwd_hooks: list[tuple[str, object]] | None = None,
    prefix_mask: Bool[Tensor, "1 pos"] | None = None,
    steer_suffix: bool = False,
) -> Float[Tensor, "batch vocab"]:
    """Next-token logits after prefix + each suffix, running the shared prefix once.

    The prefix's KV cache is computed for batch 1 and broadcast; suffixes are right-padded,
    which causal attention makes harmless, and each row's logits are read at its last token.
    Position-aware `fwd_hooks` edit the prefix where `prefix_mask` is True (a steered span in
    the shared prefix, e.g. " your values") and every suffix token if `steer_suffix`.
    """
    fwd_hooks = fwd_hooks or []
    with torch.no_grad():
        cache = KVCache.init_cache(model.cfg, model.cfg.device, 1)
        p = torch.tensor([prefix], device=model.cfg.device)
        set_masks(fwd_hooks, prefix_mask)
        with model.hooks(fwd_hooks=fwd_hooks):
            model(p, attention_mask=torch.ones_like(p), past_kv_cache=cache, stop_at_layer=model.cfg.n_layers)
        b = len(suffixes)
        for entry in cache.entries:
            entry.past_keys = entry.past_keys.expand(b, *entry.past_keys.shape[1:])
            entry.past_values = entry.past_values.expand(b, *entry.past_values.shape[1:])
        cache.previous_attention_mask = cache.previous_attention_mask.expand(b, -1)
        n = max(len(s) for s in suffixes)
        toks = torch.zeros((b, n), dtype=torch.long)
        attn = torch.zeros((b, n), dtype=torch.long)
        for i, s in enumerate(suffixes):
            toks[i, : len(s)] = torch.tensor(s)
            attn[i, : len(s)] = 1
        set_masks(fwd_hooks, attn.bool() if steer_suffix else None)
        last = torch.tensor([len(s) - 1 for s in suffixes], device=p.device)
        with model.hooks(fwd_hooks=fwd_hooks):
            return logits_at(model, toks.to(p.device), attn.to(p.device), cache, last)
