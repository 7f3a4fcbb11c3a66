"""What a steering method is: a name, a strength unit, a build step on the TRAIN items and roles,
and a condition for one value and strength (what the value test and the fluency cost run).

A method never sees the test split: `build` gets a `TrainContext`, `condition` gets what `build`
returned for the value and a `SteerContext`. The registry of methods is `methods.METHODS`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import pandas as pd
from torch import Tensor

from mechvalue.measurement.scoring import Condition, Measurer
from mechvalue.study.roles import Role

# The strength axes of `CompareSpec`: the hard prompt has one strength (on), vectors are scaled in
# residual-norm units (`vectors.residual_norm`), SAE features in their typical activation.
StrengthUnit = Literal["hard prompt", "residual norm", "typical activation"]


class TrainSettings(Protocol):
    """The comparison settings a method reads while building (`spec.CompareSpec` has them)."""

    where: str
    vector_roles: int  # train roles (with the no-role prompt) that build vectors
    corr_roles: int  # train roles measured for the correlation choice
    grad_roles: int  # train roles for the gradient-attribution choice
    candidates: int  # features most active on " your values" considered by the span choice


@dataclass
class TrainContext:
    """Everything a method may build from: the model, the train items and roles only."""

    model: Any
    measurer: Measurer
    sae: Any  # mechvalue.SAE or None
    typical: Tensor | None  # the SAE features' typical activations
    train: pd.DataFrame  # train items
    targets: list[str]  # the values to build for
    train_roles: list[Role]
    hook: str  # where vectors are read and added (the SAE's hook when there is one)
    spec: TrainSettings
    progress: bool = True
    shared: dict[str, Any] = field(default_factory=dict)  # work several methods reuse (see features)


@dataclass
class Built:
    """A method's train-side result: per value what its condition needs (a direction, a feature;
    missing: nothing for that value), and rows for features.csv (the SAE choices' statistics)."""

    per_value: dict[str, Any] = field(default_factory=dict)
    rows: list[dict] = field(default_factory=list)


@dataclass
class SteerContext:
    """What a condition may use besides its own build: the run's unit and hook, the SAE and its
    typical activations, the values the test measures and where to steer."""

    unit: float  # the residual norm at `hook` (vectors' strength unit)
    hook: str
    sae: Any
    typical: Tensor | None
    values: list[str]
    where: str


@dataclass
class Steering:
    """One method x value x strength: the value-test condition, and for the fluency cost the
    positioned hooks to install and the hint put before the neutral prompts (None: no hint)."""

    condition: Condition
    hooks: list = field(default_factory=list)
    hint: str | None = None


class SteeringMethod(Protocol):
    """A steering method in the comparison; register an instance in `methods.METHODS`."""

    name: str
    unit: StrengthUnit
    needs_sae: bool

    def build(self, ctx: TrainContext) -> Built:
        """What the method needs per target value, from the train items and roles only."""
        ...

    def condition(self, value: str, strength: float, built: Any, ctx: SteerContext) -> Steering | None:
        """The steering for `value` at `strength` (`built`: `build`'s entry for the value);
        None when the method has nothing for this value (e.g. too few roles to choose a feature)."""
        ...
