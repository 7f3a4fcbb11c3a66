"""The TransformerBridge model layer vs the previous HookedTransformer path on SmolLM2, in one run,
interleaved: log-prob scoring (items/s, shared-prefix KV cache), greedy decoding (tokens/s) and a
cached forward (a batch up to one hook point). The old path lives only here: a HookedTransformer
with pre-transposed weights (TL 3.x copied W.T every call), unembedding only the read positions
and TL's own KV cache, as mechvalue ran before the bridge. New must be >= 0.9x old on each."""

from __future__ import annotations

import pytest
import torch
from conftest import interleaved, record

from mechvalue.lm.batching import left_pad
from mechvalue.lm.generation import greedy_generate, prefix_last_logits
from mechvalue.measurement.scoring import common_prefix
from mechvalue.study.prompts import render
from mechvalue.study.roles import generate_roles

HOOK = "blocks.15.hook_resid_post"


# --- the old path (HookedTransformer), kept for this comparison only -------------------------
def _old_model():
    try:
        from transformer_lens import HookedTransformer
        from transformer_lens import loading_from_pretrained as lfp
    except ImportError:
        pytest.skip("HookedTransformer is gone (transformer-lens 4.x): nothing to compare with")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from mechvalue.lm.models import model_folder

    src = str(model_folder("smollm2-135m-instruct"))
    tok = AutoTokenizer.from_pretrained(src)
    hf = AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32)
    cfg = lfp.get_pretrained_model_config(src, device="cpu", dtype=torch.float32)
    state = lfp.get_pretrained_state_dict(src, cfg, hf_model=hf, dtype=torch.float32)
    model = HookedTransformer(cfg, tokenizer=tok, move_to_device=False)
    model.load_and_process_state_dict(state)
    model.eval()
    with torch.no_grad():  # pre_transpose: TL 3.x's per-call W.T.contiguous() becomes a free view
        for name, p in model.named_parameters():
            leaf = name.rsplit(".", 1)[-1]
            if leaf in ("W_U", "W_gate", "W_in", "W_out") and p.dim() == 2:
                p.data = p.data.T.contiguous().T
            elif leaf == "W_O" and p.dim() == 3:
                p.data = p.data.permute(2, 0, 1).contiguous().permute(1, 2, 0)
    model.cfg.default_prepend_bos = False
    return model


def _old_logits_at(model, tokens, attn, cache=None, at=None):
    resid = model(tokens, attention_mask=attn, past_kv_cache=cache, stop_at_layer=model.cfg.n_layers)
    rows = torch.arange(tokens.shape[0])
    x = resid[rows, at if at is not None else -1][:, None]
    return model.unembed(model.ln_final(x))[:, 0]


def _old_prefix_last_logits(model, prefix, suffixes):
    from transformer_lens.cache.key_value_cache import TransformerLensKeyValueCache as KVCache

    cache = KVCache.init_cache(model.cfg, model.cfg.device, 1)
    p = torch.tensor([prefix])
    model(p, attention_mask=torch.ones_like(p), past_kv_cache=cache, stop_at_layer=model.cfg.n_layers)
    b = len(suffixes)
    for e in cache.entries:
        e.past_keys = e.past_keys.expand(b, *e.past_keys.shape[1:])
        e.past_values = e.past_values.expand(b, *e.past_values.shape[1:])
    cache.previous_attention_mask = cache.previous_attention_mask.expand(b, -1)
    n = max(len(s) for s in suffixes)
    toks = torch.tensor([s + [0] * (n - len(s)) for s in suffixes])
    attn = torch.tensor([[1] * len(s) + [0] * (n - len(s)) for s in suffixes])
    return _old_logits_at(model, toks, attn, cache, torch.tensor([len(s) - 1 for s in suffixes]))


def _old_greedy(model, prompts, n):
    from transformer_lens.cache.key_value_cache import TransformerLensKeyValueCache as KVCache

    tokens, attn = left_pad(prompts, model.tokenizer.pad_token_id or 0)
    cache = KVCache.init_cache(model.cfg, model.cfg.device, len(prompts))
    logits, out = _old_logits_at(model, tokens, attn, cache), []
    for i in range(n):
        nxt = logits.argmax(-1)
        out.append(nxt)
        if i < n - 1:  # as greedy_generate: no forward after the last token
            logits = _old_logits_at(model, nxt[:, None], torch.ones_like(nxt[:, None]), cache)
    return torch.stack(out, 1).tolist()


# --- the comparison -------------------------------------------------------------------------
def test_bridge_vs_hooked_transformer(smollm2):
    new, info = smollm2
    old = _old_model()
    tok = new.tokenizer
    from mechvalue.study import inventory as inv

    qs = list(inv.load_inventory()["question"][:16])
    batches = [
        [render(q, r, info.prompt_format, tok, answer_prefix="Answer:").tokens for q in qs]
        for r in generate_roles(2, 0)
    ]  # 2 batches of 16 sharing a prefix
    n_items = sum(map(len, batches))

    def score(fn, model):
        def run():
            with torch.no_grad():
                out = []
                for seqs in batches:
                    n = common_prefix(seqs)
                    out.append(fn(model, seqs[0][:n], [s[n:] for s in seqs]))
                return torch.cat(out)

        return run

    gen_prompts = [b[0] for b in batches] + [b[1] for b in batches]  # 4 prompts x 12 new tokens
    fwd_seqs = [s[:150] for s in batches[0][:4]]
    fwd_tokens, fwd_attn = left_pad(fwd_seqs, tok.pad_token_id or 0)

    def forward(model):
        def run():
            kept = []
            with torch.no_grad():
                model.run_with_hooks(
                    fwd_tokens,
                    attention_mask=fwd_attn,
                    stop_at_layer=16,
                    fwd_hooks=[(HOOK, lambda t, hook: kept.append(t.detach()))],
                )
            return kept[0]

        return run

    variants = {
        "score_old": score(_old_prefix_last_logits, old),
        "score_new": score(prefix_last_logits, new),
        "decode_old": lambda: _old_greedy(old, gen_prompts, 12),
        "decode_new": lambda: greedy_generate(new, gen_prompts, 12, stop_ids=set()),
        "forward_old": forward(old),
        "forward_new": forward(new),
    }
    t, out = interleaved(variants, rounds=3, warmup=1)
    ratios = {k: t[f"{k}_old"] / t[f"{k}_new"] for k in ("score", "decode", "forward")}
    figures = {
        "score_items_per_s_old": n_items / t["score_old"],
        "score_items_per_s_new": n_items / t["score_new"],
        "decode_tokens_per_s_old": 48 / t["decode_old"],
        "decode_tokens_per_s_new": 48 / t["decode_new"],
        "forward_tokens_per_s_old": fwd_tokens.numel() / t["forward_old"],
        "forward_tokens_per_s_new": fwd_tokens.numel() / t["forward_new"],
        **{f"{k}_ratio_new_over_old": v for k, v in ratios.items()},
        "score_max_abs_logit_diff": float((out["score_old"] - out["score_new"]).abs().max()),
        "decode_same_tokens": out["decode_old"] == out["decode_new"],
        "threads": torch.get_num_threads(),
    }
    record("model_layer", figures)
    for k, v in ratios.items():
        assert v >= 0.9, f"{k}: new/old speed {v:.3f}"
