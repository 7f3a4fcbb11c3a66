"""Steering through SAE features during generation, via TransformerLens hooks.

A `SteeringSpec` says which features to edit, how (clamp / scale / add), how strongly, and
where (the " your values" span, all prompt tokens, generated tokens, or all). The hooks apply a
`mechvalue.interp.edit.SAEEdit` (fused Triton kernel on GPU, its torch reference on CPU).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Bool, Float
from torch import Tensor

from mechvalue.interp.edit import SAEEdit
from mechvalue.interp.sae import SAE

WHERE = ("span", "prompt", "generated", "all")


@dataclass
class SteeringSpec:
    features: list[int]
    mode: str = "add"  # clamp | scale | add
    strength: float | list[float] = 0.0
    where: str = "span"
    units: str = "raw"  # raw, or "typical": strength x the feature's typical activation

    def edit_vectors(self, sae: SAE, typical: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Per-feature (mul, add) with f' = f * mul + add."""
        d = sae.cfg.d_sae
        mul, add = torch.ones(d), torch.zeros(d)
        vals = self.strength if isinstance(self.strength, list) else [self.strength] * len(self.features)
        for f, v in zip(self.features, vals):
            if self.units == "typical":
                if typical is None:
                    raise ValueError("units='typical' needs the features' typical activations")
                v = v * float(typical[f])
            if self.mode == "clamp":
                mul[f], add[f] = 0.0, v
            elif self.mode == "scale":
                mul[f] = v
            elif self.mode == "add":
                add[f] = v
            else:
                raise ValueError(f"unknown edit mode {self.mode!r}: clamp, scale or add")
        return mul, add


class SAEEditHook:
    """Edits the residual stream where `mask` is True (the decoder sets `mask` per call)."""

    def __init__(self, sae: SAE, spec: SteeringSpec, backend: str = "auto", typical: Tensor | None = None,
                 path: str = "auto"):  # fmt: skip
        """`path`: "add" (add-only specs: one precomputed vector), "delta" (only the edited features,
        ReLU/JumpReLU), "full" (every feature), "topk" (TopK, exact) or "auto"; see `SAEEdit`."""
        self.sae, self.spec = sae, spec
        self.mul, self.add = spec.edit_vectors(sae, typical)
        self._opts, self._edits = (path, backend), {}
        first = self.prepared(sae.W_enc.dtype, sae.W_enc.device)  # checks path and backend now
        self.path, self.backend = first.path, first.backend
        self.mask: Bool[Tensor, "batch pos"] | None = None

    def prepared(self, dtype: torch.dtype, device: torch.device) -> SAEEdit:
        """The edit with its operands prepared for activations of `dtype` on `device` (once each)."""
        key = (dtype, torch.device(device))
        if key not in self._edits:
            self._edits[key] = SAEEdit(self.sae, self.mul, self.add, dtype, device, *self._opts)
        return self._edits[key]

    def edit(self, x: Float[Tensor, "n d"]) -> Float[Tensor, "n d"]:
        return self.prepared(x.dtype, x.device).apply(x)

    def __call__(self, resid: Float[Tensor, "batch pos d"], hook) -> Float[Tensor, "batch pos d"]:
        m = self.mask
        if m is None or not bool(m.any()):
            return resid
        m = m.to(resid.device)
        out = resid.clone()
        out[m] = self.edit(resid[m])
        return out


class StudyAddHook:
    """The study's steering: add coefficient * W_dec[f] where `mask` is True (prompt pass only)."""

    def __init__(self, sae: SAE, feature: int, coefficient: float = 100.0):
        self.vec = coefficient * sae.W_dec.detach()[feature]
        self._edits: dict = {}
        self.mask: Bool[Tensor, "batch pos"] | None = None

    def __call__(self, resid, hook):
        if self.mask is None or resid.shape[1] == 1:
            return resid
        key = (resid.dtype, resid.device)
        if key not in self._edits:  # the "add" path: one broadcast add, no encode
            self._edits[key] = SAEEdit.adding(self.vec, resid.dtype, resid.device)
        m = self.mask.to(resid.device)
        out = resid.clone()
        out[m] = self._edits[key].apply(resid[m])
        return out


def generate_steered(model, prompts, hook_name: str, hook, where: str = "span", max_new_tokens: int = 40,
                     use_cache: bool = True) -> list[str]:  # fmt: skip
    """Greedy generation of rendered prompts with `hook` editing at `where`."""
    from mechvalue.lm.batching import where_mask
    from mechvalue.lm.generation import greedy_generate

    if where not in WHERE:
        raise ValueError(f"where must be one of {WHERE}")
    seqs = [p.tokens for p in prompts]
    masks = where_mask([p.span for p in prompts], list(map(len, seqs)), where, max(map(len, seqs)))
    new = greedy_generate(model, seqs, max_new_tokens, None, [(hook_name, hook)], masks,
                          steer_generated=where in ("generated", "all"), use_cache=use_cache)  # fmt: skip
    return model.tokenizer.batch_decode(new, skip_special_tokens=True)
