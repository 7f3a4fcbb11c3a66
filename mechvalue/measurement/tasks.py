"""The grid as tasks: a condition x a block of roles, run by an executor (this process, or Ray
workers: mechvalue.distributed). The driver writes each finished task at
once (a block file, or the condition's part file once its last block is in), so an interrupted
grid resumes from what is on disk, whichever executor ran it and with whatever block sizes."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, fields
from pathlib import Path

import pandas as pd

from mechvalue.io import write_csv
from mechvalue.study.roles import Role

_BLOCK = re.compile(r"^(\d{4})\.r(\d+)-(\d+)\.csv$")


@dataclass(frozen=True)
class Task:
    """Condition `cond` (its index; `label` for messages) for roles `lo`..`hi - 1`; with `conds`,
    those conditions measured together (`cond` the first), their rows a list in that order."""

    cond: int
    lo: int
    hi: int
    label: str = ""
    kind: str = "condition"  # or "resamples": a block of bootstrap resamples
    conds: tuple[int, ...] = ()

    def split(self, labels: list[str]) -> list[Task]:
        """One task per condition of a task measured together (itself otherwise)."""
        return [Task(k, self.lo, self.hi, labels[k]) for k in self.conds] or [self]

    def describe(self) -> str:
        if self.kind == "resamples":
            return f"bootstrap resamples {self.lo}-{self.hi - 1}"
        return f"condition {self.cond} ({self.label}), roles {self.lo}-{self.hi - 1}"


@dataclass
class GridJob:
    """What every task of one grid shares; picklable (no model, no hooks): workers rebuild the
    conditions with `spec.build(sae, typical, values)` and their own SAE (a `grid.GridSpec`, or
    the steering comparison's `CompareConditions`). `spec=None`: the unsteered condition only."""

    key: str  # distinguishes jobs in a worker's caches
    items: pd.DataFrame
    roles: list[Role | None]
    measurer: dict  # Measurer settings besides the model
    spec: object | None = None  # has .build(sae, typical, values) -> conditions
    typical: object | None = None  # the SAE features' typical activations (d_sae floats)
    sae: str | None = None  # the SAE folder each worker loads
    labels: list[str] = field(default_factory=list)  # the driver's condition labels, checked by workers
    measurer_type: type | None = None  # a Measurer subclass the driver measures with (None: Measurer)


def together(tasks: list[Task], groups: list[list[int]]) -> list[Task]:
    """`tasks` with those of one group's conditions over the same roles merged into one task that
    measures them together (`Task.conds`); the rest as they are."""
    group_of = {k: tuple(g) for g in groups for k in g}
    merged: dict[tuple, list[Task]] = {}
    out: list[Task] = []
    for t in tasks:
        g = group_of.get(t.cond)
        if g is None:
            out.append(t)
        else:
            merged.setdefault((g, t.lo, t.hi), []).append(t)
    for (_, lo, hi), ts in merged.items():
        ks = tuple(t.cond for t in ts)
        out.append(ts[0] if len(ks) == 1 else Task(ks[0], lo, hi, f"{len(ks)} conditions together", conds=ks))
    return out


def measure_block(measurer, items: pd.DataFrame, roles: list, cond) -> pd.DataFrame:
    """Rows of `roles` under `cond` in the study's long schema (steer_dim, player_name, item...),
    through the public `measure`, whichever executor runs the task."""
    from mechvalue.measurement.scoring import measure

    return measure(measurer, items, roles, [cond], progress=False)[0]


@dataclass
class Placement:
    """Where a stage's model tasks run: `executor` (None: this process, one task after another;
    mechvalue.distributed), and what its workers load themselves: `model` (the driver's model
    info, a name or a folder) and the SAE at `sae_path`."""

    executor: object = None
    model: object = None
    sae_path: str | None = None


def run_conditions(stage: str, inputs, conds: list, folder: Path, wanted: list[bool], spec, where: Placement):
    """Every role of `inputs` (a `SteeringInputs`: the measurer, items, roles and typical
    activations) under each wanted condition (the others None), resumable through `folder`
    (`GridParts`, one part per condition index: keep `conds` in one order across reruns). On an
    executor's workers they are rebuilt from `spec` (`spec.build(sae, typical, values)` gives
    `conds`); else measured here, one condition at a time. Returns a long table per condition."""
    import uuid

    measurer, items, roles, ex = inputs.measurer, inputs.items, inputs.roles, where.executor
    labels = [str(c.label) for c in conds]
    parts = GridParts(folder, labels, len(roles))
    if ex is None or ex.kind == "local":
        tasks = [t for t in parts.pending(len(roles)) if wanted[t.cond]]

        def local(t):
            return measure_block(measurer, items, roles[t.lo : t.hi], conds[t.cond])

        if ex is None:
            run_here(stage, tasks, parts.done, local, progress=False)
        else:
            ex.run_tasks(stage, tasks, parts.done, local=local, job=None, model=None)
    else:
        settings = measurer_settings(measurer)
        job = GridJob(
            f"{stage}:{uuid.uuid4()}", items, roles, settings, spec, inputs.typical, where.sae_path, labels
        )
        job.measurer_type = type(measurer)
        per = roles_per_task(len(roles), sum(wanted), ex.workers(where.model))
        tasks = [t for t in parts.pending(per) if wanted[t.cond]]
        ex.run_tasks(stage, tasks, parts.done, local=None, job=job, model=where.model)
    return [read_part(parts.part(k)) if w else None for k, w in enumerate(wanted)]


def measurer_settings(measurer) -> dict:
    """A Measurer's settings besides its model: a worker rebuilds it around its own model."""
    return {f.name: getattr(measurer, f.name) for f in fields(measurer) if f.init and f.name != "model"}


def roles_per_task(n_roles: int, n_conds: int, workers: int) -> int:
    """Whole conditions when there are enough of them to keep every worker busy (8 tasks each:
    tasks differ in cost, and the last one finishing leaves the other workers idle); otherwise
    conditions split into equal blocks of roles."""
    blocks = min(n_roles, max(1, math.ceil(8 * workers / max(n_conds, 1))))
    return math.ceil(n_roles / blocks)


def read_part(path: Path) -> pd.DataFrame:
    """A part or block file as written (exact floats, empty cells = missing)."""
    return pd.read_csv(path, keep_default_na=False, na_values=[""], float_precision="round_trip")


class GridParts:
    """`parts/0007.csv` per finished condition; `parts/0007.r3-5.csv` per finished block of roles
    of an unfinished one (roles 3..4). `done(task, rows)` is called by the driver as tasks finish."""

    def __init__(self, parts: Path, labels: list[str], n_roles: int):
        self.parts, self.labels, self.n_roles = Path(parts), labels, n_roles
        self.parts.mkdir(parents=True, exist_ok=True)
        self.blocks: dict[int, dict[int, tuple[int, pd.DataFrame | None]]] = {}
        for f in self.parts.glob("*.r*-*.csv"):
            m = _BLOCK.match(f.name)
            if m and not self.part(int(m[1])).exists():
                self.blocks.setdefault(int(m[1]), {})[int(m[2])] = (int(m[3]), None)  # read when merged

    def part(self, k: int) -> Path:
        return self.parts / f"{k:04d}.csv"

    def block(self, k: int, lo: int, hi: int) -> Path:
        return self.parts / f"{k:04d}.r{lo}-{hi}.csv"

    def pending(self, per_task: int) -> list[Task]:
        """Tasks for every role of every condition not on disk, in blocks of up to `per_task` roles."""
        out = []
        for k, label in enumerate(self.labels):
            if self.part(k).exists():
                continue
            have = sorted((lo, hi) for lo, (hi, _) in self.blocks.get(k, {}).items())
            gaps, at = [], 0
            for lo, hi in have + [(self.n_roles, self.n_roles)]:
                if lo > at:
                    gaps.append((at, lo))
                at = max(at, hi)
            for lo, hi in gaps:
                out += [Task(k, a, min(a + per_task, hi), label) for a in range(lo, hi, per_task)]
        return out

    def done(self, task: Task, rows: pd.DataFrame) -> None:
        got = self.blocks.setdefault(task.cond, {})
        got[task.lo] = (task.hi, rows)
        if sum(hi - lo for lo, (hi, _) in got.items()) < self.n_roles:
            write_csv(rows, self.block(task.cond, task.lo, task.hi))
            return
        frames = [
            df if df is not None else read_part(self.block(task.cond, lo, hi))
            for lo, (hi, df) in sorted(got.items())
        ]
        write_csv(pd.concat(frames, ignore_index=True), self.part(task.cond))
        for lo, (hi, _) in got.items():
            self.block(task.cond, lo, hi).unlink(missing_ok=True)
        del self.blocks[task.cond]


def run_here(stage: str, tasks: list[Task], on_done, local, progress: bool = True) -> None:
    """Tasks one after another in this process (no executor given)."""
    from tqdm.auto import tqdm

    for t in tqdm(tasks, desc=stage, unit="task", disable=not progress):
        on_done(t, local(t))
