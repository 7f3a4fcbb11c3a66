"""CLI: `steer-compare`, every steering method on the same held-out value test, with its costs."""

from __future__ import annotations

import argparse
from pathlib import Path

from mechvalue.cli.common import add_model_args, csv_list


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
    from mechvalue.measure.scoring import Measurer
    from mechvalue.study import inventory as inv
    from mechvalue.study.roles import generate_roles
    from mechvalue.study.settings import default_human_answers

    if a.layer is None:
        from mechvalue.interp.sae_recipe import recipe_layer

        a.layer = recipe_layer(a.model)
    hook = f"blocks.{a.layer}.hook_resid_post"
    methods = a.methods or list(METHODS)
    items = inv.select(inv.load_inventory(a.inventory), csv_list(a.questionnaire))
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
    res = run_compare(
        model,
        Measurer(model, info.prompt_format),
        sae,
        typical,
        items,
        roles,
        spec,
        a.out,
        graph,
        graph_name=gname,
    )
    print(f"wrote {Path(a.out) / 'compare.csv'} ({len(res['compare'])} rows), best.csv; graph: {gname}")
    print(res["summary"]["verdict"])


def register(sub) -> None:
    p = sub.add_parser(
        "steer-compare", help="prompting, DiffMean, CAA and SAE features on one held-out value test"
    )
    add_model_args(p)
    p.add_argument("--sae", default=None, help="SAE folder (default: the recipe's for --layer)")
    p.add_argument("--layer", type=int, default=None, help="default: the model's middle layer (the recipe's)")
    p.add_argument("--values", default=None, help="comma-separated target values (default: all)")
    from mechvalue.analysis.steering.methods import METHODS

    names = ", ".join(f"{n} ({m.unit})" for n, m in METHODS.items())
    p.add_argument(
        "--methods", type=_methods, default=None, help=f"comma-separated, of: {names} (default: all)"
    )
    p.add_argument("--vector-strengths", default="0.25,0.5,1", help="residual-norm units")
    p.add_argument("--sae-strengths", default="4,8,16", help="typical-activation units")
    p.add_argument("--where", choices=["prompt", "all"], default="all")
    p.add_argument("--kl-bound", type=float, default=0.25, help="admissible: mean KL on neutral text <= this")
    p.add_argument("--inventory", default=None)
    p.add_argument("--questionnaire", default=None)
    p.add_argument("--roles", type=int, default=40, help="named roles, split 0.7 train / 0.3 test")
    p.add_argument("--vector-roles", type=int, default=4)
    p.add_argument("--corr-roles", type=int, default=12)
    p.add_argument("--grad-roles", type=int, default=8)
    p.add_argument("--neutral", type=int, default=4, help="neutral prompts and texts for the fluency cost")
    p.add_argument("--bootstrap", type=int, default=500)
    p.add_argument("--human", default=None, help="PVQ-40 answers CSV for the value graph")
    p.add_argument("--graph", default=None, help="a saved value graph (JSON) instead")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    p.set_defaults(fn=cmd_steer_compare)
