"""Live steering experiments: roles x conditions (unsteered, SAE features at chosen strengths,
hard prompts "inclined / disinclined to V"), measured and written in the study's table schema.

Each condition is measured once and saved as its own part file, so an interrupted grid resumes
where it stopped. Outputs: `steer.csv` (unsteered + SAE rows; `steer_dim` = feature id, or
`feature@strength` when several strengths are run), `hard_positive.csv` / `hard_negative.csv`
(one row per role, each value measured under the prompt that leans on it, as the study's
compare tables), `items.csv` (every item) and `conditions.json` (what each label means).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import pandas as pd
from torch import Tensor

from mechvalue.errors import MechValueError
from mechvalue.interp.sae import SAE
from mechvalue.interp.steering import Mode, SAEEditHook, SteeringSpec, Units, is_identity
from mechvalue.io import write_csv, write_json
from mechvalue.measurement.scoring import Condition
from mechvalue.measurement.steering_inputs import SteeringInputs
from mechvalue.study.inventory import value_definitions
from mechvalue.study.prompts import HardPrompt
from mechvalue.study.schema import HARD_LABELS, hard_label, is_hard, wide_table

GridWhere = Literal["span", "prompt"]


@dataclass
class GridSpec:
    features: list[int]
    strengths: list[float] = field(default_factory=lambda: [8.0])
    mode: Mode = "add"
    """add, clamp or scale (see SteeringSpec)"""
    where: GridWhere = "span"
    """the " your values" span or every prompt token"""
    units: Units = "typical"
    """typical: strength x the feature's typical activation; raw"""
    hard_prompts: bool = True

    def build(self, sae: SAE, typical: Tensor | None, values: list[str]) -> list[Condition]:
        """The grid's conditions (`conditions`): what a worker rebuilds from a `GridJob`."""
        return conditions(sae, typical, self, values)


def hard_prompts(values: list[str], direction: int) -> dict[str, HardPrompt]:
    defs = value_definitions()
    return {v: HardPrompt(v, defs.get(v, v.lower()), direction) for v in values}


def label(feature: int, strength: float, several: bool) -> object:
    return f"{feature}@{strength:g}" if several else feature


def conditions(sae: SAE, typical: Tensor | None, spec: GridSpec, values: list[str]) -> list[Condition]:
    """The grid's conditions, unsteered first."""
    out = [Condition()]
    several = len(spec.strengths) > 1
    for f in spec.features:
        for s in spec.strengths:
            steer = SteeringSpec([f], spec.mode, s, units=spec.units)
            info = {
                "kind": "sae",
                "feature": f,
                "strength": s,
                "mode": spec.mode,
                "where": spec.where,
                "units": spec.units,
            }
            # a zero edit (a control condition) is the identity: measured without a hook, which a
            # hook that would do nothing refuses to be
            hooks = (
                []
                if is_identity(*steer.edit_vectors(sae, typical))
                else [(sae.cfg.hook_name, SAEEditHook(sae, steer, typical=typical))]
            )
            out.append(Condition(label(f, s, several), hooks, where=spec.where, info=info))
    if spec.hard_prompts:
        for d, name in HARD_LABELS.items():
            out.append(Condition(name, hard=hard_prompts(values, d), info={"kind": "hard", "direction": d}))
    return out


