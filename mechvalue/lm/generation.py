"""Greedy decoding and answer-position logits on a TransformerBridge, with HF's KV cache.

Padding is given by an explicit attention mask (a pad id that is also a real token, as SmolLM2's
<|im_end|>, is never masked by mistake) and positions come from that mask. Only the read position
is unembedded (`logits_to_keep=1`: with a 49k vocabulary the full unembedding is ~30% of a small
model's forward). Hooks are per forward call: positioned hooks (`mechvalue.lm.hooks`) are moved to
the positions that call covers, so no hook is ever told from outside where to edit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from mechvalue.lm import compat
from mechvalue.lm.batching import left_pad
from mechvalue.lm.bridge import as_bridge, model_device
from mechvalue.lm.hooks import HookList, installed, per_call
from mechvalue.lm.kv_cache import RoomyCache, drop_rows


def new_cache():
    from transformers import DynamicCache

    return DynamicCache()


def decode_cache(model, room: int) -> RoomyCache:
    """The cache `greedy_generate` decodes with: room for `room` new positions, keys and values
    stored per query head where the model's attention groups them (`mechvalue.lm.kv_cache`)."""
    return RoomyCache(room, compat.kv_groups(as_bridge(model)))


def logits_at(
    model,
    tokens: Int[Tensor, "batch pos"],
    attn: Int[Tensor, "batch past_and_pos"],
    cache=None,
    hooks: HookList | None = None,
    at: Int[Tensor, " batch"] | None = None,
) -> Float[Tensor, "batch vocab"]:
    """Logits at one position per row of `tokens` (default: the last). `attn` covers the cached
    positions and `tokens`; with a `cache` (HF `DynamicCache`) the new keys and values are
    appended to it. Other positions than the last are read from the final norm's output and
    unembedded here (with Gemma-2's final soft-capping), still only at the read positions."""
    bridge = as_bridge(model)
    compat.install(bridge)
    n = tokens.shape[1]
    position_ids = (attn.cumsum(-1) - 1).clamp(min=0)[:, -n:]
    kw = {"attention_mask": attn, "position_ids": position_ids, "logits_to_keep": 1}
    kw |= (
        {**compat.cache_kwargs(bridge, cache), "use_cache": True}
        if cache is not None
        else {"use_cache": False}
    )
    if at is None:
        with installed(bridge, hooks or []):
            return bridge(tokens, **kw)[:, -1]
    final = {}

    def keep(h, hook):
        final["h"] = h

    with installed(bridge, [*(hooks or []), ("ln_final.hook_out", keep)]):
        bridge(tokens, **kw)
    hf = bridge.original_model
    rows = torch.arange(tokens.shape[0], device=tokens.device)
    logits = hf.lm_head(final["h"][rows, at][:, None])[:, 0]
    cap = getattr(hf.config, "final_logit_softcapping", None)
    return torch.tanh(logits / cap) * cap if cap else logits


@dataclass
class Edits:
    """Hooks for a generation and where the positioned ones edit: the prompt positions
    `prompt_masks` marks (left-padded layout; None: none) and, if `generated`, every generated
    token. Plain hook functions run on every call."""

    hooks: HookList = field(default_factory=list)
    prompt_masks: Bool[Tensor, "batch pos"] | None = None
    generated: bool = False
    shared_prefix: int = 0
    """leading prompt positions every row shares, run once for the batch (`greedy_generate`); the
    edits must treat them alike in every row (`Measurer.shared_prefix` checks that)"""


