"""Fused SAE encode -> activation -> feature edit -> decode-of-the-difference (Triton).

    out = x + (f' - f) @ W_dec,   f = act((x - b_dec) @ W_enc + b_enc),   f' = f * mul + add

`mul`/`add` encode the edit per feature (untouched: 1/0; clamp to v: 0/v; scale by v: v/0;
add v: 1/v). Since decode(f') - decode(f) = (f' - f) @ W_dec, the SAE's reconstruction error
is kept exactly and only one encode and one decode happen per token, where SAELens's
error-term path runs the SAE twice. For ReLU/JumpReLU, features outside the edited set S give
f' - f = 0, so running the kernel on the gathered sub-SAE (W_enc[:, S], W_dec[S]) gives the
same result at a cost that does not grow with d_sae: that is the delta path.

One program owns BLOCK_M tokens. For each block of BLOCK_S features it computes the
pre-activations over d_in in BLOCK_K chunks, applies the activation and the edit, and adds
(f' - f) @ W_dec into the output rows chunk by chunk (the program owns those rows, so plain
read-modify-write is race free). Accumulation is float32 whatever the storage dtype.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from jaxtyping import Float
from torch import Tensor

RELU, JUMPRELU = 0, 1


def _configs():
    return [
        triton.Config({"BLOCK_M": m, "BLOCK_S": s, "BLOCK_K": k}, num_warps=w)
        for m, s, k, w in [
            (16, 64, 64, 4),
            (16, 128, 64, 4),
            (32, 64, 64, 4),
            (64, 64, 32, 4),
            (16, 32, 128, 2),
        ]
    ]


@triton.jit
def _sae_edit_kernel(
    x_ptr, out_ptr, w_enc_ptr, b_enc_ptr, w_dec_ptr, b_dec_ptr, thr_ptr, mul_ptr, add_ptr,
    M, D, S,
    ACT: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_S: tl.constexpr, BLOCK_K: tl.constexpr,
):  # fmt: skip
    pid = tl.program_id(0)
    rows = pid * BLOCK_M + tl.arange(0, BLOCK_M)
    row_ok = rows < M
    ks = tl.arange(0, BLOCK_K)
    # out <- x
    for k0 in range(0, D, BLOCK_K):
        cols = k0 + ks
        m = row_ok[:, None] & (cols[None, :] < D)
        xv = tl.load(x_ptr + rows[:, None] * D + cols[None, :], mask=m, other=0.0)
        tl.store(out_ptr + rows[:, None] * D + cols[None, :], xv, mask=m)
    for s0 in range(0, S, BLOCK_S):
        feats = s0 + tl.arange(0, BLOCK_S)
        f_ok = feats < S
        # encode: pre = (x - b_dec) @ W_enc[:, feats] + b_enc[feats]
        pre = tl.zeros((BLOCK_M, BLOCK_S), dtype=tl.float32)
        for k0 in range(0, D, BLOCK_K):
            cols = k0 + ks
            c_ok = cols < D
            xv = tl.load(
                x_ptr + rows[:, None] * D + cols[None, :], mask=row_ok[:, None] & c_ok[None, :], other=0.0
            )
            bd = tl.load(b_dec_ptr + cols, mask=c_ok, other=0.0)
            xc = (xv.to(tl.float32) - bd.to(tl.float32)[None, :]).to(xv.dtype)
            we = tl.load(
                w_enc_ptr + cols[:, None] * S + feats[None, :], mask=c_ok[:, None] & f_ok[None, :], other=0.0
            )
            pre += tl.dot(xc, we)
        pre += tl.load(b_enc_ptr + feats, mask=f_ok, other=0.0).to(tl.float32)[None, :]
        # activation, then the edit; only the difference f' - f is decoded
        if ACT == JUMPRELU:
            thr = tl.load(thr_ptr + feats, mask=f_ok, other=0.0).to(tl.float32)
            f = tl.where(pre > thr[None, :], pre, 0.0)
        else:
            f = tl.maximum(pre, 0.0)
        mul = tl.load(mul_ptr + feats, mask=f_ok, other=1.0).to(tl.float32)
        add = tl.load(add_ptr + feats, mask=f_ok, other=0.0).to(tl.float32)
        delta = f * (mul[None, :] - 1.0) + add[None, :]
        delta = tl.where(row_ok[:, None] & f_ok[None, :], delta, 0.0).to(xc.dtype)
        # decode: out[:, cols] += delta @ W_dec[feats, cols]
        for k0 in range(0, D, BLOCK_K):
            cols = k0 + ks
            c_ok = cols < D
            wd = tl.load(
                w_dec_ptr + feats[:, None] * D + cols[None, :], mask=f_ok[:, None] & c_ok[None, :], other=0.0
            )
            o_ptr = out_ptr + rows[:, None] * D + cols[None, :]
            om = row_ok[:, None] & c_ok[None, :]
            o = tl.load(o_ptr, mask=om, other=0.0).to(tl.float32) + tl.dot(delta, wd)
            tl.store(o_ptr, o.to(out_ptr.dtype.element_ty), mask=om)


_autotuned = triton.autotune(configs=_configs(), key=["M", "D", "S", "ACT"])(_sae_edit_kernel)


def sae_edit_triton(
    x: Float[Tensor, "tokens d_in"],
    W_enc: Float[Tensor, "d_in d_sae"],
    b_enc: Float[Tensor, " d_sae"],
    W_dec: Float[Tensor, "d_sae d_in"],
    b_dec: Float[Tensor, " d_in"],
    threshold: Float[Tensor, " d_sae"] | None,
    mul: Float[Tensor, " d_sae"],
    add: Float[Tensor, " d_sae"],
    block: tuple[int, int, int] | None = None,
) -> Float[Tensor, "tokens d_in"]:
    """Launch the kernel. `block` = (BLOCK_M, BLOCK_S, BLOCK_K) skips autotuning (CPU interpreter)."""
    if x.dtype == torch.bfloat16 and not x.is_cuda:
        # Triton's CPU interpreter mis-reads bfloat16 buffers (numpy has no bfloat16): run the
        # kernel on float32 copies there; on GPU bfloat16 goes through the kernel as is.
        up = [
            t.float() if t is not None else None for t in (x, W_enc, b_enc, W_dec, b_dec, threshold, mul, add)
        ]
        return sae_edit_triton(*up, block=block).to(torch.bfloat16)
    x = x.contiguous()
    M, D = x.shape
    S = W_enc.shape[1]
    out = torch.empty_like(x)
    act = JUMPRELU if threshold is not None else RELU
    thr = threshold if threshold is not None else b_enc  # unused for ReLU
    args = (x, out, W_enc.contiguous(), b_enc, W_dec.contiguous(), b_dec, thr, mul, add, M, D, S)
    if block is None and x.is_cuda:
        _autotuned[lambda meta: (triton.cdiv(M, meta["BLOCK_M"]),)](*args, ACT=act)
    else:
        bm, bs, bk = block or (16, 32, 32)
        _sae_edit_kernel[(triton.cdiv(M, bm),)](*args, ACT=act, BLOCK_M=bm, BLOCK_S=bs, BLOCK_K=bk)
    return out


def sae_edit_reference(x, W_enc, b_enc, W_dec, b_dec, threshold, mul, add):
    """The same computation in plain torch (float32 accumulation), as written in the docstring."""
    xf = x.float()
    pre = (xf - b_dec.float()) @ W_enc.float() + b_enc.float()
    f = torch.where(pre > threshold.float(), pre, 0.0) if threshold is not None else pre.clamp_min(0)
    delta = f * (mul.float() - 1) + add.float()
    return (xf + delta @ W_dec.float()).to(x.dtype)
