"""An SAE feature edit of residual-stream rows, its operands prepared once: `sae_edit(...).apply(x)`.

    apply(x) = x + decode(f') - decode(f),   f = encode(x),   f' = f * mul + add

which keeps the SAE's reconstruction error exactly (only the edited features move). Paths:
- "add": `mul` is 1 everywhere, so f' - f = add whatever f is: x + (add @ W_dec) / input_scale,
  a broadcast add of one precomputed vector, no encode (also the study's a * W_dec[f], `adding`).
- "delta" (ReLU/JumpReLU): f' - f is 0 outside the edited set S, so the fused kernel runs on the
  gathered sub-SAE W_enc[:, S], W_dec[S]; cost independent of d_sae.
- "full" (ReLU/JumpReLU: the fused kernel on every feature; TopK: two SAE passes in torch).
- "topk" (TopK, exact): whether a feature of S is active depends on every feature (the top-k set),
  so the full encode runs once (as `SAE.encode` computes it, in the SAE's dtype); only the |S|
  decode rows are then used: one encode plus |S| decode rows, not two full SAE passes.
One class per path: `AddEdit` ("add"), `FusedEdit` ("delta", "full" on ReLU/JumpReLU), `TopKEdit`
("topk", "full" on TopK); `sae_edit` picks one. Backend "triton" (CUDA; the interpreter on CPU) runs the fused kernel for "delta"/"full" with the
weights in the activation dtype (the kernel would cast them to it anyway; half the bytes), per-
feature vectors in float32; "torch" runs `sae_edit_reference` on float32 operands. Gradients flow
to x (never to the SAE's parameters): the kernel has no backward, so a forward that needs them
uses the torch reference under backend "auto" and raises under backend "triton".

Per-row edits (per-request steering: a different edit on each row of one batch): `mul`/`add` of
shape [rows, d_sae], an untouched row all 1/0; `apply(x, rows)` is then told each activation row's
edit row. S is the union of the rows' edited features (a row leaves the others of S untouched,
f' - f = 0 there exactly); "add" adds each row's own vector, computed as that row's edit alone
computes it.
"""

from __future__ import annotations

from typing import Literal, get_args

import torch
from jaxtyping import Float, Int
from torch import Tensor

from mechvalue.errors import MechValueError
from mechvalue.interp.sae import SAE
from mechvalue.kernels.sae_edit import Operands, sae_edit_reference, sae_edit_triton

EditPath = Literal["auto", "add", "delta", "full", "topk"]
Backend = Literal["auto", "triton", "torch"]


def _check(value, kind, name: str) -> None:
    if value not in get_args(kind):
        raise MechValueError(f"{name}={value!r}: expected one of {', '.join(get_args(kind))}")


class SAEEdit:
    """x -> x + decode(f * mul + add) - decode(f) on rows, for activations of `dtype` on `device`;
    `path` names the way it is computed, `backend` where ("torch" or "triton")."""

    path: str
    backend: str = "torch"
    explicit: str = "auto"  # the backend asked for ("auto", or one that must be used)
    sae: SAE | None = None

    def __init__(self, dtype: torch.dtype, device: torch.device | str):
        self.dtype, self.device = dtype, torch.device(device)

    def apply(self, x: Float[Tensor, "n d"], rows: Int[Tensor, " n"] | None = None) -> Float[Tensor, "n d"]:
        """The edited rows (a new tensor; differentiable in x on the torch paths); `rows`: each
        row's edit where there is one per batch row."""
        raise NotImplementedError

    @staticmethod
    def adding(vec: Float[Tensor, " d"], dtype: torch.dtype, device: torch.device | str) -> AddEdit:
        """The "add" path for a given vector (the study's coefficient * W_dec[f], raw units)."""
        return AddEdit(vec.detach().to(device, dtype), dtype, device)


