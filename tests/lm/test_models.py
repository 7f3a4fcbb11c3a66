"""Tiny Gemma-2, Gemma, Llama-3 and Qwen2 folders load through load_model under any name, and the
bridge's logits equal HF's own (eager attention) in float32 and bfloat16."""

from __future__ import annotations

import json

import pytest
import torch

from mechvalue.errors import MechValueError
from mechvalue.lm.generation import greedy_generate, last_logits, prefix_last_logits
from mechvalue.lm.models import LoadedModel, load_model
from tests.lm.tiny import ARCHS, NAMES, hf_logits, write_tiny

# max |bridge - HF| over every logit of an 11-token prompt (logits of size ~1-30)
TOL = {"float32": 1e-4, "bfloat16": 0.0}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    return {arch: write_tiny(arch, root) for arch in ARCHS}


def _tokens(tok):
    return torch.tensor([tok.encode("The quick brown fox jumps over the lazy dog, said")])


@pytest.mark.parametrize("arch", ARCHS)
def test_logits_equal_hf_under_every_name(tiny, arch):
    folder = tiny[arch]
    ref = None
    for name in NAMES[arch]:
        m = load_model(str(folder.parent / name), dtype="float32")
        assert isinstance(m, LoadedModel) and m.dtype == torch.float32
        assert (
            m.bridge.original_model.config.num_hidden_layers == 3
        )  # the folder's config, not an official one
        toks = _tokens(m.tokenizer)
        ref = hf_logits(folder, toks, torch.float32) if ref is None else ref
        with torch.no_grad():
            got = m.bridge(toks).float()
        assert (got - ref).abs().max() <= TOL["float32"], name


@pytest.mark.parametrize("arch", ARCHS)
def test_bfloat16_logits_equal_hf(tiny, arch):
    m = load_model(str(tiny[arch]), dtype="bfloat16")
    assert next(m.bridge.original_model.parameters()).dtype == torch.bfloat16
    toks = _tokens(m.tokenizer)
    with torch.no_grad():
        got = m.bridge(toks).float()
    ref = hf_logits(tiny[arch], toks, torch.bfloat16)
    assert (got - ref).abs().max() <= TOL["bfloat16"]
    # and close to float32 at bfloat16's resolution
    ref32 = hf_logits(tiny[arch], toks, torch.float32)
    assert (got - ref32).abs().max() < 0.05 * ref32.abs().max()


@pytest.mark.parametrize("arch", ("gemma2", "llama3"))
def test_cached_decoding_and_shared_prefix_equal_full_passes(tiny, arch):
    """Greedy decoding through HF's KV cache (left-padded batch) = HF's own greedy generate, and
    prefix-cached logits = one full pass per prompt."""
    from transformers import AutoModelForCausalLM

    m = load_model(str(tiny[arch]))
    tok = m.tokenizer
    a, b = tok.encode("Hello there, how are"), tok.encode("The capital of France is a city that")
    got = greedy_generate(m, [a, b], 6, stop_ids=set())
    hf = AutoModelForCausalLM.from_pretrained(tiny[arch], attn_implementation="eager").eval()
    for seq, new in zip((a, b), got):
        want = hf.generate(torch.tensor([seq]), max_new_tokens=6, do_sample=False, min_new_tokens=6)[
            0, len(seq) :
        ]
        assert new == want.tolist()
    assert greedy_generate(m, [a, b], 6, stop_ids=set(), use_cache=False) == got
    full = torch.stack([m.bridge(torch.tensor([s]))[0, -1] for s in (b, b[:6])]).detach()
    pre = prefix_last_logits(m, b[:4], [b[4:], b[4:6]])
    assert (pre - full).abs().max() < 1e-4
    assert (last_logits(m, [b, b[:6]]) - full).abs().max() < 1e-4


def test_prompt_formats(tiny):
    assert load_model(str(tiny["gemma"])).prompt_format == "gemma"  # the study's Gemma template
    assert load_model(str(tiny["llama3"])).prompt_format == "chat"  # SmolLM2's tokenizer: its chat template
    m = load_model(str(tiny["llama3"]), prompt_format="llama")
    assert m.prompt_format == "llama" and not m.chat
    with pytest.raises(MechValueError, match="prompt format"):
        load_model(str(tiny["llama3"]), prompt_format="alpaca")


def test_folders_that_are_not_models_give_one_error(tmp_path, tiny):
    with pytest.raises(MechValueError, match="no such local folder"):
        load_model(str(tmp_path / "nope"))
    with pytest.raises(MechValueError, match="no config.json"):
        load_model(str(tmp_path))
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["BertModel"]}))
    with pytest.raises(MechValueError, match="not a causal language model"):
        load_model(str(tmp_path))
    broken = tmp_path / "broken"
    broken.mkdir()
    cfg = json.loads((tiny["llama3"] / "config.json").read_text())
    (broken / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(MechValueError, match="no weights"):
        load_model(str(broken))
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(MechValueError, match=str(broken)):
        load_model(str(broken))
    with pytest.raises(MechValueError, match="dtype"):
        load_model(str(tiny["llama3"]), dtype="int8")


def test_unpacks_as_model_and_info(tiny):
    model, info = load_model(str(tiny["qwen2"]), dtype=torch.float16)
    assert info.dtype == torch.float16 and info.prompt_format == "chat"
    assert model is info.bridge and info.tokenizer is model.tokenizer
