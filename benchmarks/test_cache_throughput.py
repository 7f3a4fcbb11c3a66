"""Activation cache: tokens/s writing to HDF5 vs the same forward passes without caching, and
the memory caching adds over a fresh-process baseline, which must not grow with the number of
prompts (one fresh subprocess per size)."""

import os
import subprocess
import sys
from pathlib import Path

import torch
from conftest import interleaved, need_smollm2, record

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
    record(
        "cache",
        {
            "prompts": len(prompts),
            "tokens": tokens,
            "plain_tokens_per_s": tokens / t_plain,
            "cache_tokens_per_s": tokens / t_cache,
            "ratio": t_plain / t_cache,
        },
    )
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

def peak_kb(fn):
    peak, running = [0], [True]
    def sample():
        while running[0]:
            peak[0] = max(peak[0], rss_kb())
            time.sleep(0.005)
    th = threading.Thread(target=sample)
    th.start()
    fn()
    running[0] = False
    th.join()
    return peak[0]

torch.set_num_threads(1)
model, info = load_model()
prompts = _prompts(model, info, {roles})
widest = sorted(prompts, key=lambda p: len(p.tokens))[-16:]
out = Path({out!r})
cache_activations(model, widest, [HOOK], out / "w0.h5", "all", storage="float16", progress=False)
pre = rss_kb()
batch_peak = peak_kb(lambda: cache_activations(model, widest, [HOOK], out / "w1.h5", "all",
                                               storage="float16", progress=False))
base = rss_kb()
peak = peak_kb(lambda: cache_activations(model, prompts, [HOOK], out / "m.h5", "all",
                                         storage="float16", progress=False))
print(batch_peak - pre, base, peak, rss_kb())
"""


def _growth_mb(roles: int, out) -> dict[str, float]:
    """Measured in a fresh process after loading the model and caching the 16 longest prompts once:
    `batch`, the transient memory of caching that widest batch again; then, caching every prompt of
    `roles` personas, `peak` (the most memory above the baseline) and `end` (what stays), in MB."""
    code = _CHILD.format(bench=str(Path(__file__).parent), roles=roles, out=str(out))
    # glibc's dynamic mmap threshold keeps freed large blocks in the heap, and whether RSS falls
    # back after a batch is then up to the allocator; a fixed threshold makes RSS follow live memory
    env = os.environ | {"MALLOC_MMAP_THRESHOLD_": "131072"}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    batch, base, peak, end = map(int, r.stdout.split()[-4:])
    return {
        "batch": batch / 1024,
        "baseline": base / 1024,
        "peak": (peak - base) / 1024,
        "end": (end - base) / 1024,
    }


def test_cache_memory_growth_flat(tmp_path):
    """Memory caching adds for 40, 160 and 320 prompts (one fresh process each): rows go to disk
    batch by batch, so the peak stays within one batch's working memory and what stays after
    the run does not grow with the number of prompts."""
    need_smollm2()  # the children load it
    figures = {}
    for roles in (1, 4, 8):
        out = tmp_path / str(roles)
        out.mkdir()
        for k, v in _growth_mb(roles, out).items():
            figures[f"{k}_mb_{40 * roles}_prompts"] = v
    record("cache_memory", figures)
    for n in (40, 160, 320):  # 16 MB for allocator noise
        assert figures[f"peak_mb_{n}_prompts"] <= 1.25 * figures[f"batch_mb_{n}_prompts"] + 16, n
    assert figures["end_mb_320_prompts"] <= figures["end_mb_40_prompts"] + 16
