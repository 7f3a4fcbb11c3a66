"""Tokens are counted where every forward passes (mechvalue.lm.tokens) and the limit is probed."""

import pytest
import torch

from mechvalue.lm import tokens
from mechvalue.lm.generation import greedy_generate, last_logits, prefix_last_logits
from mechvalue.lm.limit import matmul_params, matmul_rate, model_limit, throughput


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    pytest.importorskip("safetensors")
    from mechvalue.lm.models import load_model
    from tests.lm.tiny import write_tiny

    return load_model(str(write_tiny("llama3", tmp_path_factory.mktemp("tiny"))))[0]


def test_prompt_passes_count_padded_and_real_positions(tiny):
    tokens.take()
    last_logits(tiny, [[5, 6, 7], [5, 6, 7, 8, 9]])
    c = tokens.take()
    assert (c.prompt, c.prompt_real, c.generated, c.forwards) == (10, 8, 0, 1)
    prefix_last_logits(tiny, [5, 6, 7, 8], [[9, 10], [11], [12, 13, 14]])  # prefix once, suffixes padded
    c = tokens.take()
    assert (c.prompt, c.prompt_real, c.generated, c.forwards) == (4 + 3 * 3, 4 + 6, 0, 2)


def test_decode_steps_count_rows_per_step(tiny):
    tokens.take()
    new = greedy_generate(tiny, [[5, 6, 7], [5, 6, 7, 8]], max_new_tokens=5, stop_ids=set())
    c = tokens.take()
    assert [len(n) for n in new] == [5, 5]
    # one prompt pass of 2 x 4 positions; 4 decode steps of 2 rows (the 5th token needs none)
    assert (c.prompt, c.prompt_real, c.generated, c.forwards) == (8, 7, 8, 5)
    with tokens.uncounted():
        last_logits(tiny, [[5, 6]])
    assert tokens.take().forwards == 0


def test_limit_from_the_models_shapes(tiny):
    hf = tiny.original_model
    blocks = sum(p.numel() for n, p in hf.named_parameters() if p.ndim == 2 and ".layers." in n)
    assert matmul_params(tiny) == blocks  # embedding and head left out
    lim = model_limit(tiny, tokens=64, seconds=0.2)
    assert lim["threads"] == torch.get_num_threads() and lim["gflops"] > 0
    assert lim["limit_tokens_per_s"] == pytest.approx(lim["gflops"] * 1e9 / (2 * blocks), rel=1e-3)
    assert "64x64 @ 64x128" in lim["shape"]
    r = matmul_rate(32, 64, tokens=16, seconds=0.05)
    assert set(r) == {"gflops", "shape", "threads"}


def test_throughput_ratio():
    row = throughput(300, 100, 2.0, {"limit_tokens_per_s": 1000.0})
    assert row == {
        "prompt_tokens": 300,
        "generated_tokens": 100,
        "seconds": 2.0,
        "tokens_per_s": 200.0,
        "limit_tokens_per_s": 1000.0,
        "ratio_to_limit": 0.2,
    }
    assert throughput(0, 0, 1.0, None)["ratio_to_limit"] is None
