"""CLI: `run` (the whole study, resumable, with its HTML report) and `steer-grid`."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from mechvalue.cli.common import DesignOptions, ModelOptions, add_executor_args, executor_from_args
from mechvalue.cli.options import add_dataclass_args, given
from mechvalue.interp.steering import Mode, Units
from mechvalue.measurement.grid import GridWhere
from mechvalue.measurement.options import scoring_field
from mechvalue.pipeline.config import RunConfig


def cmd_run(a: argparse.Namespace) -> None:
    from mechvalue.pipeline.run import run
    from mechvalue.study.settings import default_human_answers

    kw = given(RunConfig, a)
    kw["human"] = kw.get("human") or default_human_answers()
    cfg = RunConfig.quick_preset(**kw) if kw.pop("quick", False) else RunConfig(**kw)
    with executor_from_args(a) as ex:
        if getattr(a, "plan", False):  # options not given are left unset
            from mechvalue.pipeline.run import preview

            print(preview(a.out, cfg, ex))
            return
        print(f"report: {run(a.out, cfg, executor=ex)}")


def cmd_steer_grid(a: argparse.Namespace) -> None:
    from mechvalue.interp.cache import check_sae_fits
    from mechvalue.interp.features import span_activation, span_candidates, typical_from_prompts
    from mechvalue.interp.sae_formats import load_sae
    from mechvalue.lm.models import load_model
    from mechvalue.measurement.grid import GridSpec, run_grid
    from mechvalue.measurement.scoring import Measurer
    from mechvalue.measurement.steering_inputs import SteeringInputs
    from mechvalue.pipeline.preflight import check_design, check_sae
    from mechvalue.study.prompts import render
    from mechvalue.study.roles import generate_roles

    items = check_design(a, a.out)  # every input before the model loads
    check_sae(a.sae)
    model, info = load_model(a.model, a.device, a.dtype, a.prompt_format)
    sae = load_sae(a.sae, a.device)
    check_sae_fits(model, sae, a.sae)
    roles = [None, *generate_roles(a.roles, a.seed)]
    feats = [int(f) for f in a.features.split(",")] if a.features else None
    # typical activations (and, without --features, the study's span rule) from the prompts themselves
    prompts = [render(q, None, info.prompt_format, model.tokenizer) for q in items["question"]]
    typical = typical_from_prompts(model, sae, prompts)
    if feats is None:
        feats = span_candidates(span_activation(model, sae, prompts), a.top_k)
    strengths = [float(s) for s in a.strengths.split(",")]
    spec = GridSpec(feats, strengths, a.mode, a.where, a.units, not a.no_hard)
    with executor_from_args(a) as ex:
        sae_path = str(Path(a.sae).absolute()) if Path(a.sae).exists() else a.sae
        inputs = SteeringInputs(
            Measurer(model, info.prompt_format, scoring=a.scoring), sae, typical, items, roles
        )
        t = run_grid(inputs, spec, a.out, executor=ex, model=info, sae_path=sae_path)
        ex.log.write(a.out)
    print(f"wrote {Path(a.out) / 'steer.csv'} ({len(t['steer'])} rows; features {feats})")


@dataclass(kw_only=True)
class RunOptions(RunConfig):
    """The options of `mechvalue run`: the run's settings (recorded in config.json) and its folder."""

    out: str
    """the run folder: config.json, a folder per stage, report/report.html"""
    plan: bool = False
    """print the plan (per stage: prompts, prompt and generated tokens, predicted time, from a short
    calibration on the model) and exit, writing nothing"""


@dataclass(kw_only=True)
class SteerGridOptions(ModelOptions, DesignOptions):
    """The options of `mechvalue steer-grid`."""

    sae: str
    """SAE folder (mechvalue, SAELens, sparsify, Gemma Scope) or a SAELens release:sae_id"""
    features: str | None = None
    """comma-separated feature ids"""
    top_k: int = 5
    """without --features: most active on ' your values'"""
    strengths: str = "30"
    """comma-separated strengths"""
    units: Units = "typical"
    mode: Mode = "add"
    where: GridWhere = "span"
    no_hard: bool = False
    """skip the hard-prompt conditions"""
    scoring: str = scoring_field()
    out: str


def register(sub) -> None:
    r = sub.add_parser("run", help="the whole study on one model, resumable, with an HTML report")
    add_dataclass_args(r, RunOptions, skip=("sae_train",), unset=True)
    add_executor_args(r)
    r.set_defaults(fn=cmd_run)

    g = sub.add_parser("steer-grid", help="roles x steering conditions, in the study's table schema")
    add_dataclass_args(g, SteerGridOptions)
    add_executor_args(g)
    g.set_defaults(fn=cmd_steer_grid)
