"""What a run's results stand on, read from its folder before anything is drawn: the measurement
noise, the between-role spread of every value, the roles and items behind the scores, and the
largest change any steering made. Stages use it to leave out what rests on noise (the graph
learns only on values that vary between roles); the report uses it to say plainly when a result
is undefined or rests on too little, instead of drawing it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from mechvalue.analysis.noise import describe_noise, measurement_noise, noise_for, role_spread, varies
from mechvalue.pipeline.workspace import Workspace
from mechvalue.study.schema import by_role, steer_key

MIN_CORR_ROLES = 10  # correlations across fewer roles are not used or shown (|r| near 1 by chance)


def run_noise(ws: Workspace) -> dict:
    """The run's noise model (mechvalue.analysis.noise): resampling the items of measure/items.csv,
    floored at float rounding of its dtype and, once the steering grid has run, at the largest
    difference between its unsteered rows and the measure stage's rows of the same roles (the
    same prompts scored again: a test-retest)."""
    values, items = ws.read_csv("measure", "values.csv"), ws.read_csv("measure", "items.csv")
    repeat = ws.read_csv("grid", "steer.csv") if ws.done("grid") else None
    probs = items[["p_yes", "p_no"]].to_numpy(float) if {"p_yes", "p_no"} <= set(items.columns) else None
    return measurement_noise(values, ws.cfg.dtype, repeat, probs, items)


def steered_changes(steer: pd.DataFrame) -> dict[str, float]:
    """Per value: the largest |steered - unsteered| score over every steered condition and role of
    a grid's wide table (empty when it has no steered rows)."""
    keys = steer["steer_dim"].map(steer_key)
    base = by_role(steer)
    out: dict[str, float] = {}
    for label in pd.unique(keys[keys != ""]):
        d = (by_role(steer, label) - base).abs()
        for v in d.columns:
            x = d[v].to_numpy(float)
            if np.isfinite(x).any():
                out[str(v)] = max(out.get(str(v), 0.0), float(np.nanmax(x)))
    return out


@dataclass
class Grounds:
    noise: dict  # measurement_noise(): noise, rounding, repeat, dtype
    roles: int  # named roles measured (the no-role prompt not counted)
    items: dict[str, int]  # items per value
    role_sd: dict[str, float]  # per value: SD of the unsteered scores across the named roles
    steer_changes: dict[str, float] | None  # per value, the largest |steered - unsteered| (None: no grid)
    validity: dict | None = None  # validity/validity.json, the reliability summary (None: not run)
    sae: dict | None = None  # sae/sae.json (None: not run)

    @property
    def steer_change(self) -> float | None:
        """The largest |steered - unsteered| over every value (None: no grid)."""
        return None if self.steer_changes is None else max(self.steer_changes.values(), default=None)

    @property
    def values(self) -> list[str]:
        return list(self.role_sd)

    @property
    def varying(self) -> list[str]:
        """Values whose between-role spread exceeds the noise."""
        return [v for v, sd in self.role_sd.items() if varies(self.noise, v, sd)]

    @property
    def flat(self) -> list[str]:
        return [v for v in self.values if v not in self.varying]

    @property
    def no_role_variance(self) -> bool:
        return not self.varying

    @property
    def steering_moves(self) -> bool | None:
        """Did any steered change exceed the noise of its value? (None: no grid.)"""
        if self.steer_changes is None:
            return None
        return any(c > noise_for(self.noise, v) for v, c in self.steer_changes.items())

    @property
    def status(self) -> dict[str, str]:
        """value -> "" when it passes the one rule (mechvalue.analysis.status), else why not; {}
        before the validity stage."""
        return (self.validity or {}).get("measurements") or {}

    @property
    def sae_problem(self) -> str | None:
        """Why the run's SAE is below the quality bar ("" when it clears it, None when not measured)."""
        from mechvalue.analysis.status import sae_quality

        return sae_quality((self.sae or {}).get("metrics"))

    def noise_text(self) -> str:
        n = self.noise["by_value"]
        if n:
            return (
                f"measurement noise (a tie between two scores of a value) {min(n.values()):.2g} to "
                f"{max(n.values()):.2g} score units, median {self.noise['noise']:.2g}"
            )
        return f"measurement noise {self.noise['noise']:.2g} score units"

    def describe_noise(self) -> str:
        return describe_noise(self.noise)

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
            f"No value's between-role SD exceeds what measurement noise alone reaches (largest SD "
            f"{max(self.role_sd.values(), default=0.0):.2g}; {self.noise_text()}): the personas do not "
            "move the scores beyond noise. The scores carry no information about roles, so every statistic "
            "below that compares roles (profiles, the value graph, correlations, reliability, known groups, "
            "steering effects in between-role SD units) would describe noise, not the model. Typical causes: "
            "too few items per value to tell roles apart, the persona never reaches the model (e.g. a broken "
            "prompt or KV-cache path), or the model ignores it."
        )


def grounds(ws: Workspace) -> Grounds:
    """The run's grounds, from measure/values.csv, measure/items.csv and (if run) grid/steer.csv."""
    values = ws.read_csv("measure", "values.csv")
    items = ws.read_csv("measure", "items.csv")
    per_value = items.groupby("value", sort=False)["item"].nunique().to_dict()
    named = by_role(values).drop(index="", errors="ignore")
    change = steered_changes(ws.read_csv("grid", "steer.csv")) if ws.done("grid") else None
    sd = role_spread(values)
    return Grounds(
        noise=run_noise(ws),
        roles=len(named),
        items={str(k): int(v) for k, v in per_value.items()},
        role_sd={str(k): float(v) for k, v in sd.items()},
        steer_changes=change,
        validity=ws.read_json("validity", "validity.json")
        if (ws.out / "validity" / "validity.json").exists()
        else None,
        sae=ws.read_json("sae", "sae.json") if (ws.out / "sae" / "sae.json").exists() else None,
    )
