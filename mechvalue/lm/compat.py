"""What the bridge needs on every supported transformers release, installed once per model.

1. The KV cache reaches TransformerLens's own attention. transformers >= 5.24 hands the cache to
   each attention module as `cache=` (`past_key_values` is deprecated, removal announced for
   5.40). TransformerLens's attention bridges that compute attention themselves (rotary,
   joint-QKV, ...) read only `past_key_values` / `layer_past` in `AttentionBridge._update_kv_cache`
   (transformer-lens 3.9 and 4.3), so the cache stays empty: shared-prefix scores ignore the
   prefix and cached decoding attends to the new token alone, with nothing but a FutureWarning.
   A forward pre-hook on each such component passes the cache under the name it reads.
   No upstream issue was found for it on 2026-11-29; the fix belongs in TransformerLens's
   `_update_kv_cache` (read `cache` too).
2. Every forward call records how many positions the cache already holds (`past_length()`),
   so hooks tell a prompt pass from a decode step by what the model is doing, not by how many
   positions a call has.
3. Every forward call's tokens are counted (`mechvalue.lm.tokens`: prompt and decode positions),
   the one place every caller's model work passes through.
4. `cache_kwargs(cache)` names the cache the way the installed transformers takes it, so no
   call of ours goes through a deprecated keyword.
5. TransformerLens's own `generate` hands the HF model its cache as `past_key_values`, which
   transformers >= 5.24 answers with "`past_key_values` is deprecated ... Use `cache` instead."
   (a FutureWarning at every decoding step, also printed when the cache of 1. is not filled).
   A forward pre-hook on the HF model renames the keyword to `cache`, as transformers itself
   would, so the warning does not fire where nothing is wrong; whether the cache is filled is
   what `mechvalue.lm.selfcheck` checks at load, never the warning.
6. A decoding cache that stores keys and values once per query head (`mechvalue.lm.kv_cache`) is
   read as it is: TransformerLens's rotary attention bridge repeats the keys and values
   `num_key_value_groups` times, a number it reads from the HF module; a forward pre-hook makes it
   1 for a call whose cache stores them so, and a forward hook puts it back (`kv_groups` says
   where a cache may store them).
"""

from __future__ import annotations

import contextvars
import functools
import inspect

import torch

_PAST: contextvars.ContextVar[int | None] = contextvars.ContextVar("mechvalue_past_length", default=None)
_INSTALLED = "_mechvalue_compat"
_KV_GROUPS = "_mechvalue_kv_groups"


def past_length() -> int | None:
    """Positions already in the KV cache of the forward call running now (0: a prompt pass);
    None outside a forward of a model `install` has seen."""
    return _PAST.get()


def _cache_of(kwargs: dict):
    for key in ("cache", "past_key_values"):
        if kwargs.get(key) is not None:
            return kwargs[key]
    return None


def _record_past(module, args, kwargs):
    from mechvalue.lm import tokens

    cache = _cache_of(kwargs)
    past = int(cache.get_seq_length()) if cache is not None else 0
    _PAST.set(past)
    tokens.record(args, kwargs, past)


def _clear_past(module, args, kwargs, output):
    _PAST.set(None)


def _alias_cache(module, args, kwargs):
    if kwargs.get("cache") is not None and kwargs.get("past_key_values") is None:
        return args, {**kwargs, "past_key_values": kwargs["cache"]}
    return None


def _cache_keyword(module, args, kwargs):
    """`past_key_values=` (TransformerLens's `generate`) passed on as `cache=`; a None one dropped."""
    if "past_key_values" not in kwargs or kwargs.get("cache") is not None:
        return None
    kwargs = dict(kwargs)
    cache = kwargs.pop("past_key_values")
    return args, ({**kwargs, "cache": cache} if cache is not None else kwargs)


