"""Steering speed; every compared pair runs interleaved (conftest.interleaved: A, B, A, B, medians).

CPU (any machine; Triton runs only interpreted on CPU, so these time the torch reference):
(a) the SAE edit alone: delta path vs full edit vs SAELens's error-term SAE (two encodes, two
    decodes), float32;
(b) greedy decoding of SmolLM2 with the KV cache, every position steered: tokens/s unsteered,
    delta path, full edit, SAELens `use_error_term` as the hook.
CUDA (skipped elsewhere, the reason printed):
(c) the fused kernel, full and delta paths, d_model x d_sae = 2304 x 16384 and 4096 x 65536,
    bfloat16, M = 1, 8, 64, 512 tokens: time, bytes/s (weights + x + out, the least traffic) and
    its fraction of the device's copy bandwidth measured in the same run; SAELens on the same
    inputs. Asserted: full >= 0.8 of the bound at M <= 64, fused faster than SAELens at every M;
(d) decoding tokens/s of a random-weight model with Gemma-2-2B's shape (transformers'
    Gemma2Config defaults), bfloat16, batch 1 and 16, unsteered vs the delta path editing every
    position of layer 12's residual stream. Asserted: delta >= 0.97 of unsteered.
"""

import pytest
import torch
from conftest import interleaved, record

from mechvalue.interp.edit import SAEEdit
from mechvalue.interp.sae import SAE, SAEConfig
from mechvalue.interp.steering import SAEEditHook, SteeringSpec, generate_steered
from mechvalue.study.prompts import render

FEATURES = [11, 222, 3333]
CUDA = torch.cuda.is_available()
NO_CUDA = "CUDA benchmark: no CUDA device here (the CPU benchmarks time the torch reference)"


def _cuda_only():
    if not CUDA:
        print(f"\nSKIP {NO_CUDA}")
        pytest.skip(NO_CUDA)


def _sae(d_in, d_sae, device, hook=""):
    torch.manual_seed(0)
    sae = SAE(SAEConfig(d_in, d_sae, "relu", hook_name=hook)).to(device)
    with torch.no_grad():
        sae.b_enc.fill_(-0.1)
    return sae


def _saelens(sae, dtype=torch.float32):
    from sae_lens import StandardSAE, StandardSAEConfig

    cfg = StandardSAEConfig(d_in=sae.cfg.d_in, d_sae=sae.cfg.d_sae, device=str(sae.W_enc.device),
                            dtype=str(dtype).removeprefix("torch."))  # fmt: skip
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
        t, out = interleaved({"delta": lambda: delta.edit(x), "full": lambda: full.edit(x), "saelens": lambda: lens(x)},
                             rounds=5)  # fmt: skip
    want = out["saelens"]
    for k in ("delta", "full"):
        assert (out[k] - want).abs().max() < 1e-3 * want.abs().max()
    record(f"edit_{d_in}x{d_sae}_m{tokens}", {
        "backend": delta.backend, "dtype": "float32", "delta_us": t["delta"] * 1e6, "full_us": t["full"] * 1e6,
        "saelens_us": t["saelens"] * 1e6, "saelens_over_full": t["saelens"] / t["full"],
        "full_over_delta": t["full"] / t["delta"]})  # fmt: skip
    assert t["delta"] < t["full"] < t["saelens"]


def test_steered_vs_unsteered_decoding(smollm2):
    model, info = smollm2
    qs = ("Should I help others?", "Should I be rich?", "Should I respect traditions?", "Should I seek fun?")
    ps = [render(q, None, info.prompt_format, model.tokenizer) for q in qs]
    hook_name = "blocks.15.hook_resid_post"
    sae = _sae(576, 16384, "cuda" if CUDA else "cpu", hook_name)  # where the smollm2 fixture puts the model
    spec = SteeringSpec(FEATURES, "clamp", 5.0, where="all")
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
    record("decoding", {"backend": hooks["delta"].backend, "batch": len(ps), "new_tokens": n,
                        **{f"{k}_tokens_per_s": v for k, v in tps.items()},
                        "delta_over_unsteered": tps["delta"] / tps["unsteered"],
                        "full_over_unsteered": tps["full"] / tps["unsteered"],
                        "saelens_over_unsteered": tps["saelens"] / tps["unsteered"]})  # fmt: skip
    assert texts["delta"] == texts["full"]
    assert tps["delta"] / tps["unsteered"] >= 0.95


@pytest.fixture(scope="module")
def copy_bound():
    """The device's achievable bandwidth: bytes read + written per second by a 1 GiB copy."""
    if not CUDA:
        return None
    a = torch.empty(2**30, dtype=torch.uint8, device="cuda")
    b = torch.empty_like(a)
    t, _ = interleaved({"copy": lambda: b.copy_(a)}, rounds=10)
    return 2 * 2**30 / t["copy"]


