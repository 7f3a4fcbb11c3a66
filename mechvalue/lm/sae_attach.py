"""SAEs attached at their hook points the way SAELens attaches them (`HookedSAETransformer`,
`SAETransformerBridge`), for one forward pass.

Attached, an SAE encodes the activation at its hook and names what it computes as SAELens does,
`<hook>.hook_sae_input`, `.hook_sae_acts_pre`, `.hook_sae_acts_post` (the feature activations),
`.hook_sae_recons`, `.hook_sae_error` and `.hook_sae_output`: `run_with_cache_with_saes` returns
them in the cache beside the model's own entries, and hooks on those names (`fwd_hooks`) read or
edit them. With the error term kept (the default here; SAELens defaults to leaving it out) the
model's output is unchanged, bit for bit, unless a hook edits the SAE's features; without it the
reconstruction replaces the activation.

Any SAE with `encode` / `decode` and a hook name works (mechvalue's `SAE` with `cfg.hook_name`,
`sae_lens.SAE` with `cfg.metadata.hook_name`); this module imports neither.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from mechvalue.errors import MechValueError

SAE_POINTS = (
    "hook_sae_input",
    "hook_sae_acts_pre",
    "hook_sae_acts_post",
    "hook_sae_recons",
    "hook_sae_error",
    "hook_sae_output",
)
HookFn = Callable[[Tensor, Any], "Tensor | None"]
NamesFilter = str | list[str] | Callable[[str], bool] | None


def sae_hook_name(sae) -> str:
    """The TransformerLens hook an SAE reads: `cfg.hook_name` (mechvalue) or `cfg.metadata.hook_name`
    (SAELens 6)."""
    cfg = getattr(sae, "cfg", None)
    name = getattr(cfg, "hook_name", None) or getattr(getattr(cfg, "metadata", None), "hook_name", None)
    if not name or not hasattr(sae, "encode") or not hasattr(sae, "decode"):
        raise MechValueError(
            f"{type(sae).__name__}: not an SAE with encode/decode and a hook name "
            "(cfg.hook_name, or cfg.metadata.hook_name in SAELens)"
        )
    return str(name)


def names_predicate(names_filter: NamesFilter) -> Callable[[str], bool]:
    """TransformerLens's `names_filter` (None: everything, a name, a list, or a predicate) as a predicate."""
    if names_filter is None:
        return lambda n: True
    if isinstance(names_filter, str):
        return lambda n: n == names_filter
    if callable(names_filter):
        return names_filter
    wanted = set(names_filter)
    return lambda n: n in wanted


@dataclass
class _Point:
    """What a hook function on an SAE's point receives as `hook` (TransformerLens passes a HookPoint)."""

    name: str
    ctx: dict = field(default_factory=dict)


class AttachedSAE:
    """One SAE at its hook point: the `(activation, hook)` function TransformerLens calls there.

    `keep(name)` says which of the SAE's points to record in `self.cache`; `hooks` maps a point's
    full name to the functions run on it (a function returning a tensor replaces the value)."""

    def __init__(
        self,
        sae,
        use_error_term: bool = True,
        keep: Callable[[str], bool] = lambda n: False,
        hooks: dict[str, list[HookFn]] | None = None,
    ):
        self.sae, self.name = sae, sae_hook_name(sae)
        self.use_error_term, self.keep = use_error_term, keep
        self.hooks = hooks or {}
        unknown = [n for n in self.hooks if n.removeprefix(self.name + ".") not in SAE_POINTS]
        if unknown:
            raise MechValueError(f"{unknown}: not points of the SAE at {self.name} ({', '.join(SAE_POINTS)})")
        self.cache: dict[str, Tensor] = {}

    def full(self, point: str) -> str:
        return f"{self.name}.{point}"

    def _at(self, point: str, t: Tensor, editable: bool = True) -> Tensor:
        name = self.full(point)
        for fn in self.hooks.get(name, []):
            out = fn(t, _Point(name))
            if out is not None:
                if not editable:
                    raise MechValueError(
                        f"{name} can be read, not edited; edit {self.full('hook_sae_acts_post')}"
                    )
                t = out
        if self.keep(name):
            self.cache[name] = t.detach()
        return t

    def _wants(self, point: str) -> bool:
        name = self.full(point)
        return self.keep(name) or name in self.hooks

    def _pre_acts(self, x: Tensor) -> Tensor:
        if hasattr(self.sae, "pre_acts"):  # mechvalue.SAE
            return self.sae.pre_acts(x)
        got: dict[str, Tensor] = {}  # sae_lens.SAE: read its own hook point while it encodes
        with self.sae.hooks(fwd_hooks=[("hook_sae_acts_pre", lambda t, hook: got.setdefault("t", t))]):
            self.sae.encode(x)
        return got["t"]

    def __call__(self, x: Float[Tensor, "batch pos d"], hook=None) -> Float[Tensor, "batch pos d"]:
        edited = any(
            self.full(p) in self.hooks for p in ("hook_sae_input", "hook_sae_acts_post", "hook_sae_recons")
        )
        inp = self._at("hook_sae_input", x)
        if self._wants("hook_sae_acts_pre"):
            self._at("hook_sae_acts_pre", self._pre_acts(inp), editable=False)
        f = self._at("hook_sae_acts_post", self.sae.encode(inp))
        recons = self._at("hook_sae_recons", self.sae.decode(f)).to(x.dtype)
        if not self.use_error_term:
            return self._at("hook_sae_output", recons)
        clean = recons
        if edited:
            with torch.no_grad():
                clean = self.sae.decode(self.sae.encode(x)).to(x.dtype)
        error = x - clean
        if self._wants("hook_sae_error"):
            error = self._at("hook_sae_error", error)
            edited = edited or self.full("hook_sae_error") in self.hooks
        return self._at("hook_sae_output", recons + error if edited else x)  # no edit: x itself, bit for bit


