"""What a scorer is: how an item's prompt ends and how the model's answer becomes a score.

A scorer is one object with the `Scorer` protocol, registered in `mechvalue.measurement.scorers.SCORERS`;
the `Measurer` runs whichever it is given and never names one. It sees the measurer through
`MeasurerView`: the model, the prompt settings, the batching and the shared-prefix logits.
"""

from __future__ import annotations

from typing import Protocol

import pandas as pd
from jaxtyping import Float
from torch import Tensor

from mechvalue.study.prompts import RenderedPrompt
from mechvalue.study.roles import Role


class MeasurerView(Protocol):
    """What a scorer may use of the `Measurer` running it."""

    model: object  # the TransformerBridge
    prompt_format: str
    form: str
    max_new_tokens: int
    decode_batch_size: int
    stop_ids: set[int]
    answer_ids: dict[str, list[int]]  # yes / no token variants (`logprob.answer_token_ids`)

    def answer_logits(self, batch: list[RenderedPrompt], cond) -> Float[Tensor, "batch vocab"]: ...

    def shared_prefix(self, batch: list[RenderedPrompt], cond) -> int:
        """Leading positions the batch's prompts share that may run once (0: full passes)."""
        ...


class Scorer(Protocol):
    """One way of asking an item and scoring the answer. A scorer that generates its answers sets
    `decodes = True` (optional): the measurer then batches it by `decode_batch_size`."""

    name: str
    description: str  # how `raw` is computed, recorded with the results

    def prompts(self, m: MeasurerView, items: pd.DataFrame, role: Role | None, cond) -> list[RenderedPrompt]:
        """One rendered prompt per item row (columns `question`, `item`, `value`), `cond.hard` applied."""
        ...

    def score(self, m: MeasurerView, batch: list[RenderedPrompt], cond) -> list[dict]:
        """One row per prompt: at least `answer` and `raw` (in [-1, 1], before the item's agreement)."""
        ...
