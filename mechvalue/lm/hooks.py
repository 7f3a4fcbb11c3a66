"""Hooks whose positions are fixed when they are made, as plain TransformerLens `(activation, hook)`
functions: nothing outside a hook changes where it edits.

Positions:
- "all": every position of every forward call (the default);
- "prompt": every position of multi-token calls (a prompt pass), none of one-token decode steps;
- "generated": only one-token decode steps (KV-cached generation, as `generate` runs by default);
- (start, end): that span of the prompt pass, e.g. a prompt's " your values" tokens;
- a boolean mask [batch, pos] (or [pos]): those positions of a call of exactly that shape;
  one-token decode steps are left alone, any other shape raises.
`hook.at(positions)` is the same edit (its prepared operands shared) at other positions: the
decoder and the measurer build one such hook per forward call.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from typing import Literal, get_args

import torch
from jaxtyping import Bool, Float
from torch import Tensor

from mechvalue.errors import MechValueError

Where = Literal["all", "prompt", "generated"]
WHERE: tuple[str, ...] = get_args(Where)
Positions = Where | tuple[int, int] | Bool[Tensor, "batch pos"] | Bool[Tensor, " pos"]
HookList = list[tuple[str, Callable]]


def check_positions(positions) -> Positions:
    """Validate positions once, where they enter; a selection of no position raises."""
    if isinstance(positions, str):
        if positions not in WHERE:
            raise MechValueError(f"positions {positions!r}: expected one of {', '.join(WHERE)}, "
                                 "a (start, end) span or a boolean mask")  # fmt: skip
        return positions
    if isinstance(positions, tuple):
        if (
            len(positions) != 2
            or not all(isinstance(i, int) for i in positions)
            or not 0 <= positions[0] < positions[1]
        ):
            raise MechValueError(f"span {positions!r}: expected (start, end) with 0 <= start < end")
        return positions
    if isinstance(positions, Tensor) and positions.dtype == torch.bool and positions.dim() in (1, 2):
        if not bool(positions.any()):
            raise MechValueError("the position mask selects no position: the hook would do nothing")
        return positions if positions.dim() == 2 else positions[None]
    raise MechValueError(f"positions of type {type(positions).__name__}: expected one of {', '.join(WHERE)}, "
                         "a (start, end) span or a boolean mask")  # fmt: skip


class PositionedHook:
    """A residual-stream edit applied at fixed positions; subclasses define `edit(rows)`."""

    def __init__(self, positions: Positions = "all"):
        self.positions = check_positions(positions)

    def edit(self, rows: Float[Tensor, "n d"]) -> Float[Tensor, "n d"]:
        raise NotImplementedError

    def at(self, positions: Positions) -> PositionedHook:
        """The same edit at other positions (a shallow copy: prepared operands are shared)."""
        other = copy.copy(self)
        other.positions = check_positions(positions)
        return other

    def __call__(self, act: Float[Tensor, "batch pos ..."], hook) -> Float[Tensor, "batch pos ..."]:
        b, p = act.shape[:2]
        pos = self.positions
        if isinstance(pos, str):
            if pos == "all" or (pos == "prompt") == (p > 1):
                return self.edit(act.reshape(-1, act.shape[-1])).reshape(act.shape)
            return act
        if isinstance(pos, tuple):
            if p == 1 and pos != (0, 1):
                return act  # a decode step: the span is in the prompt
            if pos[1] > p:
                raise MechValueError(f"span {pos} is beyond this call's {p} positions")
            out = act.clone()
            out[:, pos[0] : pos[1]] = self.edit(act[:, pos[0] : pos[1]].reshape(-1, act.shape[-1])).reshape(
                b, pos[1] - pos[0], *act.shape[2:]
            )
            return out
        if pos.shape[1] != p or pos.shape[0] not in (1, b):
            if p == 1:
                return act  # a decode step after the masked prompt
            raise MechValueError(
                f"{hook.name if hook is not None else 'hook'}: positions were fixed for [batch, pos] = "
                f"{list(pos.shape)}, the activation has {[b, p]}"
            )
        m = pos.to(act.device).expand(b, p)
        out = act.clone()
        out[m] = self.edit(act[m])
        return out


def per_call(hooks: HookList, positions: Positions | None) -> HookList:
    """Hooks for one forward call: positioned hooks moved to `positions` (dropped where that is
    None or selects nothing), plain functions kept as they are."""
    out = []
    for name, h in hooks:
        if isinstance(h, PositionedHook):
            if positions is None or (isinstance(positions, Tensor) and not bool(positions.any())):
                continue
            out.append((name, h.at(positions)))
        else:
            out.append((name, h))
    return out


def hook_points(bridge, names: Iterable[str]) -> list:
    """The HookPoints of `names` (aliases included), from a table built once per bridge: the
    bridge's `hook_dict` walks every module (~0.1-0.5 s for a 30-layer model), too slow per call.
    An unknown name raises instead of being skipped silently, as TransformerLens would."""
    table = bridge.__dict__.get("_mechvalue_hook_points")
    out = []
    for n in names:
        if table is None or n not in table:
            table = dict(bridge.hook_dict)
            bridge.__dict__["_mechvalue_hook_points"] = table
        if n not in table:
            import difflib

            near = difflib.get_close_matches(n, list(table), n=3, cutoff=0.5)
            raise MechValueError(f"unknown hook {n!r}; closest valid names: {near}")
        out.append(table[n])
    return out


def check_hook_names(bridge, names: Iterable[str]) -> None:
    """Raise on a hook name the model does not have (TransformerLens skips those silently)."""
    hook_points(bridge, names)


@contextmanager
def installed(bridge, hooks: HookList):
    """Forward hooks for a block, as `bridge.hooks(fwd_hooks=hooks)` adds them (one context level
    above the caller's, so hooks installed outside survive), without walking every hook point."""
    if not hooks:
        yield bridge
        return
    points = hook_points(bridge, [n for n, _ in hooks])
    level = bridge.context_level + 1
    added = []
    try:
        bridge.context_level = level
        for hp, (_, fn) in zip(points, hooks):
            hp.add_hook(fn, dir="fwd", level=level)
            added.append(hp)
        yield bridge
    finally:
        for hp in added:
            hp.remove_hooks("fwd", level=level)
        bridge.context_level = level - 1
