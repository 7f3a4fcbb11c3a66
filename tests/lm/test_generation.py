"""Greedy decoding with the roomy KV cache and finished rows leaving the batch, on the real SmolLM2:
the tokens of the slow reference (every step recomputed, every row kept), with rows that end at
different steps and one steering vector per row; the cache's views equal `DynamicCache`'s keys
and values bit for bit, and its keys stored per query head give the very same logits."""

from __future__ import annotations

from dataclasses import replace

import torch

from mechvalue.interp.vectors import VectorAddHook
from mechvalue.lm import compat, tokens
from mechvalue.lm.generation import Edits, decode_cache, greedy_generate, logits_at, new_cache
from mechvalue.lm.hooks import PositionedHook
from mechvalue.lm.kv_cache import RoomyCache, drop_rows

TEXTS = [
    "Write one sentence about the sea.",
    "List three colours:",
    "What is 2 + 2? Answer:",
    "Describe a cat in five words.",
]


def _prompts(model) -> list[list[int]]:
    return [model.tokenizer.encode(t) for t in TEXTS]


def _stops_at_different_steps(model, prompts) -> tuple[set[int], list[list[int]]]:
    """Stop ids that end rows 0 and 2 at different steps of an unstopped decode (each the first
    token from step 3 or 6 that no other row and no earlier step of its own row decodes)."""
    free = greedy_generate(model, prompts, 12, stop_ids=set(), use_cache=False)
    ids = set()
    for row, start in ((0, 3), (2, 6)):
        others = {t for j, f in enumerate(free) if j != row for t in f}
        ids.add(
            next(t for k, t in enumerate(free[row]) if k >= start and t not in others | set(free[row][:k]))
        )
    return ids, free


def test_rows_ending_at_different_steps_decode_as_the_reference(smollm2):
    model, _ = smollm2
    prompts = _prompts(model)
    ids, free = _stops_at_different_steps(model, prompts)
    got = greedy_generate(model, prompts, 12, stop_ids=ids)
    ref = greedy_generate(model, prompts, 12, stop_ids=ids, use_cache=False)
    assert got == ref
    lengths = [len(g) for g in got]
    assert lengths[0] < lengths[2] < lengths[1] == 12  # rows left the batch at different steps
    for g, f in zip(got, free):
        assert g == f[: len(g)]  # a row's tokens do not depend on when the others stopped


def test_per_row_steering_follows_its_rows_after_others_leave(smollm2):
    model, _ = smollm2
    prompts = _prompts(model)
    ids, _ = _stops_at_different_steps(model, prompts)
    torch.manual_seed(0)
    d = model.cfg.d_model
    vectors = torch.randn(len(prompts), d) * torch.tensor([0.0, 3.0, 6.0, 9.0])[:, None]
    edits = Edits([("blocks.10.hook_resid_post", VectorAddHook(vectors))], None, generated=True)
    got = greedy_generate(model, prompts, 12, stop_ids=ids, edits=edits)
    assert got == greedy_generate(model, prompts, 12, stop_ids=ids, edits=edits, use_cache=False)
    alone = [
        greedy_generate(
            model,
            [p],
            12,
            stop_ids=ids,
            edits=Edits([("blocks.10.hook_resid_post", VectorAddHook(v[None]))], None, generated=True),
        )[0]
        for p, v in zip(prompts, vectors)
    ]
    assert sum(g == a for g, a in zip(got, alone)) >= 3  # batch-1 numerics may break a near-tie


class _Rows(PositionedHook):
    """Records each decode call's batch rows, as a per-row edit is given them."""

    def __init__(self, b: int, seen: list):
        super().__init__("all")
        self.per_row, self.seen = b, seen

    def edit(self, rows, batch_index):
        self.seen.append(sorted(set(batch_index.tolist())))
        return rows


