"""Every steering method on the same held-out value test, with its costs (issue 20).

The methods are the entries of `steering.methods.METHODS` (prompting, the reference; DiffMean and
CAA vectors; the best SAE feature per value chosen three ways). Vectors, features and feature
choices come from the TRAIN items and roles only (the study's seeded 0.7 split, and the same split
of roles); every metric is measured on the TEST items and roles only.

Units: each method's strengths are in its unit (`CompareSpec.strengths`); score changes in
between-role SD units (the SD of the unsteered test roles' scores of that value). Statistics need
at least `MIN_ROLES` roles; below that they are NaN with the note "too few roles".

This module runs the comparison (size it by its design, prepare on train, measure per method x
strength, resume from the part files, the tables); its parts live in `mechvalue.analysis.steering`
(the designs and their costs in `steering.design`), and the names other modules use are
importable from here.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from mechvalue.analysis.steering.base import Built, SteerContext, Steering, TrainContext
from mechvalue.analysis.steering.design import (
    Plan,
    RoleVariance,
    cost,
    halfwidths,
    plan,
    sample_values,
)
from mechvalue.analysis.steering.fluency import fluency, neutral_kl
from mechvalue.analysis.steering.methods import METHODS
from mechvalue.analysis.steering.report import (
    best_table,
    plot_selectivity,
    plot_tradeoff,
    report_section,
    verdict,
    winners,
)
from mechvalue.analysis.steering.spec import CompareSpec
from mechvalue.analysis.steering.stats import MIN_ROLES, effect_metrics, value_graph
from mechvalue.causal.graph import ValueGraph
from mechvalue.errors import MechValueError
from mechvalue.interp import vectors as vec
from mechvalue.io import save_torch, write_csv, write_json
from mechvalue.lm.batching import chunks
from mechvalue.measurement.scoring import Condition, Measurer
from mechvalue.measurement.steering_inputs import SteeringInputs
from mechvalue.measurement.tasks import Placement, run_conditions
from mechvalue.study.inventory import split
from mechvalue.study.roles import Role
from mechvalue.study.schema import by_role, wide_table

__all__ = [
    "METHODS",
    "MIN_ROLES",
    "CompareSpec",
    "Prepared",
    "best_table",
    "condition_for",
    "design_plan",
    "held_out_values",
    "jobs",
    "prepare",
    "report_section",
    "run_compare",
    "split_roles",
    "tables",
    "value_graph",
    "verdict",
    "winners",
]


def split_roles(roles: list[Role], seed: int = 0, train_frac: float = 0.7) -> tuple[list[Role], list[Role]]:
    """Seeded split of the named roles, as `inventory.split` splits items."""
    idx = list(range(len(roles)))
    random.Random(seed).shuffle(idx)
    k = int(train_frac * len(roles))
    return [roles[i] for i in sorted(idx[:k])], [roles[i] for i in sorted(idx[k:])]


@dataclass
class Prepared:
    """What the train split produced: the unit, each method's build and the chosen features."""

    unit: float
    hook: str
    built: dict[str, dict[str, Any]]  # method -> value -> what its condition needs
    features: pd.DataFrame  # the SAE choices with their statistics (features.csv)
    train_items: list
    test_items: list
    train_roles: list[str]
    test_roles: list[str]


def checked_targets(items: pd.DataFrame, spec: CompareSpec) -> list[str]:
    """`spec`'s target values (None: every value of the items), each with train and test items."""
    spec.check()
    train, test = split(items, spec.seed)
    targets = spec.values or sorted(items["value"].unique())
    unknown = sorted(set(targets) - set(items["value"]))
    if unknown:
        raise MechValueError(f"unknown value(s) {unknown}: not in the items' column 'value'")
    short = sorted(set(targets) - (set(train["value"]) & set(test["value"])))  # as held_out_values
    if short:
        counts = ", ".join(f"value {v!r} has {int((items['value'] == v).sum())} item(s)" for v in short)
        raise MechValueError(
            f"{counts}: the seeded 0.7 split leaves no train or test items, and every "
            "method is built on train items and judged on test ones"
        )
    return list(targets)