class AddEdit(SAEEdit):
    """mul == 1 everywhere: f' - f = add whatever f is, so one precomputed vector is added (one
    per batch row for per-row edits: `vec` [rows, d], zeros where a row is untouched)."""

    path = "add"

    def __init__(self, vec: Float[Tensor, "*rows d"], dtype: torch.dtype, device: torch.device | str):
        super().__init__(dtype, device)
        self.vec = vec

    @classmethod
    def of(cls, sae: SAE, add: Tensor, dtype: torch.dtype, device: torch.device) -> AddEdit:
        """add @ W_dec / input_scale, computed in float32 over the edited features only, rounded to
        `dtype` once; per row for per-row edits (each row's vector as its edit alone gives it)."""
        W_dec = sae.W_dec.detach()

        def one(a: Tensor) -> Tensor:
            S = (a != 0).nonzero().flatten()
            return ((a[S].to(W_dec.device) @ W_dec[S].float()) / sae.cfg.input_scale).to(device, dtype)

        vec = one(add) if add.dim() == 1 else torch.stack([one(a) for a in add])
        edit = cls(vec, dtype, device)
        edit.sae = sae
        return edit

    def apply(self, x: Float[Tensor, "n d"], rows: Int[Tensor, " n"] | None = None) -> Float[Tensor, "n d"]:
        if self.vec.dim() == 1:
            return x + self.vec.to(x.dtype)
        return x + self.vec.to(x.dtype)[_rows(rows, len(self.vec), x)]


class FusedEdit(SAEEdit):
    """ReLU/JumpReLU: the fused kernel (or its torch reference) on the edited features S ("delta")
    or on every feature ("full"), the input scale folded into the weights."""

    def __init__(
        self,
        sae: SAE,
        S: Tensor,
        vectors: tuple[Tensor, Tensor],
        path: str,
        backend: Backend,
        dtype: torch.dtype,
        device: torch.device,
    ):
        super().__init__(dtype, device)
        self.sae, self.path, self.explicit = sae, path, backend
        self.backend = ("triton" if self.device.type == "cuda" else "torch") if backend == "auto" else backend
        mul, add = vectors
        sc, f32 = sae.cfg.input_scale, dict(device=self.device, dtype=torch.float32)
        W_enc, W_dec = sae.W_enc.detach(), sae.W_dec.detach()
        keep = S if path == "delta" else slice(None)
        on_w = S.to(W_enc.device) if path == "delta" else keep
        wdt = dtype if self.backend == "triton" else torch.float32
        b_dec = sae.b_dec.detach().to(**f32) / sc
        self.ops = Operands(
            W_enc=(W_enc[:, on_w].float() * sc).to(self.device, wdt).contiguous(),
            b_enc=sae.b_enc.detach()[on_w].to(**f32),
            W_dec=(W_dec[on_w].float() / sc).to(self.device, wdt).contiguous(),
            b_dec=b_dec if sae.cfg.apply_b_dec_to_input else torch.zeros_like(b_dec),
            threshold=sae.threshold.detach()[on_w].to(**f32) if sae.cfg.activation == "jumprelu" else None,
            mul=mul[..., keep].to(**f32),
            add=add[..., keep].to(**f32),
        )

    def apply(self, x: Float[Tensor, "n d"], rows: Int[Tensor, " n"] | None = None) -> Float[Tensor, "n d"]:
        if self.ops.mul.dim() == 2:
            rows = _rows(rows, len(self.ops.mul), x)
        args = (x, self.ops)
        if self.backend == "triton":
            if x.requires_grad and torch.is_grad_enabled():
                if self.explicit == "triton":
                    raise MechValueError(
                        "the fused Triton SAE kernel has no backward: use backend='torch' "
                        "(or 'auto') when the steered forward needs gradients"
                    )
                return sae_edit_reference(*args, rows)
            return sae_edit_triton(*args, None, rows)
        return sae_edit_reference(*args, rows)