def greedy_generate(
    model,
    prompts: list[list[int]],
    max_new_tokens: int = 100,
    stop_ids: set[int] | None = None,
    edits: Edits | None = None,
    use_cache: bool = True,
    stop: Callable[[list[int], int], bool] | None = None,
) -> list[list[int]]:
    """Greedy continuation of each prompt (a list of token ids) under `edits`; returns the new
    tokens. Without the cache every step reruns the whole sequence: the slow reference the cached
    path is tested against. A row also ends where `stop(its new tokens, tokens it has left)` is
    True (e.g. a parse rule's answer can no longer change); the batch ends when every row has.

    `edits.shared_prefix`: the number of leading tokens every prompt shares (with the cache). They
    run once, in one row, and their KV cache is broadcast to the rows; each row's rest follows after a gap of
    padding, so that every row ends in the last column (`gap_layout`). The logits are those of
    full passes up to float32 rounding. Not taken where a sliding attention window could reach
    across the gap (the gap would shift what the window sees).

    With the cache, a finished row leaves the batch at once (the last live row moves into its
    place, `mechvalue.lm.kv_cache.drop_rows`), so later steps cost what the rows still decoding
    cost; each row's tokens are those of the whole batch decoded together
    (tests/lm/test_generation.py).
    """
    bridge = as_bridge(model)
    edits = edits or Edits()
    hooks, prompt_masks, steer_generated = edits.hooks, edits.prompt_masks, edits.generated
    prefix = edits.shared_prefix
    tok = bridge.tokenizer
    stop_ids = stop_ids if stop_ids is not None else {tok.eos_token_id}
    pad = tok.pad_token_id or 0
    dev = model_device(bridge)
    tokens, attn = left_pad(prompts, pad, dev)
    b = tokens.shape[0]
    masks = prompt_masks.to(dev) if prompt_masks is not None else torch.zeros_like(tokens, dtype=torch.bool)
    out: list[list[int]] = [[] for _ in range(b)]
    finished = [False] * b
    live = torch.arange(b, device=dev)  # the rows a call computes, by their row in `prompts`
    cache = decode_cache(bridge, max_new_tokens) if use_cache else None
    generated = "all" if steer_generated else None  # where positioned hooks edit a decode step
    step_hooks = per_call(hooks, generated)  # until a row leaves
    window = getattr(bridge.original_model.config, "sliding_window", None)
    if not use_cache or (window and tokens.shape[1] + max_new_tokens > window):
        prefix = 0
    with torch.no_grad():
        if prefix:
            tokens, attn, masks = gap_layout(tokens, attn, masks, prefix)
            logits_at(
                bridge, tokens[:1, :prefix], attn[:1, :prefix], cache, per_call(hooks, masks[:1, :prefix])
            )
            broadcast_cache(cache, b)
            logits = logits_at(bridge, tokens[:, prefix:], attn, cache, per_call(hooks, masks[:, prefix:]))
        else:
            logits = logits_at(bridge, tokens, attn, cache, per_call(hooks, masks))
        seq, seq_mask = tokens, masks
        for step in range(max_new_tokens):
            left = max_new_tokens - step - 1
            before = list(finished)
            for i, t in zip(live.tolist(), logits.argmax(-1).tolist()):
                if not finished[i]:
                    out[i].append(t)
                    finished[i] = t in stop_ids or (stop is not None and stop(out[i], left))
            if all(finished) or left == 0:
                break
            if use_cache:  # finished rows leave the batch
                keep = torch.tensor([not finished[i] for i in live.tolist()], device=dev)
                if not bool(keep.all()):
                    order = drop_rows(cache, keep)
                    live, attn = live[order], attn[order]
                    step_hooks = per_call(hooks, generated, live)
                attn = torch.cat([attn, attn.new_ones((len(live), 1))], 1)
                nxt = torch.tensor([out[i][-1] for i in live.tolist()], device=dev)
                logits = logits_at(bridge, nxt[:, None], attn, cache, step_hooks)
            else:  # the reference: every row stays, rows finished before this step decode padding
                nxt = torch.tensor([pad if before[i] else out[i][-1] for i in range(b)], device=dev)
                attn = torch.cat([attn, attn.new_ones((b, 1))], 1)
                seq = torch.cat([seq, nxt[:, None]], 1)
                seq_mask = torch.cat([seq_mask, torch.full((b, 1), steer_generated, device=dev)], 1)
                logits = logits_at(bridge, seq, attn, None, per_call(hooks, seq_mask))
    return [o[:-1] if o and o[-1] in stop_ids else o for o in out]


def gap_layout(
    tokens: Int[Tensor, "batch pos"], attn: Int[Tensor, "batch pos"], masks: Bool[Tensor, "batch pos"], n: int
) -> tuple[Int[Tensor, "batch pos"], Int[Tensor, "batch pos"], Bool[Tensor, "batch pos"]]:
    """A left-padded batch with each row's first `n` tokens moved to the first `n` columns: the
    shared prefix, then padding, then the row's rest, still ending in the last column (the
    attention mask skips the gap; positions, counted from it, are those of the unpadded prompt)."""
    tokens, attn, masks = tokens.clone(), attn.clone(), masks.clone()
    for i, start in enumerate((attn == 0).sum(1).tolist()):
        if start:
            for t in (tokens, attn, masks):
                t[i, :n], t[i, n : start + n] = t[i, start : start + n].clone(), t[i, :start].clone()
    return tokens, attn, masks


