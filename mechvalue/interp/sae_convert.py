"""mechvalue's `SAE` <-> `sae_lens.SAE`, both ways, with the same feature activations and outputs.

`to_sae_lens(sae)` gives SAELens's own class for the architecture (ReLU -> `StandardSAE`,
JumpReLU -> `JumpReLUSAE`, TopK -> `TopKSAE`) with the hook in `cfg.metadata.hook_name`. Our
input scale s (activations x s before encoding, reconstructions / s) has no SAELens field, so it
is folded into the weights: W_enc * s, W_dec / s, b_dec / s give the same features and outputs.
`from_sae_lens(lens)` is the loader's conversion (`sae_formats.from_saelens`); `as_mechvalue_sae`
accepts either kind, which is how `steer` and `sae_hook` take a `sae_lens.SAE` directly.
"""

from __future__ import annotations

from typing import Any

import torch

from mechvalue.errors import MechValueError
from mechvalue.interp.sae import SAE
from mechvalue.interp.sae_formats import from_saelens

_LENS = {
    "relu": ("StandardSAE", "StandardSAEConfig"),
    "jumprelu": ("JumpReLUSAE", "JumpReLUSAEConfig"),
    "topk": ("TopKSAE", "TopKSAEConfig"),
}


def _sae_lens():
    try:
        import sae_lens
    except ImportError:
        raise MechValueError("converting to or from SAELens needs sae-lens (pip install sae-lens)") from None
    return sae_lens


def to_sae_lens(sae: SAE, model_name: str | None = None) -> Any:
    """A `sae_lens.SAE` computing what `sae` computes (same dtype and device; `model_name` goes to
    its metadata)."""
    lens_mod = _sae_lens()
    from sae_lens.saes.sae import SAEMetadata

    cls_name, cfg_name = _LENS[sae.cfg.activation]
    c = sae.cfg
    w = sae.W_enc
    extra = {"k": c.k} if c.activation == "topk" else {}
    meta = SAEMetadata(hook_name=c.hook_name or None, model_name=model_name)
    cfg = getattr(lens_mod, cfg_name)(
        d_in=c.d_in,
        d_sae=c.d_sae,
        dtype=str(w.dtype).removeprefix("torch."),
        device=str(w.device),
        apply_b_dec_to_input=c.apply_b_dec_to_input,
        metadata=meta,
        **extra,
    )
    lens = getattr(lens_mod, cls_name)(cfg)
    s = float(c.input_scale)
    tensors = {"W_enc": sae.W_enc * s, "b_enc": sae.b_enc, "W_dec": sae.W_dec / s, "b_dec": sae.b_dec / s}
    if c.activation == "jumprelu":
        tensors["threshold"] = sae.threshold
    with torch.no_grad():
        for name, t in tensors.items():
            getattr(lens, name).copy_(t.detach())
    return lens


def from_sae_lens(lens: Any, hook_name: str | None = None) -> SAE:
    """A mechvalue `SAE` from a loaded `sae_lens.SAE` (standard, jumprelu or topk), on the same device
    and dtype; `hook_name` overrides `cfg.metadata.hook_name`."""
    w = lens.W_enc
    return from_saelens(lens, hook_name).to(device=w.device, dtype=w.dtype)


def is_sae_lens(obj: Any) -> bool:
    """Whether `obj` is a `sae_lens.SAE` (without importing sae_lens when it is not loaded)."""
    import sys

    mod = sys.modules.get("sae_lens")
    return mod is not None and isinstance(obj, mod.SAE)


def as_mechvalue_sae(sae: Any) -> SAE:
    """`sae` itself if it is ours, converted if it is a `sae_lens.SAE`; anything else is an error."""
    if isinstance(sae, SAE):
        return sae
    if is_sae_lens(sae):
        return from_sae_lens(sae)
    raise MechValueError(f"{type(sae).__name__}: expected a mechvalue.SAE or a sae_lens.SAE")
