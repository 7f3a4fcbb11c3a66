"""Activation cache: tokens/s writing to HDF5 vs the same forward passes without caching, and
peak memory that does not grow with the number of prompts (measured in fresh subprocesses)."""

import threading
import time

import torch
from conftest import record, timed

from mechvalue.interp.cache import CachePrompt, cache_activations
from mechvalue.lm.batching import chunks, left_pad
from mechvalue.study.prompts import render
from mechvalue.study.roles import generate_roles

HOOK = "blocks.15.hook_resid_post"


def _prompts(model, info, n_roles):
    from mechvalue.study import inventory as inv

    qs = inv.load_inventory()["question"]
    return [
        CachePrompt(render(q, r, info.prompt_format, model.tokenizer).tokens)
        for r in generate_roles(n_roles, 0)
        for q in qs
    ]


def test_cache_vs_plain_forward(smollm2, tmp_path):
    model, info = smollm2
    prompts = _prompts(model, info, 2)  # 80 prompts
    pad = model.tokenizer.pad_token_id

    def plain():
        with torch.no_grad():
            for sl in chunks(len(prompts), 16):
                toks, attn = left_pad([p.tokens for p in prompts[sl]], pad, model.cfg.device)
                model.run_with_hooks(
                    toks, attention_mask=attn, stop_at_layer=16, fwd_hooks=[(HOOK, lambda t, hook: None)]
                )

    def cached():
        out = tmp_path / f"c{len(list(tmp_path.iterdir()))}.h5"
        cache_activations(model, prompts, [HOOK], out, "all", storage="float16", progress=False)

    _, t_plain = timed(plain, 2)
    _, t_cache = timed(cached, 2)
    tokens = sum(len(p.tokens) for p in prompts)
    record("cache", {"prompts": len(prompts), "tokens": tokens, "plain_tokens_per_s": tokens / t_plain,
                     "cache_tokens_per_s": tokens / t_cache, "ratio": t_plain / t_cache})  # fmt: skip
    assert t_plain / t_cache >= 0.85


def _rss_kb() -> int:
    return int(next(ln for ln in open("/proc/self/status") if ln.startswith("VmRSS")).split()[1])


def _peak_during(fn) -> int:
    """Peak resident memory (kB) sampled every 10 ms while `fn` runs."""
    peak, running = [0], [True]

    def sample():
        while running[0]:
            peak[0] = max(peak[0], _rss_kb())
            time.sleep(0.01)

    th = threading.Thread(target=sample)
    th.start()
    try:
        fn()
    finally:
        running[0] = False
        th.join()
    return peak[0]


def test_cache_peak_memory_flat(smollm2, tmp_path):
    """Peak memory while caching 40, 160 and 320 prompts (same process, one after another)."""
    model, info = smollm2
    peaks = {}
    for roles in (1, 4, 8):
        prompts = _prompts(model, info, roles)
        out = tmp_path / f"m{roles}.h5"
        peaks[len(prompts)] = (
            _peak_during(
                lambda: cache_activations(
                    model, prompts, [HOOK], out, "all", storage="float16", progress=False
                )
            )
            / 1024
        )
    small, large = peaks[40], peaks[320]
    record(
        "cache_memory",
        {f"peak_mb_{n}_prompts": v for n, v in peaks.items()} | {"growth_40_to_320": large / small},
    )
    assert large <= small * 1.1  # 8x the prompts, about the same peak
