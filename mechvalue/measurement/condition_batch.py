"""Several steering conditions in one batch: per-request steering (`SAEEditHook.stacked`, one edit
per row) with the part of the prompt before the edit run once for all of them.

A grid measures each role under each condition, and conditions editing the " your values" span
(SAE features or a steering vector) differ from each other and from the unsteered condition only
from the span on. For a batch of prompts sharing a prefix that holds the span,
`ConditionGroup.logits` computes the answer logits of every condition of its group when the first
of them asks, and hands the others theirs when they ask (protocols and scorers run per condition
as ever):
1. the shared prefix's positions before the span: once, unsteered, one row;
2. the rest of the shared prefix: one row up to the edited layer (the layers before an edit of
   `blocks.i.hook_resid_post` see the same activations under every condition), one row per
   condition from there on, each row's own edit on the span (`SAEEditHook.stacked`);
3. the suffixes: one row per condition x prompt, each continuing its condition's row of the
   cache: on CUDA several conditions per forward (`SUFFIX_ROWS` rows, the cache rows copied),
   on CPU one condition per forward (its row broadcast, no copy: batching gains nothing there).
The prefix's cache is kept for the role's later batches of items (the measurer runs one batch's
shared prefix per batch; the group runs it once per role when the batches share it).
Where a batch has no such prefix the group measures its conditions one at a time. The numbers
are the one-at-a-time path's up to float32 rounding (the prefix runs in two calls, rows batch
differently, the tokens between a role's prefix and a later batch's are run per row): within 1e-5
in p(yes), p(no) and scores (tests/measurement/test_condition_batch.py).
Scorers that generate (no answer logits) run one condition at a time.
"""

from __future__ import annotations

import re
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
from mechvalue.lm.generation import cache_layers, logits_at, new_cache, suffix_logits
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
        self.prefix: tuple | None = None  # (tokens, span, cache, kv) of the last shared prefix

    def clear(self) -> None:
        """Forget logits no condition asked for and the shared prefix (after each role)."""
        self.ready.clear()
        self.prefix = None

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
        dev, C, B = model_device(bridge), len(self.conds), len(seqs)
        with torch.no_grad():
            cache, kv, n = self._prefix(bridge, seqs[0][:n], span)
            out = []
            per = max(1, SUFFIX_ROWS // B) if dev.type == "cuda" else 1
            for lo in range(0, C, per):
                ks = range(lo, min(lo + per, C))
                for layer, (k, v) in zip(cache.layers, kv):
                    layer.keys, layer.values = _rows(k, ks, B), _rows(v, ks, B)
                out += suffix_logits(bridge, cache, n, [s[n:] for _ in ks for s in seqs]).split(B)
        return out

    def _prefix(self, bridge, prefix: list[int], span: tuple[int, int]) -> tuple:
        """(cache, its per-layer (keys, values), length) of the shared prefix: keys and values of
        one row in the layers before the edit, one row per condition after it. The last prefix
        computed serves later batches whose prompts start with it (a role's other items)."""
        if self.prefix is not None:
            toks, at_span, cache, kv = self.prefix
            if at_span == span and len(toks) <= len(prefix) and tuple(prefix[: len(toks)]) == toks:
                return cache, kv, len(toks)
        dev, C, (a, b), n = model_device(bridge), len(self.conds), span, len(prefix)
        p = torch.tensor([prefix], device=dev)
        cache = new_cache()
        if a > 0:  # before the span: every condition's, run once
            logits_at(bridge, p[:, :a], torch.ones_like(p[:, :a]), cache)
        split = edit_layer(self.hook_name, bridge.cfg.n_layers) if C > 1 else 0
        for layer in cache.layers[split:]:  # from the edit on: one row per condition
            layer.keys = layer.keys.expand(C, *layer.keys.shape[1:])
            layer.values = layer.values.expand(C, *layer.values.shape[1:])
        at = torch.zeros((C, n - a), dtype=torch.bool, device=dev)
        at[:, : b - a] = True
        hooks = per_call([(self.hook_name, self.hook)] if self.hook is not None else [], at)
        if split:  # the rows part at the edit: one row before it, C after
            name, edit = hooks[0]
            hooks = [(name, lambda act, hook: edit(act.expand(C, *act.shape[1:]), hook))]
        rest = p[:, a:] if split else p[:, a:].expand(C, -1)
        logits_at(bridge, rest, torch.ones((len(rest), n), dtype=torch.long, device=dev), cache, hooks)
        kv = cache_layers(cache)
        self.prefix = (tuple(prefix), span, cache, kv)
        return cache, kv, n


def edit_layer(hook_name: str | None, n_layers: int) -> int:
    """The first layer whose keys and values an edit at `hook_name` changes, where the edit is on
    a block's residual stream (`blocks.i.hook_resid_pre`: i; `blocks.i.hook_resid_post`: i + 1);
    0 otherwise (every layer, the prefix run one row per condition)."""
    m = re.fullmatch(r"blocks\.(\d+)\.hook_resid_(pre|post)", hook_name or "")
    if m is None:
        return 0
    i = int(m[1]) + (m[2] == "post")
    return i if 0 < i < n_layers else 0


def _rows(t: Tensor, ks: range, B: int) -> Tensor:
    """Cache rows for conditions `ks`, each repeated for its B prompts (condition-major); a
    shared row (one, before the edit) broadcast, one condition's row broadcast, no copy."""
    if t.shape[0] == 1 or len(ks) == 1:
        r = 0 if t.shape[0] == 1 else ks.start
        return t[r : r + 1].expand(len(ks) * B, *t.shape[1:])
    return t[torch.arange(ks.start, ks.stop, device=t.device).repeat_interleave(B)]


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


def condition_groups(conds: list) -> list[list[int]]:
    """The grid's conditions measured together, by index: up to `GROUP_SIZE` that `fit` of one
    kind, the unsteered ones in the first group; fixed by the conditions alone, so a resumed or
    distributed grid computes every condition as an uninterrupted local one does."""
    by_kind: dict = {}
    for k, c in enumerate(conds):
        if fits(c):
            by_kind.setdefault(kind(c), []).append(k)
    unsteered = by_kind.pop(None, [])
    groups = []
    for ks in list(by_kind.values()) or [[]]:  # the unsteered conditions join the first group
        ks, unsteered = sorted(unsteered + ks), []
        groups += [ks[i : i + GROUP_SIZE] for i in range(0, len(ks), GROUP_SIZE)]
    return [g for g in groups if len(g) > 1]


def grouped_local(measurer, items: pd.DataFrame, roles: list, conds: list) -> Callable:
    """`local(task)` for a grid's tasks run in this process: a task covering every role of a
    condition of a `condition_groups` group is measured with its group (the first task of a group
    measures all of it, conditions already on disk included, the others are handed their rows);
    any other task alone."""
    from mechvalue.measurement.tasks import measure_block

    group_of = {k: g for g in condition_groups(conds) for k in g}
    ready: dict[int, pd.DataFrame] = {}

    def local(t) -> pd.DataFrame:
        whole = t.lo == 0 and t.hi == len(roles)
        if whole and t.cond in ready:
            return ready.pop(t.cond)
        g = group_of.get(t.cond) if whole else None
        if g is None:
            return measure_block(measurer, items, roles[t.lo : t.hi], conds[t.cond])
        ready.update(zip(g, measure_together(measurer, items, roles, [conds[k] for k in g])))
        for k in g:
            group_of.pop(k)
        return ready.pop(t.cond)

    return local
