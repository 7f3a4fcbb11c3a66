"""CLI: `run` (the whole study, resumable, with its HTML report) and `steer-grid`."""

from __future__ import annotations

import argparse
from pathlib import Path

from mechvalue.cli.common import add_model_args, add_protocol_arg, add_scoring_arg
from mechvalue.distributed.executor import add_executor_args, executor_from_args


def cmd_run(a: argparse.Namespace) -> None:
    from mechvalue.pipeline.config import RunConfig
    from mechvalue.pipeline.run import run
    from mechvalue.study.settings import default_human_answers

    human = a.human or default_human_answers()
    kw = {"model": a.model, "sae": a.sae, "layer": a.layer, "inventory": a.inventory, "questionnaire": a.questionnaire,
          "roles": a.roles, "grid_roles": a.grid_roles, "features": a.features, "strength": a.strength,
          "bootstrap": a.bootstrap, "seed": a.seed, "device": a.device, "dtype": a.dtype,
          "prompt_format": a.prompt_format, "human": human, "protocol": a.protocol}  # fmt: skip
    cfg = (
        RunConfig.quick_preset(**kw)
        if a.quick
        else RunConfig(**{k: v for k, v in kw.items() if v is not None})
    )
    with executor_from_args(a) as ex:
        print(f"report: {run(a.out, cfg, executor=ex)}")


def cmd_steer_grid(a: argparse.Namespace) -> None:
    import torch

    from mechvalue.interp.cache import check_sae_fits
    from mechvalue.interp.features import span_candidates, typical_activation
    from mechvalue.interp.sae_formats import load_sae
    from mechvalue.lm.models import load_model
    from mechvalue.measure.grid import GridSpec, run_grid
    from mechvalue.measure.scoring import Measurer
    from mechvalue.study import inventory as inv
    from mechvalue.study.prompts import render
    from mechvalue.study.roles import generate_roles

    model, info = load_model(a.model, a.device, a.dtype, a.prompt_format)
    sae = load_sae(a.sae, a.device)
    check_sae_fits(model, sae, a.sae)
    items = inv.select(inv.load_inventory(a.inventory), [a.questionnaire] if a.questionnaire else None)
    roles = [None, *generate_roles(a.roles, a.seed)]
    feats = [int(f) for f in a.features.split(",")] if a.features else None
    # typical activations (and, without --features, the study's span rule) from the prompts themselves
    acts = []

    def keep(t, hook):
        acts.append(t[0].detach().float())

    with torch.no_grad():
        for q in items["question"]:
            p = render(q, None, info.prompt_format, model.tokenizer)
            model.run_with_hooks(torch.tensor([p.tokens]), fwd_hooks=[(sae.cfg.hook_name, keep)])
            acts[-1] = (acts[-1][1:], acts[-1][p.span[0] : p.span[1]])
    typical = typical_activation(sae, torch.cat([a_ for a_, _ in acts]))
    if feats is None:
        feats = span_candidates(sae.encode(torch.cat([s for _, s in acts])), a.top_k)
    strengths = [float(s) for s in a.strengths.split(",")]
    spec = GridSpec(feats, strengths, a.mode, a.where, a.units, not a.no_hard)
    with executor_from_args(a) as ex:
        t = run_grid(Measurer(model, info.prompt_format, a.scoring), items, roles, sae, typical, spec, a.out,
                     executor=ex, model=info, sae_path=str(Path(a.sae).absolute()) if Path(a.sae).exists() else a.sae)  # fmt: skip
        ex.log.write(a.out)
    print(f"wrote {Path(a.out) / 'steer.csv'} ({len(t['steer'])} rows; features {feats})")


def register(sub) -> None:
    r = sub.add_parser("run", help="the whole study on one model, resumable, with an HTML report")
    add_model_args(r, model=None, device=None)
    r.add_argument(
        "--sae",
        default=None,
        help="'train' (default) or an SAE folder (mechvalue, SAELens, sparsify, Gemma Scope) or a SAELens release:sae_id",
    )
    r.add_argument("--layer", type=int, default=None)
    r.add_argument("--inventory", default=None)
    r.add_argument("--questionnaire", default=None)
    r.add_argument("--roles", type=int, default=None)
    r.add_argument("--grid-roles", type=int, default=None)
    r.add_argument("--features", type=int, default=None)
    r.add_argument("--strength", type=float, default=None, help="steering strength, typical-activation units")
    r.add_argument("--bootstrap", type=int, default=None)
    r.add_argument(
        "--human",
        default=None,
        help="PVQ-40 answers CSV (default: ../shared/data/human/PVQ40.csv if present)",
    )
    r.add_argument("--seed", type=int, default=None)
    add_protocol_arg(r, default=None)
    r.add_argument("--quick", action="store_true", help="a few-minute run (CI)")
    add_executor_args(r)
    r.add_argument("--out", required=True)
    r.set_defaults(fn=cmd_run)

    g = sub.add_parser("steer-grid", help="roles x steering conditions, in the study's table schema")
    add_model_args(g)
    g.add_argument(
        "--sae",
        required=True,
        help="SAE folder (mechvalue, SAELens, sparsify, Gemma Scope) or a SAELens release:sae_id",
    )
    g.add_argument("--features", default=None, help="comma-separated feature ids")
    g.add_argument("--top-k", type=int, default=5, help="without --features: most active on ' your values'")
    g.add_argument("--strengths", default="30", help="comma-separated strengths")
    g.add_argument("--units", choices=["typical", "raw"], default="typical")
    g.add_argument("--mode", choices=["add", "clamp", "scale"], default="add")
    g.add_argument("--where", choices=["span", "prompt"], default="span")
    g.add_argument("--no-hard", action="store_true", help="skip the hard-prompt conditions")
    g.add_argument("--inventory", default=None)
    g.add_argument("--questionnaire", default=None)
    g.add_argument("--roles", type=int, default=10)
    g.add_argument("--seed", type=int, default=0)
    add_scoring_arg(g)
    add_executor_args(g)
    g.add_argument("--out", required=True)
    g.set_defaults(fn=cmd_steer_grid)