def _reads_cache_itself(module) -> bool:
    """An attention bridge that runs attention itself and fills the cache in `_update_kv_cache`
    (a pass-through bridge hands the cache to HF's own module, which takes `cache=`)."""
    from transformer_lens.model_bridge.generalized_components.attention import AttentionBridge

    return isinstance(module, AttentionBridge) and type(module).forward is not AttentionBridge.forward


def install(bridge) -> None:
    """Install the hooks above on a bridge (idempotent)."""
    if getattr(bridge, _INSTALLED, False):
        return
    hf = bridge.original_model
    if _takes_cache(type(hf).forward):
        hf.register_forward_pre_hook(_cache_keyword, with_kwargs=True)
    hf.register_forward_pre_hook(_record_past, with_kwargs=True)  # and counts the call's tokens
    hf.register_forward_hook(_clear_past, with_kwargs=True, always_call=True)
    for module in bridge.modules():
        if _reads_cache_itself(module):
            module.register_forward_pre_hook(_alias_cache, with_kwargs=True)
    grouped = _grouped_attention(bridge)
    groups = int(grouped[0].original_component.num_key_value_groups) if grouped else 1
    for module in grouped:
        module.register_forward_pre_hook(functools.partial(_query_heads_on, groups), with_kwargs=True)
        module.register_forward_hook(
            functools.partial(_query_heads_off, groups), with_kwargs=True, always_call=True
        )
    object.__setattr__(bridge, _KV_GROUPS, groups)
    object.__setattr__(bridge, _INSTALLED, True)


def _grouped_attention(bridge) -> list:
    """The attention bridges that repeat their keys and values per query head by their HF module's
    `num_key_value_groups` (TransformerLens's `PositionEmbeddingsAttentionBridge`, its forward not
    overridden: 3.9 and 4.3 read the number there); empty unless every attention bridge is one, all
    with the same number above 1."""
    from transformer_lens.model_bridge.generalized_components.attention import AttentionBridge
    from transformer_lens.model_bridge.generalized_components.position_embeddings_attention import (
        PositionEmbeddingsAttentionBridge as Rotary,
    )

    bridges = [m for m in bridge.modules() if isinstance(m, AttentionBridge)]
    groups = {getattr(m.original_component, "num_key_value_groups", 1) for m in bridges}
    if any(type(m).forward is not Rotary.forward for m in bridges) or len(groups) != 1 or groups == {1}:
        return []
    return bridges


def kv_groups(bridge) -> int:
    """How many query heads share a key/value head, where a cache may store them per query head
    (6. above); 1 where the attention bridges do not read it from their HF module."""
    install(bridge)
    return getattr(bridge, _KV_GROUPS)


def _query_heads_on(groups: int, module, args, kwargs):
    """Before an attention call on a cache storing keys per query head: one head per group (the
    cache as the bridge's `_update_kv_cache` finds it, so a cache it does not see changes nothing)."""
    cache = kwargs.get("past_key_values")
    stored = getattr(cache if cache is not None else kwargs.get("layer_past"), "groups", 1)
    if stored > 1:
        if stored != groups:
            raise ValueError(
                f"{module.name}: a cache storing {stored} heads per key/value head, attention has {groups}"
            )
        module.original_component.num_key_value_groups = 1


def _query_heads_off(groups: int, module, args, kwargs, output):
    module.original_component.num_key_value_groups = groups


@functools.cache
def _takes_cache(forward) -> bool:
    return "cache" in inspect.signature(forward).parameters


def cache_kwargs(bridge, cache) -> dict:
    """The keyword under which this transformers takes a KV cache (`cache` from 5.24 on)."""
    forward = type(bridge.original_model).forward
    return {"cache" if _takes_cache(forward) else "past_key_values": cache}


def versions() -> str:
    """'transformers X, transformer-lens Y, torch Z': what a self-check failure names."""
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for pkg in ("transformers", "transformer-lens"):
        try:
            out.append(f"{pkg} {version(pkg)}")
        except PackageNotFoundError:
            out.append(f"{pkg} (not installed)")
    return ", ".join([*out, f"torch {torch.__version__}"])
