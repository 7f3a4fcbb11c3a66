"""Several steering conditions in one batch: per-request steering (`SAEEditHook.stacked`, one edit
per row) with the part of the prompt before the edit run once for all of them.

A grid measures each role under each condition, and conditions editing the " your values" span
(SAE features or a steering vector) differ from each other and from the unsteered condition only
from the span on. For a batch of prompts sharing a prefix that holds the span,
`ConditionGroup.logits` computes the answer logits of every condition of its group when the first
of them asks, and hands the others theirs when they ask (protocols and scorers run per condition
as ever):
1. the shared prefix's positions before the span: once, unsteered, one row;
2. the rest of the shared prefix: one row per condition, each row's own edit on the span;
3. the suffixes: one row per condition x prompt, each continuing its condition's row of the
   cache: on CUDA several conditions per forward (`SUFFIX_ROWS` rows, the cache rows copied),
   on CPU one condition per forward (its row broadcast, no copy: batching gains nothing there).
Where a batch has no such prefix the group measures its conditions one at a time. The numbers
are the one-at-a-time path's up to float32 rounding (the prefix runs in two calls, rows batch
differently): within 1e-5 in p(yes), p(no) and scores (tests/measurement/test_condition_batch.py).
Scorers that generate (no answer logits) run one condition at a time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pandas as pd
import torch
from jaxtyping import Float
from torch import Tensor

from mechvalue.errors import MechValueError
from mechvalue.interp.steering import SAEEditHook
from mechvalue.interp.vectors import VectorAddHook
from mechvalue.lm.bridge import as_bridge, model_device
from mechvalue.lm.generation import cache_rows, logits_at, new_cache, suffix_logits
from mechvalue.lm.hooks import PositionedHook, per_call
from mechvalue.study.prompts import RenderedPrompt

SUFFIX_ROWS = 64  # condition x prompt rows per suffix forward (their caches are copies)
GROUP_SIZE = 16  # conditions per group: the answer logits of one role's items are held for each


def fits(cond) -> bool:
    """Whether `cond` can join a group: no hard prompt, and no hook or one edit of the span (an
    SAE edit or a steering vector)."""
    if cond.hard or cond.where != "span" or len(cond.hooks) > 1:
        return False
    return all(isinstance(h, SAEEditHook | VectorAddHook) and not h.per_row for _, h in cond.hooks)


def kind(cond) -> tuple | None:
    """What conditions measured together share: the hook point and the edit's kind (for SAE edits
    the SAE, the path and the backend); None for no edit (joins any group)."""
    if not cond.hooks:
        return None
    name, h = cond.hooks[0]
    return (name, "vector") if isinstance(h, VectorAddHook) else (name, id(h.sae), h.options)


def stackable(conds: list) -> bool:
    """Whether the conditions can be measured together (`measure_together`)."""
    return all(map(fits, conds)) and len({kind(c) for c in conds} - {None}) <= 1


def stacked(hooks: list) -> PositionedHook:
    """One edit per batch row from one-edit hooks of one kind (None: that row untouched)."""
    made = [h for h in hooks if h is not None]
    if isinstance(made[0], VectorAddHook):
        zero = torch.zeros_like(made[0].vec)
        return VectorAddHook(torch.stack([h.vec if h is not None else zero for h in hooks]))
    return SAEEditHook.stacked(hooks)


class ConditionGroup:
    """Conditions measured together, batch by batch (see the module docstring); each condition
    object is given this group (`Condition.group`)."""

    def __init__(self, conds: list):
        if not stackable(conds):
            raise MechValueError(
                "conditions measured together need no hard prompt, edits of the span only, and one "
                "kind of edit on one hook point (one SAE, path and backend)"
            )
        hooks = [c.hooks[0] for c in conds if c.hooks]
        self.hook_name = hooks[0][0] if hooks else None
        self.hook = stacked([c.hooks[0][1] if c.hooks else None for c in conds]) if hooks else None
        self.conds = [replace(c, group=self) for c in conds]
        self.ready: dict[tuple, Tensor] = {}

    def clear(self) -> None:
        """Forget logits no condition asked for (after each role)."""
        self.ready.clear()

    def logits(self, m, batch: list[RenderedPrompt], cond) -> Float[Tensor, "batch vocab"]:
        """`cond`'s answer logits for `batch` (`m`: the asking measurer), all conditions' computed
        on the first ask."""
        k = next(i for i, c in enumerate(self.conds) if c is cond)
        key = tuple(tuple(p.tokens) for p in batch)
        if (k, key) not in self.ready:
            for i, lg in enumerate(self.all_logits(m, batch)):
                self.ready[(i, key)] = lg
        return self.ready.pop((k, key))

    def all_logits(self, m, batch: list[RenderedPrompt]) -> list[Tensor]:
        from mechvalue.measurement.scoring import common_prefix

        seqs = [p.tokens for p in batch]
        n = common_prefix(seqs) if m.prefix_cache else 0
        span = batch[0].span
        if not n or any(p.span != span for p in batch) or span[1] > n:
            return [m.answer_logits(batch, replace(c, group=None)) for c in self.conds]
        bridge = as_bridge(m.model)
        dev, C, B, (a, b) = model_device(bridge), len(self.conds), len(seqs), span
        prefix = torch.tensor([seqs[0][:n]], device=dev)
        cache = new_cache()
        with torch.no_grad():
            if a > 0:  # before the span: every condition's, run once
                logits_at(bridge, prefix[:, :a], torch.ones_like(prefix[:, :a]), cache)
                cache_rows(cache, C)
            rest = prefix[:, a:].expand(C, -1)
            at = torch.zeros_like(rest, dtype=torch.bool)
            at[:, : b - a] = True
            hooks = [(self.hook_name, self.hook)] if self.hook is not None else []
            logits_at(bridge, rest, torch.ones((C, n), dtype=torch.long, device=dev), cache, per_call(hooks, at))
            kv = [(layer.keys, layer.values) for layer in cache.layers]
            out = []
            per = max(1, SUFFIX_ROWS // B) if dev.type == "cuda" else 1
            for lo in range(0, C, per):
                ks = range(lo, min(lo + per, C))
                if per == 1:  # the condition's cache row broadcast to its prompts, no copy
                    cache_rows(cache, B, [(k[lo : lo + 1], v[lo : lo + 1]) for k, v in kv])
                else:
                    cache_rows(cache, torch.arange(ks.start, ks.stop, device=dev).repeat_interleave(B), kv)
                out += suffix_logits(bridge, cache, n, [s[n:] for _ in ks for s in seqs]).split(B)
        return out


def measure_together(measurer, items: pd.DataFrame, roles: list, conds: list) -> list[pd.DataFrame]:
    """What `measure(measurer, items, roles, [c])[0]` gives for each condition `c` (`stackable`
    together), measured role by role with the conditions batched together."""
    from mechvalue.measurement.scoring import measure

    group = ConditionGroup(conds)
    parts: list[list[pd.DataFrame]] = [[] for _ in conds]
    for role in roles:
        for part, c in zip(parts, group.conds):
            part.append(measure(measurer, items, [role], [c], progress=False)[0])
        group.clear()
    return [pd.concat(p, ignore_index=True) for p in parts]


def grouped_local(measurer, items: pd.DataFrame, roles: list, conds: list, tasks: list) -> Callable:
    """`local(task)` for a grid's tasks run in this process: tasks covering every role of a
    condition that `fits` are measured in groups of up to `GROUP_SIZE` (the first task of a group
    measures all of it, the others are handed their rows); any other task alone."""
    from mechvalue.measurement.tasks import measure_block

    whole = [t.cond for t in tasks if t.lo == 0 and t.hi == len(roles) and fits(conds[t.cond])]
    by_hook: dict = {}
    for k in whole:
        by_hook.setdefault(kind(conds[k]), []).append(k)
    unsteered = by_hook.pop(None, [])
    groups = []
    for ks in by_hook.values() or [[]]:  # the unsteered conditions join the first group
        ks = sorted(unsteered + ks)
        unsteered = []
        groups += [ks[i : i + GROUP_SIZE] for i in range(0, len(ks), GROUP_SIZE)]
    group_of = {k: g for g in groups if len(g) > 1 for k in g}
    ready: dict[int, pd.DataFrame] = {}

    def local(t) -> pd.DataFrame:
        if t.cond in ready and t.lo == 0 and t.hi == len(roles):
            return ready.pop(t.cond)
        g = group_of.get(t.cond) if t.lo == 0 and t.hi == len(roles) else None
        if g is None:
            return measure_block(measurer, items, roles[t.lo : t.hi], conds[t.cond])
        ready.update(zip(g, measure_together(measurer, items, roles, [conds[k] for k in g])))
        for k in g:
            group_of.pop(k)
        return ready.pop(t.cond)

    return local