def test_per_row_hooks_are_told_the_rows_still_decoding(smollm2):
    model, _ = smollm2
    prompts = _prompts(model)
    ids, _ = _stops_at_different_steps(model, prompts)
    seen: list = []
    got = greedy_generate(
        model,
        prompts,
        12,
        stop_ids=ids,
        edits=Edits([("blocks.0.hook_resid_post", _Rows(len(prompts), seen))], None, generated=True),
    )
    ended = [len(g) + 1 if len(g) < 12 else 13 for g in got]  # tokens decoded when a row finished
    alive = [[i for i, e in enumerate(ended) if e > k] for k in range(1, 12)]  # in decode call k
    assert seen == [rows for rows in alive if rows]
    assert len(alive[0]) == len(prompts) > len(alive[-1])


def test_roomy_cache_views_equal_dynamic_cache(smollm2):
    """Also stored per query head (SmolLM2: 3 query heads per key/value head): the same logits bit
    for bit, and the attention modules' head grouping put back after every call."""
    model, _ = smollm2
    toks = torch.tensor([model.tokenizer.encode(t)[:5] for t in TEXTS])
    attn = torch.ones_like(toks)
    groups = compat.kv_groups(model)
    assert groups == 3 and decode_cache(model, 3).groups == groups
    caches = [new_cache(), RoomyCache(3), RoomyCache(3, groups)]
    with torch.no_grad():
        outs = [[logits_at(model, toks, attn, c)] for c in caches]
        a = attn
        for step in range(6):  # past the room: the buffer grows
            a = torch.cat([a, a.new_ones((len(a), 1))], 1)
            for c, o in zip(caches, outs):
                o.append(logits_at(model, toks[:, step % 5, None], a, c))
        for c in caches:  # row 3 moves into row 0's place
            assert drop_rows(c, torch.tensor([False, True, False, True])).tolist() == [3, 1]
        a = torch.cat([a[[3, 1]], a.new_ones((2, 1))], 1)
        for c, o in zip(caches, outs):
            o.append(logits_at(model, toks[[3, 1], :1], a, c))
    for x, y, z in zip(*outs):
        assert torch.equal(x, y) and torch.equal(x, z)
    for la, lb, lc in zip(*(c.layers for c in caches)):
        assert torch.equal(la.keys, lb.keys) and torch.equal(la.values, lb.values)
        assert torch.equal(la.keys.repeat_interleave(groups, 1), lc.keys)
        assert torch.equal(la.values.repeat_interleave(groups, 1), lc.values)
    hf = model.original_model.model.layers
    assert {layer.self_attn.num_key_value_groups for layer in hf} == {groups}


def test_a_shared_prefix_run_once_decodes_as_full_passes(smollm2):
    """The study's prompts of one persona share all but their question: the prefix runs once (its
    cache broadcast, each row's question after a gap) and the tokens are those of full passes,
    unsteered and with a vector added on the " your values" span inside the prefix."""
    from mechvalue.lm.batching import span_mask
    from mechvalue.measurement.scoring import Condition, Measurer, common_prefix
    from mechvalue.study.inventory import load_inventory
    from mechvalue.study.roles import generate_roles

    model, info = smollm2
    m = Measurer(model, info.prompt_format, scoring="generate")
    items = load_inventory().iloc[[0, 5, 11, 17]]
    cond = Condition()
    batch = m.prompts(items, generate_roles(1, 0)[0], cond)
    seqs = [p.tokens for p in batch]
    n = common_prefix(seqs)
    assert n > len(max(seqs, key=len)) - 30 and len({len(s) for s in seqs}) > 1  # rows of several lengths
    assert m.shared_prefix(batch, cond) == n
    masks = span_mask([p.span for p in batch], [len(s) for s in seqs], max(map(len, seqs)))
    torch.manual_seed(1)
    for edits in (
        None,
        Edits([("blocks.5.hook_resid_post", VectorAddHook(torch.randn(model.cfg.d_model) * 4))], masks),
    ):
        full = greedy_generate(model, seqs, 24, edits=edits)
        shared = replace(edits or Edits(), shared_prefix=n)
        assert greedy_generate(model, seqs, 24, edits=shared) == full
    tokens.take()
    greedy_generate(model, seqs, 2, stop_ids=set(), edits=Edits(shared_prefix=n))
    c = tokens.take()
    assert c.prompt == n + len(seqs) * (max(map(len, seqs)) - n)  # the prefix once, then the rows' rest
