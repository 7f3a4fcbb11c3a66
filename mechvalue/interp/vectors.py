"""Steering vectors beside SAE features: DiffMean and CAA residual directions, built from train
items only, and a hook that adds a residual direction at chosen positions.

- DiffMean: mean residual over prompts carrying the hard prompt "inclined to V" minus the mean over
  "disinclined to V", over the positions that will be steered (`where`).
- CAA (Rimsky et al. 2024): residual at the answer token for the answer that agrees with V minus the
  one that disagrees (" yes" / " no" after "Answer:"), averaged over items.

Strength unit for vectors ("resid-norm units"): the mean L2 norm of the residual at the hook over
the steered positions of the (unsteered) train prompts, position 0 (the attention sink, ~150x
the usual norm in SmolLM2) left out. Strength 1 adds a vector as long as a typical residual.
"""

from __future__ import annotations

import pandas as pd
import torch
from jaxtyping import Float
from torch import Tensor

from mechvalue.errors import MechValueError
from mechvalue.lm.batching import chunks, left_pad
from mechvalue.lm.hooks import PositionedHook, Positions, check_hook_names, stop_layer
from mechvalue.lm.models import as_bridge, model_device
from mechvalue.lm.positions import StudyWhere
from mechvalue.lm.positions import check_where as check_where_in
from mechvalue.study.inventory import value_definitions
from mechvalue.study.prompts import HardPrompt, RenderedPrompt, render
from mechvalue.study.roles import Role


def check_where(where: str) -> None:
    check_where_in(where, StudyWhere)


def steered_positions(p: RenderedPrompt, where: StudyWhere) -> list[int]:
    """Prompt positions a `where` hook edits: the span, every token (prompt, all), or for
    "generated" the last prompt token (its residual produces the first generated token)."""
    n = len(p.tokens)
    if where == "span":
        return list(range(*p.span))
    if where in ("prompt", "all"):
        return list(range(n))
    return [n - 1]


@torch.no_grad()
def residual_rows(
    model, hook: str, seqs: list[list[int]], positions: list[list[int]], batch_size: int = 16
) -> Float[Tensor, "rows d_model"]:
    """Residual at `hook` for each sequence's `positions`, rows in order (left-padded batches with
    positions from the attention mask, the forward pass stopped after the hook's layer)."""
    bridge = as_bridge(model)
    check_hook_names(bridge, [hook])
    stop, pad, out = stop_layer([hook], bridge.cfg.n_layers), bridge.tokenizer.pad_token_id or 0, []
    for sl in chunks(len(seqs), batch_size):
        toks, attn = left_pad(seqs[sl], pad, model_device(bridge))
        got = {}
        bridge.run_with_hooks(
            toks,
            attention_mask=attn,
            position_ids=(attn.cumsum(-1) - 1).clamp(min=0),
            stop_at_layer=stop,
            fwd_hooks=[(hook, lambda t, hook: got.setdefault("x", t))],
        )
        w = toks.shape[1]
        for b, (s, pos) in enumerate(zip(seqs[sl], positions[sl])):
            out.append(got["x"][b, [w - len(s) + i for i in pos]].float().cpu())
    return torch.cat(out)


def definition(value: str) -> str:
    """The shipped definition of a value (the hard prompt's "which means ..."), else its name."""
    return value_definitions().get(value, value.lower())


def hard_prompted(
    train: pd.DataFrame, value: str, direction: int, roles: list[Role | None], prompt_format: str, tokenizer
) -> list[RenderedPrompt]:
    """Value `value`'s train items asked to every role with the hard prompt in `direction`."""
    hp = HardPrompt(value, definition(value), direction)
    qs = train.loc[train["value"] == value, "question"]
    return [render(q, r, prompt_format, tokenizer, hp, "Answer:") for r in roles for q in qs]


def _check_value(train: pd.DataFrame, value: str) -> None:
    if not (train["value"] == value).any():
        raise MechValueError(f"value {value!r} has no train items (column 'value')")


def diffmean_vector(
    model,
    train: pd.DataFrame,
    value: str,
    hook: str,
    roles: list[Role | None] = (None,),
    where: StudyWhere = "all",
    prompt_format: str = "chat",
) -> Float[Tensor, " d_model"]:
    """DiffMean for `value` at `hook`: mean residual (over prompts and steered positions) with
    "inclined to V" minus with "disinclined to V", on `value`'s train items x `roles`.

    At `where="span"` it is zero: " your values" precedes the hard prompt, and causal attention
    makes the residuals there identical; that raises (steer at prompt/all)."""
    check_where(where)
    _check_value(train, value)
    means = []
    for d in (1, -1):
        ps = hard_prompted(train, value, d, list(roles), prompt_format, model.tokenizer)
        rows = residual_rows(model, hook, [p.tokens for p in ps], [steered_positions(p, where) for p in ps])
        means.append(rows.mean(0))
    vec = means[0] - means[1]
    if float(vec.norm()) <= 1e-6 * float(means[0].norm()):
        raise MechValueError(
            f"DiffMean for {value!r} at where={where!r} is zero: the hard prompt comes after "
            "the steered positions; use where='prompt' or 'all'"
        )
    return vec


