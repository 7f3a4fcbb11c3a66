"""SAEEdit: every path equals the SAE's own two-pass edit x + decode(f') - decode(f); operands
are prepared once per activation dtype; gradients reach x or an error says why not.

Backend "triton" runs interpreted on CPU here (tests/conftest.py) and compiled on CUDA."""

import copy

import pytest
import torch

from mechvalue.errors import MechValueError
from mechvalue.interp.edit import sae_edit
from mechvalue.interp.sae import SAE, SAEConfig
from mechvalue.interp.steering import SAEEditHook, SteeringSpec, StudyAddHook
from tests.kernels.conftest import kernel_device

DEV = kernel_device()


def _sae(act, d=48, s=300, seed=0):
    torch.manual_seed(seed)
    sae = SAE(SAEConfig(d, s, act, k=12, input_scale=1.7))
    with torch.no_grad():
        sae.b_enc.normal_(0, 0.1)
        sae.b_dec.normal_(0, 0.1)
        sae.threshold.uniform_(-0.3, 0.2)  # below 0 too: relu(pre) * (pre > thr)
    return sae


def want(sae, x, mul, add):
    """The definition, in float64 through the SAE's own encode and decode (two passes)."""
    ref = copy.deepcopy(sae).double()
    with torch.no_grad():
        f = ref.encode(x.double())
        return x.double() + ref.decode(f * mul.double() + add.double()) - ref.decode(f)


SPECS = {
    "clamp": SteeringSpec([3, 77, 250], "clamp", [4.0, 0.0, 2.0]),
    "scale": SteeringSpec([5, 6], "scale", 3.0),
    "add": SteeringSpec([9, 100], "add", [2.0, -1.0]),
}


@pytest.mark.parametrize("act", ["relu", "jumprelu", "topk"])
@pytest.mark.parametrize("mode", list(SPECS))
@pytest.mark.parametrize("backend", ["torch", "triton"])
def test_every_path_equals_the_two_pass_edit(act, mode, backend):
    sae = _sae(act)
    mul, add = SPECS[mode].edit_vectors(sae)
    x = torch.randn(20, 48) * 2
    ref = want(sae, x, mul, add)
    paths = ["auto", "full"] + (["delta"] if act != "topk" else ["topk"]) + (["add"] if mode == "add" else [])
    for path in paths:
        e = sae_edit(sae, mul, add, torch.float32, DEV, path, backend)
        got = e.apply(x.to(DEV)).cpu()
        assert (got.double() - ref).abs().max() < 1e-4, (path, e.path)
    auto = sae_edit(sae, mul, add, torch.float32, DEV, "auto", backend).path
    assert auto == ("add" if mode == "add" else "topk" if act == "topk" else "delta")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("act", ["relu", "jumprelu"])
def test_half_activations_prepare_weights_in_their_dtype(dtype, act):
    sae = _sae(act)
    mul, add = SPECS["clamp"].edit_vectors(sae)
    x = (torch.randn(20, 48) * 2).to(dtype)
    e = sae_edit(sae, mul, add, dtype, DEV, "delta", "triton")
    assert e.ops.W_enc.dtype == e.ops.W_dec.dtype == dtype and e.ops.W_enc.shape == (48, 3)
    assert e.ops.b_enc.dtype == e.ops.mul.dtype == torch.float32
    got = e.apply(x.to(DEV)).cpu()
    assert got.dtype == dtype
    ref = want(sae, x.float(), mul, add)
    assert (got.double() - ref).abs().max() < 3e-2 * ref.abs().max()


def test_topk_decodes_only_the_edited_rows_and_keeps_the_topk_set():
    """Editing a feature outside a token's top-k set by scale leaves that token alone, and the
    prepared decode holds |S| rows only."""
    sae = _sae("topk", s=400)
    x = torch.randn(30, 48)
    with torch.no_grad():
        f = sae.encode(x)
    never = int((f == 0).all(0).nonzero()[0])  # a feature in no token's top-k set
    spec = SteeringSpec([never], "scale", 10.0)
    e = sae_edit(sae, *spec.edit_vectors(sae), torch.float32, "cpu")
    assert e.path == "topk" and e.W_dec_S.shape == (1, 48)
    assert torch.equal(e.apply(x), x)