class TopKEdit(SAEEdit):
    """TopK, exact: the top-k set from the full encode (SAE.encode's arithmetic on detached float32
    copies, so the set is the one SAE.encode picks); "topk" then decodes only the |S| rows of
    f' - f (zero elsewhere), "full" decodes f' and f over every feature."""

    def __init__(self, sae: SAE, S: Tensor, vectors: tuple[Tensor, Tensor], path: str, on: tuple):
        """`on`: (dtype, device) of the activations."""
        dtype, device = on
        super().__init__(dtype, device)
        self.sae, self.path = sae, path
        mul, add = vectors
        f32 = dict(device=self.device, dtype=torch.float32)
        self.S, self.k, self.scale = S.to(self.device), sae.cfg.k, sae.cfg.input_scale
        self.W_enc, self.b_enc = sae.W_enc.detach().to(**f32), sae.b_enc.detach().to(**f32)
        b_dec = sae.b_dec.detach().to(**f32)
        self.b_dec_in = b_dec if sae.cfg.apply_b_dec_to_input else torch.zeros_like(b_dec)
        self.b_dec, self.W_dec = b_dec, sae.W_dec.detach().to(**f32)
        self.mul, self.add = mul.to(**f32), add.to(**f32)
        self.W_dec_S = self.W_dec[self.S] / self.scale
        self.mul_S, self.add_S = self.mul[..., self.S], self.add[..., self.S]

    def _decode(self, f: Float[Tensor, "n s"]) -> Float[Tensor, "n d"]:
        return (f @ self.W_dec + self.b_dec) / self.scale

    def apply(self, x: Float[Tensor, "n d"], rows: Int[Tensor, " n"] | None = None) -> Float[Tensor, "n d"]:
        mul, add, mul_S, add_S = self.mul, self.add, self.mul_S, self.add_S
        if mul.dim() == 2:  # one edit per batch row: each activation row's
            r = _rows(rows, len(mul), x)
            mul, add, mul_S, add_S = mul[r], add[r], mul_S[r], add_S[r]
        pre = (x.float() * self.scale - self.b_dec_in) @ self.W_enc + self.b_enc  # SAE.pre_acts
        vals, idx = pre.relu().topk(self.k, dim=-1)
        if self.path == "full":
            f = torch.zeros_like(pre).scatter(-1, idx, vals)
            return (x.float() + self._decode(f * mul + add) - self._decode(f)).to(x.dtype)
        on = (idx[:, :, None] == self.S[None, None, :]).any(1)  # is feature S_j in the top-k set
        f_S = torch.where(on, pre[:, self.S].relu(), 0.0)
        delta = f_S * (mul_S - 1) + add_S
        return (x.float() + delta @ self.W_dec_S).to(x.dtype)


def _rows(rows: Tensor | None, n: int, x: Tensor) -> Tensor:
    """Each activation row's edit row, for edits given per batch row (`n` of them)."""
    if rows is None or rows.shape != x.shape[:1]:
        raise MechValueError(
            f"{n} per-row edits: each of the {x.shape[0]} activation rows needs its edit row "
            f"(got {None if rows is None else tuple(rows.shape)})"
        )
    return rows.to(x.device)


def sae_edit(
    sae: SAE,
    mul: Float[Tensor, " d_sae"] | Float[Tensor, "rows d_sae"],
    add: Float[Tensor, " d_sae"] | Float[Tensor, "rows d_sae"],
    dtype: torch.dtype,
    device: torch.device | str,
    path: EditPath = "auto",
    backend: Backend = "auto",
) -> SAEEdit:
    """The edit f' = f * mul + add of `sae`'s features on the path asked for ("auto": "add" for an
    add-only edit, else "delta" on ReLU/JumpReLU, "topk" on TopK), its operands prepared once.
    `mul`/`add` of shape [rows, d_sae]: one edit per batch row (the edited set S their union)."""
    _check(path, EditPath, "path")
    _check(backend, Backend, "backend")
    act, device = sae.cfg.activation, torch.device(device)
    mul, add = mul.detach().float().cpu(), add.detach().float().cpu()
    if mul.shape != add.shape or mul.dim() not in (1, 2) or mul.shape[-1] != sae.cfg.d_sae or not len(mul):
        raise MechValueError(
            f"edit vectors of shape {tuple(mul.shape)}, {tuple(add.shape)}; expected [d_sae] or "
            f"[rows, d_sae] with d_sae = {sae.cfg.d_sae}, the SAE's features"
        )
    fused = act in ("relu", "jumprelu")
    pure_add = bool((mul == 1).all())
    if path == "auto":
        path = "add" if pure_add else "delta" if fused else "topk"
    if path == "add" and not pure_add:
        raise MechValueError("path 'add' needs mul == 1 for every feature (an add-only edit)")
    if path == "delta" and not fused:
        raise MechValueError(f"the delta path needs a ReLU or JumpReLU SAE, not {act}")
    if path == "topk" and act != "topk":
        raise MechValueError(f"the topk path needs a TopK SAE, not {act}")
    edited = (mul != 1) | (add != 0)
    S = (edited if edited.dim() == 1 else edited.any(0)).nonzero().flatten()  # the edited features
    if path == "add":
        edit: SAEEdit = AddEdit.of(sae, add, dtype, device)
    elif fused:
        edit = FusedEdit(sae, S, (mul, add), path, backend, dtype, device)
    else:
        edit = TopKEdit(sae, S, (mul, add), path, (dtype, device))
    if not isinstance(edit, FusedEdit):
        edit.explicit = backend
        edit.backend = ("triton" if device.type == "cuda" else "torch") if backend == "auto" else backend
    return edit
