"""Kernels vs references (interpreted on CPU: TRITON_INTERPRET=1 is set in conftest.py).

Tolerances: float32 1e-4 absolute (accumulation order differs), float16 2e-2, bfloat16 5e-2
relative to the output scale.
"""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from mechvalue.kernels import sae_edit_reference, sae_edit_triton  # noqa: E402

from mechvalue.sae import SAE, SAEConfig  # noqa: E402
from mechvalue.steering import SAEEditHook, SteeringSpec  # noqa: E402

TOL = {torch.float32: 1e-4, torch.float16: 2e-2, torch.bfloat16: 5e-2}


def _random(m, d, s, dt, seed):
    g = torch.Generator().manual_seed(seed)
    r = lambda *shape, sc=1.0: (torch.randn(*shape, generator=g) * sc).to(dt)  # noqa: E731
    mul, add = torch.ones(s), torch.zeros(s)
    idx = torch.randperm(s, generator=g)[: max(1, s // 8)]
    mul[idx[0::3]], add[idx[0::3]] = 0.0, 3.0  # clamp
    mul[idx[1::3]] = 2.5  # scale
    add[idx[2::3]] = -1.5  # add
    return (r(m, d), r(d, s, sc=d**-0.5), r(s, sc=0.1), r(s, d, sc=s**-0.5), r(d, sc=0.1),
            (torch.rand(s, generator=g) * 0.3).to(dt), mul.to(dt), add.to(dt))  # fmt: skip


def independent(x, W_enc, b_enc, W_dec, b_dec, thr, mul, add):
    """x + W_dec^T (f' - f), written out feature by feature in float64."""
    x64 = x.double()
    out = x64.clone()
    for i in range(W_enc.shape[1]):
        pre = (x64 - b_dec.double()) @ W_enc[:, i].double() + b_enc[i].double()
        f = torch.where(pre > (thr[i].double() if thr is not None else 0.0), pre, torch.zeros_like(pre))
        d = f * (mul[i].double() - 1) + add[i].double()
        out += d[:, None] * W_dec[i].double()[None, :]
    return out


@settings(max_examples=12, deadline=None)
@given(m=st.integers(1, 40), d=st.integers(8, 96), s=st.integers(4, 120),
       dt=st.sampled_from([torch.float32, torch.float16, torch.bfloat16]), jump=st.booleans(),
       seed=st.integers(0, 10_000))  # fmt: skip
def test_kernel_matches_reference_and_independent(m, d, s, dt, jump, seed):
    x, We, be, Wd, bd, thr, mul, add = _random(m, d, s, dt, seed)
    thr = thr if jump else None
    got = sae_edit_triton(x, We, be, Wd, bd, thr, mul, add).float()
    ref = sae_edit_reference(x, We, be, Wd, bd, thr, mul, add).float()
    ind = independent(x, We, be, Wd, bd, thr, mul, add).float()
    scale = ind.abs().max().clamp_min(1.0)
    assert (got - ref).abs().max() / scale <= TOL[dt]
    if dt == torch.float32:
        assert (got - ind).abs().max() <= 1e-4 * scale


@pytest.mark.parametrize("activation", ["relu", "jumprelu"])
@pytest.mark.parametrize("backend", ["torch", "triton"])
def test_delta_path_equals_full_path(activation, backend):
    torch.manual_seed(0)
    sae = SAE(SAEConfig(48, 300, activation, input_scale=1.7))
    with torch.no_grad():
        sae.b_enc.normal_(0, 0.1)
        sae.b_dec.normal_(0, 0.1)
        sae.threshold.uniform_(0, 0.2)
    spec = SteeringSpec([3, 77, 250], "clamp", [4.0, 0.0, 2.0])
    hook = SAEEditHook(sae, spec, backend)
    x = torch.randn(20, 48)
    mul, add = spec.edit_vectors(sae)
    f = sae.encode(x)
    full = x + sae.decode(f * mul + add) - sae.decode(f)
    assert torch.allclose(hook.edit(x), full, atol=1e-4)


def test_zero_edit_is_identity():
    sae = SAE(SAEConfig(32, 64))
    hook = SAEEditHook(sae, SteeringSpec([1, 2], "add", 0.0))
    x = torch.randn(5, 32)
    assert torch.allclose(hook.edit(x), x, atol=1e-6)
