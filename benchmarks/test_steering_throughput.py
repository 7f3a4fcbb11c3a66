"""Steering speed.

(a) The SAE edit alone: latency and achieved bytes/s of the delta path, the full fused edit and
    SAELens's error-term computation (two encodes, two decodes), against a memory-bandwidth
    bound measured in the same run (a large tensor copy). Triton kernels on GPU; the torch
    reference on CPU (Triton runs only interpreted there).
(b) Greedy decoding with the KV cache, every position steered: tokens/s unsteered, with the
    delta path, the full edit, and SAELens's `use_error_term` SAE as the hook.
"""

import pytest
import torch
from conftest import record, timed

from mechvalue.prompts import render
from mechvalue.sae import SAE, SAEConfig
from mechvalue.steering import SAEEditHook, SteeringSpec, generate_steered

FEATURES = [11, 222, 3333]


def _sae(d_in, d_sae, device, hook=""):
    torch.manual_seed(0)
    sae = SAE(SAEConfig(d_in, d_sae, "relu", hook_name=hook)).to(device)
    with torch.no_grad():
        sae.b_enc.fill_(-0.1)
    return sae


def _saelens(sae):
    from sae_lens import StandardSAE, StandardSAEConfig

    lens = StandardSAE(
        StandardSAEConfig(d_in=sae.cfg.d_in, d_sae=sae.cfg.d_sae, device=str(sae.W_enc.device))
    )
    with torch.no_grad():
        for n in ("W_enc", "b_enc", "W_dec", "b_dec"):
            getattr(lens, n).copy_(getattr(sae, n))
    lens.use_error_term = True

    def clamp(acts, hook):
        acts[..., FEATURES] = 5.0
        return acts

    lens.add_hook("hook_sae_acts_post", clamp)
    return lens


def _bandwidth(device):
    a = torch.empty(64 * 2**20 // 4, device=device)
    _, t = timed(lambda: a.clone(), 5)
    return 2 * a.numel() * 4 / t  # bytes read + written per second


@pytest.mark.parametrize("d_in,d_sae,tokens", [(576, 16384, 8), (2304, 16384, 8), (2304, 16384, 512)])
def test_edit_latency(d_in, d_sae, tokens):
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    sae = _sae(d_in, d_sae, dev)
    x = torch.randn(tokens, d_in, device=dev)
    spec = SteeringSpec(FEATURES, "clamp", 5.0)
    delta, full, lens = (
        SAEEditHook(sae, spec, path="delta"),
        SAEEditHook(sae, spec, path="full"),
        _saelens(sae),
    )
    with torch.no_grad():
        want = lens(x)
        for h in (delta, full):
            assert (h.edit(x) - want).abs().max() < 1e-3 * want.abs().max()
        _, t_delta = timed(lambda: delta.edit(x), 20)
        _, t_full = timed(lambda: full.edit(x), 5)
        _, t_lens = timed(lambda: lens(x), 5)
    bw = _bandwidth(dev)
    io = 2 * x.numel() * 4
    full_bytes = io + 2 * d_in * d_sae * 4  # W_enc and W_dec read once
    delta_bytes = io + 2 * d_in * len(FEATURES) * 4
    record(f"edit_{d_in}x{d_sae}_m{tokens}", {
        "backend": delta.backend, "delta_us": t_delta * 1e6, "full_us": t_full * 1e6, "saelens_us": t_lens * 1e6,
        "full_GBps": full_bytes / t_full / 1e9, "delta_GBps": delta_bytes / t_delta / 1e9,
        "copy_GBps": bw / 1e9, "full_of_bound": full_bytes / t_full / bw,
        "saelens_over_full": t_lens / t_full, "full_over_delta": t_full / t_delta})  # fmt: skip
    assert t_delta < t_full < t_lens


def test_steered_vs_unsteered_decoding(smollm2):
    model, info = smollm2
    qs = ("Should I help others?", "Should I be rich?", "Should I respect traditions?", "Should I seek fun?")
    ps = [render(q, None, info.prompt_format, model.tokenizer) for q in qs]
    hook_name = "blocks.15.hook_resid_post"
    sae = _sae(576, 16384, model.cfg.device, hook_name)
    spec = SteeringSpec(FEATURES, "clamp", 5.0, where="all")
    lens = _saelens(sae)
    n = 32
    hooks = {
        "unsteered": lambda r, hook: r,
        "delta": SAEEditHook(sae, spec, path="delta"),
        "full": SAEEditHook(sae, spec, path="full"),
        "saelens": lambda r, hook: lens(r),
    }
    times, texts = {}, {}
    with torch.no_grad():
        for name, h in hooks.items():
            texts[name], times[name] = timed(
                lambda h=h: generate_steered(model, ps, hook_name, h, "all", n), 2
            )
    tps = {k: len(ps) * n / t for k, t in times.items()}
    record("decoding", {"batch": len(ps), "new_tokens": n, **{f"{k}_tokens_per_s": v for k, v in tps.items()},
                        "delta_over_unsteered": tps["delta"] / tps["unsteered"],
                        "full_over_unsteered": tps["full"] / tps["unsteered"],
                        "saelens_over_unsteered": tps["saelens"] / tps["unsteered"]})  # fmt: skip
    assert texts["delta"] == texts["full"]
    assert tps["delta"] / tps["unsteered"] >= 0.95
