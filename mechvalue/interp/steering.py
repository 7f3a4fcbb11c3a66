"""Steering through SAE features, as plain TransformerLens hooks with fixed positions.

A `SteeringSpec` says which features to edit, how (clamp / scale / add) and how strongly; where
is the hook's (`positions`) or the study condition's (`Condition.where`). `SAEEditHook` is the edit as an `(activation, hook)` function at positions fixed when it is
made (`mechvalue.lm.hooks`); it applies a `mechvalue.interp.edit.SAEEdit` (fused Triton kernel on
GPU, its torch reference on CPU) prepared once per activation dtype. `steer(...)` installs one on
a model for a `with` block.
"""

from __future__ import annotations

import copy
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal, get_args

import torch
from jaxtyping import Float
from torch import Tensor

from mechvalue.errors import MechValueError
from mechvalue.interp.edit import SAEEdit, sae_edit
from mechvalue.interp.sae import SAE
from mechvalue.interp.sae_convert import as_mechvalue_sae
from mechvalue.lm.hooks import PositionedHook, Positions, check_hook_names, installed
from mechvalue.lm.positions import StudyWhere

Mode = Literal["add", "clamp", "scale"]
Units = Literal["raw", "typical"]
MODES: tuple[str, ...] = get_args(Mode)
UNITS: tuple[str, ...] = get_args(Units)
WHERE: tuple[str, ...] = get_args(StudyWhere)


def _check(value, allowed: tuple[str, ...], name: str) -> None:
    if value not in allowed:
        raise MechValueError(f"{name}={value!r}: expected one of {', '.join(allowed)}")