def last_logits(
    model,
    prompts: list[list[int]],
    hooks: HookList | None = None,
    edit_masks: Bool[Tensor, "batch pos"] | None = None,
) -> Float[Tensor, "batch vocab"]:
    """Next-token logits after each prompt (one left-padded forward pass); positioned hooks edit
    where `edit_masks` is True."""
    bridge = as_bridge(model)
    tokens, attn = left_pad(prompts, bridge.tokenizer.pad_token_id or 0, model_device(bridge))
    with torch.no_grad():
        return logits_at(bridge, tokens, attn, None, per_call(hooks or [], edit_masks))


def prefix_last_logits(
    model,
    prefix: list[int],
    suffixes: list[list[int]],
    hooks: HookList | None = None,
    prefix_mask: Bool[Tensor, "1 pos"] | None = None,
    steer_suffix: bool = False,
) -> Float[Tensor, "batch vocab"]:
    """Next-token logits after prefix + each suffix, running the shared prefix once.

    The prefix's KV cache is computed for batch 1 and broadcast; suffixes are right-padded after
    it (no gap, so sliding-window attention sees what a full pass sees) and each row is read at
    its last token. Positioned
    `hooks` edit the prefix where `prefix_mask` is True (a steered span in the shared prefix,
    e.g. " your values") and every suffix token if `steer_suffix`.
    """
    hooks = hooks or []
    cache = prefix_kv(model, prefix, hooks, prefix_mask)
    with torch.no_grad():
        return suffix_logits(model, cache, len(prefix), suffixes, (hooks, steer_suffix))


def prefix_kv(
    model, prefix: list[int], hooks: HookList | None = None, prefix_mask: Bool[Tensor, "1 pos"] | None = None
):
    """The batch-1 KV cache of `prefix`, positioned `hooks` editing where `prefix_mask` is True."""
    bridge = as_bridge(model)
    dev = model_device(bridge)
    with torch.no_grad():
        cache = new_cache()
        p = torch.tensor([prefix], device=dev)
        pmask = prefix_mask.to(dev) if prefix_mask is not None else None
        logits_at(bridge, p, torch.ones_like(p), cache, per_call(hooks or [], pmask))
    return cache


def cache_layers(cache) -> list[tuple[Tensor, Tensor]]:
    """Each layer's (keys, values) of `cache` now, for `restore_layers` after calls extend it."""
    return [(layer.keys, layer.values) for layer in cache.layers]


def restore_layers(cache, kv: list[tuple[Tensor, Tensor]]) -> None:
    """Put back the keys and values `cache_layers` took (the tensors themselves: no copy)."""
    for layer, (k, v) in zip(cache.layers, kv):
        layer.keys, layer.values = k, v


def broadcast_cache(cache, rows: int) -> None:
    """Make a batch-1 cache `rows` rows, a broadcast view (no copy)."""
    for layer in cache.layers:
        layer.keys = layer.keys.expand(rows, *layer.keys.shape[1:])
        layer.values = layer.values.expand(rows, *layer.values.shape[1:])


def suffix_logits(
    model, cache, past: int, suffixes: list[list[int]], steer: tuple[HookList, bool] = ([], False)
) -> Float[Tensor, "batch vocab"]:
    """Next-token logits after each suffix continuing `cache` (its `past` positions shared by
    every row; a batch-1 cache is broadcast): suffixes right-padded after it (no gap, so sliding-
    window attention sees what a full pass sees), each row read at its last token. `steer`:
    (hooks, whether positioned ones edit every suffix token)."""
    bridge = as_bridge(model)
    dev = model_device(bridge)
    b = len(suffixes)
    if cache.layers and cache.layers[0].keys.shape[0] == 1:  # (a cache never filled has none)
        broadcast_cache(cache, b)
    n = max(map(len, suffixes))
    toks = torch.tensor([s + [0] * (n - len(s)) for s in suffixes], device=dev)
    attn = torch.tensor([[1] * len(s) + [0] * (n - len(s)) for s in suffixes], device=dev)
    full = torch.cat([torch.ones((b, past), dtype=attn.dtype, device=dev), attn], 1)
    last = torch.tensor([len(s) - 1 for s in suffixes], device=dev)
    if bool((last == n - 1).all()):
        last = None  # every row ends at the last position: HF unembeds it alone
    hooks, steer_suffix = steer
    return logits_at(bridge, toks, full, cache, per_call(hooks, attn.bool() if steer_suffix else None), last)
