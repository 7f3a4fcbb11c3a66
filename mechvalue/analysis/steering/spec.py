"""The comparison's settings (`CompareSpec`): targets, methods, the strengths per unit, how many
train roles build each method, the fluency material, the statistics' sizes and the design
(`design`: what is measured on how many test roles)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, get_args

from mechvalue.analysis.steering.design import SteerDesign
from mechvalue.analysis.steering.methods import METHODS
from mechvalue.errors import MechValueError
from mechvalue.interp import vectors as vec
from mechvalue.lm.positions import StudyWhere

CompareWhere = Literal["prompt", "all"]  # the study's positions the comparison steers at (StudyWhere)


@dataclass
class CompareSpec:
    values: list[str] | None = None  # targets (None: every value of the items)
    methods: list[str] = field(default_factory=lambda: list(METHODS))  # names in `methods.METHODS`
    vector_strengths: list[float] = field(default_factory=lambda: [0.25, 0.5, 1.0])  # residual-norm units
    sae_strengths: list[float] = field(default_factory=lambda: [4.0, 8.0, 16.0])  # typical activations
    where: StudyWhere = "all"
    hook: str = ""  # where vectors steer without an SAE (with one: the SAE's hook)
    vector_roles: int = 4  # train roles (with the no-role prompt) that build DiffMean / CAA / the unit
    corr_roles: int = 12  # train roles measured for the correlation choice
    grad_roles: int = 8  # train roles for the gradient-attribution choice
    candidates: int = 8  # the study's rule: features most active on " your values"
    neutral_prompts: int = 4
    neutral_texts: int = 4
    gen_tokens: int = 40
    kl_bound: float = 0.25  # admissible: mean KL(unsteered || steered) on neutral text <= this (nats/token)
    n_boot: int = 500
    n_null: int = 200
    batch_size: int = 32
    seed: int = 0
    design: SteerDesign = "powered"  # see `design`: one KL-chosen strength, sizes by power; or every one

    def check(self) -> None:
        bad = [m for m in self.methods if m not in METHODS]
        if bad:
            raise MechValueError(f"unknown method(s) {bad}: use {', '.join(METHODS)}")
        vec.check_where(self.where)
        if self.design not in get_args(SteerDesign):
            raise MechValueError(
                f"design={self.design!r}: expected one of {', '.join(get_args(SteerDesign))}"
            )
        if self.where in ("span", "generated"):
            raise MechValueError(
                f"where={self.where!r}: the comparison steers at 'prompt' or 'all' (DiffMean is "
                "zero at the span, and the value test has no generated tokens)"
            )

    def strengths(self, method: str) -> list[float]:
        """The strengths `method` runs at, by its unit (the hard prompt is on or off)."""
        by_unit = {
            "hard prompt": [1.0],
            "residual norm": self.vector_strengths,
            "typical activation": self.sae_strengths,
        }
        return list(by_unit[METHODS[method].unit])

    def needs_sae(self) -> bool:
        """Whether any chosen method steers SAE features."""
        return any(METHODS[m].needs_sae for m in self.methods)