def design_plan(inputs: SteeringInputs, spec: CompareSpec) -> tuple[CompareSpec, Plan]:
    """The design's sizes (`design.plan` over every target, test role and test item) and the spec
    it runs: under the powered design its targets are a seeded sample of the given ones."""
    targets = checked_targets(inputs.items, spec)
    n_test = len(split_roles(inputs.roles, spec.seed)[1])
    p = plan(spec, Plan(spec.design, len(targets), n_test, len(split(inputs.items, spec.seed)[1])))
    if p.values < len(targets):
        spec = replace(spec, values=sample_values(targets, p.values, spec.seed))
    return spec, p


def prepare(
    inputs: SteeringInputs, spec: CompareSpec, progress: bool = True
) -> tuple[Prepared, pd.DataFrame, list[Role]]:
    """Split items and roles, measure the unit and build every method (train only).
    Returns (prepared, test items, test roles)."""
    items, measurer, sae = inputs.items, inputs.measurer, inputs.sae
    targets = checked_targets(items, spec)
    train, test = split(items, spec.seed)
    train_roles, test_roles = split_roles(inputs.roles, spec.seed)
    hook = sae.cfg.hook_name if sae is not None else spec.hook
    if not hook or (sae is None and spec.needs_sae()):
        raise MechValueError("the SAE methods need an SAE (without one, give spec.hook and no sae_* method)")
    unit_prompts = measurer.prompts(train, None, Condition())  # the train items, no role
    unit = vec.residual_norm(inputs.model, hook, unit_prompts, spec.where)
    ctx = TrainContext(
        inputs.model, measurer, sae, inputs.typical, train, targets, train_roles, hook, spec, progress
    )
    built: dict[str, Built] = {m: METHODS[m].build(ctx) for m in spec.methods}
    rows = [r for b in built.values() for r in b.rows]
    feats = pd.DataFrame(rows) if rows else pd.DataFrame(columns=["value", "method", "feature"])
    prep = Prepared(
        unit,
        hook,
        {m: b.per_value for m, b in built.items()},
        feats,
        list(train["item"]),
        list(test["item"]),
        [r.name for r in train_roles],
        [r.name for r in test_roles],
    )
    return prep, test, test_roles


def steer_context(prep: Prepared, inputs: SteeringInputs, spec: CompareSpec) -> SteerContext:
    """What the conditions of one run share."""
    values = sorted(inputs.items["value"].unique())
    return SteerContext(prep.unit, prep.hook, inputs.sae, inputs.typical, values, spec.where)


def condition_for(
    method: str, value: str, strength: float, prep: Prepared, ctx: SteerContext
) -> Steering | None:
    """The value-test condition, fluency hooks and hint for one method x value x strength; None
    when the method has nothing for this value (e.g. too few roles)."""
    return METHODS[method].condition(value, strength, prep.built.get(method, {}).get(value), ctx)


@dataclass
class CompareConditions:
    """The value test's conditions, unsteered first, then each (method, value, strength) of
    `entries`: what a worker rebuilds them from (`GridJob.spec`), with its own SAE."""

    prep: Prepared
    values: list[str]  # every value of the items (the context's, not only the test items')
    where: str
    entries: list[tuple[str, str, float]]

    def build(self, sae, typical, values=None) -> list[Condition]:
        """The conditions with `sae` and `typical` (the worker's `values`, the test items', unused)."""
        ctx = SteerContext(self.prep.unit, self.prep.hook, sae, typical, self.values, self.where)
        return [Condition()] + [condition_for(m, v, s, self.prep, ctx).condition for m, v, s in self.entries]


def held_out_values(items: pd.DataFrame, seed: int = 0) -> list[str]:
    """The values with both train and test items under the seeded 0.7 split (at least 2 items)."""
    train, test = split(items, seed)
    return sorted(set(train["value"]) & set(test["value"]))


