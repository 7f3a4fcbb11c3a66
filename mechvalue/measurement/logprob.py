"""The log-prob scorer: one forward pass, raw = p(yes) - p(no) at the answer position."""

from __future__ import annotations

import pandas as pd
import torch
from jaxtyping import Float
from torch import Tensor

from mechvalue.measurement.scorer import MeasurerView
from mechvalue.study.prompts import RenderedPrompt, render
from mechvalue.study.roles import Role


def yes_no_probs(
    logits: Float[Tensor, "batch vocab"], answer_ids: dict[str, list[int]]
) -> tuple[Float[Tensor, " batch"], Float[Tensor, " batch"]]:
    """p(yes) and p(no) from answer-position logits, each summed over its token variants."""
    probs = torch.softmax(logits.float(), -1)
    return probs[:, answer_ids["yes"]].sum(-1), probs[:, answer_ids["no"]].sum(-1)


def answer_token_ids(tokenizer) -> dict[str, list[int]]:
    """Single-token case and leading-space variants of yes / no."""
    out: dict[str, list[int]] = {}
    for key in ("yes", "no"):
        ids = set()
        for v in {key, key.capitalize(), key.upper()}:
            for s in (v, " " + v):
                enc = tokenizer.encode(s, add_special_tokens=False)
                if len(enc) == 1:
                    ids.add(enc[0])
        out[key] = sorted(ids)
    return out


def yes_no_prompts(
    m: MeasurerView, items: pd.DataFrame, role: Role | None, cond, prefix: str
) -> list[RenderedPrompt]:
    """The study's yes/no prompt for each item, ending in `prefix`."""
    tok = m.model.tokenizer
    hard = cond.hard or {}
    return [
        render(q, role, m.prompt_format, tok, hard.get(v), prefix, m.form)
        for q, v in zip(items["question"], items["value"])
    ]


class LogProb:
    name = "logprob"
    description = "agreement x (p(yes) - p(no)) at the answer position, after 'Answer:'"

    def prompts(self, m: MeasurerView, items: pd.DataFrame, role: Role | None, cond) -> list[RenderedPrompt]:
        return yes_no_prompts(m, items, role, cond, "Answer:")

    def score(self, m: MeasurerView, batch: list[RenderedPrompt], cond) -> list[dict]:
        logits = m.answer_logits(batch, cond)
        p_yes, p_no = yes_no_probs(logits, m.answer_ids)
        yes, no = set(m.answer_ids["yes"]), set(m.answer_ids["no"])
        return [
            {
                "p_yes": float(py),
                "p_no": float(pn),
                "answer": "yes" if t in yes else "no" if t in no else "unsure",
                "raw": float(py - pn),
            }
            for py, pn, t in zip(p_yes, p_no, logits.argmax(-1).tolist())
        ]
