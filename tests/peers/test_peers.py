"""mechvalue's edits against peers no one here wrote, on the real SmolLM2 in float32.

Peers: plain HF (`AutoModelForCausalLM` on the same folder, no TransformerLens) with a forward
hook on `model.layers[L]` that edits through SAELens's own SAE objects (`encode`, `decode`, the
error term kept as SAELens's `use_error_term` keeps it), and nnsight's `LanguageModel` editing the
same layer's output. The SAEs are SAELens's (standard, JumpReLU with thresholds below 0 as well,
TopK), saved by `sae_lens` itself and read back with `mechvalue.load_sae`. Logits agree within
1e-4 at every position; 20 greedy tokens decoded with the KV cache equal a peer that recomputes
the whole sequence at every step.
"""

from __future__ import annotations

import pytest
import torch

from mechvalue import load_sae, sae_hook, steer, vector_hook
from mechvalue.lm.generation import Edits, greedy_generate
from mechvalue.lm.models import DEFAULT_MODEL, model_folder
from tests.interp.sae_fixtures import saelens_sae

pytest.importorskip("sae_lens")
nnsight = pytest.importorskip("nnsight")

LAYER = 15
HOOK = f"blocks.{LAYER}.hook_resid_post"
PROMPT = "Should I always tell the truth, even when it hurts someone I love?"
FEATURE = 7
TOL = 1e-4


@pytest.fixture(scope="module")
def hf(smollm2):
    from transformers import AutoModelForCausalLM

    folder = model_folder(DEFAULT_MODEL)
    return AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()


@pytest.fixture(scope="module")
def tokens(smollm2):
    return smollm2.to_tokens(PROMPT, prepend_bos=False)


@pytest.fixture(scope="module")
def resid(smollm2, tokens):
    _, cache = smollm2.run_with_cache(tokens, names_filter=HOOK)
    return cache[HOOK][0, 1:]  # position 0 (attention sink, norm ~1e4) left out of the scale


def _lens_sae(architecture: str, resid: torch.Tensor, folder):
    """A SAELens SAE scaled to SmolLM2's residual (pre-activations ~N(0, 1)), saved by SAELens and
    returned as SAELens reads it back, beside mechvalue's load of the same folder."""
    from sae_lens import SAE as LensSAE

    d_in, d_sae = resid.shape[-1], 256
    lens = saelens_sae(architecture, d_in, d_sae, HOOK, k=16)
    g = torch.Generator().manual_seed(0)
    rms = float(resid.pow(2).mean().sqrt())
    with torch.no_grad():
        lens.W_enc.copy_(torch.randn(d_in, d_sae, generator=g) / (d_in**0.5 * rms))
        lens.W_dec.copy_(torch.randn(d_sae, d_in, generator=g) * rms / 4)
        lens.b_enc.copy_(torch.randn(d_sae, generator=g) * 0.3)
        lens.b_dec.copy_(resid.mean(0))
        if architecture == "jumprelu":
            lens.threshold.copy_(torch.rand(d_sae, generator=g) * 1.5 - 1.0)  # in (-1, 0.5)
    lens.save_model(str(folder))
    return LensSAE.load_from_disk(str(folder), device="cpu").eval(), load_sae(folder, "cpu")


def _lens_edit(lens, x: torch.Tensor, positions, feature: int, value: float, mode: str) -> torch.Tensor:
    """SAELens's error-term edit: decode(f') + (x - decode(f)), with f' changed at `positions` (a
    slice or a boolean mask over the sequence); other positions are not touched at all."""
    on = torch.zeros(x.shape[1], dtype=torch.bool)
    on[positions] = True
    f = lens.encode(x)
    f2 = f.clone()
    f2[:, on, feature] = value if mode == "clamp" else f[:, on, feature] + value
    out = lens.decode(f2) + (x - lens.decode(f))
    out[:, ~on] = x[:, ~on]
    return out


def _hf_logits(hf, tokens, edit) -> torch.Tensor:
    """Plain HF with a forward hook on layer LAYER's output (no cache)."""

    def hook(module, args, output):
        return (edit(output[0]), *output[1:]) if isinstance(output, tuple) else edit(output)

    h = hf.model.layers[LAYER].register_forward_hook(hook)
    try:
        with torch.no_grad():
            return hf(tokens, use_cache=False).logits
    finally:
        h.remove()


@pytest.fixture(scope="module")
def nn_model(hf, smollm2):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # LanguageModel's deprecation notice; it still wraps a loaded model
        return nnsight.LanguageModel(hf, tokenizer=smollm2.tokenizer)


def _nnsight_logits(lm, tokens, edit) -> torch.Tensor:
    with torch.no_grad(), lm.trace(tokens):
        layer = lm.model.layers[LAYER]
        if isinstance(layer.output, tuple):
            layer.output = (edit(layer.output[0]), *layer.output[1:])
        else:
            layer.output = edit(layer.output)
        logits = lm.lm_head.output.save()
    return logits


