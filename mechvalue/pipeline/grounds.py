"""What a run's results stand on, read from its folder before anything is drawn: the measurement
noise, the between-role spread of every value, the roles and items behind the scores, and the
largest change any steering made. Stages use it to leave out what rests on noise (the graph
learns only on values that vary between roles); the report uses it to say plainly when a result
is undefined or rests on too little, instead of drawing it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from mechvalue.analysis.noise import measurement_noise, role_spread
from mechvalue.pipeline.workspace import Workspace
from mechvalue.study.schema import by_role, steer_key

MIN_CORR_ROLES = 10  # correlations across fewer roles are not used or shown (|r| near 1 by chance)


def run_noise(ws: Workspace) -> dict:
    """The run's measurement noise (mechvalue.analysis.noise): float rounding of its dtype and, once
    the steering grid has run, the largest difference between its unsteered rows and the measure
    stage's rows of the same roles (the same prompts scored in other batches)."""
    values, items = ws.read_csv("measure", "values.csv"), ws.read_csv("measure", "items.csv")
    repeat = ws.read_csv("grid", "steer.csv") if ws.done("grid") else None
    probs = items[["p_yes", "p_no"]].to_numpy(float) if {"p_yes", "p_no"} <= set(items.columns) else None
    return measurement_noise(values, ws.cfg.dtype, repeat, probs)


def largest_steered_change(steer: pd.DataFrame) -> float | None:
    """The largest |steered - unsteered| score over every steered condition, role and value of a
    grid's wide table (None when it has no steered rows)."""
    keys = steer["steer_dim"].map(steer_key)
    base = by_role(steer)
    out = None
    for label in pd.unique(keys[keys != ""]):
        d = (by_role(steer, label) - base).abs().to_numpy(float)
        if np.isfinite(d).any():
            out = max(out or 0.0, float(np.nanmax(d)))
    return out


@dataclass
class Grounds:
    noise: dict  # measurement_noise(): noise, rounding, repeat, dtype
    roles: int  # named roles measured (the no-role prompt not counted)
    items: dict[str, int]  # items per value
    role_sd: dict[str, float]  # per value: SD of the unsteered scores across the named roles
    steer_change: float | None  # the largest |steered - unsteered| in the grid (None: no grid)
    validity: dict | None = None  # validity/validity.json, the reliability summary (None: not run)

    @property
    def values(self) -> list[str]:
        return list(self.role_sd)

    @property
    def varying(self) -> list[str]:
        """Values whose between-role spread exceeds the noise."""
        return [v for v, sd in self.role_sd.items() if sd > self.noise["noise"]]

    @property
    def flat(self) -> list[str]:
        return [v for v in self.values if v not in self.varying]

    @property
    def no_role_variance(self) -> bool:
        return not self.varying

    @property
    def steering_moves(self) -> bool | None:
        """Did any steered change exceed the noise? (None: no grid.)"""
        return None if self.steer_change is None else self.steer_change > self.noise["noise"]

    def noise_text(self) -> str:
        return f"measurement noise {self.noise['noise']:.2g} score units"

    def spread_text(self) -> str:
        sd = [s for s in self.role_sd.values() if np.isfinite(s)]
        rng = f"{min(sd):.2g} to {max(sd):.2g}" if sd else "undefined"
        return f"between-role SD of the value scores {rng} score units ({self.noise_text()})"

    def scores_text(self) -> str:
        """What the scores rest on, in one sentence."""
        n = sorted(set(self.items.values()))
        items = f"{n[0]}" if len(n) == 1 else f"{n[0]}-{n[-1]}"
        return f"{self.roles} roles x {items} item(s) per value; {self.spread_text()}."

    def why_meaningless(self) -> str:
        """The banner's reason when no value varies between roles."""
        return (
            f"Every persona scored the same: no value's between-role SD exceeds the measurement noise "
            f"(largest SD {max(self.role_sd.values(), default=0.0):.2g}, noise {self.noise['noise']:.2g} score "
            "units). The scores carry no information about roles, so every statistic below that compares roles "
            "(profiles, the value graph, correlations, reliability, known groups, steering effects in "
            "between-role SD units) would describe rounding, not the model. Typical causes: the persona "
            "never reaches the model (e.g. a broken prompt or KV-cache path), or the model ignores it."
        )


def grounds(ws: Workspace) -> Grounds:
    """The run's grounds, from measure/values.csv, measure/items.csv and (if run) grid/steer.csv."""
    values = ws.read_csv("measure", "values.csv")
    items = ws.read_csv("measure", "items.csv")
    per_value = items.groupby("value", sort=False)["item"].nunique().to_dict()
    named = by_role(values).drop(index="", errors="ignore")
    change = largest_steered_change(ws.read_csv("grid", "steer.csv")) if ws.done("grid") else None
    sd = role_spread(values)
    return Grounds(
        noise=run_noise(ws),
        roles=len(named),
        items={str(k): int(v) for k, v in per_value.items()},
        role_sd={str(k): float(v) for k, v in sd.items()},
        steer_change=change,
        validity=ws.read_json("validity", "validity.json")
        if (ws.out / "validity" / "validity.json").exists()
        else None,
    )
