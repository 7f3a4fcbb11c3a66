"""This machine's limit for a model: how fast it multiplies matrices of the model's shapes, and so
how many tokens per second a forward pass could reach at best.

A forward pass multiplies each token by every weight matrix of the blocks once: 2 x that many
parameters flops per token (`matmul_params`: the embedding and the unembedding are left out; the
unembedding runs at the read position of a row only, `logits_to_keep=1`). `matmul_rate` times the
MLP's two matmuls (tokens x d_model @ d_model x d_mlp, and back) in this process's thread settings
and dtype, for about a second; the best of its timed blocks is the rate, so a busy moment of a
shared machine lowers it less. limit tokens/s = rate / (2 x matmul parameters).
"""

from __future__ import annotations

import time

import torch

from mechvalue.lm.bridge import as_bridge


def matmul_params(model) -> int:
    """Parameters a token is multiplied by in a forward pass: every matrix of the HF model but the
    input embedding and the output head."""
    hf = as_bridge(model).original_model
    skip = {id(hf.get_input_embeddings().weight), id(hf.get_output_embeddings().weight)}
    return sum(p.numel() for p in hf.parameters() if p.ndim == 2 and id(p) not in skip)


def matmul_rate(
    d_model: int, d_mlp: int, tokens: int = 512, seconds: float = 1.0, dtype: torch.dtype = torch.float32
) -> dict:
    """Flops per second of tokens x d_model @ d_model x d_mlp and back, best of ~10 timed blocks in
    `seconds`; returns gflops, the shape and the threads it ran on."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(tokens, d_model, generator=g).to(dtype)
    up = (torch.randn(d_model, d_mlp, generator=g) / d_model**0.5).to(dtype)
    down = (torch.randn(d_mlp, d_model, generator=g) / d_mlp**0.5).to(dtype)
    flops = 2 * 2 * tokens * d_model * d_mlp  # two matmuls per round

    def one() -> None:
        (x @ up) @ down

    one()  # warm-up (allocation, kernel choice)
    t = time.perf_counter()
    one()
    per_block = max(1, int(seconds / 10 / max(time.perf_counter() - t, 1e-6)))
    best = float("inf")
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        t = time.perf_counter()
        for _ in range(per_block):
            one()
        best = min(best, (time.perf_counter() - t) / per_block)
    return {
        "gflops": round(flops / best / 1e9, 3),
        "shape": f"{tokens}x{d_model} @ {d_model}x{d_mlp} @ {d_mlp}x{d_model} "
        f"({str(dtype).removeprefix('torch.')})",
        "threads": torch.get_num_threads(),
    }


def model_limit(model, tokens: int = 512, seconds: float = 1.0) -> dict:
    """`matmul_rate` at the model's MLP shapes and dtype, with the model's matmul parameters and the
    tokens per second they allow (`limit_tokens_per_s`)."""
    cfg = as_bridge(model).cfg
    dtype = as_bridge(model).original_model.get_input_embeddings().weight.dtype
    rate = matmul_rate(int(cfg.d_model), int(cfg.d_mlp), tokens, seconds, dtype)
    params = matmul_params(model)
    return rate | {"params": params, "limit_tokens_per_s": round(rate["gflops"] * 1e9 / (2 * params), 1)}


def throughput(prompt: int, generated: int, seconds: float, limit: dict | None) -> dict:
    """One stage's tokens, seconds, tokens per second and its ratio to `limit` (None: no limit)."""
    n = prompt + generated
    tps = n / seconds if seconds > 0 else None
    lim = limit["limit_tokens_per_s"] if limit else None
    return {
        "prompt_tokens": prompt,
        "generated_tokens": generated,
        "seconds": round(seconds, 6),  # a tiny model's stage runs in milliseconds
        "tokens_per_s": round(tps, 1) if tps is not None else None,
        "limit_tokens_per_s": lim,
        "ratio_to_limit": float(f"{tps / lim:.4g}") if tps is not None and lim else None,
    }