CASES = [("add", "all", 6.0), ("clamp", "all", 3.0), ("clamp", (3, 9), 0.0), ("clamp", (3, 9), 5.0)]


@pytest.mark.parametrize("architecture", ["standard", "jumprelu", "topk"])
def test_sae_edits_equal_saelens_on_hf_and_nnsight(
    smollm2, hf, nn_model, tokens, resid, tmp_path, architecture
):
    lens, ours = _lens_sae(architecture, resid, tmp_path / architecture)
    with torch.no_grad():
        fired = (lens.encode(resid[None]) > 0).float().mean()
    assert 0.01 < fired < 0.9  # features fire on real activations: the edits are not vacuous
    for mode, where, value in CASES:
        if architecture == "topk" and mode == "add":
            continue  # adding to a TopK code is not an edit SAELens defines through encode
        positions = slice(None) if where == "all" else slice(*where)
        hook = sae_hook(ours, {FEATURE: value}, mode=mode, where=where)
        with torch.no_grad():
            got = smollm2.run_with_hooks(tokens, fwd_hooks=[(HOOK, hook)])
            plain = smollm2(tokens)
        edit = lambda x: _lens_edit(lens, x, positions, FEATURE, value, mode)  # noqa: E731
        want = _hf_logits(hf, tokens, edit)
        assert (got - want).abs().max() < TOL, (mode, where)
        assert (got - plain).abs().max() > 1e-2, (mode, where)  # the edit moved the logits
        if where != "all":  # the span edits nothing before it
            assert torch.equal(got[:, : where[0]], plain[:, : where[0]])
        nn_logits = _nnsight_logits(nn_model, tokens, edit)
        assert (got - nn_logits).abs().max() < TOL, (mode, where)


def test_vector_add_equals_hf_and_nnsight(smollm2, hf, nn_model, tokens, resid):
    direction = torch.randn(resid.shape[-1], generator=torch.Generator().manual_seed(1))
    unit = float(resid.norm(dim=-1).mean())
    hook = vector_hook(direction, 0.5, unit, positions="all")
    vec = direction / direction.norm() * 0.5 * unit
    with torch.no_grad():
        got = smollm2.run_with_hooks(tokens, fwd_hooks=[(HOOK, hook)])
    assert (got - _hf_logits(hf, tokens, lambda x: x + vec)).abs().max() < TOL
    assert (got - _nnsight_logits(nn_model, tokens, lambda x: x + vec)).abs().max() < TOL


def _peer_greedy(hf, ids: list[int], n: int, edit) -> list[int]:
    """Greedy decoding that recomputes the whole sequence each step (no cache) with `edit` on
    layer LAYER's output."""
    out = list(ids)
    for _ in range(n):
        logits = _hf_logits(hf, torch.tensor([out]), edit)
        out.append(int(logits[0, -1].argmax()))
    return out[len(ids) :]


@pytest.mark.parametrize("where", ["all", (0, 1)])
def test_steered_cached_generation_equals_a_full_recompute(smollm2, hf, tokens, resid, tmp_path, where):
    """20 greedy tokens under `steer` (TransformerLens's generate, KV cache) and `greedy_generate`
    (ours, KV cache) equal a peer recomputing everything each step; a span in the prompt is not
    edited again at decode steps (a (0, 1) span once was)."""
    lens, ours = _lens_sae("jumprelu", resid, tmp_path / "sae")
    ids = tokens[0].tolist()
    value = 40.0
    positions = slice(None) if where == "all" else slice(*where)

    want = _peer_greedy(hf, ids, 20, lambda x: _lens_edit(lens, x, positions, FEATURE, value, "add"))
    with torch.no_grad(), steer(smollm2, ours, {FEATURE: value}, mode="add", where=where):
        tl = smollm2.generate(
            tokens, max_new_tokens=20, do_sample=False, verbose=False, use_past_kv_cache=True
        )
    assert tl[0, len(ids) :].tolist() == want
    mask = torch.zeros(1, len(ids), dtype=torch.bool)
    mask[0, positions] = True
    hook = sae_hook(ours, {FEATURE: value}, mode="add")
    mine = greedy_generate(
        smollm2, [ids], 20, stop_ids=set(), edits=Edits([(HOOK, hook)], mask, where == "all")
    )
    assert mine[0] == want
    assert want != greedy_generate(smollm2, [ids], 20, stop_ids=set())[0]  # the steering changes the text
    if where != "all":  # a span edited again at every decode step gives other tokens: the check can fail

        def span_and_decoded(x):
            on = torch.zeros(x.shape[1], dtype=torch.bool)
            on[positions], on[len(ids) :] = True, True
            return _lens_edit(lens, x, on, FEATURE, value, "add")

        assert _peer_greedy(hf, ids, 20, span_and_decoded) != want
