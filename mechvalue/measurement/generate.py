"""The study's scorer: greedy decoding after 'Thought:', then its parse rule (yes 1, no -1, else 0)."""

from __future__ import annotations

import pandas as pd

from mechvalue.lm.generation import Edits, greedy_generate
from mechvalue.measurement.logprob import yes_no_prompts
from mechvalue.measurement.scorer import MeasurerView
from mechvalue.study.prompts import RenderedPrompt
from mechvalue.study.roles import Role

SIGN = {"yes": 1, "no": -1, "unsure": 0}


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


class Generate:
    name = "generate"
    description = (
        "agreement x the parsed answer of a greedy completion after 'Thought:' (yes 1, no -1, else 0)"
    )

    def prompts(self, m: MeasurerView, items: pd.DataFrame, role: Role | None, cond) -> list[RenderedPrompt]:
        return yes_no_prompts(m, items, role, cond, "Thought:")

    def score(self, m: MeasurerView, batch: list[RenderedPrompt], cond) -> list[dict]:
        seqs = [p.tokens for p in batch]
        masks = cond.prompt_masks(batch, max(map(len, seqs)))
        edits = Edits(cond.hooks, masks, generated=cond.where in ("generated", "all"))
        new = greedy_generate(m.model, seqs, m.max_new_tokens, m.stop_ids, edits)
        texts = m.model.tokenizer.batch_decode(new, skip_special_tokens=True)
        return [
            {"completion": t, "answer": parse_answer(t), "raw": float(SIGN[parse_answer(t)])} for t in texts
        ]