@pytest.mark.parametrize("tokens", [1, 8, 64, 512])
@pytest.mark.parametrize("d_in,d_sae", [(2304, 16384), (4096, 65536)])
def test_cuda_fused_edit_against_copy_bandwidth(d_in, d_sae, tokens, copy_bound):
    _cuda_only()
    dt = torch.bfloat16
    sae = _sae(d_in, d_sae, "cuda")
    mul, add = SteeringSpec(FEATURES, "clamp", 5.0).edit_vectors(sae)
    delta = SAEEdit(sae, mul, add, dt, "cuda", "delta", "triton")
    full = SAEEdit(sae, mul, add, dt, "cuda", "full", "triton")
    lens = _saelens(sae, dt)
    x = torch.randn(tokens, d_in, device="cuda", dtype=dt)
    with torch.no_grad():
        for e in (delta, full):
            e.apply(x)  # autotune outside the timing
        t, out = interleaved({"delta": lambda: delta.apply(x), "full": lambda: full.apply(x),
                              "saelens": lambda: lens(x)}, rounds=15, inner=10)  # fmt: skip
    scale = out["saelens"].float().abs().max()
    for k in ("delta", "full"):
        assert (out[k].float() - out["saelens"].float()).abs().max() < 5e-2 * scale
    io = 2 * x.numel() * 2
    full_bytes, delta_bytes = io + 2 * d_in * d_sae * 2, io + 2 * d_in * len(FEATURES) * 2
    record(f"cuda_edit_{d_in}x{d_sae}_m{tokens}", {
        "dtype": "bfloat16", "copy_GBps": copy_bound / 1e9, "full_us": t["full"] * 1e6, "delta_us": t["delta"] * 1e6,
        "saelens_us": t["saelens"] * 1e6, "full_GBps": full_bytes / t["full"] / 1e9,
        "delta_GBps": delta_bytes / t["delta"] / 1e9, "full_of_bound": full_bytes / t["full"] / copy_bound,
        "saelens_over_full": t["saelens"] / t["full"]})  # fmt: skip
    assert t["full"] < t["saelens"]
    if tokens <= 64:
        assert full_bytes / t["full"] >= 0.8 * copy_bound


def _gemma2_2b_shaped(device="cuda", **overrides):
    """A random-weight model with Gemma-2-2B's shape: transformers' Gemma2Config defaults."""
    from transformers import Gemma2Config, Gemma2ForCausalLM

    cfg = Gemma2Config(**overrides)
    if not overrides:
        assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.intermediate_size) == (2304, 26, 9216)
    torch.manual_seed(0)
    with torch.device(device):
        return Gemma2ForCausalLM(cfg).to(torch.bfloat16).eval()


@pytest.mark.parametrize("batch", [1, 16])
def test_cuda_decoding_gemma2_shape(batch):
    _cuda_only()
    model = _gemma2_2b_shaped()
    d = model.config.hidden_size
    sae = _sae(d, 16384, "cuda")
    mul, add = SteeringSpec(FEATURES, "clamp", 5.0).edit_vectors(sae)
    edit = SAEEdit(sae, mul, add, torch.bfloat16, "cuda", "delta", "triton")

    def steer(module, args, output):  # layer 12's residual stream, every position
        h = output[0] if isinstance(output, tuple) else output
        h2 = edit.apply(h.reshape(-1, d)).view_as(h)
        return (h2, *output[1:]) if isinstance(output, tuple) else h2

    layer = model.model.layers[12]
    ids = torch.randint(3, 1000, (batch, 32), device="cuda")
    n = 64

    def decode(steered: bool):
        handle = layer.register_forward_hook(steer) if steered else None
        try:
            return model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, min_new_tokens=n,
                                  do_sample=False, pad_token_id=0)  # fmt: skip
        finally:
            if handle is not None:
                handle.remove()

    with torch.no_grad():
        t, _ = interleaved({"unsteered": lambda: decode(False), "delta": lambda: decode(True)}, rounds=5)
    tps = {k: batch * n / v for k, v in t.items()}
    record(f"cuda_decoding_gemma2_2b_shape_b{batch}", {
        "dtype": "bfloat16", "new_tokens": n, **{f"{k}_tokens_per_s": v for k, v in tps.items()},
        "delta_over_unsteered": tps["delta"] / tps["unsteered"]})  # fmt: skip
    assert tps["delta"] / tps["unsteered"] >= 0.97
