"""How many tokens ran through the model: counted at one place, the forward pre-hook on the HF model
under every bridge (`mechvalue.lm.compat.install`), so every caller
(scoring, generation, activation caching, attribution, SAE training, steering) is counted alike.

A forward call is a decode step when it runs one new position per row on top of a KV cache that
already holds positions; its rows are `generated` tokens. Every other call is a prompt pass, and
its batch x positions are `prompt` tokens, padding included (a padded position costs the same
matmuls as a real one, so this is the count the machine's limit is measured against);
`prompt_real` counts the unpadded ones (attention mask 1). Positions only: a pass stopped early
(`stop_at_layer`) or followed by a backward pass is counted once, as a full forward.

`COUNT` is process-wide; `take()` returns what was counted since the last `take()` and starts
again at zero (the pipeline takes it once per stage).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass


@dataclass
class TokenCount:
    """Tokens run through the model; see the module docstring for what each counts."""

    prompt: int = 0
    prompt_real: int = 0
    generated: int = 0
    forwards: int = 0

    def add(self, other: TokenCount) -> TokenCount:
        return TokenCount(**{k: v + getattr(other, k) for k, v in asdict(self).items()})

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


COUNT = TokenCount()


def take() -> TokenCount:
    """What was counted since the last `take()`; the count starts again at zero."""
    global COUNT
    out, COUNT = COUNT, TokenCount()
    return out


@contextmanager
def uncounted() -> Iterator[None]:
    """Model work that is no stage's (the load's self-check, the plan's calibration): not counted."""
    global COUNT
    kept, COUNT = COUNT, TokenCount()
    try:
        yield
    finally:
        COUNT = kept


def record(args: tuple, kwargs: dict, past: int) -> None:
    """Add one forward call's positions to `COUNT` (its arguments, and the positions its KV cache
    already holds); called by the HF model's forward pre-hook (`mechvalue.lm.compat`)."""
    ids = args[0] if args else kwargs.get("input_ids")
    if ids is None:
        ids = kwargs.get("inputs_embeds")
    if ids is None or ids.ndim < 2:
        return
    rows, n = int(ids.shape[0]), int(ids.shape[1])
    COUNT.forwards += 1
    if n == 1 and past > 0:
        COUNT.generated += rows
        return
    COUNT.prompt += rows * n
    mask = kwargs.get("attention_mask")
    COUNT.prompt_real += int(mask[:, -n:].sum()) if mask is not None and mask.ndim == 2 else rows * n