@dataclass
class OneHardMeasurer(Measurer):
    """A measurer that batches a hard-prompt condition by hard prompt, not by value: prompting asks
    every item with the target's one hard prompt, so all of a role's items share the prompt up to
    the question and run as one prefix-cached batch instead of one per value (the powered design;
    the exhaustive design keeps the per-value batches its tables were measured with)."""

    def batches(self, items: pd.DataFrame, cond: Condition, decodes: bool = False) -> list[list[int]]:
        if not cond.hard:
            return super().batches(items, cond, decodes)
        groups: dict[str, list[int]] = {}
        for i, v in enumerate(items["value"]):
            groups.setdefault(repr(cond.hard.get(v)), []).append(i)
        size = self.decode_batch_size if decodes else self.batch_size
        return [g[sl] for g in groups.values() for sl in chunks(len(g), size)]


def one_hard(measurer: Measurer) -> OneHardMeasurer:
    """`measurer` as a `OneHardMeasurer` (same settings)."""
    return OneHardMeasurer(**{f.name: getattr(measurer, f.name) for f in fields(measurer) if f.init})


def choose_strengths(
    model, prep: Prepared, ctx: SteerContext, spec: CompareSpec, targets: list[str], path: Path
) -> dict[str, dict[str, float]]:
    """The powered design's strength per method and value: the largest whose mean KL on the
    neutral text is within `spec.kl_bound` (probed from the largest down), else the smallest; a
    value the method has nothing for gets the first strength (its row says why). Saved to `path`
    with the probed KLs, and read back from it."""
    if path.exists():
        return {m: {v: c["strength"] for v, c in d.items()} for m, d in json.loads(path.read_text()).items()}
    saved: dict[str, dict[str, dict]] = {}
    for m in spec.methods:
        saved[m] = {}
        strengths = spec.strengths(m)
        for v in targets:
            kls: dict[str, float] = {}
            chosen = strengths[0]
            for s in sorted(strengths, reverse=True) if len(strengths) > 1 else []:
                st = condition_for(m, v, s, prep, ctx)
                if st is None:
                    break
                kls[f"{s:g}"] = float(neutral_kl(model, st.hooks, st.hint, spec)[0].mean())
                chosen = s
                if kls[f"{s:g}"] <= spec.kl_bound:
                    break
            saved[m][v] = {"strength": chosen, "kl": kls}
    write_json(saved, path)
    return {m: {v: c["strength"] for v, c in d.items()} for m, d in saved.items()}


def jobs(
    spec: CompareSpec, targets: list[str], chosen: dict[str, dict[str, float]] | None
) -> list[tuple[str, float, list[str]]]:
    """(method, strength, target values) measured over the same test prompts: every strength
    for every value (`chosen` None: the exhaustive design), or each value at its chosen one."""
    if chosen is None:
        return [(m, s, list(targets)) for m in spec.methods for s in spec.strengths(m)]
    out = []
    for m in spec.methods:
        for s in spec.strengths(m):
            vs = [v for v in targets if chosen[m][v] == s]
            if vs:
                out.append((m, s, vs))
    return out


