"""Gemma 3 through the bridge, on a tiny random-weight folder whose sliding window (8 tokens) every
prompt here crosses: KV-cached decoding and shared-prefix scoring equal full passes, the hook sites
Gemma Scope 2 names are the HF tensors they name, SAE edits at hook_resid_post act where they should,
the study's Gemma template is chosen, and a format the tokenizer cannot render is one error."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

import mechvalue
from mechvalue.cli.main import main as cli_main
from mechvalue.errors import MechValueError
from mechvalue.interp.sae import SAE, SAEConfig
from mechvalue.lm.generation import greedy_generate, last_logits, prefix_last_logits
from mechvalue.lm.models import load_model
from tests.lm.tiny import D_MODEL, GEMMA3_LAYER_TYPES, GEMMA3_WINDOW, N_LAYERS, write_tiny

TEXT = (
    "Once upon a time in a small village by the sea there lived an old fisherman who went out every "
    "morning before the sun rose and came back with"
)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_tiny("gemma3", tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def model(folder):
    return load_model(str(folder))


def test_the_tiny_folder_is_gemma3_with_a_window_the_prompts_cross(model):
    cfg = model.bridge.original_model.config
    assert cfg.model_type == "gemma3_text" and cfg.sliding_window == GEMMA3_WINDOW
    assert list(cfg.layer_types) == GEMMA3_LAYER_TYPES
    assert len(model.tokenizer.encode(TEXT)) > 3 * GEMMA3_WINDOW


def test_cached_decoding_equals_full_passes_across_the_window(model, folder):
    """Left-padded greedy decoding through the KV cache = HF's own generate = no cache, with prompts
    and continuations several windows long."""
    from transformers import AutoModelForCausalLM

    ids = model.tokenizer.encode(TEXT)
    a, b = ids[:13], ids[:27]  # 13 and 27 tokens: one row left-padded by 14
    got = greedy_generate(model, [a, b], 12, stop_ids=set())
    hf = AutoModelForCausalLM.from_pretrained(folder, attn_implementation="eager").eval()
    for seq, new in zip((a, b), got):
        want = hf.generate(torch.tensor([seq]), max_new_tokens=12, min_new_tokens=12, do_sample=False)
        assert new == want[0, len(seq) :].tolist()
    assert greedy_generate(model, [a, b], 12, stop_ids=set(), use_cache=False) == got


def test_shared_prefix_equals_full_passes_across_the_window(model):
    ids = model.tokenizer.encode(TEXT)
    prefix = ids[:12]  # longer than the window: the suffixes' sliding layers must not see its start
    suffixes = [ids[12:15], ids[12:22], ids[12:30]]
    with torch.no_grad():
        full = torch.stack([model.bridge(torch.tensor([prefix + s]))[0, -1] for s in suffixes])
    pre = prefix_last_logits(model, prefix, suffixes)
    assert (pre - full).abs().max() < 1e-4
    assert (last_logits(model, [prefix + s for s in suffixes]) - full).abs().max() < 1e-4


def test_hook_sites_are_the_hf_tensors_gemma_scope_2_names(model):
    """blocks.l.hook_resid_post is HF's `model.layers.l.output` and blocks.l.hook_mlp_out is
    `model.layers.l.post_feedforward_layernorm.output` (the sites Gemma Scope 2's configs name)."""
    hf = model.bridge.original_model
    toks = torch.tensor([model.tokenizer.encode(TEXT)[:20]])
    seen = {}

    def keep(name):
        def f(mod, args, out):
            seen[name] = (out[0] if isinstance(out, tuple) else out).detach()

        return f

    handles = []
    for i, layer in enumerate(hf.model.layers):
        handles.append(layer.register_forward_hook(keep(f"model.layers.{i}.output")))
        handles.append(
            layer.post_feedforward_layernorm.register_forward_hook(
                keep(f"model.layers.{i}.post_feedforward_layernorm.output")
            )
        )
    try:
        names = [f"blocks.{i}.{h}" for i in range(N_LAYERS) for h in ("hook_resid_post", "hook_mlp_out")]
        with torch.no_grad():
            _, cache = model.run_with_cache(toks, names_filter=lambda n: n in names)
    finally:
        for h in handles:
            h.remove()
    for i in range(N_LAYERS):
        assert torch.equal(cache[f"blocks.{i}.hook_resid_post"], seen[f"model.layers.{i}.output"])
        assert torch.equal(
            cache[f"blocks.{i}.hook_mlp_out"], seen[f"model.layers.{i}.post_feedforward_layernorm.output"]
        )


def _sae(hook):
    torch.manual_seed(1)
    sae = SAE(SAEConfig(D_MODEL, 128, "relu", hook_name=hook))
    with torch.no_grad():
        sae.b_enc.fill_(0.1)
    return sae


def test_edits_at_resid_post_act_where_they_should(model):
    toks = torch.tensor([model.tokenizer.encode(TEXT)[:20]])
    last, first = f"blocks.{N_LAYERS - 1}.hook_resid_post", "blocks.0.hook_resid_post"
    with torch.no_grad():
        base = model.run_with_hooks(toks)
        for name, later_too in ((last, False), (first, True)):
            hook = mechvalue.sae_hook(_sae(name), {3: 5.0, 7: -2.0}, mode="add", where=(4, 6))
            changed = (model.run_with_hooks(toks, fwd_hooks=[(name, hook)]) - base).abs().amax(-1)[0] > 1e-4
            assert not changed[:4].any() and changed[4:6].all()  # never before the edit
            # after the last layer only the edited positions; after the first, later ones through
            # the full-attention layer too, beyond the sliding window
            assert bool(changed[6:].all()) == later_too
        with mechvalue.steer(model, _sae(first), {3: 5.0}, mode="add", where="all"):
            steered = greedy_generate(model, [toks[0].tolist()], 4, stop_ids=set())
        assert torch.equal(model.run_with_hooks(toks), base)  # nothing left installed
    assert len(steered[0]) == 4


def test_the_study_gemma_template_is_chosen(model):
    assert model.prompt_format == "gemma" and not model.chat  # as for Gemma 1, chat template or not


def test_chat_format_without_a_chat_template_is_one_error(folder, tmp_path, capsys):
    bare = tmp_path / "gemma-3-base"
    shutil.copytree(folder, bare)
    (bare / "chat_template.jinja").unlink(missing_ok=True)
    tc = json.loads((bare / "tokenizer_config.json").read_text())
    tc.pop("chat_template", None)
    (bare / "tokenizer_config.json").write_text(json.dumps(tc))
    assert load_model(str(bare)).prompt_format == "gemma"
    with pytest.raises(MechValueError, match="no chat template|has none"):
        load_model(str(bare), prompt_format="chat")
    out = tmp_path / "m"
    capsys.readouterr()
    code = cli_main(
        ["measure", "--model", str(bare), "--prompt-format", "chat", "--roles", "1", "--out", str(out)]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "chat template" in err


def test_the_sae_recipe_shape_comes_from_the_model(model, folder):
    from mechvalue.interp.sae_recipe import model_recipe_shape, recipe_layer, recipe_shape

    assert recipe_shape(30, 576) == (15, 2048)  # SmolLM2-135M: the recipe's layer 15, 2048 features
    assert recipe_shape(18, 640) == (9, 2048)  # Gemma 3 270M
    assert model_recipe_shape(model) == (N_LAYERS // 2, 256)
    assert recipe_layer(str(folder)) == N_LAYERS // 2  # from config.json alone: the default --layer
