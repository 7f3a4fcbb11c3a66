"""Steering speed; every compared pair runs interleaved (conftest.interleaved: A, B, A, B, medians).

CPU (any machine; Triton runs only interpreted on CPU, so these time the torch reference):
(a) the SAE edit alone: delta path vs full edit vs SAELens's error-term SAE (two encodes, two
    decodes), float32;
(b) greedy decoding of SmolLM2 with the KV cache, every position steered: tokens/s unsteered,
    delta path, full edit, SAELens `use_error_term` as the hook.
The CUDA figures (the fused kernel against the copy bandwidth and SAELens, steered decoding of
real-shaped models) are `test_cuda_edit.py` and `test_cuda_decoding.py`.
"""

import pytest
import torch
from conftest import interleaved, record

from mechvalue.interp.sae import SAE, SAEConfig
from mechvalue.interp.steering import SAEEditHook, SteeringSpec, generate_steered
from mechvalue.study.prompts import render

FEATURES = [11, 222, 3333]
CUDA = torch.cuda.is_available()


def _sae(d_in, d_sae, device, hook=""):
    torch.manual_seed(0)
    sae = SAE(SAEConfig(d_in, d_sae, "relu", hook_name=hook)).to(device)
    with torch.no_grad():
        sae.b_enc.fill_(-0.1)
    return sae


def _saelens(sae, dtype=torch.float32):
    from sae_lens import StandardSAE, StandardSAEConfig

    cfg = StandardSAEConfig(
        d_in=sae.cfg.d_in,
        d_sae=sae.cfg.d_sae,
        device=str(sae.W_enc.device),
        dtype=str(dtype).removeprefix("torch."),
    )
    lens = StandardSAE(cfg)
    with torch.no_grad():
        for n in ("W_enc", "b_enc", "W_dec", "b_dec"):
            getattr(lens, n).copy_(getattr(sae, n))
    lens.use_error_term = True

    def clamp(acts, hook):
        acts[..., FEATURES] = 5.0
        return acts

    lens.add_hook("hook_sae_acts_post", clamp)
    return lens


@pytest.mark.parametrize("d_in,d_sae,tokens", [(576, 16384, 8), (2304, 16384, 8), (2304, 16384, 64)])
def test_edit_latency(d_in, d_sae, tokens):
    """CPU figures are the torch reference (float32); on CUDA this is the fused kernel in float32."""
    dev = "cuda" if CUDA else "cpu"
    sae = _sae(d_in, d_sae, dev)
    x = torch.randn(tokens, d_in, device=dev)
    spec = SteeringSpec(FEATURES, "clamp", 5.0)
    delta, full, lens = (
        SAEEditHook(sae, spec, path="delta"),
        SAEEditHook(sae, spec, path="full"),
        _saelens(sae),
    )
    with torch.no_grad():
        t, out = interleaved(
            {"delta": lambda: delta.edit(x), "full": lambda: full.edit(x), "saelens": lambda: lens(x)},
            rounds=5,
        )
    want = out["saelens"]
    for k in ("delta", "full"):
        assert (out[k] - want).abs().max() < 1e-3 * want.abs().max()
    record(
        f"edit_{d_in}x{d_sae}_m{tokens}",
        {
            "backend": delta.backend,
            "dtype": "float32",
            "delta_us": t["delta"] * 1e6,
            "full_us": t["full"] * 1e6,
            "saelens_us": t["saelens"] * 1e6,
            "saelens_over_full": t["saelens"] / t["full"],
            "full_over_delta": t["full"] / t["delta"],
        },
    )
    assert t["delta"] < t["full"] < t["saelens"]


def test_steered_vs_unsteered_decoding(smollm2):
    model, info = smollm2
    qs = ("Should I help others?", "Should I be rich?", "Should I respect traditions?", "Should I seek fun?")
    ps = [render(q, None, info.prompt_format, model.tokenizer) for q in qs]
    hook_name = "blocks.15.hook_resid_post"
    sae = _sae(576, 16384, "cuda" if CUDA else "cpu", hook_name)  # where the smollm2 fixture puts the model
    spec = SteeringSpec(FEATURES, "clamp", 5.0)
    lens = _saelens(sae)
    n = 16  # short generations, many interleaved rounds: medians that a busy machine moves less
    hooks = {
        "unsteered": lambda r, hook: r,
        "delta": SAEEditHook(sae, spec, path="delta"),
        "full": SAEEditHook(sae, spec, path="full"),
        "saelens": lambda r, hook: lens(r),
    }
    with torch.no_grad():
        t, texts = interleaved(
            {k: (lambda h=h: generate_steered(model, ps, hook_name, h, "all", n)) for k, h in hooks.items()},
            rounds=7,
        )
    tps = {k: len(ps) * n / v for k, v in t.items()}
    record(
        "decoding",
        {
            "backend": hooks["delta"].backend,
            "batch": len(ps),
            "new_tokens": n,
            **{f"{k}_tokens_per_s": v for k, v in tps.items()},
            "delta_over_unsteered": tps["delta"] / tps["unsteered"],
            "full_over_unsteered": tps["full"] / tps["unsteered"],
            "saelens_over_unsteered": tps["saelens"] / tps["unsteered"],
        },
    )
    assert texts["delta"] == texts["full"]
    assert tps["delta"] / tps["unsteered"] >= 0.95
