"""Throughput ratios measured in one run (printed; run with -s to see them).

- measure: items/s of `logprob` vs `generate` scoring on the same items, and the prefix-cache gain;
- decoding: steered (delta path) vs unsteered tokens/s with the KV cache.
"""

import time

import pytest
import torch

from mechvalue import inventory as inv
from mechvalue.measure import Measurer, measure
from mechvalue.prompts import render
from mechvalue.sae import SAE, SAEConfig
from mechvalue.steering import SAEEditHook, SteeringSpec, generate_steered


@pytest.fixture(scope="module")
def smollm2():
    from mechvalue.models import load_model

    return load_model()


def _timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def test_logprob_vs_generate(smollm2):
    model, info = smollm2
    items = inv.load_inventory().head(8)
    _, t_gen = _timed(
        lambda: measure(Measurer(model, info.prompt_format, "generate"), items, [None], progress=False)
    )
    _, t_lp = _timed(
        lambda: measure(Measurer(model, info.prompt_format, "logprob"), items, [None], progress=False)
    )
    _, t_np = _timed(
        lambda: measure(
            Measurer(model, info.prompt_format, "logprob", prefix_cache=False), items, [None], progress=False
        )
    )
    print(f"\nlogprob {len(items) / t_lp:.2f} items/s, generate {len(items) / t_gen:.2f} items/s, "
          f"ratio {t_gen / t_lp:.1f}x; prefix cache gain {t_np / t_lp:.2f}x")  # fmt: skip
    assert t_lp < t_gen


def test_steered_vs_unsteered_decoding(smollm2):
    model, info = smollm2
    ps = [
        render(q, None, info.prompt_format, model.tokenizer) for q in ("Should I help?", "Should I be rich?")
    ]
    sae = SAE(SAEConfig(576, 16384, "relu", hook_name="blocks.15.hook_resid_post"))
    hook = SAEEditHook(sae, SteeringSpec([1, 2, 3], "clamp", 5.0))
    n = 32
    torch.manual_seed(0)
    _, t0 = _timed(lambda: generate_steered(model, ps, hook.sae.cfg.hook_name, lambda r, hook: r, "all", n))
    _, t1 = _timed(lambda: generate_steered(model, ps, hook.sae.cfg.hook_name, hook, "all", n))
    print(f"\nsteered/unsteered decoding speed ratio {t0 / t1:.3f} (delta path, d_sae=16384, 3 features)")
    assert t1 > 0