def _fingerprint(spec: GridSpec, conds, roles, items: pd.DataFrame, measurer: dict, typical) -> str:
    """What a grid's rows depend on besides the model: its parts may only be reused under the same."""
    t = (
        hashlib.sha256(typical.detach().float().cpu().numpy().tobytes()).hexdigest()
        if typical is not None
        else None
    )
    key = {
        "spec": asdict(spec),
        "conditions": [c.describe() for c in conds],
        "typical": t,
        "roles": [[r.name, r.trait] if r else None for r in roles],
        "measurer": measurer,
        "items": items[["item", "question", "value", "agreement"]].astype(str).values.tolist(),
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _refuse_other_grid(out: Path, key: str) -> None:
    """A folder holding parts of a grid with other settings is refused, never mixed into this one."""
    prev, parts = out / "conditions.json", out / "parts"
    if prev.exists() and parts.is_dir() and any(parts.glob("*.csv")):
        try:
            old = json.loads(prev.read_text()).get("settings_hash")
        except (OSError, ValueError):
            old = None
        if old != key:
            raise MechValueError(
                f"{out} holds steering-grid parts made with other settings (roles, items, "
                "features, strengths or typical activations); use a new --out"
            )


def run_grid(
    inputs: SteeringInputs,
    spec: GridSpec,
    out: str | Path,
    progress: bool = True,
    executor=None,
    model=None,
    sae_path: str | None = None,
) -> dict[str, pd.DataFrame]:
    """Measure every role of `inputs` under every condition of `spec` (steering its SAE, strengths
    in units of its typical activations or raw); resumable through `out/parts/`.

    `executor` (default: this process; mechvalue.distributed) runs the grid as tasks, a condition x
    a block of roles (the conditions `batch_conditions` measures together, a block of roles);
    workers load `model` (the driver's loaded model, or a name or folder) and the SAE at
    `sae_path` themselves."""
    from mechvalue.measurement.condition_batch import condition_groups, grouped_local
    from mechvalue.measurement.tasks import (
        GridJob,
        GridParts,
        measure_block,
        measurer_settings,
        roles_per_task,
        run_here,
        together,
    )

    measurer, items, roles, sae, typical = (
        inputs.measurer,
        inputs.items,
        inputs.roles,
        inputs.sae,
        inputs.typical,
    )
    out = Path(out)
    values = sorted(items["value"].unique())
    conds = conditions(sae, typical, spec, values)
    key = _fingerprint(spec, conds, roles, items, measurer_settings(measurer), typical)
    _refuse_other_grid(out, key)
    write_json(
        {"spec": asdict(spec), "conditions": [c.describe() for c in conds], "settings_hash": key},
        out / "conditions.json",
    )
    labels = [str(c.label) for c in conds]
    parts = GridParts(out / "parts", labels, len(roles))

    def local(t):
        return measure_block(measurer, items, roles[t.lo : t.hi], conds[t.cond])

    if executor is None or executor.kind == "local":
        tasks = parts.pending(len(roles))  # whole conditions, as ever
        # this process measures SAE conditions and the unsteered one together (condition_batch)
        local = grouped_local(measurer, items, roles, conds) if inputs.batch_conditions else local
        if executor is None:
            run_here("steer-grid", tasks, parts.done, local, progress)
        else:
            executor.run_tasks("grid", tasks, parts.done, local=local, job=None, model=None)
    else:
        if model is None or sae_path is None:
            raise ValueError("a distributed grid needs model= and sae_path=: workers load them themselves")
        groups = condition_groups(conds) if inputs.batch_conditions else []
        job = GridJob(
            f"grid:{uuid.uuid4()}", items, roles, measurer_settings(measurer), spec, typical, sae_path, labels
        )
        units = len(conds) - sum(len(g) - 1 for g in groups)  # a group is one unit of work
        per = roles_per_task(len(roles), units, executor.workers(model))

        def done(t, rows):
            for one, r in zip(t.split(labels), rows if t.conds else [rows]):
                parts.done(one, r)

        tasks = together(parts.pending(per), groups)
        executor.run_tasks("grid", tasks, done, local=local, job=job, model=model)
    long_parts = [
        pd.read_csv(parts.part(k), keep_default_na=False, na_values=[""]) for k in range(len(conds))
    ]
    long = pd.concat(long_parts, ignore_index=True)
    label_str = long["steer_dim"].astype(str)
    tables = {"steer": wide_table(long[~is_hard(long["steer_dim"])]), "items": long}
    for name, key in (("hard_positive", hard_label(1)), ("hard_negative", hard_label(-1))):
        if (label_str == key).any():
            w = wide_table(long[label_str == key])
            w["steer_dim"] = float("nan")
            tables[name] = w
    for name, df in tables.items():
        write_csv(df, out / f"{name}.csv")
    return tables
