"""Hooks whose positions are fixed when they are made, as plain TransformerLens `(activation, hook)`
functions: nothing outside a hook changes where it edits.

Whether a forward call is a prompt pass or a decode step is read from what the model is doing:
the number of positions its KV cache already holds (`mechvalue.lm.compat.past_length`, recorded
for every model `load_model` returns or `steer` / `installed` touches), never from how many
positions the call has. Called outside such a forward (on a tensor), a span or mask indexes the
tensor it is given; "prompt" and "generated" raise there.

Positions (the words of `mechvalue.lm.positions`):
- "all": every position of every forward call (the default);
- "prompt": every position of a prompt pass (an empty cache), none of the calls that continue it;
- "generated": every position of the calls that continue a cache (KV-cached decode steps);
- (start, end): those positions of the sequence, e.g. a prompt's " your values" tokens: a call
  that continues a cache covers positions [past, past + n) and edits its part of the span;
- a boolean mask [batch, pos] (or [pos]): those positions of a prompt pass of exactly that shape;
  calls that continue a cache are left alone, a prompt pass of any other shape raises.
`hook.at(positions)` is the same edit (its prepared operands shared) for one forward call, its
positions relative to that call: the decoder and the measurer build one such hook per call.

A hook with one edit per batch row (`per_row`: the batch size it was made for) is given each
edited activation row's batch index, `edit(rows, batch_index)`; a call of another batch size
raises. A decode batch that has dropped its finished rows runs such a hook as `at(positions,
rows)`: `rows` are the batch rows it was made for that the call still has, in the call's order.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from typing import get_args

import torch
from jaxtyping import Bool, Float
from torch import Tensor

from mechvalue.errors import MechValueError
from mechvalue.lm.compat import install, past_length
from mechvalue.lm.positions import HookWhere

Where = HookWhere
WHERE: tuple[str, ...] = get_args(HookWhere)
Positions = Where | tuple[int, int] | Bool[Tensor, "batch pos"] | Bool[Tensor, " pos"]
HookList = list[tuple[str, Callable]]


def check_positions(positions) -> Positions:
    """Validate positions once, where they enter; a selection of no position raises."""
    if isinstance(positions, str):
        if positions not in WHERE:
            raise MechValueError(
                f"positions {positions!r}: expected one of {', '.join(WHERE)}, "
                "a (start, end) span or a boolean mask"
            )
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
    raise MechValueError(
        f"positions of type {type(positions).__name__}: expected one of {', '.join(WHERE)}, "
        "a (start, end) span or a boolean mask"
    )


class PositionedHook:
    """A residual-stream edit applied at fixed positions; subclasses define `edit(rows)`, or
    `edit(rows, batch_index)` with `per_row` set (one edit per row of a batch of that size)."""

    per_row: int | None = None
    rows: Tensor | None = None  # the rows of `per_row` a call of `at` has, in its order (None: all)

    def __init__(self, positions: Positions = "all"):
        self.positions = check_positions(positions)
        self.one_call = False  # positions relative to one forward call (`at`), not the sequence

    def edit(self, rows: Float[Tensor, "n d"]) -> Float[Tensor, "n d"]:
        raise NotImplementedError

    def _edit(self, rows: Float[Tensor, "n d"], batch_index: Callable[[], Tensor]) -> Float[Tensor, "n d"]:
        if not self.per_row:
            return self.edit(rows)
        index = batch_index()
        return self.edit(rows, index if self.rows is None else self.rows.to(index.device)[index])

    def at(self, positions: Positions, rows: Tensor | None = None) -> PositionedHook:
        """The same edit at other positions of one forward call (a shallow copy: prepared operands
        are shared); `rows`: the batch rows of the call, where it has fewer than the hook was made for."""
        other = copy.copy(self)
        other.positions = check_positions(positions)
        other.one_call = True
        other.rows = rows
        return other

    def _edit_all(self, act):
        flat = act.reshape(-1, act.shape[-1])
        each = lambda: _repeat(act.shape[0], flat.shape[0] // act.shape[0], act.device)  # noqa: E731
        return self._edit(flat, each).reshape(act.shape)

    def __call__(self, act: Float[Tensor, "batch pos ..."], hook) -> Float[Tensor, "batch pos ..."]:
        b, p = act.shape[:2]
        pos = self.positions
        if self.per_row and b != (self.per_row if self.rows is None else len(self.rows)):
            raise MechValueError(
                f"{_name(hook)}: one edit per row was made for a batch of {self.per_row}"
                + ("" if self.rows is None else f" ({len(self.rows)} of them in this call)")
                + f", the activation has {b} rows"
            )
        if isinstance(pos, str) and pos == "all":
            return self._edit_all(act)
        past = 0 if self.one_call and not isinstance(pos, str) else past_length()
        if past is None:  # not inside a forward of a model compat knows: a span or mask indexes `act`
            if isinstance(pos, str):
                raise MechValueError(
                    f"{_name(hook)}: positions {pos!r} need to know whether a call is a prompt pass or a "
                    "decode step; load the model with mechvalue.load_model (or call "
                    "mechvalue.lm.compat.install(bridge) once)"
                )
            past = 0
        if isinstance(pos, str):
            return self._edit_all(act) if (pos == "prompt") == (past == 0) else act
        if isinstance(pos, tuple):
            if past == 0 and pos[1] > p:
                raise MechValueError(f"span {pos} is beyond this call's {p} positions")
            lo, hi = max(pos[0] - past, 0), min(pos[1] - past, p)  # the span's part in this call
            if lo >= hi:
                return act
            out = act.clone()
            flat = act[:, lo:hi].reshape(-1, act.shape[-1])
            out[:, lo:hi] = self._edit(flat, lambda: _repeat(b, flat.shape[0] // b, act.device)).reshape(
                b, hi - lo, *act.shape[2:]
            )
            return out
        if past > 0:
            return act  # a call continuing the masked prompt
        if pos.shape[1] != p or pos.shape[0] not in (1, b):
            raise MechValueError(
                f"{_name(hook)}: positions were fixed for [batch, pos] = {list(pos.shape)}, "
                f"the activation has {[b, p]}"
            )
        m = pos.to(act.device).expand(b, p)
        out = act.clone()
        out[m] = self._edit(act[m], lambda: m.nonzero()[:, 0])
        return out


def _repeat(b: int, each: int, device) -> Tensor:
    """The batch index of each row of a [b, ...] activation flattened to `each` rows per batch row."""
    return torch.arange(b, device=device).repeat_interleave(each)


def _name(hook) -> str:
    return hook.name if hook is not None else "hook"


def per_call(hooks: HookList, positions: Positions | None, rows: Tensor | None = None) -> HookList:
    """Hooks for one forward call: positioned hooks moved to `positions` (dropped where that is
    None or selects nothing) and told the call's `rows` (`PositionedHook.at`), plain functions
    kept as they are."""
    out = []
    for name, h in hooks:
        if isinstance(h, PositionedHook):
            if positions is None or (isinstance(positions, Tensor) and not bool(positions.any())):
                continue
            out.append((name, h.at(positions, rows)))
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
            raise MechValueError(f"unknown hook {n!r}; closest valid names: {near or list(table)[:3]}")
        out.append(table[n])
    return out


def check_hook_names(bridge, names: Iterable[str]) -> None:
    """Raise on a hook name the model does not have (TransformerLens skips those silently)."""
    hook_points(bridge, names)


def stop_layer(hooks: Iterable[str], n_layers: int) -> int | None:
    """The `stop_at_layer` that still runs every hook of `hooks` (the block after the deepest one),
    None when the whole model must run (a hook outside the blocks, or the deepest in the last one)."""
    hooks = list(hooks)
    layers = [re.match(r"blocks\.(\d+)\.", h) for h in hooks]
    if not all(layers) or any(h.endswith(("ln_final.hook_normalized", "hook_scale")) for h in hooks):
        return None
    deepest = max(int(m.group(1)) for m in layers)
    return deepest + 1 if deepest + 1 < n_layers else None


@contextmanager
def installed(bridge, hooks: HookList):
    """Forward hooks for a block, as `bridge.hooks(fwd_hooks=hooks)` adds them (one context level
    above the caller's, so hooks installed outside survive), without walking every hook point."""
    if not hooks:
        yield bridge
        return
    install(bridge)
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
