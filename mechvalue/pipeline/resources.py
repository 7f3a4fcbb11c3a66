"""What the stages read, each built once per process on first use: the model,
the SAE (loaded once, not per stage), the items, the roles, the measurer, the typical
activations and the chosen features (the last two read from earlier stages' files)."""

from __future__ import annotations

from functools import cached_property

import pandas as pd
import torch

from mechvalue.pipeline.config import csv_list
from mechvalue.pipeline.workspace import Workspace


class Resources:
    """Lazily built inputs of the stages: each stage reads the attributes it needs."""

    def __init__(self, ws: Workspace, executor=None):
        self.ws, self.cfg = ws, ws.cfg
        self._executor = executor

    @property
    def executor(self):
        """Runs the measure, grid, validity, steering-comparison and bootstrap tasks
        (mechvalue.distributed); None: this process."""
        return self._executor

    @cached_property
    def loaded(self):
        from mechvalue.lm.models import load_model

        return load_model(self.cfg.model, self.cfg.device, self.cfg.dtype, self.cfg.prompt_format)

    @property
    def model(self):
        return self.loaded[0]

    @property
    def info(self):
        return self.loaded[1]

    @cached_property
    def items(self) -> pd.DataFrame:
        from mechvalue.study import inventory as inv

        q = csv_list(self.cfg.questionnaire)
        items = inv.select(inv.load_inventory(self.cfg.inventory), q)
        if self.cfg.quick:
            items = items.groupby("value", sort=False).head(2).reset_index(drop=True)
        return items

    @cached_property
    def roles(self) -> list:
        """No role first, then the seeded personas."""
        from mechvalue.study.roles import generate_roles

        return [None, *generate_roles(self.cfg.roles, self.cfg.seed)]

    @property
    def grid_roles(self) -> list:
        """Roles of the steering grid, whose activations are also cached and correlated with their scores."""
        return self.roles[: self.cfg.grid_roles + 1]

    @property
    def act_roles(self) -> list:
        """Roles whose activations are cached, correlated and used for attribution: the grid roles;
        under --quick the no-role prompt alone (correlations across roles need
        grounds.MIN_CORR_ROLES roles, which a quick run never has)."""
        return self.grid_roles[:1] if self.cfg.quick else self.grid_roles

    @property
    def act_items(self) -> pd.DataFrame:
        """Items whose activations are cached and attributed: all; under --quick one per value (the
        span " your values" precedes the question, so its activations are the same for every item
        of a role, and a backward pass through each prompt is the features stage's main cost)."""
        if not self.cfg.quick:
            return self.items
        return self.items.groupby("value", sort=False).head(1).reset_index(drop=True)

    @cached_property
    def measurer(self):
        """The run's protocol (default the study's log-prob yes/no); under --quick in batches of 32
        (every item of a role in one batch: the role's shared prefix runs once instead of once per 16)."""
        from mechvalue.measurement.scoring import Measurer

        return Measurer(
            self.model,
            self.info.prompt_format,
            batch_size=32 if self.cfg.quick else 16,
            protocol=getattr(self.cfg, "protocol", "study"),
        )

    @property
    def sae_ref(self) -> dict:
        return self.ws.read_json("sae", "sae.json")

    @cached_property
    def sae(self):
        from mechvalue.interp.sae_formats import load_sae

        return load_sae(self.sae_ref["path"], self.cfg.device)

    @cached_property
    def typical(self) -> torch.Tensor:
        return torch.load(self.ws.out / "features" / "typical.pt")

    @property
    def chosen(self) -> list[int]:
        """The features the `features` stage chose for steering."""
        return [f["feature"] for f in self.ws.read_json("features", "features.json")["features"]]
