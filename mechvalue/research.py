"""The research API: what a script needs to measure values across personas, read an SAE's features
and build steering vectors, in calls that take what the previous ones return. `import mechvalue`
exports every name here (lazily); the modules behind them are mechvalue's own business.

    model = mechvalue.load_model()
    items = mechvalue.select_items(mechvalue.load_inventory(path), questionnaires="PVQ40")
    train, test = mechvalue.split_items(items, seed=0)
    personas = mechvalue.generate_personas(10, seed=0)
    m = mechvalue.measure(model, test, [None, *personas])  # m.values, m.items, m.settings
    sae = mechvalue.recipe_sae(model, 15)                   # loaded, or trained once
    v = mechvalue.caa_vector(model, train, "Power", sae.cfg.hook_name, personas)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Literal

import pandas as pd
import torch
from jaxtyping import Float
from torch import Tensor

from mechvalue.errors import MechValueError
from mechvalue.interp.sae import SAE
from mechvalue.interp.sae_convert import as_mechvalue_sae
from mechvalue.lm.models import LoadedModel
from mechvalue.lm.positions import StudyWhere
from mechvalue.measurement.options import ScoringOptions
from mechvalue.study import settings as paper_settings  # noqa: F401 - exported: the study's published settings
from mechvalue.study.inventory import SCHWARTZ_VALUES, load_inventory  # noqa: F401 - exported as they are
from mechvalue.study.prompts import HardPrompt, RenderedPrompt, render
from mechvalue.study.roles import Role, generate_roles, load_players  # noqa: F401 - exported as they are

Persona = Role  # a persona (`name`, `trait`): the class's docstring says how they are made and used
AnswerPrefix = Literal["Answer:", "Thought:"]
HookPair = tuple[str, Callable]


def _model(model) -> LoadedModel:
    if not isinstance(model, LoadedModel):
        raise MechValueError(f"{type(model).__name__}: expected the model mechvalue.load_model returns")
    return model


def _names(x: str | Sequence[str] | None) -> list[str] | None:
    return [x] if isinstance(x, str) else (list(x) if x is not None else None)


# --- inventories -----------------------------------------------------------------------------------


def select_items(
    items: pd.DataFrame,
    questionnaires: str | Sequence[str] | None = None,
    values: str | Sequence[str] | None = None,
    min_items: int = 0,
) -> pd.DataFrame:
    """The items of the given questionnaires (e.g. "PVQ40") and values, keeping values with at
    least `min_items` items; an unknown name is an error naming it."""
    from mechvalue.study.inventory import select

    return select(items, _names(questionnaires), _names(values), min_items)


def split_items(
    items: pd.DataFrame, seed: int = 0, train_frac: float = 0.7
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, test): the study's seeded per-value split, int(train_frac x n) of each value's items
    to train. Build vectors and choose features on train, measure their effect on test."""
    from mechvalue.study.inventory import split

    return split(items, seed, train_frac)


# --- personas --------------------------------------------------------------------------------------


def generate_personas(n: int, seed: int = 0) -> list[Persona]:
    """`n` distinct seeded personas in the study's format (Faker names and jobs, an MBTI type)."""
    if n < 0:
        raise MechValueError(f"n={n}: the number of personas cannot be negative")
    return generate_roles(n, seed)


# --- prompts ---------------------------------------------------------------------------------------


def render_prompt(
    model: LoadedModel,
    question: str,
    persona: Persona | None = None,
    answer_prefix: AnswerPrefix = "Answer:",
    hard_prompt: tuple[str, int] | None = None,
    form: str = "study",
) -> RenderedPrompt:
    """The study's prompt for `question` as `persona` (None: no persona) in the model's prompt
    format: `.text`, `.tokens` (ids, start token included) and `.span`, the token positions of
    " your values". It ends in "Answer:" (the scored position) or "Thought:" (to generate).
    `hard_prompt=(value, +1 or -1)` adds the study's "inclined / disinclined to value" line."""
    from mechvalue.measurement.grid import hard_prompts

    m = _model(model)
    hard = hard_prompts([hard_prompt[0]], hard_prompt[1])[hard_prompt[0]] if hard_prompt else None
    return render(question, persona, m.prompt_format, m.tokenizer, hard, answer_prefix, form)


