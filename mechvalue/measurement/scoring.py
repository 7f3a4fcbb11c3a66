"""Value measurement: ask every item to every role, score answers, average per value.

The `Measurer` holds the model, the prompt settings and the batching (one value per batch under
hard prompts, the shared prefix run once); how a prompt ends and how an answer becomes a score is
its scorer's (`mechvalue.measurement.scorers.SCORERS`: log-prob, generate-and-parse, Likert), and how
one or more scorers' answers make an item's score is its protocol's
(`mechvalue.measurement.protocols.PROTOCOLS`: the study's, anchoring, portrait, calibrated, balanced).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import get_args

import pandas as pd
import torch
from jaxtyping import Bool, Float
from torch import Tensor
from tqdm.auto import tqdm

from mechvalue.errors import MechValueError
from mechvalue.lm.batching import chunks, where_mask
from mechvalue.lm.generation import cache_layers, last_logits, prefix_kv, restore_layers, suffix_logits
from mechvalue.lm.hooks import PositionedHook
from mechvalue.lm.models import as_bridge, check_prompt_format
from mechvalue.lm.positions import StudyWhere
from mechvalue.measurement.logprob import answer_token_ids, yes_no_probs  # noqa: F401 - re-exported
from mechvalue.measurement.options import ScoringOptions
from mechvalue.measurement.protocols import get_protocol, scorer_protocol
from mechvalue.measurement.scorer import Scorer
from mechvalue.measurement.scorers import get_scorer
from mechvalue.study.prompts import HardPrompt, RenderedPrompt, check_form
from mechvalue.study.roles import Role
from mechvalue.study.schema import item_table, wide_table


@dataclass
class Condition:
    """One steering condition: a label for `steer_dim`, hooks or a hard prompt, and what it is
    (`info`: kind, feature, strength, ... as recorded in a grid's conditions.json).

    `hooks` are (hook name, hook) pairs: positioned hooks (`mechvalue.lm.hooks.PositionedHook`,
    e.g. `SAEEditHook`) are moved to `where` in each forward call; plain functions run on every call."""

    label: object = None  # None = unsteered (NaN in the study's tables)
    hooks: list = field(default_factory=list)
    hard: dict[str, HardPrompt] | None = None  # value -> hard prompt for that value's items
    where: StudyWhere = "span"  # span | prompt | generated | all (generated tokens: `generate` only)
    info: dict = field(default_factory=lambda: {"kind": "unsteered"})
    group: object = field(default=None, repr=False, compare=False)
    """the `mechvalue.measurement.condition_batch.ConditionGroup` measuring it with others, if any"""

    def __post_init__(self):
        if self.where not in get_args(StudyWhere):
            raise MechValueError(f"where={self.where!r}: expected one of {', '.join(get_args(StudyWhere))}")

    def describe(self) -> dict:
        return {"label": self.label, **self.info}

    def prompt_masks(self, batch: list[RenderedPrompt], width: int) -> Bool[Tensor, "batch pos"]:
        return where_mask([p.span for p in batch], [len(p.tokens) for p in batch], self.where, width)


@dataclass
class Measurer(ScoringOptions):
    """A model asked in a prompt format, scored by `ScoringOptions` (given by keyword)."""

    model: object
    prompt_format: str
    prefix_cache: bool = field(default=True, kw_only=True)
    """run a batch's shared prompt prefix once and continue its KV cache (False: full passes)"""
    kept_prefix: tuple | None = field(default=None, init=False, repr=False, compare=False)
    """the last shared prefix's cache, kept within one `ask` for its later batches (`_prefix`)"""

    def __post_init__(self):
        check_form(self.form)
        if self.protocol is None:
            self.recipe = scorer_protocol(get_scorer(self.scoring))
        else:
            self.recipe = get_protocol(self.protocol)
            self.scoring = self.recipe.scorer.name
        self.scorer = self.recipe.scorer
        check_prompt_format(self.prompt_format)
        self.model = as_bridge(self.model)
        tok = self.model.tokenizer
        self.answer_ids = answer_token_ids(tok)
        self.stop_ids = {tok.eos_token_id}
        for t in ("<|im_end|>", "<end_of_turn>", "<|eot_id|>"):
            tid = tok.convert_tokens_to_ids(t)
            if isinstance(tid, int) and tid != tok.unk_token_id:
                self.stop_ids.add(tid)

    def prompts(self, items: pd.DataFrame, role: Role | None, cond: Condition) -> list[RenderedPrompt]:
        return self.scorer.prompts(self, items, role, cond)

    def score_items(
        self, items: pd.DataFrame, role: Role | None, cond: Condition | None = None
    ) -> pd.DataFrame:
        """Per-item answers and scores for one role under one condition, by the protocol."""
        cond = cond or Condition()
        return item_table(items, self.recipe.rows(self, items, role, cond))

    def ask(
        self,
        items: pd.DataFrame,
        role: Role | None,
        cond: Condition,
        scorer: Scorer | None = None,
        form: str | None = None,
    ) -> list[dict]:
        """One row per item: `scorer` (default: this measurer's) on its prompts, in batches;
        `form`: the instrument's wording for this call (default: the measurer's)."""
        view = self if form is None or form == self.form else replace(self, form=form)
        scorer = scorer or self.scorer
        prompts = scorer.prompts(view, items, role, cond)
        rows = [None] * len(prompts)
        view.kept_prefix = None  # a prefix is kept within one call only: hooks may change between calls
        for idx in view.batches(items, cond, getattr(scorer, "decodes", False)):
            for i, r in zip(idx, scorer.score(view, [prompts[i] for i in idx], cond)):
                rows[i] = r
        view.kept_prefix = None
        return rows

    def batches(self, items: pd.DataFrame, cond: Condition, decodes: bool = False) -> list[list[int]]:
        """Item positions per batch (`decode_batch_size` of them for a scorer that `decodes`, else
        `batch_size`); with hard prompts one value per batch, so that the whole prompt up to the
        question is a prefix the batch shares."""
        groups = [list(range(len(items)))]
        if cond.hard:
            groups = list(
                pd.Series(range(len(items))).groupby(items["value"].to_numpy(), sort=False).apply(list)
            )
        size = self.decode_batch_size if decodes else self.batch_size
        return [g[sl] for g in groups for sl in chunks(len(g), size)]

    def shared_prefix(self, batch: list[RenderedPrompt], cond: Condition) -> int:
        """Positions of the batch's shared prefix that `answer_logits` runs once (0: full passes):
        the common prefix when the KV cache may be shared, every hook is positioned and the
        steered positions lie in it."""
        seqs = [p.tokens for p in batch]
        n = common_prefix(seqs) if self.prefix_cache and len(seqs) > 1 else 0
        span = batch[0].span
        aware = all(isinstance(h, PositionedHook) for _, h in cond.hooks)
        in_prefix = cond.where != "span" or (all(p.span == span for p in batch) and span[1] <= n)
        return n if n and aware and in_prefix else 0

    def answer_logits(self, batch: list[RenderedPrompt], cond: Condition) -> Float[Tensor, "batch vocab"]:
        """Logits at each prompt's answer position under `cond`, through the shared prefix's KV
        cache where the steered positions allow it (the prefix is run and steered once); a
        condition of a group is computed with the others of its group."""
        if cond.group is not None:
            return cond.group.logits(self, batch, cond)
        seqs = [p.tokens for p in batch]
        n = self.shared_prefix(batch, cond)
        if n:
            steer = (cond.hooks, cond.where in ("prompt", "all"))
            with torch.no_grad():
                return suffix_logits(
                    self.model, self._prefix(batch, n, cond), n, [s[n:] for s in seqs], steer
                )
        return last_logits(self.model, seqs, cond.hooks, cond.prompt_masks(batch, max(map(len, seqs))))

    def keeps(self, prefix: tuple, cond: Condition) -> bool:
        """Whether `prefix` under `cond` is the prefix this measurer keeps (`_prefix` reuses it)."""
        return self.kept_prefix is not None and self.kept_prefix[0] == prefix and self.kept_prefix[1] is cond

    def _prefix(self, batch: list[RenderedPrompt], n: int, cond: Condition):
        """The KV cache of the batch's first `n` positions under `cond`: computed once and kept
        for the next batch of the same `ask` with the same prefix (a role's other items), which
        gets the very tensors the first one computed (the same numbers as computing it again)."""
        prefix = tuple(batch[0].tokens[:n])
        if self.keeps(prefix, cond):
            restore_layers(*self.kept_prefix[2:])
            return self.kept_prefix[2]
        pmask = cond.prompt_masks(batch[:1], len(batch[0].tokens))[:, :n]
        cache = prefix_kv(self.model, list(prefix), cond.hooks, pmask)
        self.kept_prefix = (prefix, cond, cache, cache_layers(cache))
        return cache


def common_prefix(seqs: list[list[int]]) -> int:
    """The length of the token prefix every sequence shares, at least one token left per row."""
    n = min(len(s) for s in seqs) - 1  # keep at least one suffix token per row
    first = seqs[0]
    for s in seqs[1:]:
        i = 0
        while i < n and s[i] == first[i]:
            i += 1
        n = i
    return n


def measure(
    measurer: Measurer,
    items: pd.DataFrame,
    roles: list[Role | None],
    conditions: list[Condition] | None = None,
    progress: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Ask every item to every role under every condition.

    Returns (items_long, values_wide): the per-item long table, and the study's wide table
    (`steer_dim`, `player_name`, one column per value = mean item score).
    """
    conditions = conditions or [Condition()]
    long_parts = []
    total = len(roles) * len(conditions)
    how = measurer.protocol or measurer.scoring
    with tqdm(total=total, desc=f"measure ({how})", disable=not progress) as bar:
        for cond in conditions:
            for role in roles:
                part = measurer.score_items(items, role, cond)
                part.insert(0, "player_name", role.name if role else None)
                part.insert(0, "steer_dim", cond.label)
                long_parts.append(part)
                bar.update()
    long = pd.concat(long_parts, ignore_index=True)
    return long, wide_table(long)


def scorer_agreement(a: pd.DataFrame, b: pd.DataFrame) -> float:
    """Fraction of items where two scorers' discrete answers agree (same rows, same order)."""
    return float((a["answer"].values == b["answer"].values).mean())
