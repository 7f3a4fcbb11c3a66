"""The sparse autoencoder: one module for ReLU, JumpReLU and TopK SAEs, and its own file format.
Other publishers' formats are read by `sae_formats`, training and metrics live in `sae_training`."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal, get_args

import torch
from jaxtyping import Float
from torch import Tensor, nn

from mechvalue.errors import MechValueError
from mechvalue.io import atomic_dir
from mechvalue.kernels.sae_edit import gate

Activation = Literal["relu", "jumprelu", "topk"]


@dataclass
class SAEConfig:
    d_in: int
    d_sae: int
    activation: Activation = "relu"
    k: int = 32  # topk only
    hook_name: str = ""  # TransformerLens hook name, e.g. "blocks.12.hook_resid_post"
    apply_b_dec_to_input: bool = True
    input_scale: float = 1.0  # activations are multiplied by this before encoding


class SAE(nn.Module):
    """x -> f = act((x * s - b_dec?) @ W_enc + b_enc) -> (f @ W_dec + b_dec) / s, with act ReLU,
    JumpReLU (ReLU where pre > threshold) or TopK (the k largest of ReLU(pre))."""

    def __init__(self, cfg: SAEConfig):
        super().__init__()
        if cfg.activation not in get_args(Activation):
            raise MechValueError(f"unknown SAE activation {cfg.activation!r} (one of {get_args(Activation)})")
        self.cfg = cfg
        self.W_enc = nn.Parameter(torch.empty(cfg.d_in, cfg.d_sae))
        self.b_enc = nn.Parameter(torch.zeros(cfg.d_sae))
        self.W_dec = nn.Parameter(torch.empty(cfg.d_sae, cfg.d_in))
        self.b_dec = nn.Parameter(torch.zeros(cfg.d_in))
        self.threshold = nn.Parameter(torch.zeros(cfg.d_sae), requires_grad=False)
        nn.init.kaiming_uniform_(self.W_dec)
        with torch.no_grad():
            self.W_dec /= self.W_dec.norm(dim=1, keepdim=True)
            self.W_enc.copy_(self.W_dec.T)

    def pre_acts(self, x: Float[Tensor, "... d_in"]) -> Float[Tensor, "... d_sae"]:
        x = x.to(self.W_enc.dtype) * self.cfg.input_scale  # a bfloat16 residual into a float32 SAE
        if self.cfg.apply_b_dec_to_input:
            x = x - self.b_dec
        return x @ self.W_enc + self.b_enc

    def encode(self, x: Float[Tensor, "... d_in"]) -> Float[Tensor, "... d_sae"]:
        pre = self.pre_acts(x)
        if self.cfg.activation == "topk":
            vals, idx = pre.relu().topk(self.cfg.k, dim=-1)
            return torch.zeros_like(pre).scatter(-1, idx, vals)
        return gate(pre, self.threshold if self.cfg.activation == "jumprelu" else None)

    def decode(self, f: Float[Tensor, "... d_sae"]) -> Float[Tensor, "... d_in"]:
        return (f @ self.W_dec + self.b_dec) / self.cfg.input_scale

    def forward(self, x):
        return self.decode(self.encode(x))

    def save(self, path: str | Path) -> None:
        """Our format: mechvalue_sae.json (the config) + sae.safetensors (the state dict)."""
        from safetensors.torch import save_file

        with atomic_dir(path) as tmp:
            save_file(
                {k: v.detach().contiguous() for k, v in self.state_dict().items()}, tmp / "sae.safetensors"
            )
            (tmp / "mechvalue_sae.json").write_text(json.dumps(asdict(self.cfg), indent=1))