@dataclass
class SteeringSpec:
    """Which SAE features to edit, how and how strongly: each feature's activation f becomes
    f' = f * mul + add (`edit_vectors`), with mode "add" (f + v), "clamp" (v) or "scale" (f * v).

    Units of `strength`: "raw" (the default) is the SAE's own activation scale, the number is used
    as it is; "typical" multiplies it by the feature's typical activation (its mean where it fires,
    `mechvalue.typical_activations`), the unit in which `mechvalue run`, `steer-grid` and the study
    state strengths, comparable across features whose activations differ in size. With a feature
    typically at 2.5, `SteeringSpec([123], "add", 4.0, "typical")` adds 10.0 raw, the same as
    `SteeringSpec([123], "add", 10.0)`. "scale" multiplies, so its strength has no unit (use raw)."""

    features: list[int]
    """SAE feature ids, 0 <= id < d_sae"""
    mode: Mode = "add"
    """add v to the activation, clamp it to v, or scale it by v"""
    strength: float | list[float] = 0.0
    """v: one for every feature, or one per feature (in `features`' order)"""
    units: Units = "raw"
    """raw: v as it is; typical: v x the feature's typical activation (needs the typical activations)"""

    def __post_init__(self):
        _check(self.mode, MODES, "mode")
        _check(self.units, UNITS, "units")
        if not self.features:
            raise MechValueError("a steering spec needs at least one feature")
        if isinstance(self.strength, list) and len(self.strength) != len(self.features):
            raise MechValueError(f"{len(self.strength)} strengths for {len(self.features)} features")

    def edit_vectors(self, sae: SAE, typical: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Per-feature (mul, add) with f' = f * mul + add."""
        d = sae.cfg.d_sae
        mul, add = torch.ones(d), torch.zeros(d)
        vals = self.strength if isinstance(self.strength, list) else [self.strength] * len(self.features)
        for f, v in zip(self.features, vals):
            if not 0 <= f < d:
                raise MechValueError(f"feature {f}: the SAE has features 0..{d - 1}")
            if self.units == "typical":
                if typical is None:
                    raise MechValueError("units='typical' needs the features' typical activations")
                v = v * float(typical[f])
            if self.mode == "clamp":
                mul[f], add[f] = 0.0, v
            elif self.mode == "scale":
                mul[f] = v
            else:
                add[f] = v
        return mul, add


def is_identity(mul: Tensor, add: Tensor) -> bool:
    """Whether the edit f' = f * mul + add leaves every feature as it is."""
    return bool((mul == 1).all() and (add == 0).all())


def row_vectors(sae: SAE, specs: list[SteeringSpec | None], typical: Tensor | None) -> tuple[Tensor, Tensor]:
    """Per-row (mul, add), [rows, d_sae]: each spec's edit vectors, None an untouched row (1, 0)."""
    d = sae.cfg.d_sae
    pairs = [
        s.edit_vectors(sae, typical) if s is not None else (torch.ones(d), torch.zeros(d)) for s in specs
    ]
    return torch.stack([m for m, _ in pairs]), torch.stack([a for _, a in pairs])


class SAEEditHook(PositionedHook):
    """f' = f * mul + add on the SAE's features of the residual stream, at fixed positions
    (every position by default); the SAE's reconstruction error is kept exactly.

    `spec` a list: one edit per batch row (per-request steering; None leaves a row as it is), for
    batches of exactly that many rows; each row gets what its spec alone gives."""

    def __init__(
        self,
        sae: SAE,
        spec: SteeringSpec | list[SteeringSpec | None],
        backend: str = "auto",
        typical: Tensor | None = None,
        path: str = "auto",
        positions: Positions = "all",
    ):
        """`path`: "add" (add-only specs: one precomputed vector), "delta" (only the edited features,
        ReLU/JumpReLU), "full" (every feature), "topk" (TopK, exact) or "auto"; see `SAEEdit`."""
        super().__init__(positions)
        self.sae, self.spec = sae, spec
        if isinstance(spec, list):
            if not spec:
                raise MechValueError("per-row steering needs at least one row")
            self.per_row = len(spec)
            self.mul, self.add = row_vectors(sae, spec, typical)
        else:
            self.mul, self.add = spec.edit_vectors(sae, typical)
        if is_identity(self.mul, self.add):
            what = (
                "no row edits a feature"
                if self.per_row
                else f"{spec.mode} of {spec.features} by {spec.strength}"
            )
            raise MechValueError(f"{what}: the hook would do nothing")
        self.options = (path, backend)  # as asked for
        self.forget_prepared()

    @classmethod
    def stacked(cls, hooks: list[SAEEditHook | None]) -> SAEEditHook:
        """One edit per batch row: row i is `hooks[i]`'s edit (None: untouched), each made of the
        same SAE with the same path and backend; the positions are the first hook's."""
        made = [h for h in hooks if h is not None]
        if not made or any(h.per_row for h in made):
            raise MechValueError("stacking needs at least one hook, each of one edit")
        first = made[0]
        if any(h.sae is not first.sae or h.options != first.options for h in made):
            raise MechValueError("stacked edits must share the SAE, the path and the backend")
        d = first.sae.cfg.d_sae
        out = copy.copy(first)
        out.spec, out.per_row = [h.spec if h else None for h in hooks], len(hooks)
        out.mul = torch.stack([h.mul if h else torch.ones(d) for h in hooks])
        out.add = torch.stack([h.add if h else torch.zeros(d) for h in hooks])
        out.forget_prepared()
        return out

    def forget_prepared(self) -> None:
        """Drop the prepared operands (after mul/add changed); the first are prepared again now."""
        self._edits = {}
        first = self.prepared(self.sae.W_enc.dtype, self.sae.W_enc.device)  # checks path and backend
        self.path, self.backend = first.path, first.backend

    def prepared(self, dtype: torch.dtype, device: torch.device) -> SAEEdit:
        """The edit with its operands prepared for activations of `dtype` on `device` (once each)."""
        key = (dtype, torch.device(device))
        if key not in self._edits:
            self._edits[key] = sae_edit(self.sae, self.mul, self.add, dtype, device, *self.options)
        return self._edits[key]

    def edit(self, x: Float[Tensor, "n d"], batch_index: Tensor | None = None) -> Float[Tensor, "n d"]:
        return self.prepared(x.dtype, x.device).apply(x, batch_index)


class StudyAddHook(PositionedHook):
    """The study's steering: add coefficient * W_dec[f] (prompt positions by default)."""

    def __init__(self, sae: SAE, feature: int, coefficient: float = 100.0, positions: Positions = "prompt"):
        super().__init__(positions)
        if coefficient == 0:
            raise MechValueError("coefficient 0: the hook would do nothing")
        self.vec = coefficient * sae.W_dec.detach()[feature]
        self._edits: dict = {}

    def edit(self, x: Float[Tensor, "n d"]) -> Float[Tensor, "n d"]:
        key = (x.dtype, x.device)
        if key not in self._edits:  # the "add" path: one broadcast add, no encode
            self._edits[key] = SAEEdit.adding(self.vec, x.dtype, x.device)
        return self._edits[key].apply(x)


Features = dict[int, float] | list[dict[int, float] | None]


def sae_hook(
    sae: SAE,
    features: Features,
    mode: Mode = "add",
    where: Positions = "all",
    units: Units = "raw",
    typical: Tensor | None = None,
    backend: str = "auto",
) -> SAEEditHook:
    """A hook editing `features` ({feature: strength}) of `sae` (ours or a `sae_lens.SAE`) at `where`
    ("all", "prompt", "generated", a (start, end) span, or a boolean [batch, pos] mask).

    Strengths are raw feature activations by default (`units="raw"`: {123: 40.0} adds 40 to
    feature 123's activation); `units="typical"` reads them as multiples of each feature's typical
    activation, the unit of `mechvalue run` and the study, and needs `typical`
    (`mechvalue.typical_activations(sae, ...)`, one value per feature):

        typical = mechvalue.typical_activations(sae, prompts, model=model)
        hook = sae_hook(sae, {123: 4.0}, units="typical", typical=typical)  # + 4 x typical[123]
        logits = model.run_with_hooks(tokens, fwd_hooks=[(sae.cfg.hook_name, hook)])

    `features` a list: one {feature: strength} per batch row ({} or None: that row unsteered), for
    batches of exactly that many rows (per-request steering). See `SteeringSpec` for the modes."""
    sae = as_mechvalue_sae(sae)

    def spec(fs: dict[int, float]) -> SteeringSpec:
        return SteeringSpec(list(fs), mode, [float(v) for v in fs.values()], units)

    specs = [spec(fs) if fs else None for fs in features] if isinstance(features, list) else spec(features)
    return SAEEditHook(sae, specs, backend, typical, positions=where)


@contextmanager
def steer(
    model,
    sae: SAE,
    features: Features,
    mode: Mode = "add",
    where: Positions = "all",
    units: Units = "raw",
    typical: Tensor | None = None,
):
    """`with steer(model, sae, {feature: strength}, mode="add", where="all"): model.generate(...)`

    Per-request steering: `features` a list of one {feature: strength} per batch row ({} or None:
    that row unsteered) edits each row of a batch of exactly that many rows as that row's edit
    alone would (`with steer(model, sae, [{}, {11: 4.0}, {11: 8.0}]): model(tokens_3_rows)`).

    Installs `sae_hook(sae, features, mode, where, units, typical)` at the SAE's hook point on
    `model.hooks()` for the block; nests, and two models can be steered at once. `sae` is ours or
    a `sae_lens.SAE`. Yields the hook. Another hook point or backend: install the hook yourself,
    `with model.hooks([(name, sae_hook(..., backend="torch"))])`.

    Strengths are raw feature activations by default; `units="typical"` with `typical` takes them
    in multiples of each feature's typical activation, the unit `mechvalue run` and the study use
    (its default grid strength 30 is `units="typical"`):

        with steer(model, sae, {123: 40.0}):                                  # + 40 raw
            model.generate(tokens, max_new_tokens=20, do_sample=False)
        with steer(model, sae, {123: 4.0}, units="typical", typical=typical):  # + 4 x typical[123]
            model.generate(tokens, max_new_tokens=20, do_sample=False)
    """
    from mechvalue.lm.models import as_bridge

    bridge = as_bridge(model)
    sae = as_mechvalue_sae(sae)
    check_hook_names(bridge, [sae.cfg.hook_name])
    hook = sae_hook(sae, features, mode, where, units, typical)
    with installed(bridge, [(sae.cfg.hook_name, hook)]):
        yield hook


def generate_steered(
    model,
    prompts,
    hook_name: str,
    hook: PositionedHook | None,
    where: StudyWhere = "span",
    max_new_tokens: int = 40,
    use_cache: bool = True,
) -> list[str]:
    """Greedy generation of rendered prompts with `hook` (None: unsteered) editing at `where`."""
    from mechvalue.lm.batching import where_mask
    from mechvalue.lm.generation import Edits, greedy_generate
    from mechvalue.lm.models import as_bridge

    _check(where, WHERE, "where")
    bridge = as_bridge(model)
    seqs = [p.tokens for p in prompts]
    hooks = []
    if hook is not None:
        check_hook_names(bridge, [hook_name])
        hooks = [(hook_name, hook)]
    masks = where_mask([p.span for p in prompts], list(map(len, seqs)), where, max(map(len, seqs)))
    edits = Edits(hooks, masks, generated=where in ("generated", "all"))
    new = greedy_generate(bridge, seqs, max_new_tokens, None, edits, use_cache)
    return bridge.tokenizer.batch_decode(new, skip_special_tokens=True)
