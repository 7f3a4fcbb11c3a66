"""The steering methods of the comparison, as a registry: `METHODS` maps a name to an entry
(`base.SteeringMethod`). Adding a method is one new entry here; the comparison, its strengths
(by the entry's unit) and the CLI's --methods choices all read this dict.

- prompting: the hard prompt "inclined to V" before every question (the reference);
- diffmean, caa: vectors from `mechvalue.interp.vectors`, in residual-norm units;
- sae_span, sae_corr, sae_grad: one SAE feature per value (see `features`), added in its typical
  activation at the SAE's hook.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from jaxtyping import Float
from torch import Tensor
from tqdm.auto import tqdm

from mechvalue.analysis.steering import features
from mechvalue.analysis.steering.base import (
    Built,
    SteerContext,
    Steering,
    SteeringMethod,
    StrengthUnit,
    TrainContext,
)
from mechvalue.interp import vectors as vec
from mechvalue.measurement.scoring import Condition
from mechvalue.study.inventory import value_definitions
from mechvalue.study.prompts import HardPrompt, bio_hint


def _hard_prompt(value: str) -> HardPrompt:
    return HardPrompt(value, value_definitions().get(value, value.lower()), 1)


@dataclass(frozen=True)
class Prompting:
    """The hard prompt "inclined to V" on every question; for fluency, its text before the prompt."""

    name: str = "prompting"
    unit: StrengthUnit = "hard prompt"
    needs_sae: bool = False

    def build(self, ctx: TrainContext) -> Built:
        return Built()

    def condition(self, value: str, strength: float, built: Any, ctx: SteerContext) -> Steering | None:
        info = {"kind": self.name, "value": value, "strength": strength}
        hard = dict.fromkeys(ctx.values, _hard_prompt(value))
        return Steering(
            Condition(f"{self.name}:{value}", hard=hard, info=info), [], bio_hint(None, _hard_prompt(value))
        )


def vector_hooks(ctx: SteerContext, v: Float[Tensor, " d_model"]) -> list:
    """Fresh hooks adding `v` at the run's hook (each condition and fluency run gets its own)."""
    return [(ctx.hook, vec.VectorAddHook(v))]


@dataclass(frozen=True)
class Vector:
    """A direction per value, built by `make(ctx, value)` from the train items and roles, added
    at `strength` residual norms."""

    name: str
    make: Callable[[TrainContext, str], Float[Tensor, " d_model"]]
    unit: StrengthUnit = "residual norm"
    needs_sae: bool = False

    def build(self, ctx: TrainContext) -> Built:
        return Built(
            {v: self.make(ctx, v) for v in tqdm(ctx.targets, desc=self.name, disable=not ctx.progress)}
        )

    def condition(self, value: str, strength: float, built: Any, ctx: SteerContext) -> Steering | None:
        if built is None:
            return None
        v = vec.steering_vector(built, strength, ctx.unit)
        info = {"kind": self.name, "value": value, "strength": strength}
        cond = Condition(
            f"{self.name}:{value}@{strength:g}", vector_hooks(ctx, v), where=ctx.where, info=info
        )
        return Steering(cond, vector_hooks(ctx, v))


def _vector_roles(ctx: TrainContext) -> list:
    return [None, *ctx.train_roles[: ctx.spec.vector_roles]]


def diffmean(ctx: TrainContext, value: str) -> Float[Tensor, " d_model"]:
    fmt = ctx.measurer.prompt_format
    return vec.diffmean_vector(
        ctx.model, ctx.train, value, ctx.hook, _vector_roles(ctx), prompt_format=fmt, where=ctx.spec.where
    )


def caa(ctx: TrainContext, value: str) -> Float[Tensor, " d_model"]:
    fmt = ctx.measurer.prompt_format
    return vec.caa_vector(ctx.model, ctx.train, value, ctx.hook, _vector_roles(ctx), prompt_format=fmt)


@dataclass(frozen=True)
class SAEFeature:
    """One SAE feature per value, chosen by `choose(ctx, name)` (rows for features.csv; feature
    -1: none), added at `strength` typical activations at the SAE's hook."""

    name: str
    choose: Callable[[TrainContext, str], list[dict]]
    unit: StrengthUnit = "typical activation"
    needs_sae: bool = True

    def build(self, ctx: TrainContext) -> Built:
        rows = self.choose(ctx, self.name)
        return Built({r["value"]: int(r["feature"]) for r in rows}, rows)

    def condition(self, value: str, strength: float, built: Any, ctx: SteerContext) -> Steering | None:
        if built is None or built < 0:
            return None
        info = {"kind": self.name, "value": value, "strength": strength, "feature": built}
        hooks = self.hooks(built, strength, ctx)
        cond = Condition(f"{self.name}:{value}@{strength:g}", hooks, where=ctx.where, info=info)
        return Steering(cond, self.hooks(built, strength, ctx))

    @staticmethod
    def hooks(feature: int, strength: float, ctx: SteerContext) -> list:
        from mechvalue.interp.steering import SAEEditHook, SteeringSpec

        spec = SteeringSpec([feature], "add", strength, units="typical")
        return [(ctx.sae.cfg.hook_name, SAEEditHook(ctx.sae, spec, typical=ctx.typical))]


METHODS: dict[str, SteeringMethod] = {
    m.name: m
    for m in (
        Prompting(),
        Vector("diffmean", diffmean),
        Vector("caa", caa),
        SAEFeature("sae_span", features.span_choice),
        SAEFeature("sae_corr", features.corr_choice),
        SAEFeature("sae_grad", features.grad_choice),
    )
}