def render_prompts(
    model: LoadedModel,
    items: pd.DataFrame,
    personas: Sequence[Persona | None] = (None,),
    answer_prefix: AnswerPrefix = "Answer:",
) -> list[RenderedPrompt]:
    """Every item for every persona, persona by persona (the order `measure` asks them in)."""
    return [render_prompt(model, q, p, answer_prefix) for p in personas for q in items["question"]]


# --- measurement -----------------------------------------------------------------------------------


@dataclass
class Measurement:
    """What `measure` returns.

    values: one row per (condition, persona): `steer_dim` (the steering label; empty = unsteered),
        `player_name` (empty = no persona), then each value's mean item score, in [-1, 1];
    items: one row per item x persona x condition: the inventory's columns, the scorer's own
        (log-prob: p_yes, p_no, answer, raw), and `score` = agreement x raw;
    settings: how the scores were made (scorer, prompt format, wording, model, counts)."""

    values: pd.DataFrame
    items: pd.DataFrame
    settings: dict


def measure(
    model: LoadedModel,
    items: pd.DataFrame,
    personas: Sequence[Persona | None] = (None,),
    options: ScoringOptions | None = None,
    steering: Mapping[str, Sequence[HookPair]] | None = None,
    where: StudyWhere = "span",
    progress: bool = True,
) -> Measurement:
    """Ask every item to every persona (None: no persona, e.g. `[None, *personas]` for the
    no-persona baseline first) and score the answers as `options` say (default: log-prob,
    agreement x (p(yes) - p(no)) after "Answer:", one forward pass; `ScoringOptions(scoring=
    "likert")` the PVQ's six points, `"generate"` the study's greedy decoding and parse,
    `protocol=` a whole protocol of `mechvalue.measurement.protocols.PROTOCOLS`).

    `steering={label: [(hook_name, hook), ...]}` measures every persona again under each label's
    hooks (e.g. `mechvalue.sae_hook(...)`), rows labelled in `steer_dim`; positioned hooks edit
    `where` in each prompt ("span": " your values", "prompt", "generated", "all")."""
    from mechvalue.measurement.protocols import get_protocol
    from mechvalue.measurement.scorers import get_scorer
    from mechvalue.measurement.scoring import Condition, Measurer
    from mechvalue.measurement.scoring import measure as run

    m = _model(model)
    o = options or ScoringOptions()
    if o.protocol is not None and o.scoring != "logprob":
        raise MechValueError(f"scoring={o.scoring!r} and protocol={o.protocol!r}: give one of them")
    scorer = get_protocol(o.protocol) if o.protocol is not None else get_scorer(o.scoring)
    if not personas:
        raise MechValueError("no persona to ask (personas is empty; None asks with no persona)")
    conds = [Condition()] + [
        Condition(str(label), list(hooks), where=where, info={"kind": "hooks"})
        for label, hooks in (steering or {}).items()
    ]
    measurer = Measurer(m, m.prompt_format, **{f.name: getattr(o, f.name) for f in fields(ScoringOptions)})
    long, wide = run(measurer, items, list(personas), conds, progress)
    generated = measurer.scoring == "generate"
    settings = {
        "scoring": measurer.scoring,
        "protocol": o.protocol or o.scoring,
        "model": m.name,
        "prompt_format": m.prompt_format,
        "form": o.form,
        "score": scorer.description,
        "batch_size": o.batch_size,
        "max_new_tokens": o.max_new_tokens if generated else None,
        "personas": sum(p is not None for p in personas),
        "no_persona": any(p is None for p in personas),
        "items": len(items),
        "values": int(items["value"].nunique()),
        "steering": list(map(str, steering or {})),
        "where": where if steering else None,
    }
    return Measurement(wide, long, settings)


# --- SAE features ----------------------------------------------------------------------------------


def typical_activations(
    sae,
    source: Float[Tensor, "rows d_in"] | str | Path | Sequence[RenderedPrompt],
    model: LoadedModel | None = None,
    limit: int = 20000,
) -> Float[Tensor, " d_sae"]:
    """Each feature's mean activation where it fires (the unit of `units="typical"` steering
    strengths; features that never fire get the median), from `source`: residual rows
    [rows, d_in], an activation cache file holding the SAE's hook (its first `limit` rows), or
    rendered prompts run through `model` now (every position but 0, the attention sink)."""
    from mechvalue.interp.features import typical_activation, typical_from_prompts, typical_from_store

    sae = as_mechvalue_sae(sae)
    if isinstance(source, Tensor):
        return typical_activation(sae, source)
    if isinstance(source, str | Path):
        return typical_from_store(sae, source, limit)
    if model is None:
        raise MechValueError("typical activations from prompts need model= to run them")
    return typical_from_prompts(_model(model), sae, source, limit)


