"""Activation cache: tokens/s writing to HDF5 vs the same forward passes without caching, and
peak memory that does not grow with the number of prompts (measured in fresh subprocesses)."""

import json
import subprocess
import sys

import torch
from conftest import record, timed

from mechvalue.batching import chunks, left_pad
from mechvalue.cache import CachePrompt, cache_activations
from mechvalue.prompts import render
from mechvalue.roles import generate_roles

HOOK = "blocks.15.hook_resid_post"


def _prompts(model, info, n_roles):
    from mechvalue import inventory as inv

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


PEAK = """
import json, sys, threading, time
from mechvalue.models import load_model
from mechvalue.cache import cache_activations
sys.path.insert(0, {here!r})
from test_cache_throughput import _prompts, HOOK

def rss():
    return int(next(l for l in open("/proc/self/status") if l.startswith("VmRSS")).split()[1])

m, info = load_model()
ps = _prompts(m, info, {roles})
base, peak, running = rss(), [0], [True]

def sample():
    while running[0]:
        peak[0] = max(peak[0], rss())
        time.sleep(0.01)

th = threading.Thread(target=sample)
th.start()
cache_activations(m, ps, [HOOK], {out!r}, "all", storage="float16", progress=False)
running[0] = False
th.join()
print(json.dumps({{"prompts": len(ps), "base_kb": base, "peak_kb": peak[0]}}))
"""


def test_cache_peak_memory_flat(tmp_path):
    from pathlib import Path

    here = str(Path(__file__).parent)
    res = []
    for roles in (1, 4):
        code = PEAK.format(here=here, roles=roles, out=str(tmp_path / f"m{roles}.h5"))
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        res.append(json.loads(out.stdout.strip().splitlines()[-1]))
    growth = [(r["peak_kb"] - r["base_kb"]) / 1024 for r in res]
    record("cache_memory", {"prompts_small": res[0]["prompts"], "prompts_large": res[1]["prompts"],
                            "peak_growth_mb_small": growth[0], "peak_growth_mb_large": growth[1]})  # fmt: skip
    assert growth[1] <= growth[0] * 1.25 + 64  # 4x the prompts, about the same peak
