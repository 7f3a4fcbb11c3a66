"""CLI: `steer-compare`, every steering method on the same held-out value test, with its costs."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

from mechvalue.analysis.steering.design import SteerDesign
from mechvalue.analysis.steering.spec import CompareWhere
from mechvalue.cli.common import DesignOptions, ModelOptions, csv_list
from mechvalue.cli.options import add_dataclass_args


def _floats(s: str, flag: str) -> list[float]:
    from mechvalue.errors import MechValueError

    try:
        return [float(x) for x in csv_list(s) or []]
    except ValueError:
        raise MechValueError(f"{flag} {s!r}: expected comma-separated numbers") from None


def _methods(s: str) -> list[str]:
    """--methods: comma-separated names of `steering.methods.METHODS` entries."""
    from mechvalue.analysis.steering.methods import METHODS

    names = csv_list(s) or []
    bad = [m for m in names if m not in METHODS]
    if bad:
        raise argparse.ArgumentTypeError(f"unknown method(s) {bad}: use {', '.join(METHODS)}")
    return names


def cmd_steer_compare(a: argparse.Namespace) -> None:
    from mechvalue.analysis.steer_compare import METHODS, CompareSpec, run_compare, value_graph
    from mechvalue.errors import MechValueError
    from mechvalue.interp.features import typical_from_store
    from mechvalue.interp.sae_formats import load_sae
    from mechvalue.interp.sae_recipe import recipe_folder
    from mechvalue.lm.models import load_model
    from mechvalue.measurement.scoring import Measurer
    from mechvalue.measurement.steering_inputs import SteeringInputs
    from mechvalue.pipeline.preflight import check_design, check_sae
    from mechvalue.study.roles import generate_roles
    from mechvalue.study.settings import default_human_answers

    items = check_design(a, a.out)  # every input before the model loads
    if a.sae:
        check_sae(a.sae)
    if a.layer is None:
        from mechvalue.interp.sae_recipe import recipe_layer

        a.layer = recipe_layer(a.model)
    hook = f"blocks.{a.layer}.hook_resid_post"
    methods = a.methods or list(METHODS)
    spec = CompareSpec(
        values=csv_list(a.values),
        methods=methods,
        hook=hook,
        vector_strengths=_floats(a.vector_strengths, "--vector-strengths"),
        sae_strengths=_floats(a.sae_strengths, "--sae-strengths"),
        where=a.where,
        kl_bound=a.kl_bound,
        vector_roles=a.vector_roles,
        corr_roles=a.corr_roles,
        grad_roles=a.grad_roles,
        neutral_prompts=a.neutral,
        neutral_texts=a.neutral,
        n_boot=a.bootstrap,
        seed=a.seed,
        design=a.design,
    )
    spec.check()
    values = sorted(items["value"].unique())
    unknown = sorted(set(spec.values or []) - set(values))
    if unknown:
        raise MechValueError(f"--values: {unknown} not in the inventory's column 'value' (have {values})")
    if a.roles < 2 or a.roles > 500:
        raise MechValueError(f"--roles {a.roles}: expected 2..500 (split 0.7 train / 0.3 test)")
    sae_path = Path(a.sae) if a.sae else recipe_folder(a.model, a.layer) / "sae"
    sae = typical = None
    if spec.needs_sae():
        if not a.sae and not sae_path.exists():
            raise MechValueError(
                f"{sae_path}: no SAE; train it with `mechvalue sae-train --layer {a.layer}`, "
                "pass --sae, or leave the sae_* methods out of --methods"
            )
        sae = load_sae(str(sae_path), a.device)
        if sae.cfg.hook_name != hook:
            raise MechValueError(f"--layer {a.layer}: the SAE reads {sae.cfg.hook_name}")
        # the recipe's training cache: typical activations as steer-grid
        own = sae_path.parent / "activations.h5"
        typical = typical_from_store(sae, own) if own.exists() else None
    model, info = load_model(a.model, a.device, a.dtype, a.prompt_format)
    graph, gname = value_graph(values, a.human or default_human_answers(), a.graph)
    roles = generate_roles(a.roles, a.seed)
    inputs = SteeringInputs(Measurer(model, info.prompt_format), sae, typical, items, roles)
    res = run_compare(inputs, spec, a.out, graph, graph_name=gname)
    print(f"wrote {Path(a.out) / 'compare.csv'} ({len(res['compare'])} rows), best.csv; graph: {gname}")
    print(res["summary"]["verdict"])


def _method_help() -> str:
    from mechvalue.analysis.steering.methods import METHODS

    names = ", ".join(f"{n} ({m.unit})" for n, m in METHODS.items())
    return f"comma-separated, of: {names} (default: all)"


@dataclass(kw_only=True)
class SteerCompareOptions(ModelOptions, DesignOptions):
    """The options of `mechvalue steer-compare`."""

    sae: str | None = None
    """SAE folder (default: the recipe's for --layer)"""
    layer: int | None = None
    """SAE layer; default: the model's middle layer (the recipe's)"""
    values: str | None = None
    """comma-separated target values (default: all)"""
    methods: list[str] | None = field(default=None, metadata={"type": _methods, "help": _method_help})
    vector_strengths: str = "0.25,0.5,1"
    """residual-norm units"""
    sae_strengths: str = "4,8,16"
    """typical-activation units"""
    where: CompareWhere = "all"
    design: SteerDesign = "powered"
    """'powered': one strength per method and value (the largest within --kl-bound on neutral
    text), a seeded sample of the values and as many test roles as its CIs need; 'exhaustive':
    every strength, value and test role (see mechvalue.analysis.steering.design)"""
    kl_bound: float = 0.25
    """admissible: mean KL on neutral text <= this"""
    roles: int = 40
    """named roles, split 0.7 train / 0.3 test"""
    vector_roles: int = 4
    corr_roles: int = 12
    grad_roles: int = 8
    neutral: int = 4
    """neutral prompts and texts for the fluency cost"""
    bootstrap: int = 500
    human: str | None = None
    """PVQ-40 answers CSV for the value graph"""
    graph: str | None = None
    """a saved value graph (JSON) instead"""
    out: str


def register(sub) -> None:
    p = sub.add_parser(
        "steer-compare", help="prompting, DiffMean, CAA and SAE features on one held-out value test"
    )
    add_dataclass_args(p, SteerCompareOptions)
    p.set_defaults(fn=cmd_steer_compare)
