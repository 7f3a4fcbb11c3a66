"""Value measurement: ask every item to every role, score answers, average per value.

Two scorers share items and prompts:
- `generate`: the study's protocol (greedy decoding, then its parse rule);
- `logprob`: one forward pass; score = agreement * (p(yes) - p(no)) at the answer position.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, get_args

import pandas as pd
import torch
from jaxtyping import Bool, Float
from torch import Tensor
from tqdm.auto import tqdm

from mechvalue.errors import MechValueError
from mechvalue.lm.batching import StudyWhere, chunks, where_mask
from mechvalue.lm.generation import greedy_generate, last_logits, prefix_last_logits
from mechvalue.lm.hooks import PositionedHook
from mechvalue.lm.models import as_bridge, check_prompt_format
from mechvalue.study.prompts import HardPrompt, RenderedPrompt, render
from mechvalue.study.roles import Role
from mechvalue.study.schema import item_table, wide_table


def parse_answer(text: str) -> str:
    """The study's rule: the text or the part after the last "\\nanswer:" starts with
    yes/sure -> yes, no -> no, anything else -> unsure."""
    t = text.lower()
    tail = t.split("\nanswer:")[-1].strip()
    if t.startswith(("yes", "sure")) or tail.startswith(("yes", "sure")):
        return "yes"
    if t.startswith("no") or tail.startswith("no"):
        return "no"
    return "unsure"


def yes_no_probs(
    logits: Float[Tensor, "batch vocab"], answer_ids: dict[str, list[int]]
) -> tuple[Float[Tensor, " batch"], Float[Tensor, " batch"]]:
    """p(yes) and p(no) from answer-position logits, each summed over its token variants."""
    probs = torch.softmax(logits.float(), -1)
    return probs[:, answer_ids["yes"]].sum(-1), probs[:, answer_ids["no"]].sum(-1)


def answer_token_ids(tokenizer) -> dict[str, list[int]]:
    """Single-token case and leading-space variants of yes / no."""
    out: dict[str, list[int]] = {}
    for key, words in (("yes", ("yes",)), ("no", ("no",))):
        ids = set()
        for w in words:
            for v in {w, w.capitalize(), w.upper()}:
                for s in (v, " " + v):
                    enc = tokenizer.encode(s, add_special_tokens=False)
                    if len(enc) == 1:
                        ids.add(enc[0])
        out[key] = sorted(ids)
    return out


SIGN = {"yes": 1, "no": -1, "unsure": 0}
Scoring = Literal["logprob", "generate", "likert"]
SCORINGS: tuple[str, ...] = get_args(Scoring)


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

    def __post_init__(self):
        if self.where not in get_args(StudyWhere):
            raise MechValueError(f"where={self.where!r}: expected one of {', '.join(get_args(StudyWhere))}")

    def describe(self) -> dict:
        return {"label": self.label, **self.info}

    def prompt_masks(self, batch: list[RenderedPrompt], width: int) -> Bool[Tensor, "batch pos"]:
        return where_mask([p.span for p in batch], [len(p.tokens) for p in batch], self.where, width)


@dataclass
class Measurer:
    model: object
    prompt_format: str
    scoring: Scoring = "logprob"
    batch_size: int = 16
    max_new_tokens: int = 100
    prefix_cache: bool = True
    form: str = "study"  # the instrument's wording (mechvalue.study.prompts.FORMS), for robustness checks

    def __post_init__(self):
        if self.scoring not in SCORINGS:
            raise MechValueError(f"scoring={self.scoring!r}: expected one of {', '.join(SCORINGS)}")
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
        prefix = "Answer:" if self.scoring == "logprob" else "Thought:"
        tok = self.model.tokenizer
        return [
            render(q, role, self.prompt_format, tok, (cond.hard or {}).get(v), prefix, self.form)
            for q, v in zip(items["question"], items["value"])
        ]

    def score_items(
        self, items: pd.DataFrame, role: Role | None, cond: Condition | None = None
    ) -> pd.DataFrame:
        """Per-item answers and scores for one role under one condition."""
        cond = cond or Condition()
        if self.scoring == "likert":  # the PVQ's six-point format: mechvalue.measure.likert
            from mechvalue.measure.likert import score_items

            return score_items(self, items, role, cond)
        prompts = self.prompts(items, role, cond)
        rows = [None] * len(prompts)
        for idx in self.batches(items, cond):
            batch = [prompts[i] for i in idx]
            res = self._logprob(batch, cond) if self.scoring == "logprob" else self._generate(batch, cond)
            for i, r in zip(idx, res):
                rows[i] = r
        return item_table(items, rows)

    def batches(self, items: pd.DataFrame, cond: Condition) -> list[list[int]]:
        """Item positions per batch; with hard prompts one value per batch, so that the whole
        prompt up to the question is a prefix the batch shares."""
        groups = [list(range(len(items)))]
        if cond.hard:
            groups = list(
                pd.Series(range(len(items))).groupby(items["value"].to_numpy(), sort=False).apply(list)
            )
        return [g[sl] for g in groups for sl in chunks(len(g), self.batch_size)]

    def answer_logits(self, batch: list[RenderedPrompt], cond: Condition) -> Float[Tensor, "batch vocab"]:
        """Logits at each prompt's answer position under `cond`, through the shared prefix's KV
        cache where the steered positions allow it (the prefix is run and steered once)."""
        seqs = [p.tokens for p in batch]
        n = _common_prefix(seqs) if self.prefix_cache and len(seqs) > 1 else 0
        span = batch[0].span
        aware = all(isinstance(h, PositionedHook) for _, h in cond.hooks)
        in_prefix = cond.where != "span" or (all(p.span == span for p in batch) and span[1] <= n)
        if n and aware and in_prefix:
            pmask = cond.prompt_masks(batch[:1], len(seqs[0]))[:, :n]
            return prefix_last_logits(self.model, seqs[0][:n], [s[n:] for s in seqs], cond.hooks, pmask,
                                      steer_suffix=cond.where in ("prompt", "all"))  # fmt: skip
        return last_logits(self.model, seqs, cond.hooks, cond.prompt_masks(batch, max(map(len, seqs))))

    def _logprob(self, batch: list[RenderedPrompt], cond: Condition) -> list[dict]:
        logits = self.answer_logits(batch, cond)
        p_yes, p_no = yes_no_probs(logits, self.answer_ids)
        top = logits.argmax(-1).tolist()
        yes, no = set(self.answer_ids["yes"]), set(self.answer_ids["no"])
        return [
            {
                "p_yes": float(py),
                "p_no": float(pn),
                "answer": "yes" if t in yes else "no" if t in no else "unsure",
                "raw": float(py - pn),
            }
            for py, pn, t in zip(p_yes, p_no, top)
        ]

    def _generate(self, batch: list[RenderedPrompt], cond: Condition) -> list[dict]:
        seqs = [p.tokens for p in batch]
        masks = cond.prompt_masks(batch, max(map(len, seqs)))
        steer_new = cond.where in ("generated", "all")
        new = greedy_generate(
            self.model, seqs, self.max_new_tokens, self.stop_ids, cond.hooks, masks, steer_new
        )
        texts = self.model.tokenizer.batch_decode(new, skip_special_tokens=True)
        rows = []
        for t in texts:
            a = parse_answer(t)
            rows.append({"completion": t, "answer": a, "raw": float(SIGN[a])})
        return rows


def _common_prefix(seqs: list[list[int]]) -> int:
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
    with tqdm(total=total, desc=f"measure ({measurer.scoring})", disable=not progress) as bar:
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
