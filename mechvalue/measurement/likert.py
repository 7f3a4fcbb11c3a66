"""Likert scorer: the PVQ's own format, "How much like you is this person?" on six points.

One forward pass per item; the score is the expected answer under the model's probabilities of
the six option tokens ("1".."6", renormalised over those six), turned into importance (6 = very
much like me) and centred to [-1, 1] so that it averages with the yes/no scorers' scores.
"""

from __future__ import annotations

import pandas as pd
import torch
from jaxtyping import Float
from torch import Tensor

from mechvalue.measurement.scorer import MeasurerView
from mechvalue.study.prompts import (
    TEMPLATES,
    HardPrompt,
    RenderedPrompt,
    bio_hint,
    check_form,
    tokenize,
    wrap,
)
from mechvalue.study.roles import Role

# The PVQ's answer labels in its own order (column 1 = "very much like me"), as in the human data.
LABELS = (
    "Very much like me",
    "Like me",
    "Somewhat like me",
    "A little like me",
    "Not like me",
    "Not like me at all",
)
QUESTION = "How much like you is this person?"
# The lead sentence per prompt form (mechvalue.study.prompts.FORMS); "swapped" numbers the options
# the other way round (1 = not like me at all). Each keeps " your values", the steered span.
LEADS = {
    "study": "Answer the Question according to your values.",
    "swapped": "Answer the Question according to your values.",
    "plain": "Consider your values and reply to the Question.",
    "reflect": "Say how much this person is like you, going by your values.",
}
ANSWER_PREFIX = "Answer: "  # digits follow a space token in SmolLM2's vocabulary (" 3" = " ", "3")


def numbering(form: str = "study") -> tuple[str, ...]:
    """The label of answer 1..6 under `form`."""
    return LABELS[::-1] if check_form(form) == "swapped" else LABELS


def importance_of_answer(form: str = "study") -> list[float]:
    """Importance (1 = not like me at all .. 6 = very much like me) of answers 1..6, as 7 - x for
    the PVQ's numbering, the same reversal the human scores use."""
    return (
        [float(k) for k in range(1, 7)] if check_form(form) == "swapped" else [7.0 - k for k in range(1, 7)]
    )


def instruction(role: Role | None, hard: HardPrompt | None = None, form: str = "study") -> str:
    scale = ", ".join(f"{k} = {label}" for k, label in enumerate(numbering(form), start=1))
    return (
        f"{LEADS[check_form(form)]}\n\n{bio_hint(role, hard)}Here we briefly describe a person. Read the "
        "description and think about how much this person is or is not like you. Answer with one "
        f"number from 1 to 6: {scale}.\n\n"
    )


def render_text(
    item: str,
    role: Role | None,
    fmt: str,
    tokenizer=None,
    hard: HardPrompt | None = None,
    form: str = "study",
) -> str:
    """The Likert prompt for one item (its first-person statement as the portrait), ending in
    "Answer: " so that the next token is the option digit."""
    person = f'Person: "{str(item).strip()}"\n'
    return wrap(fmt, tokenizer, instruction(role, hard, form), person, QUESTION, ANSWER_PREFIX)


def render(
    item: str, role: Role | None, fmt: str, tokenizer, hard: HardPrompt | None = None, form: str = "study"
) -> RenderedPrompt:
    return tokenize(
        render_text(item, role, fmt, tokenizer, hard, form), tokenizer, prepend_bos=fmt in TEMPLATES
    )


def option_token_ids(tokenizer) -> list[int]:
    """The single token of each digit "1".."6"."""
    ids = []
    for k in range(1, 7):
        enc = tokenizer.encode(str(k), add_special_tokens=False)
        if len(enc) != 1:
            raise ValueError(f"option {k} is not a single token ({enc}) for this tokenizer")
        ids.append(enc[0])
    return ids


def likert_expectation(
    logits: Float[Tensor, "batch vocab"], option_ids: list[int], values: list[float]
) -> tuple[Float[Tensor, "batch 6"], Float[Tensor, " batch"], Float[Tensor, " batch"]]:
    """(p over the six options renormalised, expected value sum_k p_k values_k, probability mass
    the full softmax puts on the six options)."""
    full = torch.softmax(logits.float(), -1)[:, option_ids]
    mass = full.sum(-1)
    p = torch.softmax(logits.float()[:, option_ids], -1)
    return p, p @ torch.tensor(values, dtype=p.dtype, device=p.device), mass


class Likert:
    name = "likert"
    description = "agreement x the expected six-point answer (6 = very much like me) centred to [-1, 1]"

    def prompts(self, m: MeasurerView, items: pd.DataFrame, role: Role | None, cond) -> list[RenderedPrompt]:
        hard = cond.hard or {}
        return [
            render(it, role, m.prompt_format, m.model.tokenizer, hard.get(v), m.form)
            for it, v in zip(items["item"], items["value"])
        ]

    def score(self, m: MeasurerView, batch: list[RenderedPrompt], cond) -> list[dict]:
        """p_1..p_6 (answer numbers as shown), `mass`, `importance` (1..6), `answer` (most likely
        importance), `raw` = importance centred to [-1, 1]."""
        ids, values = option_token_ids(m.model.tokenizer), importance_of_answer(m.form)
        p, expected, mass = likert_expectation(m.answer_logits(batch, cond), ids, values)
        rows = []
        for j in range(len(batch)):
            row = {f"p_{k + 1}": float(p[j, k]) for k in range(6)}
            importance = float(expected[j])
            answer = str(int(values[int(p[j].argmax())]))
            rows.append(
                row
                | {
                    "mass": float(mass[j]),
                    "importance": importance,
                    "answer": answer,
                    "raw": (importance - 3.5) / 2.5,
                }
            )
        return rows
