"""The study's scorer: greedy decoding after 'Thought:', then its parse rule (yes 1, no -1, else 0).

Decoding stops early for a row only where the rule's answer can no longer change (`Decided`):
the answer then equals the one parsed from the whole completion, proven in
tests/measurement/test_generate_stop.py for token sequences of any content.
"""

from __future__ import annotations

from functools import lru_cache

import pandas as pd

from mechvalue.lm.generation import Edits, greedy_generate
from mechvalue.measurement.logprob import yes_no_prompts
from mechvalue.measurement.scorer import MeasurerView
from mechvalue.study.prompts import RenderedPrompt
from mechvalue.study.roles import Role

SIGN = {"yes": 1, "no": -1, "unsure": 0}
MARKER = "\nanswer:"
WORDS = ("yes", "sure", "no")


def parse_answer(text: str) -> str:
    """The study's rule: the text or the part after the last "\\nanswer:" starts with
    yes/sure -> yes, no -> no, anything else -> unsure."""
    t = text.lower()
    tail = t.split(MARKER)[-1].strip()
    if t.startswith(("yes", "sure")) or tail.startswith(("yes", "sure")):
        return "yes"
    if t.startswith("no") or tail.startswith("no"):
        return "no"
    return "unsure"


def _settled(start: str) -> bool:
    """No text appended to `start` changes which of yes/sure/no it starts with."""
    return all(start.startswith(w) or not w.startswith(start) for w in WORDS)


def _marker_state(text: str) -> int:
    """How much of `MARKER` the end of (lower-cased) `text` has spelled: the longest suffix that
    is a proper prefix of it."""
    return next(n for n in range(len(MARKER) - 1, -1, -1) if text.endswith(MARKER[:n]))


def _step(state: int, text: str) -> int:
    """`_marker_state` after `text` is appended, or len(MARKER) once it completes a new marker
    (a new one overlaps `text`: a longer suffix than MARKER[:state] is no prefix of it)."""
    seen = MARKER[:state] + text
    return len(MARKER) if MARKER in seen else _marker_state(seen)


@lru_cache(maxsize=4)
def _tokens_to_marker(tokenizer) -> tuple[int, ...]:
    """Per `_marker_state`: the fewest tokens of the vocabulary that complete a new "\\nanswer:".

    A token's text is its own decoding, lower-cased: the marker is ASCII, bytes of a character
    split across tokens decode to non-ASCII characters either way (no non-ASCII character
    lower-cases to a marker character), and special tokens decode to nothing."""
    ids = [[i] for i in range(len(tokenizer))]
    texts = {t.lower() for t in tokenizer.batch_decode(ids, skip_special_tokens=True)}
    end = len(MARKER)
    nxt = [{_step(s, t) for t in texts} for s in range(end)]
    dist = [len(tokenizer)] * end + [0]
    for _ in range(end):
        dist = [min(1 + dist[n] for n in nxt[s]) for s in range(end)] + [0]
    return tuple(dist[:end])


class Decided:
    """The stopping rule of `parse_answer` for one tokenizer: a row is done once its answer is
    settled whatever it decodes in the tokens it has left. Settled means the text starts with
    yes/sure (the answer is yes for any later text), or the text's start and the part after the
    last "\\nanswer:" are each settled (`_settled`) and fewer tokens are left than any spelling
    of a new "\\nanswer:" needs (every other continuation leaves the parsed parts as they are)."""

    def __init__(self, tokenizer):
        self.tokenizer, self.needed = tokenizer, _tokens_to_marker(tokenizer)

    def text(self, text: str, left: int) -> bool:
        t = text.lower()
        if t.startswith(("yes", "sure")):
            return True
        tail = t.split(MARKER)[-1].lstrip()
        return bool(tail) and _settled(t[:4]) and _settled(tail[:4]) and left < self.needed[_marker_state(t)]

    def __call__(self, tokens: list[int], left: int) -> bool:
        return self.text(self.tokenizer.decode(tokens, skip_special_tokens=True), left)


class Generate:
    name = "generate"
    decodes = True
    description = (
        "agreement x the parsed answer of a greedy completion after 'Thought:' (yes 1, no -1, else 0)"
    )

    def __init__(self, early_stop: bool = True):
        """`early_stop`: end each row once its answer is settled (`Decided`; the same answers, the
        completion recorded up to there); False decodes every row to a stop token or
        `max_new_tokens`, the study's own path."""
        self.early_stop = early_stop

    def prompts(self, m: MeasurerView, items: pd.DataFrame, role: Role | None, cond) -> list[RenderedPrompt]:
        return yes_no_prompts(m, items, role, cond, "Thought:")

    def score(self, m: MeasurerView, batch: list[RenderedPrompt], cond) -> list[dict]:
        seqs = [p.tokens for p in batch]
        masks = cond.prompt_masks(batch, max(map(len, seqs)))
        edits = Edits(cond.hooks, masks, cond.where in ("generated", "all"), m.shared_prefix(batch, cond))
        stop = Decided(m.model.tokenizer) if self.early_stop else None
        new = greedy_generate(m.model, seqs, m.max_new_tokens, m.stop_ids, edits, stop=stop)
        texts = m.model.tokenizer.batch_decode(new, skip_special_tokens=True)
        return [
            {"completion": t, "answer": parse_answer(t), "raw": float(SIGN[parse_answer(t)])} for t in texts
        ]