def run_compare(
    inputs: SteeringInputs,
    spec: CompareSpec,
    out: str | Path,
    graph: ValueGraph | None = None,
    graph_name: str = "given",
    progress: bool = True,
    where: Placement | None = None,
) -> dict[str, pd.DataFrame]:
    """The whole comparison, resumable: `out/parts/<method>@<strength>.csv` (+ .json) per method x
    strength (the powered design: `parts/strengths.json`, each value's chosen strength); then
    `compare.csv`, `best.csv`, `features.csv`, `summary.json`, `design.json` (with the design's
    sizes, cost and CI half-widths) and the plots. The measurement runs in batches of at least
    `spec.batch_size` (on a copy of the measurer); the test roles' measurements (`parts/measured/`)
    where `where` places them (default: here; an executor's workers load the model and the SAE
    themselves: mechvalue.distributed)."""
    out = Path(out)
    parts = out / "parts"
    if (out / "design.json").exists():  # its parts were measured for that design's conditions
        was = json.loads((out / "design.json").read_text()).get("design", {}).get("design", "exhaustive")
        if was != spec.design:
            raise MechValueError(f"{out} holds a comparison of the {was} design; use a new folder")
    parts.mkdir(parents=True, exist_ok=True)
    spec, sizes = design_plan(inputs, spec)
    measurer = replace(inputs.measurer, batch_size=max(inputs.measurer.batch_size, spec.batch_size))
    if spec.design == "powered":
        measurer = one_hard(measurer)
    model, items, roles, sae = measurer.model, inputs.items, inputs.roles, inputs.sae
    typical = inputs.typical
    if typical is None and sae is not None:
        from mechvalue.interp.features import typical_from_prompts

        typical = typical_from_prompts(model, sae, measurer.prompts(items, None, Condition()))
    inputs = replace(inputs, measurer=measurer, typical=typical)
    key = json.dumps(
        {k: v for k, v in asdict(spec).items() if k not in ("kl_bound", "n_boot", "n_null")}
        | {"items": items.to_dict("list"), "roles": [r.name for r in roles], "prepared": "per method"},
        sort_keys=True,
        default=str,
    )
    saved = out / "prepared.pt"  # vectors and chosen features: a resumed run does not rebuild them
    old = torch.load(saved, weights_only=False) if saved.exists() else None
    if old is not None and old["key"] == key:
        prep = old["prep"]
        test = items[items["item"].isin(prep.test_items)].reset_index(drop=True)
        test_roles = [r for r in roles if r.name in set(prep.test_roles)]
    else:
        prep, test, test_roles = prepare(inputs, spec, progress)
        save_torch({"key": key, "prep": prep}, saved)
    test_roles = test_roles[: sizes.test_roles]
    values = sorted(items["value"].unique())
    targets = spec.values or values
    if graph is None:
        graph, gname = value_graph(values)
    else:
        gname = graph_name
    write_csv(prep.features, out / "features.csv")
    write_json(
        {
            "spec": asdict(spec),
            "unit_resid_norm": prep.unit,
            "train_items": prep.train_items,
            "test_items": prep.test_items,
            "train_roles": prep.train_roles,
            "test_roles": [r.name for r in test_roles],
            "graph": gname,
            "min_roles": MIN_ROLES,
            "design": design_record(spec, replace(sizes, test_roles=len(test_roles))),
        },
        out / "design.json",
    )
    rng = np.random.default_rng(spec.seed)
    basef = parts / "unsteered.csv"
    ctx = steer_context(prep, inputs, spec)
    exhaustive = spec.design == "exhaustive"
    chosen = (
        None if exhaustive else choose_strengths(model, prep, ctx, spec, targets, parts / "strengths.json")
    )
    todo = jobs(spec, targets, chosen)
    steer = {(m, v, s): condition_for(m, v, s, prep, ctx) for m, s, vs in todo for v in vs}
    steer = {k: st for k, st in steer.items() if st is not None}  # a method with nothing for a value
    # the test roles under every condition first (on the executor's workers, if any), then the
    # fluency and speed costs here, one job after another (the seeded draws in a fixed order)
    entries = list(steer)
    wanted = [not basef.exists()] + [not (parts / f"{m}@{s:g}.csv").exists() for m, _, s in entries]
    rows = run_conditions(
        "steer_compare",
        replace(inputs, items=test, roles=test_roles),
        [Condition()] + [st.condition for st in steer.values()],
        parts / "measured",
        wanted,
        CompareConditions(prep, values, spec.where, entries),
        where or Placement(),
    )
    measured = dict(zip(entries, rows[1:]))
    if not basef.exists():
        flu = fluency(model, [], None, spec, rng)
        write_json(flu, parts / "unsteered.json")
        write_csv(wide_table(rows[0]), basef)
    base = by_role(pd.read_csv(basef))
    for m, s, vs in tqdm(todo, desc="steer-compare", disable=not progress):
        part = parts / f"{m}@{s:g}.csv"
        if part.exists():
            continue
        wides, flus = [], {}
        for v in vs:
            st = steer.get((m, v, s))
            if st is None:
                continue
            wides.append(wide_table(measured[(m, v, s)]).assign(target=v))
            timed = exhaustive or not flus  # the powered design times the first value of a job
            flus[v] = fluency(model, st.hooks, st.hint, spec, rng, timed) | {"info": st.condition.info}
        if not exhaustive and flus:
            first = flus[next(iter(flus))]
            for f in flus.values():
                f["speed"], f["speed_n"] = first["speed"], first["speed_n"]
        write_json(flus, parts / f"{m}@{s:g}.json")
        write_csv(pd.concat(wides, ignore_index=True) if wides else pd.DataFrame(columns=["target"]), part)
    return tables(out, spec, base, graph, todo)


