"""What a steering experiment runs on, the grid's and the method comparison's alike."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd
from jaxtyping import Float
from torch import Tensor

from mechvalue.measurement.scoring import Measurer
from mechvalue.study.roles import Role


@dataclass
class SteeringInputs:
    """The measurer (and through it the model), the SAE (None without SAE methods) and its
    features' typical activations (None: raw units, or measured on the items where needed), the
    items and the roles (None: no role)."""

    measurer: Measurer
    sae: Any
    typical: Float[Tensor, " d_sae"] | None
    items: pd.DataFrame
    roles: list[Role | None]
    batch_conditions: bool = True
    """the grid, run in this process, batches the SAE conditions of a role together (one edit per
    row, the prompt before the steered span run once: `mechvalue.measurement.condition_batch`);
    False: one condition at a time"""

    @property
    def model(self):
        return self.measurer.model
