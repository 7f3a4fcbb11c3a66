"""CLI: `cache` (hook points to HDF5, or --verify) and `sae-train` (the SAE recipe)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from mechvalue.cli.common import DesignOptions, ModelOptions, csv_list
from mechvalue.cli.options import add_dataclass_args
from mechvalue.errors import MechValueError
from mechvalue.interp.cache_write import FirstPosition
from mechvalue.interp.sae_training import TrainActivation
from mechvalue.lm.literals import DType

Template = Literal["raw", "chat", "study"]


def _study_prompts(a: argparse.Namespace, items, tokenizer, fmt: str):
    """Prompts for the inventory x roles design (one per item and role, no-role first)."""
    from mechvalue.study.prompts import render_text
    from mechvalue.study.roles import generate_roles

    roles = [None, *generate_roles(a.roles, a.seed)]
    return [render_text(q, r, fmt, tokenizer) for r in roles for q in items["question"]]


def _file_prompts(a: argparse.Namespace, tokenizer, fmt: str) -> tuple[list[str], bool]:
    """(texts, whether a start token goes first) for `--prompts FILE` under `--template`: the lines as
    they are (the start token where the model's format has one), each wrapped in the tokenizer's
    chat template as a user turn, or each asked as a questionnaire item in the study's prompt."""
    from mechvalue.study.prompts import TEMPLATES, render_text

    if a.template is None:
        raise MechValueError(
            "--prompts needs --template: raw (the lines as they are), chat (each line a user turn in the "
            "tokenizer's chat template) or study (each line a question in the study's prompt)"
        )
    try:
        lines = [t for t in Path(a.prompts).read_text().splitlines() if t.strip()]
    except OSError as e:
        raise MechValueError(f"{a.prompts}: cannot read prompts ({e})") from None
    if a.template == "raw":
        return lines, fmt != "chat"
    if a.template == "study":
        return [render_text(q, None, fmt, tokenizer) for q in lines], fmt in TEMPLATES
    if not getattr(tokenizer, "chat_template", None):
        raise MechValueError("--template chat: this model's tokenizer has no chat template; use raw or study")
    chat = [[{"role": "user", "content": q}] for q in lines]
    return [tokenizer.apply_chat_template(m, tokenize=False, add_generation_prompt=True) for m in chat], False


def cmd_cache(a: argparse.Namespace) -> None:
    import json

    from mechvalue.interp.cache import CachePrompt, cache_activations, repair, verify
    from mechvalue.lm.models import load_model
    from mechvalue.pipeline.preflight import check_design, check_model, check_out
    from mechvalue.study.prompts import TEMPLATES, tokenize

    if a.repair:
        res = repair(a.repair)
        print(json.dumps(res, indent=1))
        return
    if a.verify:
        res = verify(a.verify)
        print(json.dumps(res, indent=1))
        if not res["ok"]:
            raise MechValueError(f"{a.verify}: " + "; ".join(res["problems"]))
        return
    if not a.out or not a.hooks:
        raise MechValueError("--hooks and --out are needed (or --verify FILE, --repair FILE)")
    # every input before the model loads: the model, the study's items (unless --prompts), the file --out
    items = check_model(a.model, a.prompt_format) if a.prompts else check_design(a, None)
    check_out(a.out, file=True)
    model, info = load_model(a.model, a.device, a.dtype, a.prompt_format)
    positions, span_text = a.positions, " your values"
    if positions.startswith("span:"):
        positions, span_text = "span", positions[5:].strip('"')
    if a.prompts:
        texts, bos = _file_prompts(a, model.tokenizer, info.prompt_format)
    else:
        if a.template is not None:
            raise MechValueError(
                "--template applies to --prompts FILE; the study's items use the study's prompt"
            )
        texts = _study_prompts(a, items, model.tokenizer, info.prompt_format)
        bos = info.prompt_format in TEMPLATES
    prompts = []
    for i, t in enumerate(texts):
        try:
            r = tokenize(t, model.tokenizer, bos, span_text)
            prompts.append(CachePrompt(r.tokens, r.span))
        except ValueError:
            if positions == "span":
                raise MechValueError(f"prompt {i + 1} does not contain {span_text!r}") from None
            ids = model.tokenizer(t, add_special_tokens=False)["input_ids"]
            prompts.append(CachePrompt(([model.tokenizer.bos_token_id] if bos else []) + ids))
    cache_activations(
        model,
        prompts,
        csv_list(a.hooks),
        a.out,
        positions,
        batch_size=a.batch_size,
        storage=a.store_dtype,
        compression=a.compression,
        model_name=info.name,
        first_position=a.first_position,
    )
    print(json.dumps(verify(a.out), indent=1))


def cmd_sae_train(a: argparse.Namespace) -> None:
    from mechvalue.interp.sae_recipe import Recipe, describe, model_recipe_shape, recipe_folder, sae_recipe
    from mechvalue.interp.sae_training import TrainConfig
    from mechvalue.lm.models import load_model
    from mechvalue.pipeline.preflight import check_design

    check_design(a, a.out)  # every input before the model loads
    model, info = load_model(a.model, a.device, a.dtype, a.prompt_format)
    if a.layer is None:
        a.layer = model_recipe_shape(model)[0]
    out = Path(a.out) if a.out else recipe_folder(a.model, a.layer)
    cfg = TrainConfig(d_sae=a.d_sae, activation=a.activation, k=a.k, epochs=a.epochs, seed=a.seed)
    recipe = Recipe(
        a.layer,
        a.roles,
        train=cfg,
        inventory=a.inventory,
        questionnaire=csv_list(a.questionnaire),
        seed=a.seed,
    )
    m = sae_recipe(info, out, recipe)
    print(f"SAE saved to {out / 'sae'}: {describe(m)}; metrics in {out / 'metrics.json'}")


@dataclass(kw_only=True)
class CacheOptions(ModelOptions, DesignOptions):
    """The options of `mechvalue cache`."""

    roles: int = 5
    hooks: str | None = None
    """comma-separated hook names"""
    positions: str = "all"
    """all, last, or span:TEXT"""
    prompts: str | None = None
    """text file, one prompt per line (needs --template)"""
    template: Template | None = None
    """how --prompts lines are wrapped: raw (as they are, plus the start token where the model's format
    has one), chat (a user turn in the tokenizer's chat template, ending where the reply starts) or study
    (a question in the study's prompt)"""
    first_position: FirstPosition = "keep"
    """position 0, the start token: an attention sink whose residual norm is ~150x the others' in
    SmolLM2 (drop it for per-prompt means)"""
    batch_size: int = 16
    store_dtype: DType = "float32"
    """how activations are stored in the HDF5 file"""
    compression: str | None = None
    """e.g. gzip"""
    out: str | None = None
    verify: str | None = field(default=None, metadata={"metavar": "FILE.h5"})
    repair: str | None = field(default=None, metadata={"metavar": "FILE.h5"})
    """truncate to the last consistent batch"""


@dataclass(kw_only=True)
class SAETrainOptions(ModelOptions, DesignOptions):
    """The options of `mechvalue sae-train`."""

    roles: int = 8
    layer: int | None = None
    """SAE layer; default: the model's middle layer (the recipe's)"""
    d_sae: int = 2048
    activation: TrainActivation = "topk"
    k: int = 32
    epochs: int = 4
    out: str | None = None


def register(sub) -> None:
    c = sub.add_parser("cache", help="cache activations at hook points to HDF5")
    add_dataclass_args(c, CacheOptions)
    c.set_defaults(fn=cmd_cache)

    t = sub.add_parser("sae-train", help="train an SAE on the model's own activations (recipe)")
    add_dataclass_args(t, SAETrainOptions)
    t.set_defaults(fn=cmd_sae_train)
