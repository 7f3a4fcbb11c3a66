"""Left-padded batches of token lists, with the masks TransformerLens needs."""

from __future__ import annotations

import torch
from jaxtyping import Bool, Int
from torch import Tensor

from mechvalue.lm.positions import StudyWhere


def left_pad(
    seqs: list[list[int]], pad_id: int, device: str | torch.device = "cpu"
) -> tuple[Int[Tensor, "batch pos"], Int[Tensor, "batch pos"]]:
    """Stack token lists, padding on the left; return (tokens, attention_mask)."""
    n = max(len(s) for s in seqs)
    tokens = torch.full((len(seqs), n), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), n), dtype=torch.long)
    for i, s in enumerate(seqs):
        tokens[i, n - len(s) :] = torch.tensor(s, dtype=torch.long)
        mask[i, n - len(s) :] = 1
    return tokens.to(device), mask.to(device)


def span_mask(spans: list[tuple[int, int]], lengths: list[int], width: int) -> Bool[Tensor, "batch pos"]:
    """Mark each row's [start, end) span, given unpadded lengths, in a left-padded batch."""
    mask = torch.zeros((len(spans), width), dtype=torch.bool)
    for i, ((a, b), n) in enumerate(zip(spans, lengths)):
        pad = width - n
        mask[i, pad + a : pad + b] = True
    return mask


def where_mask(
    spans: list[tuple[int, int]], lengths: list[int], where: StudyWhere, width: int
) -> Bool[Tensor, "batch pos"]:
    """Prompt positions steered under `where`: the span, every prompt token (prompt, all), or none
    (generated: only the decoded tokens are edited)."""
    if where == "span":
        return span_mask(spans, lengths, width)
    if where in ("prompt", "all"):
        return span_mask([(0, n) for n in lengths], lengths, width)
    return torch.zeros((len(spans), width), dtype=torch.bool)


def chunks(n: int, size: int):
    for i in range(0, n, size):
        yield slice(i, min(i + size, n))
