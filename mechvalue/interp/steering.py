"""Steering through SAE features during generation, via TransformerLens hooks.

A `SteeringSpec` says which features to edit, how (clamp / scale / add), how strongly, and
where (the " your values" span, all prompt tokens, generated tokens, or all). The hook runs
the fused Triton kernel on GPU (delta path for ReLU/JumpReLU) and its torch reference on CPU.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Bool, Float
from torch import Tensor

from mechvalue.interp.sae import SAE
from mechvalue.kernels import sae_edit_reference, sae_edit_triton

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
        """`path`: "delta" (only the edited features, ReLU/JumpReLU), "full" (every feature),
        or "auto" (delta where the activation allows it; TopK always runs the full SAE)."""
        self.sae, self.spec = sae, spec
        mul, add = spec.edit_vectors(sae, typical)
        dev, dt = sae.W_enc.device, sae.W_enc.dtype
        self.fused = sae.cfg.activation in ("relu", "jumprelu")
        if path == "delta" and not self.fused:
            raise ValueError("the delta path needs a ReLU or JumpReLU SAE")
        self.path = ("delta" if self.fused else "full") if path == "auto" else path
        if self.fused:  # kernel operands, input scale folded in; the delta path gathers S only
            keep = torch.tensor(sorted(set(spec.features))) if self.path == "delta" else slice(None)
            sc = sae.cfg.input_scale
            self.W_enc, self.b_enc = sae.W_enc.detach()[:, keep] * sc, sae.b_enc.detach()[keep]
            self.W_dec, self.thr = sae.W_dec.detach()[keep] / sc, sae.threshold.detach()[keep]
            b_dec = sae.b_dec.detach() / sc
            self.b_dec = b_dec if sae.cfg.apply_b_dec_to_input else torch.zeros_like(b_dec)
            self.mul, self.add = mul[keep].to(dev, dt), add[keep].to(dev, dt)
        else:
            self.mul, self.add = mul.to(dev, dt), add.to(dev, dt)
        self.backend = (
            ("triton" if torch.cuda.is_available() and dev.type == "cuda" else "torch")
            if backend == "auto"
            else backend
        )
        self.mask: Bool[Tensor, "batch pos"] | None = None

    def edit(self, x: Float[Tensor, "n d"]) -> Float[Tensor, "n d"]:
        sae = self.sae
        if not self.fused:
            f = sae.encode(x)
            return x + sae.decode(f * self.mul + self.add) - sae.decode(f)
        thr = self.thr if sae.cfg.activation == "jumprelu" else None
        args = (x, self.W_enc, self.b_enc, self.W_dec, self.b_dec, thr, self.mul, self.add)
        return sae_edit_triton(*args) if self.backend == "triton" else sae_edit_reference(*args)

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
        self.mask: Bool[Tensor, "batch pos"] | None = None

    def __call__(self, resid, hook):
        if self.mask is None or resid.shape[1] == 1:
            return resid
        out = resid.clone()
        out[self.mask.to(resid.device)] += self.vec.to(resid.dtype)
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