def test_add_path_is_one_vector_and_the_study_hook_uses_it():
    sae = _sae("relu")
    spec = SteeringSpec([9], "add", 5.0)
    e = sae_edit(sae, *spec.edit_vectors(sae), torch.float32, "cpu")
    assert e.path == "add"
    assert torch.allclose(e.vec, 5.0 * sae.W_dec.detach()[9] / 1.7)
    hook = StudyAddHook(sae, 9, 5.0, positions=torch.tensor([[False, True, True]]))
    r = torch.randn(1, 3, 48)
    out = hook(r, None)
    assert torch.equal(out[0, 0], r[0, 0])
    assert torch.equal(out[0, 1:], r[0, 1:] + 5.0 * sae.W_dec.detach()[9])


def test_zero_edit_is_identity_on_every_path():
    sae = _sae("relu")
    mul, add = torch.ones(300), torch.zeros(300)
    x = torch.randn(5, 48)
    for path in ("auto", "add", "delta", "full"):
        assert torch.allclose(sae_edit(sae, mul, add, torch.float32, "cpu", path).apply(x), x, atol=1e-6)


@pytest.mark.parametrize("act", ["relu", "jumprelu", "topk"])
def test_gradients_reach_x_on_the_torch_path(act):
    sae = _sae(act)
    mul, add = SPECS["clamp"].edit_vectors(sae)
    x = torch.randn(6, 48, dtype=torch.float32, requires_grad=True)
    e = sae_edit(sae, mul, add, torch.float32, "cpu", "auto", "torch")
    (g,) = torch.autograd.grad(e.apply(x).pow(2).sum(), x)
    sae64 = _sae(act).double()
    x64 = x.detach().double().requires_grad_()
    f = sae64.encode(x64)
    ref = x64 + sae64.decode(f * mul.double() + add.double()) - sae64.decode(f)
    (g64,) = torch.autograd.grad(ref.pow(2).sum(), x64)
    assert (g.double() - g64).abs().max() < 1e-3 * g64.abs().max()
    assert all(p.grad is None for p in sae.parameters())


def test_fused_kernel_refuses_gradients_and_auto_falls_back_to_the_reference():
    sae = _sae("relu")
    mul, add = SPECS["clamp"].edit_vectors(sae)
    x = torch.randn(4, 48, device=DEV, requires_grad=True)
    with pytest.raises(MechValueError, match="no backward"):
        sae_edit(sae, mul, add, torch.float32, DEV, "delta", "triton").apply(x)
    e = sae_edit(sae, mul, add, torch.float32, DEV, "delta", "auto")
    if DEV == "cuda":
        assert e.backend == "triton"
    assert e.apply(x).requires_grad
    with torch.no_grad():
        assert not sae_edit(sae, mul, add, torch.float32, DEV, "delta", "triton").apply(x).requires_grad


@pytest.mark.parametrize("bad", [dict(path="fast"), dict(backend="cuda")])
def test_unknown_options_are_refused(bad):
    sae = _sae("relu")
    opts = {"path": "auto", "backend": "auto", **bad}
    with pytest.raises(MechValueError, match=str(next(iter(bad.values())))):
        sae_edit(sae, torch.ones(300), torch.zeros(300), torch.float32, "cpu", **opts)


def test_path_must_suit_the_sae_and_the_edit():
    with pytest.raises(MechValueError, match="delta path"):
        sae_edit(_sae("topk"), torch.ones(300), torch.zeros(300), torch.float32, "cpu", "delta")
    with pytest.raises(MechValueError, match="mul == 1"):
        sae_edit(_sae("relu"), torch.full((300,), 2.0), torch.zeros(300), torch.float32, "cpu", "add")


def test_hook_prepares_once_per_activation_dtype():
    sae = _sae("jumprelu")
    hook = SAEEditHook(sae, SPECS["clamp"], path="delta")
    assert (hook.path, hook.backend) == ("delta", "torch")
    x = torch.randn(7, 48)
    a = hook.edit(x)
    hook.edit(x.to(torch.bfloat16))
    assert hook.prepared(torch.float32, torch.device("cpu")) is hook.prepared(torch.float32, "cpu")
    assert len(hook._edits) == 2  # noqa: SLF001
    assert torch.allclose(a.double(), want(sae, x, *SPECS["clamp"].edit_vectors(sae)), atol=1e-4)