def feature_attribution(
    model: LoadedModel,
    sae,
    items: pd.DataFrame,
    personas: Sequence[Persona | None] = (None,),
    where: StudyWhere = "span",
    batch_size: int = 16,
) -> pd.DataFrame:
    """Attribution patching: for every feature (rows) and value (columns), the derivative of the
    value's log-prob score with respect to adding the feature's decoder direction (raw units) at
    `where`, at the unsteered model, averaged over the items and personas. One backward pass per
    batch; multiply by `typical_activations` for effects per typical unit."""
    from mechvalue.analysis.attribution import gradient_attribution
    from mechvalue.measurement.scoring import Measurer

    m = _model(model)
    return gradient_attribution(
        Measurer(m, m.prompt_format, batch_size=batch_size),
        as_mechvalue_sae(sae),
        items,
        list(personas),
        where,
    )


def load_sae(
    path: str | Path, device: str | torch.device = "cpu", dtype=None, hook_name: str | None = None
) -> SAE:
    """An SAE from a folder of any supported format (mechvalue, SAELens, Gemma Scope, sparsify) or a
    SAELens "release:sae_id"; a missing folder says how to make the recipe SAE."""
    from mechvalue.interp.sae_formats import load_sae as load

    p = Path(path)
    if not p.exists() and ":" not in str(path):
        raise MechValueError(
            f"{p}: no such SAE folder (nor a SAELens 'release:sae_id'). For the SmolLM2 recipe "
            "SAE call mechvalue.recipe_sae(model, layer), which trains it once if needed, or run "
            "`mechvalue sae-train --layer 15`"
        )
    return load(path, device, dtype, hook_name)


# --- steering vectors ------------------------------------------------------------------------------


def caa_vector(
    model: LoadedModel,
    train: pd.DataFrame,
    value: str,
    hook: str,
    personas: Sequence[Persona | None] = (None,),
    batch_size: int = 16,
) -> Float[Tensor, " d_model"]:
    """CAA for `value` at `hook`: mean residual at the answer token for the answer agreeing with
    the value minus the disagreeing one, over `value`'s items in `train` x `personas`."""
    from mechvalue.interp.vectors import caa_vector as build

    m = _model(model)
    return build(m, train, value, hook, list(personas), m.prompt_format, batch_size)


def diffmean_vector(
    model: LoadedModel,
    train: pd.DataFrame,
    value: str,
    hook: str,
    personas: Sequence[Persona | None] = (None,),
    where: StudyWhere = "all",
) -> Float[Tensor, " d_model"]:
    """DiffMean for `value` at `hook`: mean residual over `where` with the hard prompt "inclined to
    value" minus "disinclined", over `value`'s items in `train` x `personas`."""
    from mechvalue.interp.vectors import diffmean_vector as build

    m = _model(model)
    return build(m, train, value, hook, list(personas), where, m.prompt_format)


def residual_norm(
    model: LoadedModel,
    hook: str,
    prompts: Sequence[RenderedPrompt],
    where: StudyWhere = "all",
    batch_size: int = 16,
) -> float:
    """The unit of vector strengths: mean L2 norm of the residual at `hook` over `where` of the
    (unsteered) `prompts`, position 0 (the attention sink) left out."""
    from mechvalue.interp.vectors import residual_norm as norm

    return norm(_model(model), hook, list(prompts), where, batch_size)


__all__ = [
    "AnswerPrefix",
    "HardPrompt",
    "Measurement",
    "Persona",
    "RenderedPrompt",
    "SCHWARTZ_VALUES",
    "caa_vector",
    "diffmean_vector",
    "feature_attribution",
    "generate_personas",
    "load_inventory",
    "load_players",
    "load_sae",
    "measure",
    "paper_settings",
    "render_prompt",
    "render_prompts",
    "residual_norm",
    "select_items",
    "split_items",
    "typical_activations",
]