def answer_tokens(tokenizer) -> dict[int, int]:
    """Agreement sign -> the answer token after "Answer:" (" yes" for +1, " no" for -1)."""
    ids = {}
    for sign, word in ((1, " yes"), (-1, " no")):
        enc = tokenizer.encode(word, add_special_tokens=False)
        if len(enc) != 1:
            raise MechValueError(f"{word!r} is {len(enc)} tokens for this tokenizer; CAA needs one")
        ids[sign] = enc[0]
    return ids


def caa_prompts(
    train: pd.DataFrame, value: str, roles: list[Role | None], prompt_format: str, tokenizer
) -> tuple[list[list[int]], list[list[int]]]:
    """(agreeing, disagreeing) token lists: each train item of `value` for each role, ending in
    "Answer:" + the answer agreeing with V (yes if the item's agreement is +1) or not."""
    ans = answer_tokens(tokenizer)
    sub = train[train["value"] == value]
    agree, disagree = [], []
    for r in roles:
        for q, a in zip(sub["question"], sub["agreement"]):
            t = render(q, r, prompt_format, tokenizer, None, "Answer:").tokens
            agree.append(t + [ans[int(a)]])
            disagree.append(t + [ans[-int(a)]])
    return agree, disagree


def caa_vector(
    model,
    train: pd.DataFrame,
    value: str,
    hook: str,
    roles: list[Role | None] = (None,),
    prompt_format: str = "chat",
    batch_size: int = 16,
) -> Float[Tensor, " d_model"]:
    """CAA for `value` at `hook`: mean residual at the answer token for the agreeing answer minus
    the disagreeing one, over `value`'s train items x `roles`."""
    _check_value(train, value)
    agree, disagree = caa_prompts(train, value, list(roles), prompt_format, model.tokenizer)
    last = lambda seqs: [[len(s) - 1] for s in seqs]  # noqa: E731
    a = residual_rows(model, hook, agree, last(agree), batch_size).mean(0)
    return a - residual_rows(model, hook, disagree, last(disagree), batch_size).mean(0)


def residual_norm(
    model, hook: str, prompts: list[RenderedPrompt], where: StudyWhere = "all", batch_size: int = 16
) -> float:
    """The strength unit: mean L2 norm of the residual at `hook` over the steered positions of
    unsteered `prompts`, position 0 (attention sink) left out."""
    check_where(where)
    pos = [[i for i in steered_positions(p, where) if i > 0] for p in prompts]
    return float(residual_rows(model, hook, [p.tokens for p in prompts], pos, batch_size).norm(dim=-1).mean())


def steering_vector(
    direction: Float[Tensor, " d_model"], strength: float, unit: float
) -> Float[Tensor, " d_model"]:
    """`strength` x `unit` (the residual norm) along `direction` (normalised)."""
    n = float(direction.norm())
    if n == 0:
        raise MechValueError("steering direction is the zero vector")
    return direction * (strength * unit / n)


class VectorAddHook(PositionedHook):
    """Adds a fixed residual-stream vector at fixed positions (see `mechvalue.lm.hooks`); a zero
    vector leaves every activation bit for bit as it was (x + 0 == x). A [rows, d_model] tensor is
    one vector per batch row (per-request steering; a zero row: that row unsteered)."""

    def __init__(
        self, vector: Float[Tensor, " d_model"] | Float[Tensor, "rows d_model"], positions: Positions = "all"
    ):
        super().__init__(positions)
        if vector.dim() not in (1, 2) or not len(vector):
            raise MechValueError(
                f"steering vector of shape {tuple(vector.shape)}: expected [d_model] or [rows, d_model]"
            )
        self.vec = vector.detach()
        self.per_row = len(vector) if vector.dim() == 2 else None

    def edit(self, rows: Float[Tensor, "n d"], batch_index: Tensor | None = None) -> Float[Tensor, "n d"]:
        vec = self.vec.to(rows.device, rows.dtype)
        return rows + (vec if batch_index is None else vec[batch_index])


def vector_hook(
    direction: Float[Tensor, " d_model"], strength: float, unit: float, positions: Positions = "all"
) -> VectorAddHook:
    """Hook adding `strength` residual-norm units (`unit`) along `direction` at `positions`."""
    return VectorAddHook(steering_vector(direction, strength, unit), positions)
