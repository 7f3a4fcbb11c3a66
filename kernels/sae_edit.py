"""Fused SAE encode -> activation -> feature edit -> decode-of-the-difference (Triton).

    out = x + (f' - f) @ W_dec,   f = act((x - b_dec) @ W_enc + b_enc),   f' = f * mul + add

with act ReLU or JumpReLU, relu(pre) * (pre > threshold) (`gate`)

`mul`/`add` encode the edit per feature (untouched: 1/0; clamp to v: 0/v; scale by v: v/0;
add v: 1/v). They are one edit for every token ([S]) or one edit per batch row ([R, S]: per-request
steering, a different edit on each row of one batch); `rows` gives each token's edit row (the
kernel reads mul[rows[t]], add[rows[t]]; one edit is row 0 for every token). Since
decode(f') - decode(f) = (f' - f) @ W_dec, the SAE's reconstruction error is kept exactly and
only one encode and one decode happen per token, where SAELens's error-term path runs the SAE
twice. For ReLU/JumpReLU, features outside the edited set S give
f' - f = 0, so running the kernel on the gathered sub-SAE (W_enc[:, S], W_dec[S]) gives the
same result at a cost that does not grow with d_sae: that is the delta path.

Grid: token blocks x feature blocks (`launch_grid`), so a decoding batch of 1-16 tokens still
spreads a 16k-feature SAE over >= 128 programs. Program (i, j) encodes its BLOCK_M tokens on its
BLOCK_S features (d_in in BLOCK_K chunks), applies the activation and the edit, and adds
(f' - f) @ W_dec[block j] into a float32 accumulator with atomics (the accumulator starts as x;
casting it to x's dtype is the second, small pass). Dot operands are in one compute dtype, the
activations' (float32 weights are cast in registers; `mechvalue.interp.edit` prepares them in
the activation dtype once, which reads half the bytes for the same result); accumulation is
float32; float32 inputs use IEEE products, not TF32, so JumpReLU gating near the threshold
matches the reference. Atomics make the float32 summation order vary between runs.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import triton
import triton.language as tl
from jaxtyping import Float, Int
from torch import Tensor

RELU = tl.constexpr(0)
JUMPRELU = tl.constexpr(1)


# (BLOCK_M, BLOCK_S, BLOCK_K, num_warps): float32 dots run on FMA units (IEEE), so their tiles are
# smaller; every config compiles without register spills on sm_80 and sm_90 (tests/kernels).
_TILES = {
    "float32": [(16, 64, 64, 4), (16, 64, 32, 4), (16, 128, 32, 8), (32, 64, 32, 8), (64, 64, 16, 8)],
    "half": [(16, 64, 64, 4), (16, 128, 64, 8), (32, 64, 64, 4), (64, 64, 32, 4), (64, 128, 32, 8)],
}


def configs(x_dtype: str = "float32") -> list[triton.Config]:
    """Autotune configs for activations of `x_dtype`; BLOCK_S <= 128 keeps >= 128 programs for
    d_sae = 16384 at any M."""
    tiles = _TILES["float32" if x_dtype == "float32" else "half"]
    return [
        triton.Config({"BLOCK_M": m, "BLOCK_S": s, "BLOCK_K": k}, num_warps=w, num_stages=3)
        for m, s, k, w in tiles
    ]


def launch_grid(M: int, S: int, BLOCK_M: int, BLOCK_S: int) -> tuple[int, int]:
    """Programs per axis: (token blocks, feature blocks)."""
    return triton.cdiv(M, BLOCK_M), triton.cdiv(S, BLOCK_S)


@triton.jit
def _sae_edit_kernel(
    x_ptr,
    acc_ptr,
    w_enc_ptr,
    b_enc_ptr,
    w_dec_ptr,
    b_dec_ptr,
    thr_ptr,
    mul_ptr,
    add_ptr,
    rid_ptr,
    M,
    D,
    S,
    ACT: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_S: tl.constexpr,
    BLOCK_K: tl.constexpr,
):
    cdt = x_ptr.dtype.element_ty  # the one compute dtype of the tl.dot operands
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    feats = tl.program_id(1) * BLOCK_S + tl.arange(0, BLOCK_S)
    row_ok, f_ok = rows < M, feats < S
    ks = tl.arange(0, BLOCK_K)
    # encode: pre = (x - b_dec) @ W_enc[:, feats] + b_enc[feats], float32 accumulator
    pre = tl.zeros((BLOCK_M, BLOCK_S), dtype=tl.float32)
    for k0 in range(0, D, BLOCK_K):
        cols = k0 + ks
        c_ok = cols < D
        xv = tl.load(
            x_ptr + rows[:, None] * D + cols[None, :], mask=row_ok[:, None] & c_ok[None, :], other=0.0
        )
        bd = tl.load(b_dec_ptr + cols, mask=c_ok, other=0.0)
        xc = (xv.to(tl.float32) - bd.to(tl.float32)[None, :]).to(cdt)
        we = tl.load(
            w_enc_ptr + cols[:, None] * S + feats[None, :], mask=c_ok[:, None] & f_ok[None, :], other=0.0
        )
        pre = tl.dot(xc, we.to(cdt), pre, input_precision="ieee")
    pre += tl.load(b_enc_ptr + feats, mask=f_ok, other=0.0).to(tl.float32)[None, :]
    # activation, then the edit; only the difference f' - f is decoded
    if ACT == JUMPRELU:
        # relu(pre) * (pre > thr): the ReLU matters where a threshold is below 0
        thr = tl.load(thr_ptr + feats, mask=f_ok, other=0.0).to(tl.float32)
        f = tl.where(pre > thr[None, :], tl.maximum(pre, 0.0), 0.0)
    else:
        f = tl.maximum(pre, 0.0)
    # each token's edit row: mul/add are [R, S], row-major
    rid = tl.load(rid_ptr + rows, mask=row_ok, other=0)
    e_at = rid[:, None] * S + feats[None, :]
    e_ok = row_ok[:, None] & f_ok[None, :]
    mul = tl.load(mul_ptr + e_at, mask=e_ok, other=1.0).to(tl.float32)
    add = tl.load(add_ptr + e_at, mask=e_ok, other=0.0).to(tl.float32)
    delta = f * (mul - 1.0) + add
    delta = tl.where(row_ok[:, None] & f_ok[None, :], delta, 0.0).to(cdt)
    # decode: acc[:, cols] += delta @ W_dec[feats, cols]; other feature blocks add to the same rows
    for k0 in range(0, D, BLOCK_K):
        cols = k0 + ks
        c_ok = cols < D
        wd = tl.load(
            w_dec_ptr + feats[:, None] * D + cols[None, :], mask=f_ok[:, None] & c_ok[None, :], other=0.0
        )
        part = tl.dot(delta, wd.to(cdt), input_precision="ieee")
        tl.atomic_add(
            acc_ptr + rows[:, None] * D + cols[None, :],
            part,
            mask=row_ok[:, None] & c_ok[None, :],
            sem="relaxed",
        )


_autotuned = {  # the accumulator is restored after each timing run (the kernel adds into it)
    dt: triton.autotune(configs=configs(dt), key=["M", "D", "S", "ACT"], restore_value=["acc_ptr"])(
        _sae_edit_kernel
    )
    for dt in ("float32", "half")
}
KERNELS = {"sae_edit": _sae_edit_kernel}  # every Triton kernel here, for `compile_all`


class Operands(NamedTuple):
    """The SAE's side of the edit (JumpReLU `threshold`, None for ReLU) and the edit per feature:
    one edit ([d_sae]) or one per batch row ([rows, d_sae], each token's row given at the call)."""

    W_enc: Float[Tensor, "d_in d_sae"]
    b_enc: Float[Tensor, " d_sae"]
    W_dec: Float[Tensor, "d_sae d_in"]
    b_dec: Float[Tensor, " d_in"]
    threshold: Float[Tensor, " d_sae"] | None
    mul: Float[Tensor, " d_sae"] | Float[Tensor, "rows d_sae"]
    add: Float[Tensor, " d_sae"] | Float[Tensor, "rows d_sae"]


def edit_rows(ops: Operands, x: Tensor, rows: Tensor | None) -> Int[Tensor, " tokens"]:
    """Each token's edit row as int32 (zeros for one edit), checked against the edits given."""
    n = ops.mul.shape[0] if ops.mul.dim() == 2 else 1
    if rows is None:
        if n != 1:
            raise ValueError(f"{n} edit rows: per-row edits need each token's row (`rows`)")
        return torch.zeros(x.shape[0], dtype=torch.int32, device=x.device)
    if rows.shape != x.shape[:1]:
        raise ValueError(f"rows of shape {tuple(rows.shape)} for {x.shape[0]} tokens")
    if rows.numel() and not 0 <= int(rows.min()) <= int(rows.max()) < n:
        raise ValueError(f"edit rows {int(rows.min())}..{int(rows.max())}: {n} edits given")
    return rows.to(x.device, torch.int32).contiguous()


def sae_edit_triton(
    x: Float[Tensor, "tokens d_in"],
    ops: Operands,
    block: tuple[int, int, int] | None = None,
    rows: Int[Tensor, " tokens"] | None = None,
) -> Float[Tensor, "tokens d_in"]:
    """Launch the kernel (no autograd). `block` = (BLOCK_M, BLOCK_S, BLOCK_K) skips autotuning;
    `rows`: each token's edit row where `ops` holds one edit per row.

    Weights may be float32 or x's dtype (others are cast to x's dtype here, a copy per call);
    the per-feature vectors are read as float32.
    """
    if x.dtype == torch.bfloat16 and not x.is_cuda:
        # Triton's CPU interpreter stores bfloat16 as uint16 and its tl.dot multiplies those
        # integers: run on float32 copies there; on GPU bfloat16 goes through the kernel as is.
        up = Operands(*(t.float() if t is not None else None for t in ops))
        return sae_edit_triton(x.float(), up, block, rows).to(torch.bfloat16)
    rid = edit_rows(ops, x, rows)
    W_enc, b_enc, W_dec, b_dec, threshold, mul, add = ops
    x = x.contiguous()
    M, D = x.shape
    S = W_enc.shape[1]
    if M == 0 or S == 0:  # nothing to edit (an empty grid is not launched)
        return x.clone()
    W_enc, W_dec = (w if w.dtype in (torch.float32, x.dtype) else w.to(x.dtype) for w in (W_enc, W_dec))
    vec = lambda t: t.to(torch.float32).contiguous()  # noqa: E731
    act = JUMPRELU if threshold is not None else RELU
    thr = vec(threshold if threshold is not None else b_enc)  # unused for ReLU
    acc = x.to(torch.float32, copy=True)  # the kernel adds (f' - f) @ W_dec into x
    args = (
        x,
        acc,
        W_enc.contiguous(),
        vec(b_enc),
        W_dec.contiguous(),
        vec(b_dec),
        thr,
        vec(mul),
        vec(add),
        rid,
        M,
        D,
        S,
    )
    if block is None and x.is_cuda:
        tuned = _autotuned["float32" if x.dtype == torch.float32 else "half"]
        tuned[lambda meta: launch_grid(M, S, meta["BLOCK_M"], meta["BLOCK_S"])](*args, ACT=act)
    else:
        bm, bs, bk = block or (16, 32, 32)
        if not x.is_cuda:  # the interpreter: M, D, S as constexprs, which Python's range() takes as
            # they are; an int becomes a 1-element array there, which triton < 3.8 hands to range()
            # and numpy >= 2.4 refuses to convert (TypeError); compiled launches keep plain ints
            args = (*args[:-3], *map(tl.constexpr, args[-3:]))
        _sae_edit_kernel[launch_grid(M, S, bm, bs)](*args, ACT=act, BLOCK_M=bm, BLOCK_S=bs, BLOCK_K=bk)
    return acc if x.dtype == torch.float32 else acc.to(x.dtype)


def gate(pre: Float[Tensor, "... s"], threshold: Float[Tensor, " s"] | None) -> Float[Tensor, "... s"]:
    """The SAE activation of the fused paths: ReLU, or JumpReLU as `relu(pre) * (pre > threshold)`
    (Gemma Scope's and SAELens's definition; the ReLU matters only for thresholds below 0).
    `SAE.encode`, this reference and the kernel all gate this way."""
    if threshold is None:
        return pre.clamp_min(0)
    return torch.where(pre > threshold.to(pre.dtype), pre.clamp_min(0), torch.zeros_like(pre))


def sae_edit_reference(
    x: Float[Tensor, "tokens d_in"], ops: Operands, rows: Int[Tensor, " tokens"] | None = None
) -> Float[Tensor, "tokens d_in"]:
    """The same computation in plain torch (float32 accumulation), as written in the docstring;
    `rows`: each token's edit row where `ops` holds one edit per row.

    Differentiable in x (and in any operand that requires grad)."""
    W_enc, b_enc, W_dec, b_dec, threshold, mul, add = ops
    if mul.dim() == 2:  # one edit per row: each token's
        rid = edit_rows(ops, x, rows).long().to(mul.device)
        mul, add = mul[rid], add[rid]
    xf = x.float()
    pre = (xf - b_dec.float()) @ W_enc.float() + b_enc.float()
    f = gate(pre, threshold.float() if threshold is not None else None)
    delta = f * (mul.float() - 1) + add.float()
    return (xf + delta @ W_dec.float()).to(x.dtype)
