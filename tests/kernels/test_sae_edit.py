"""The fused SAE edit kernel vs its torch reference and a float64 feature-by-feature sum.

Compiled on CUDA tensors where CUDA exists, interpreted on CPU otherwise (see conftest.py). Under
the interpreter float16 and mixed float16/float32 run through the kernel for real; bfloat16 runs
on float32 copies there (the interpreter's tl.dot cannot multiply bfloat16).
Tolerances, relative to the output scale: float32 1e-4 (accumulation order differs), float16
2e-2, bfloat16 5e-2 (dot operands rounded to the activation dtype).
"""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mechvalue.kernels.sae_edit import Operands, configs, launch_grid, sae_edit_reference, sae_edit_triton
from tests.kernels.conftest import kernel_device

TOL = {torch.float32: 1e-4, torch.float16: 2e-2, torch.bfloat16: 5e-2}
DEV = kernel_device()
BLOCKS = [(16, 32, 32), (16, 64, 16), (32, 16, 64)]


def _random(m, d, s, xdt, wdt, seed):
    g = torch.Generator().manual_seed(seed)
    r = lambda *shape, sc=1.0, dt=torch.float32: (torch.randn(*shape, generator=g) * sc).to(DEV, dt)  # noqa: E731
    mul, add = torch.ones(s), torch.zeros(s)
    idx = torch.randperm(s, generator=g)[: max(1, s // 8)]
    mul[idx[0::3]], add[idx[0::3]] = 0.0, 3.0  # clamp
    mul[idx[1::3]] = 2.5  # scale
    add[idx[2::3]] = -1.5  # add
    return (
        r(m, d, dt=xdt),
        r(d, s, sc=d**-0.5, dt=wdt),
        r(s, sc=0.1),
        r(s, d, sc=s**-0.5, dt=wdt),
        r(d, sc=0.1),
        (torch.rand(s, generator=g) * 0.6 - 0.3).to(DEV),
        mul.to(DEV),
        add.to(DEV),
    )


def independent(x, ops: Operands):
    """x + W_dec^T (f' - f), written out feature by feature in float64 (JumpReLU as Gemma Scope and
    SAELens define it: relu(pre) * (pre > threshold))."""
    W_enc, b_enc, W_dec, b_dec, thr, mul, add = ops
    x64 = x.double()
    out = x64.clone()
    for i in range(W_enc.shape[1]):
        pre = (x64 - b_dec.double()) @ W_enc[:, i].double() + b_enc[i].double()
        f = pre.clamp_min(0) * (pre > thr[i].double()) if thr is not None else pre.clamp_min(0)
        d = f * (mul[i].double() - 1) + add[i].double()
        out += d[:, None] * W_dec[i].double()[None, :]
    return out


DTYPES = [
    (torch.float32, torch.float32),
    (torch.float16, torch.float16),
    (torch.float16, torch.float32),
    (torch.bfloat16, torch.bfloat16),
    (torch.bfloat16, torch.float32),
]


@settings(max_examples=15, deadline=None)
@given(
    m=st.integers(1, 40),
    d=st.integers(8, 96),
    s=st.integers(4, 120),
    dts=st.sampled_from(DTYPES),
    jump=st.booleans(),
    block=st.sampled_from(BLOCKS),
    seed=st.integers(0, 10_000),
)
def test_kernel_matches_reference_and_independent(m, d, s, dts, jump, block, seed):
    xdt, wdt = dts
    x, We, be, Wd, bd, thr, mul, add = _random(m, d, s, xdt, wdt, seed)
    thr = thr if jump else None
    got = sae_edit_triton(x, Operands(We, be, Wd, bd, thr, mul, add), block)
    assert got.dtype == xdt and got.shape == x.shape
    ref = sae_edit_reference(x, Operands(We, be, Wd, bd, thr, mul, add)).float()
    ind = independent(x, Operands(We, be, Wd, bd, thr, mul, add)).float()
    scale = ind.abs().max().clamp_min(1.0)
    assert (got.float() - ref).abs().max() / scale <= TOL[xdt]
    if xdt == torch.float32:
        assert (got.float() - ind).abs().max() <= 1e-4 * scale


@pytest.mark.parametrize("xdt", [torch.float16, torch.float32])
def test_float32_weights_are_cast_to_the_activation_dtype_in_the_kernel(xdt):
    """One compute dtype for tl.dot: float32 weights with float16 activations give what weights
    stored in float16 give (the kernel casts them in registers), and differ from the float32
    reference only by that rounding."""
    x, We, be, Wd, bd, thr, mul, add = _random(24, 80, 100, xdt, torch.float32, 7)
    got = sae_edit_triton(x, Operands(We, be, Wd, bd, thr, mul, add), (16, 32, 32)).float()
    same = sae_edit_triton(x, Operands(We.to(xdt), be, Wd.to(xdt), bd, thr, mul, add), (16, 32, 32)).float()
    assert torch.allclose(got, same, atol=1e-6 if DEV == "cpu" else 2e-3)
    ref = sae_edit_reference(x, Operands(We, be, Wd, bd, thr, mul, add)).float()
    assert (got - ref).abs().max() <= TOL[xdt] * ref.abs().max()


def test_jumprelu_gate_at_the_threshold_is_exact_in_float32():
    """Pre-activations a hair either side of the threshold gate as in the reference (IEEE
    products: TF32's 10-bit mantissa would move pre by ~1e-3 and flip these)."""
    g = torch.Generator().manual_seed(1)
    m, d, s = 16, 64, 64
    x = torch.randn(m, d, generator=g)
    We, Wd = torch.randn(d, s, generator=g) / 8, torch.randn(s, d, generator=g) / 8
    be, bd = torch.zeros(s), torch.zeros(d)
    pre = x.double() @ We.double()
    thr = (pre[0] + torch.where(torch.arange(s) % 2 == 0, 1e-5, -1e-5)).float()  # row 0: on either side
    mul, add = torch.full((s,), 3.0), torch.zeros(s)
    args = [t.to(DEV) for t in (x, We, be, Wd, bd, thr, mul, add)]
    got = sae_edit_triton(args[0], Operands(*args[1:]), (16, 64, 32)).cpu()
    want = independent(x, Operands(We, be, Wd, bd, thr, mul, add))
    assert (got.double() - want).abs().max() < 1e-4


def test_jumprelu_with_negative_thresholds_gates_through_relu():
    """A threshold below 0 lets no negative pre-activation through: f = relu(pre) * (pre > thr).
    A gate without the ReLU (where(pre > thr, pre, 0)) differs here at about half the entries."""
    g = torch.Generator().manual_seed(3)
    m, d, s = 24, 48, 64
    x = torch.randn(m, d, generator=g)
    We, Wd = torch.randn(d, s, generator=g) / 6, torch.randn(s, d, generator=g) / 6
    be, bd = torch.randn(s, generator=g) * 0.1, torch.zeros(d)
    thr = -3 * torch.rand(s, generator=g)  # in (-3, 0), as SAELens JumpReLU SAEs can have
    mul, add = torch.zeros(s), torch.full((s,), 0.5)  # clamp every feature to 0.5
    args = [t.to(DEV) for t in (x, We, be, Wd, bd, thr, mul, add)]
    want = independent(x, Operands(We, be, Wd, bd, thr, mul, add))
    for got in (
        sae_edit_triton(args[0], Operands(*args[1:]), (16, 32, 32)).cpu(),
        sae_edit_reference(args[0], Operands(*args[1:])).cpu(),
    ):
        assert (got.double() - want).abs().max() < 1e-4
    pre = x.double() @ We.double() + be.double()
    assert bool(((pre < 0) & (pre > thr.double())).any())  # the case exists in this draw


@pytest.mark.parametrize("xdt", ["float32", "bfloat16"])
def test_decoding_shapes_launch_at_least_128_programs(xdt):
    """M = 1..16 tokens on a 16k-feature SAE spreads over >= 128 programs for every config,
    and every grid covers all tokens and features."""
    for c in configs(xdt):
        bm, bs = c.kwargs["BLOCK_M"], c.kwargs["BLOCK_S"]
        for M in range(1, 17):
            gm, gs = launch_grid(M, 16384, bm, bs)
            assert gm * gs >= 128
        for M, S in [(1, 3), (17, 16384), (512, 65536), (513, 300)]:
            gm, gs = launch_grid(M, S, bm, bs)
            assert (gm - 1) * bm < M <= gm * bm and (gs - 1) * bs < S <= gs * bs


def test_no_tokens_or_no_features_is_identity():
    x, We, be, Wd, bd, thr, mul, add = _random(5, 32, 40, torch.float32, torch.float32, 0)
    assert sae_edit_triton(x[:0], Operands(We, be, Wd, bd, thr, mul, add)).shape == (0, 32)
    assert torch.equal(
        sae_edit_triton(x, Operands(We[:, :0], be[:0], Wd[:0], bd, thr[:0], mul[:0], add[:0])), x
    )


def _per_row(r, s, seed):
    """R different edits (row 0 none: mul 1, add 0) and `rows` giving each token its edit row."""
    g = torch.Generator().manual_seed(seed)
    mul, add = torch.ones(r, s), torch.zeros(r, s)
    for i in range(1, r):
        idx = torch.randperm(s, generator=g)[: 1 + i]
        mul[i, idx[0::2]], add[i, idx[0::2]] = 0.0, float(i)  # clamp
        add[i, idx[1::2]] = -0.5 * i  # add
    return mul.to(DEV), add.to(DEV)


@pytest.mark.parametrize("jump", [False, True])
def test_per_row_reference_is_the_one_edit_reference_row_by_row(jump):
    """One edit per batch row gives, on each token, exactly what that row's edit alone gives."""
    r, m, d, s = 4, 30, 48, 40
    x, We, be, Wd, bd, thr, _, _ = _random(m, d, s, torch.float32, torch.float32, 3)
    thr = thr if jump else None
    mul, add = _per_row(r, s, 5)
    rows = torch.arange(m) % r
    got = sae_edit_reference(x, Operands(We, be, Wd, bd, thr, mul, add), rows.to(DEV))
    for i in range(r):
        one = sae_edit_reference(x[rows == i], Operands(We, be, Wd, bd, thr, mul[i], add[i]))
        assert torch.equal(got[rows == i], one)
    assert torch.equal(got[rows == 0], x[rows == 0])  # the row without an edit is untouched


@pytest.mark.parametrize("xdt,block", [(torch.float32, (16, 32, 32)), (torch.float16, (32, 16, 64))])
def test_per_row_kernel_matches_per_row_reference(xdt, block):
    r, m, d, s = 3, 37, 64, 72
    x, We, be, Wd, bd, thr, _, _ = _random(m, d, s, xdt, torch.float32, 11)
    mul, add = _per_row(r, s, 2)
    rows = (torch.arange(m) * 7 % r).to(DEV)
    ops = Operands(We, be, Wd, bd, thr, mul, add)
    got = sae_edit_triton(x, ops, block, rows).float()
    ref = sae_edit_reference(x, ops, rows).float()
    tol = 1e-5 if xdt == torch.float32 else TOL[xdt]
    assert (got - ref).abs().max() <= tol * ref.abs().max().clamp_min(1.0)
    for i in range(r):  # and each row as its own one-edit launch
        one = sae_edit_triton(x[rows == i], Operands(We, be, Wd, bd, thr, mul[i], add[i]), block).float()
        assert (got[rows == i] - one).abs().max() <= tol * ref.abs().max().clamp_min(1.0)


def test_per_row_edits_need_each_tokens_row():
    x, We, be, Wd, bd, thr, _, _ = _random(5, 16, 8, torch.float32, torch.float32, 0)
    mul, add = _per_row(2, 8, 0)
    ops = Operands(We, be, Wd, bd, None, mul, add)
    with pytest.raises(ValueError, match="each token's row"):
        sae_edit_reference(x, ops)
    with pytest.raises(ValueError, match="2 edits given"):
        sae_edit_triton(x, ops, (16, 32, 32), torch.full((5,), 2, device=DEV))
    with pytest.raises(ValueError, match="for 5 tokens"):
        sae_edit_reference(x, ops, torch.zeros(4, dtype=torch.long, device=DEV))
