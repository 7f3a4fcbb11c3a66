"""Steered generation on the real model: KV-cached decoding equals the no-cache reference."""

import pytest
import torch

from mechvalue.errors import MechValueError
from mechvalue.interp.sae import SAE, SAEConfig
from mechvalue.interp.steering import SAEEditHook, SteeringSpec, StudyAddHook, generate_steered
from mechvalue.study.prompts import render

HOOK = "blocks.15.hook_resid_post"


def _sae(seed=0):
    torch.manual_seed(seed)
    sae = SAE(SAEConfig(576, 256, "relu", hook_name=HOOK))
    with torch.no_grad():
        sae.b_enc.fill_(-0.05)
    return sae


def _prompts(model, info):
    return [
        render(q, None, info.prompt_format, model.tokenizer)
        for q in ("Should I help others?", "Should I be rich?")
    ]


def test_steered_generation_cached_equals_uncached(smollm2):
    model, info = smollm2
    ps = _prompts(model, info)
    hook = SAEEditHook(_sae(), SteeringSpec([5, 9], "add", 40.0))
    fast = generate_steered(model, ps, HOOK, hook, "all", max_new_tokens=12)
    slow = generate_steered(model, ps, HOOK, hook, "all", max_new_tokens=12, use_cache=False)
    assert fast == slow


def test_hooks_that_would_do_nothing_raise_and_high_strength_steers(smollm2):
    model, info = smollm2
    ps = _prompts(model, info)[:1]
    with pytest.raises(MechValueError, match="would do nothing"):
        SAEEditHook(_sae(), SteeringSpec([5], "add", 0.0))
    with pytest.raises(MechValueError, match="would do nothing"):
        StudyAddHook(_sae(), 5, 0.0)
    with pytest.raises(MechValueError, match="no position"):
        SAEEditHook(_sae(), SteeringSpec([5], "add", 3.0), positions=torch.zeros(1, 4, dtype=torch.bool))
    with pytest.raises(MechValueError, match="unknown hook"):
        generate_steered(
            model, ps, "blocks.15.hook_resid_pots", SAEEditHook(_sae(), SteeringSpec([5], "add", 3.0))
        )
    plain = generate_steered(model, ps, HOOK, None, "all", 16)
    strong = generate_steered(
        model, ps, HOOK, SAEEditHook(_sae(), SteeringSpec([5], "add", 300.0)), "all", 16
    )
    assert strong != plain


def test_hook_paths_agree_with_an_independent_edit():
    """delta path == full path == x + (f' - f) W_dec computed from the SAE's own encode/decode,
    with a JumpReLU SAE whose input scale and b_dec are not trivial."""
    torch.manual_seed(3)
    sae = SAE(SAEConfig(64, 512, "jumprelu", input_scale=0.37))
    with torch.no_grad():
        sae.b_dec.normal_()
        sae.threshold.uniform_(0.0, 0.2)
    x = torch.randn(20, 64) * 3
    spec = SteeringSpec([7, 100, 300], "clamp", [2.0, 0.0, 5.0])
    mul, add = spec.edit_vectors(sae)
    f = sae.encode(x).double()
    want = x.double() + ((f * mul.double() + add.double()) - f) @ sae.W_dec.double() / 0.37
    for path in ("delta", "full"):
        got = SAEEditHook(sae, spec, path=path).edit(x)
        assert (got.double() - want).abs().max() < 1e-4
