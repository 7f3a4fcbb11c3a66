"""A role's shared prompt prefix runs once for all its item batches (`Measurer._prefix`): the scores
are those of computing the prefix for each batch anew, bit for bit, with one prefix pass per role
and condition instead of one per batch; another role or condition computes its own."""

from __future__ import annotations

import pandas as pd

from mechvalue.lm import tokens
from mechvalue.lm.batching import chunks
from mechvalue.measurement.scoring import Condition, Measurer, measure
from mechvalue.study.inventory import load_inventory
from mechvalue.study.roles import generate_roles


def test_later_batches_reuse_the_prefix_with_the_same_scores(smollm2):
    model, info = smollm2
    items = load_inventory()
    roles = [None, *generate_roles(2, 0)]
    m = Measurer(model, info.prompt_format, batch_size=16)  # 3 batches per role
    tokens.take()
    long, _ = measure(m, items, roles, progress=False)
    reused = tokens.take()
    parts = []
    for role in roles:  # each batch alone, with a measurer that has kept nothing
        for sl in chunks(len(items), 16):
            part, _ = measure(
                Measurer(model, info.prompt_format, batch_size=16), items.iloc[sl], [role], progress=False
            )
            parts.append(part)
    fresh = tokens.take()
    alone = pd.concat(parts, ignore_index=True)
    cols = ["player_name", "item", "p_yes", "p_no", "score"]
    pd.testing.assert_frame_equal(long[cols], alone[cols], check_exact=True)
    saved = runs = 0  # prefix tokens and passes the later batches of a role reuse
    for role in roles:
        ps = m.prompts(items, role, Condition())
        batches = [ps[sl] for sl in chunks(len(items), 16)]
        keys = [tuple(b[0].tokens[: m.shared_prefix(b, Condition())]) for b in batches]
        assert all(keys)
        same = [k for k, before in zip(keys[1:], keys) if k == before]
        saved, runs = saved + sum(map(len, same)), runs + len(same)
    assert runs >= len(roles)  # every role reuses its prefix
    assert (fresh.prompt - reused.prompt, fresh.forwards - reused.forwards) == (saved, runs)
