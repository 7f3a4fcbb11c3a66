"""Activation cache: tokens/s writing to HDF5 vs the same forward passes without caching, and
the memory caching adds over a fresh-process baseline, which must not grow with the number of
prompts (one fresh subprocess per size)."""

import subprocess
import sys
from pathlib import Path

import torch
from conftest import interleaved, record

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

    t, _ = interleaved({"plain": plain, "cached": cached}, rounds=3)
    t_plain, t_cache = t["plain"], t["cached"]
    tokens = sum(len(p.tokens) for p in prompts)
    record("cache", {"prompts": len(prompts), "tokens": tokens, "plain_tokens_per_s": tokens / t_plain,
                     "cache_tokens_per_s": tokens / t_cache, "ratio": t_plain / t_cache})  # fmt: skip
    assert t_plain / t_cache >= 0.85


_CHILD = """
import sys, threading, time
from pathlib import Path
import torch
sys.path.insert(0, {bench!r})
from test_cache_throughput import HOOK, _prompts
from mechvalue.interp.cache import cache_activations
from mechvalue.lm.models import load_model

def rss_kb():
    return int(next(ln for ln in open("/proc/self/status") if ln.startswith("VmRSS")).split()[1])

torch.set_num_threads(1)
model, info = load_model()
prompts = _prompts(model, info, {roles})
cache_activations(model, prompts[:16], [HOOK], Path({out!r}) / "warm.h5", "all", storage="float16", progress=False)
base, peak, running = rss_kb(), [0], [True]

def sample():
    while running[0]:
        peak[0] = max(peak[0], rss_kb())
        time.sleep(0.01)

th = threading.Thread(target=sample)
th.start()
cache_activations(model, prompts, [HOOK], Path({out!r}) / "m.h5", "all", storage="float16", progress=False)
running[0] = False
th.join()
print(base, peak[0])
"""


def _growth_mb(roles: int, out) -> tuple[float, float]:
    """(baseline RSS after loading the model and a 16-prompt warm-up, peak growth above it while
    caching every prompt of `roles` personas), in MB, measured in a fresh process."""
    code = _CHILD.format(bench=str(Path(__file__).parent), roles=roles, out=str(out))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    base, peak = map(int, r.stdout.split()[-2:])
    return base / 1024, (peak - base) / 1024


def test_cache_memory_growth_flat(tmp_path):
    """Memory the cache adds over a fresh-process baseline, for 40, 160 and 320 prompts: rows go
    to disk batch by batch, so the growth must not scale with the number of prompts."""
    figures = {}
    for roles in (1, 4, 8):
        out = tmp_path / str(roles)
        out.mkdir()
        base, growth = _growth_mb(roles, out)
        figures[f"growth_mb_{40 * roles}_prompts"], figures["baseline_mb"] = growth, base
    small, large = figures["growth_mb_40_prompts"], figures["growth_mb_320_prompts"]
    record("cache_memory", figures | {"growth_ratio_320_vs_40": large / max(small, 1.0)})
    assert large <= 1.25 * small + 16  # 8x the prompts, about the same growth (16 MB for allocator noise)
