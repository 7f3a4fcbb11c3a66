"""The generate scorer's decoding: `greedy_generate` (a batch's shared prompt prefix run once, a
KV cache with room for the new tokens, finished rows leaving the batch) in batches of
`decode_batch_size` against the loop it replaced (HF's `DynamicCache`, which copies the whole
cache at every step, every row kept to the batch's end, `batch_size` 16 prompts per batch, each
prompt run whole; `_kept_rows` below), interleaved (conftest.interleaved); and the same new loop
with its cache's keys and values stored once per key/value head (TransformerLens then repeats the
whole cache per query head at every step and layer) against once per query head, the default.
The study's path: every row to a stop token or 100 tokens (no early stop), one default-run
persona on the 40 items. The completions are asserted equal."""

import torch
from conftest import interleaved, record

import mechvalue.lm.generation as generation
import mechvalue.measurement.generate as generate_scorer
from mechvalue.lm.batching import left_pad
from mechvalue.lm.bridge import as_bridge, model_device
from mechvalue.lm.generation import logits_at, new_cache
from mechvalue.lm.hooks import per_call
from mechvalue.lm.kv_cache import RoomyCache
from mechvalue.measurement.generate import Generate
from mechvalue.measurement.scoring import Condition, Measurer
from mechvalue.study import inventory as inv
from mechvalue.study.roles import generate_roles


def _kept_rows(model, prompts, max_new_tokens=100, stop_ids=None, edits=None, **_):
    """The baseline: whole prompts in one pass (no shared prefix), every row kept in the batch
    until the last one ends (finished rows decode padding), HF's `DynamicCache` (unsteered; the
    scorer's arguments)."""
    bridge = as_bridge(model)
    pad = bridge.tokenizer.pad_token_id or 0
    dev = model_device(bridge)
    tokens, attn = left_pad(prompts, pad, dev)
    b = tokens.shape[0]
    done = torch.zeros(b, dtype=torch.bool, device=dev)
    out: list[list[int]] = [[] for _ in range(b)]
    cache = new_cache()
    with torch.no_grad():
        logits = logits_at(bridge, tokens, attn, cache, per_call([], None))
        for _ in range(max_new_tokens):
            nxt = torch.where(done, torch.full_like(logits[:, 0], pad, dtype=torch.long), logits.argmax(-1))
            for i in range(b):
                if not done[i]:
                    out[i].append(int(nxt[i]))
            done |= torch.tensor([int(t) in stop_ids for t in nxt], device=dev)
            if bool(done.all()) or all(len(o) >= max_new_tokens for o in out):
                break
            attn = torch.cat([attn, torch.ones((b, 1), dtype=attn.dtype, device=dev)], 1)
            logits = logits_at(bridge, nxt[:, None], attn, cache)
    return [o[:-1] if o and o[-1] in stop_ids else o for o in out]


def test_generate_scorer_decoding(smollm2, monkeypatch):
    model, info = smollm2
    items = inv.load_inventory()
    role = generate_roles(1, 0)[0]
    scorer = Generate(early_stop=False)
    new = Measurer(model, info.prompt_format, scoring="generate")
    old = Measurer(model, info.prompt_format, scoring="generate", decode_batch_size=16)

    def baseline():
        with monkeypatch.context() as mp:
            mp.setattr(generate_scorer, "greedy_generate", _kept_rows)
            return old.ask(items, role, Condition(), scorer)

    def per_kv_head():
        with monkeypatch.context() as mp:
            mp.setattr(generation, "decode_cache", lambda model, room: RoomyCache(room))
            return new.ask(items, role, Condition(), scorer)

    t, out = interleaved(
        {
            "kept_rows_16": baseline,
            "per_kv_head_64": per_kv_head,
            "roomy_dropping_64": lambda: new.ask(items, role, Condition(), scorer),
        },
        rounds=2,
    )
    completions = {k: [r["completion"] for r in v] for k, v in out.items()}
    assert completions["roomy_dropping_64"] == completions["kept_rows_16"] == completions["per_kv_head_64"]
    tokens = sum(len(model.tokenizer.encode(r["completion"])) for r in out["kept_rows_16"])
    record(
        "generate_decoding",
        {
            "items": len(items),
            "generated_tokens": tokens,
            "baseline_s": t["kept_rows_16"],
            "new_s": t["roomy_dropping_64"],
            "speedup": t["kept_rows_16"] / t["roomy_dropping_64"],
            "per_kv_head_s": t["per_kv_head_64"],
            "per_query_head_speedup": t["per_kv_head_64"] / t["roomy_dropping_64"],
            "decode_batch_size": new.decode_batch_size,
        },
    )
    assert t["kept_rows_16"] > t["roomy_dropping_64"] and t["per_kv_head_64"] > t["roomy_dropping_64"]