def attachments(
    saes,
    use_error_term: bool,
    keep: Callable[[str], bool] = lambda n: False,
    fwd_hooks: Iterable[tuple[str, HookFn]] = (),
) -> tuple[list[AttachedSAE], list]:
    """(one `AttachedSAE` per SAE, the hooks in `fwd_hooks` that belong to the model itself)."""
    saes = list(saes) if isinstance(saes, list | tuple) else [saes]
    if not saes:
        raise MechValueError("no SAE given (saes=[sae, ...])")
    names = [sae_hook_name(s) for s in saes]
    if len(set(names)) < len(names):
        raise MechValueError(f"two SAEs at one hook point ({names}): attach one per hook")
    own: dict[str, dict[str, list[HookFn]]] = {n: {} for n in names}
    rest = []
    for name, fn in fwd_hooks:
        base = name.rsplit(".", 1)[0] if isinstance(name, str) else None
        if base in own:
            own[base].setdefault(name, []).append(fn)
        else:
            rest.append((name, fn))
    return [AttachedSAE(s, use_error_term, keep, own[n]) for s, n in zip(saes, names)], rest


@contextmanager
def attached(
    bridge,
    saes,
    use_error_term: bool = True,
    keep: Callable[[str], bool] = lambda n: False,
    fwd_hooks: Iterable[tuple[str, HookFn]] = (),
):
    """Attach `saes` on `bridge.hooks()` for a `with` block; yields (attachments, the model's own hooks)."""
    att, rest = attachments(saes, use_error_term, keep, fwd_hooks)
    missing = [a.name for a in att if a.name not in bridge.hook_dict]
    if missing:
        raise MechValueError(f"the model has no hook point {missing} (an SAE for another model?)")
    with bridge.hooks(fwd_hooks=[(a.name, a) for a in att]):
        yield att, rest


def run_with_saes(
    bridge, args, kwargs, saes, use_error_term: bool = True, fwd_hooks: Iterable[tuple[str, HookFn]] = ()
):
    """The forward pass with `saes` attached (and `fwd_hooks`, on the model or the SAEs' points)."""
    with attached(bridge, saes, use_error_term, fwd_hooks=fwd_hooks) as (_, rest):
        return bridge.run_with_hooks(*args, fwd_hooks=rest, **kwargs) if rest else bridge(*args, **kwargs)


def run_with_cache_with_saes(
    bridge,
    args,
    kwargs,
    saes,
    use_error_term: bool = True,
    names_filter: NamesFilter = None,
    fwd_hooks: Iterable[tuple[str, HookFn]] = (),
):
    """(output, cache) with `saes` attached: the cache holds the model's activations and each SAE's
    `<hook>.hook_sae_*` entries that `names_filter` selects (an ActivationCache, or a dict with
    `return_cache_object=False`)."""
    keep = names_predicate(names_filter)
    with attached(bridge, saes, use_error_term, keep, fwd_hooks) as (att, rest):
        with bridge.hooks(fwd_hooks=rest):  # the SAEs' points are not the bridge's: the filter passes as is
            out, cache = bridge.run_with_cache(*args, names_filter=names_filter, **kwargs)
    entries = {k: v for a in att for k, v in a.cache.items()}
    if kwargs.get("remove_batch_dim"):
        entries = {k: v[0] for k, v in entries.items()}
    store = cache.cache_dict if hasattr(cache, "cache_dict") else cache
    store.update(entries)
    return out, cache
