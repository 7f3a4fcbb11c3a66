"""TransformerLens and SAELens habits on a `LoadedModel`, checked against sae_lens itself on a tiny
Llama-3 folder: `model(tokens)`, SAE feature activations in one `run_with_cache_with_saes` call under
SAELens's cache names (equal to SAELens's `SAETransformerBridge`), the error term, feature edits
through `fwd_hooks`, `mechvalue.SAE` <-> `sae_lens.SAE`, and `steer` / `sae_hook` taking a
`sae_lens.SAE`."""

from __future__ import annotations

import pytest
import torch

import mechvalue
from mechvalue.errors import MechValueError
from mechvalue.interp.sae import SAE, SAEConfig
from tests.lm.tiny import write_tiny

sae_lens = pytest.importorskip("sae_lens")
HOOK, LAYER, D_IN, D_SAE = "blocks.1.hook_resid_post", 1, 64, 96


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_tiny("llama3", tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def model(folder):
    return mechvalue.load_model(str(folder))


@pytest.fixture(scope="module")
def lens_bridge(folder):
    return sae_lens.SAETransformerBridge.boot_transformers(str(folder), device="cpu", dtype=torch.float32)


@pytest.fixture(scope="module")
def tokens(model):
    return torch.tensor([model.tokenizer.encode("The quick brown fox jumps over the lazy dog, said the cat")])


def lens_sae(architecture: str, seed: int = 0):
    from sae_lens.saes.sae import SAEMetadata

    meta = SAEMetadata(hook_name=HOOK)
    cfg = {
        "standard": sae_lens.StandardSAEConfig,
        "jumprelu": sae_lens.JumpReLUSAEConfig,
        "topk": sae_lens.TopKSAEConfig,
    }[architecture]
    extra = {"k": 12} if architecture == "topk" else {}
    cls = {"standard": sae_lens.StandardSAE, "jumprelu": sae_lens.JumpReLUSAE, "topk": sae_lens.TopKSAE}
    lens = cls[architecture](cfg(d_in=D_IN, d_sae=D_SAE, metadata=meta, **extra))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in lens.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
        if architecture == "jumprelu":
            lens.threshold.copy_(torch.rand(D_SAE, generator=g) * 0.5)
    return lens


def ours(activation: str, scale: float = 1.0, seed: int = 0) -> SAE:
    torch.manual_seed(seed)
    sae = SAE(SAEConfig(D_IN, D_SAE, activation, 12, HOOK, True, scale))
    with torch.no_grad():
        for p in (sae.W_enc, sae.b_enc, sae.b_dec):
            p.normal_(0.0, 0.3)
        sae.threshold.uniform_(0.0, 0.5)
    return sae


def test_model_is_called_and_moved_as_the_bridge_is(model, tokens):
    with torch.no_grad():
        assert torch.equal(model(tokens), model.bridge(tokens))
        assert model(tokens, return_type="loss").dim() == 0
    assert model.to("cpu") is model and model.device == torch.device("cpu")
    assert torch.equal(
        model.to_tokens("hi", prepend_bos=False), model.bridge.to_tokens("hi", prepend_bos=False)
    )


@pytest.mark.parametrize("architecture", ["standard", "jumprelu", "topk"])
def test_sae_cache_equals_saelens_and_the_error_term_keeps_the_output(
    model, lens_bridge, tokens, architecture
):
    lens = lens_sae(architecture)
    with torch.no_grad():
        plain = model(tokens)
        out, cache = model.run_with_cache_with_saes(tokens, saes=[lens])
        ref_out, ref = lens_bridge.run_with_cache_with_saes(tokens, saes=[lens], use_error_term=True)
    acts = cache[f"{HOOK}.hook_sae_acts_post"]
    assert acts.shape == (1, tokens.shape[1], D_SAE) and 0.02 < float((acts > 0).float().mean()) < 0.9
    for point in (
        "hook_sae_input",
        "hook_sae_acts_pre",
        "hook_sae_acts_post",
        "hook_sae_recons",
        "hook_sae_error",
    ):
        theirs = ref[lens_bridge.get_sae_hook_name(lens, point)]
        assert torch.allclose(cache[f"{HOOK}.{point}"], theirs, atol=1e-5), point
    assert torch.equal(out, plain)  # the error term kept: bit for bit what the model gives without the SAE
    assert torch.allclose(ref_out, plain, atol=1e-4)  # SAELens's: equal up to rounding
    assert torch.equal(cache[HOOK], cache[f"{HOOK}.hook_sae_output"])
    # the reconstruction spliced in, as SAELens does without the error term
    with torch.no_grad():
        spliced = model.run_with_saes(tokens, saes=lens, use_error_term=False)
        ref_spliced = lens_bridge.run_with_saes(tokens, saes=[lens], use_error_term=False)
    assert torch.allclose(spliced, ref_spliced, atol=1e-4) and float((spliced - plain).abs().max()) > 1e-2


def test_names_filter_and_a_feature_edit_through_fwd_hooks(model, lens_bridge, tokens):
    lens = lens_sae("standard", seed=1)
    name = f"{HOOK}.hook_sae_acts_post"
    with torch.no_grad():
        _, cache = model.run_with_cache_with_saes(tokens, saes=[lens], names_filter=name)
        f = int(cache[name][0].sum(0).argmax())
        assert list(cache.keys()) == [name]

        def off(acts, hook):
            acts[..., f] = 0.0
            return acts

        edited = model.run_with_saes(tokens, saes=[lens], fwd_hooks=[(name, off)])
        with lens_bridge.saes(saes=[lens], use_error_term=True):
            ref = lens_bridge.run_with_hooks(tokens, fwd_hooks=[(lens_bridge.get_sae_hook_name(lens), off)])
        _, after = model.run_with_cache_with_saes(tokens, saes=[lens], fwd_hooks=[(name, off)])
        base = model(tokens)
    assert torch.allclose(edited, ref, atol=1e-4) and float((edited - base).abs().max()) > 1e-3
    assert float(after[name][..., f].abs().max()) == 0.0
    with pytest.raises(MechValueError, match="hook_sae_acts_pre can be read, not edited"), torch.no_grad():
        model.run_with_saes(tokens, saes=[lens], fwd_hooks=[(f"{HOOK}.hook_sae_acts_pre", off)])


def test_saes_context_attaches_for_generation_and_is_removed(model, tokens):
    sae = ours("relu")
    seen = []
    with torch.no_grad(), model.saes([sae]):
        model(tokens)
    with torch.no_grad():
        model.run_with_hooks(tokens, fwd_hooks=[(HOOK, lambda t, hook: seen.append(t))])
        _, cache = model.run_with_cache(tokens, names_filter=HOOK)
    assert torch.equal(seen[0], cache[HOOK]) and not model.bridge.hook_dict[HOOK].fwd_hooks
    with pytest.raises(MechValueError, match="no hook point"):
        other = ours("relu")
        other.cfg.hook_name = "blocks.9.hook_resid_post"
        model.run_with_saes(tokens, saes=[other])


@pytest.mark.parametrize("activation", ["relu", "jumprelu", "topk"])
def test_conversion_both_ways_keeps_features_and_outputs(activation):
    sae = ours(activation, scale=2.5)
    lens = mechvalue.to_sae_lens(sae, model_name="tiny")
    assert (
        type(lens).__name__
        == {"relu": "StandardSAE", "jumprelu": "JumpReLUSAE", "topk": "TopKSAE"}[activation]
    )
    assert lens.cfg.metadata.hook_name == HOOK and lens.cfg.metadata.model_name == "tiny"
    x = torch.randn(50, D_IN, generator=torch.Generator().manual_seed(3))
    back = mechvalue.from_sae_lens(lens)
    with torch.no_grad():
        f = sae.encode(x)
        assert 0.02 < float((f > 0).float().mean()) < 0.9
        assert torch.allclose(lens.encode(x), f, atol=1e-5) and torch.allclose(lens(x), sae(x), atol=1e-5)
        assert torch.allclose(back.encode(x), f, atol=1e-5) and torch.allclose(back(x), sae(x), atol=1e-5)
    assert back.cfg.activation == activation and back.cfg.hook_name == HOOK


def test_steer_and_sae_hook_take_a_sae_lens_sae(model, tokens):
    lens = lens_sae("jumprelu", seed=2)
    mine = mechvalue.from_sae_lens(lens)
    with torch.no_grad():
        base = model(tokens)
        with mechvalue.steer(model, lens, {5: 4.0}, mode="add", where="all"):
            a = model(tokens)
        with mechvalue.steer(model, mine, {5: 4.0}, mode="add", where="all"):
            b = model(tokens)
        clamp = mechvalue.sae_hook(lens, {5: 0.0}, mode="clamp", where=(2, 4))
        c = model.run_with_hooks(tokens, fwd_hooks=[(HOOK, clamp)])
    assert torch.allclose(a, b, atol=1e-5) and float((a - base).abs().max()) > 1e-2
    assert torch.equal(c[:, :2], base[:, :2])
    with pytest.raises(MechValueError, match="expected a mechvalue.SAE or a sae_lens.SAE"):
        mechvalue.sae_hook(object(), {1: 1.0})