def design_record(spec: CompareSpec, sizes: Plan) -> dict:
    """What design.json says of the design: its sizes, forward tokens and estimated minutes, and
    the CI half-widths at the pilot's per-role variances (`design.RoleVariance`)."""
    rec = {**asdict(sizes), "cost": cost(sizes, spec)}
    if sizes.test_roles >= 2 and sizes.values >= 1:
        rec["halfwidths"] = halfwidths(sizes.test_roles, sizes.values, RoleVariance())
    return rec


def tables(
    out: Path,
    spec: CompareSpec,
    base: pd.DataFrame,
    graph: ValueGraph,
    todo: list[tuple[str, float, list[str]]],
) -> dict:
    """compare.csv (every measured method x value x strength of `todo`, as `jobs` lists them, with
    CIs), best.csv, summary.json, plots."""
    parts = out / "parts"
    ref = json.loads((parts / "unsteered.json").read_text())
    rows = []
    for m, s, targets in todo:
        p = parts / f"{m}@{s:g}.csv"
        if not p.exists():
            continue
        w = pd.read_csv(p)
        flus = json.loads((parts / f"{m}@{s:g}.json").read_text())
        for v in targets:
            if v not in flus:
                rows.append(
                    {"method": m, "value": v, "strength": s, "note": "no feature chosen (too few roles)"}
                )
                continue
            steered = w[w["target"] == v].drop(columns=["target"])
            steered = steered.set_index(steered["player_name"].fillna(""))[list(base.columns)]
            met = effect_metrics(base, steered, v, graph, spec.n_boot, spec.n_null, spec.seed)
            f = flus[v]
            rows.append(
                {
                    "method": m,
                    "value": v,
                    "strength": s,
                    "feature": f["info"].get("feature", ""),
                    **met,
                    "kl": f["kl"],
                    "kl_lo": f["kl_ci"][0],
                    "kl_hi": f["kl_ci"][1],
                    "kl_n": f["kl_n"],
                    "ppl": f["ppl"],
                    "ppl_lo": f["ppl_ci"][0],
                    "ppl_hi": f["ppl_ci"][1],
                    "ppl_n": f["ppl_n"],
                    "ppl_ratio": f["ppl"] / ref["ppl"],
                    "speed_ratio": f["speed"],
                    "admissible": bool(f["kl"] <= spec.kl_bound),
                }
            )
    cmp = pd.DataFrame(rows)
    write_csv(cmp, out / "compare.csv")
    best = best_table(cmp)
    write_csv(best, out / "best.csv")
    summ = {
        "verdict": verdict(best),
        "kl_bound": spec.kl_bound,
        "min_roles": MIN_ROLES,
        "unsteered_ppl": ref["ppl"],
        "winners": winners(best),
    }
    write_json(summ, out / "summary.json")
    if not cmp.empty and "efficacy" in cmp:
        plot_tradeoff(cmp, spec.kl_bound, out / "tradeoff.png")
        plot_selectivity(best, out / "selectivity.png")
    return {"compare": cmp, "best": best, "summary": summ}
