"""Every input of a command checked before its first stage, model load or file write.

A bad `--model`, `--prompt-format`, `--sae`, `--inventory`, `--questionnaire`, `--layer` or `--out`
stops a command at once with one `MechValueError` line (exit 2) that names the input and, where
there is a list to choose from, lists it ("unknown questionnaire 'PVQ4' in <inventory>; it has:
MVI10"). Nothing here writes anything or loads weights, so a refused command leaves its output
folder as it was and a rerun with fixed inputs starts clean. `check_run` is the whole list for
`mechvalue run` (called by `pipeline.run.run`); the other model commands call `check_design` and,
where they take one, `check_sae`.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pandas as pd

from mechvalue.errors import MechValueError
from mechvalue.pipeline.config import RunConfig, csv_list
from mechvalue.pipeline.workspace import same_settings


def check_model(model: str, prompt_format: str | None = None) -> None:
    """`model` is an embedded model whose packages are installed or a local HF folder of a causal
    LM with readable weights headers; `prompt_format`, when given, is one the model can take
    ('chat' needs a chat template in its tokenizer)."""
    from mechvalue.lm import embedded
    from mechvalue.lm.models import check_prompt_format, model_folder
    from mechvalue.lm.weights_cache import cache_dir

    if prompt_format is not None:
        check_prompt_format(prompt_format)
    if embedded.is_embedded(model):
        m = embedded.EMBEDDED[model]
        m.sources(m)  # its packages are installed; the first load_model converts them
        folder = embedded.folder_of(model, cache_dir())
        folder = folder if folder.is_dir() else None  # not converted yet: load_model checks the format
    else:
        folder = model_folder(model)
    if prompt_format == "chat" and folder is not None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from transformers import AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(folder)
        except Exception as e:  # noqa: BLE001 - one line instead of a library traceback
            first = (str(e).strip().splitlines() or [""])[0][:200]
            raise MechValueError(f"model folder {folder}: cannot read its tokenizer ({first})") from None
        check_prompt_format("chat", tokenizer, model)


def check_sae(sae: str) -> str:
    """`--sae` names an SAE folder of a known format or a SAELens release that lists the SAE id;
    returns the format (`sae_formats.check_sae_path`). No weights are read."""
    from mechvalue.interp.sae_formats import check_sae_path

    return check_sae_path(sae)


def check_out(out: str | Path, file: bool = False) -> Path:
    """`out` (a folder, or with `file` a file) can be written: it exists as that kind of thing, or the
    nearest folder above it that exists is one this process may write in. Nothing is created."""
    p = Path(out).expanduser()
    kind = "file" if file else "folder"
    if p.exists() and p.is_dir() == file:
        raise MechValueError(f"{p}: is a {'folder' if file else 'file'}; --out takes a {kind}")
    above = p if p.exists() and not file else p.parent
    while not above.exists():
        above = above.parent
    if not above.is_dir():
        raise MechValueError(f"{p}: cannot be made, {above} is a file")
    if not os.access(above, os.W_OK | os.X_OK):
        raise MechValueError(f"{p}: cannot write in {above} (permission denied)")
    return p


def check_design(opts, out: str | Path | None, values: str | None = None, min_items: int = 0) -> pd.DataFrame:
    """The inputs every model x items command shares, in the order a user would fix them: the
    model and prompt format (`opts.model`, `opts.prompt_format`), the inventory and its
    questionnaires (`opts.inventory`, `opts.questionnaire`), the values, then the output folder
    `out` (None: the command has none). Returns the selected items, so the command asks those."""
    from mechvalue.study import inventory as inv

    check_model(opts.model, opts.prompt_format)
    inventory = inv.load_inventory(opts.inventory)
    items = inv.select(inventory, csv_list(opts.questionnaire), csv_list(values), min_items)
    if out is not None:
        check_out(out)
    return items


def check_run(out: str | Path, cfg: RunConfig) -> RunConfig:
    """Everything `mechvalue run` takes, before the run folder is touched: `check_design`, the
    grid's sizes, the human answers file, the layer (default: the recipe's, from the model's
    config.json), the SAE (`--sae`, or a recipe SAE that exists or that `run` trains itself: the
    default model's), and a config.json already in `out` from other settings. Returns `cfg` with
    its layer resolved, as the run records it."""
    from mechvalue.interp.sae_recipe import model_shape, recipe_shape
    from mechvalue.lm.literals import DEFAULT_MODEL
    from mechvalue.measurement.options import protocol_names

    check_design(cfg, out)
    if cfg.protocol not in protocol_names():
        raise MechValueError(f"protocol {cfg.protocol!r}: expected one of {', '.join(protocol_names())}")
    if cfg.features < 1 or not 0 <= cfg.grid_roles <= cfg.roles:
        raise MechValueError(
            f"--features {cfg.features}, --grid-roles {cfg.grid_roles}, --roles {cfg.roles}: "
            "expected at least 1 feature and 0 <= grid roles <= roles"
        )
    if cfg.human is not None and not Path(cfg.human).is_file():
        raise MechValueError(f"{cfg.human}: no such PVQ-40 answers file (--human)")
    if cfg.sae != "train":
        check_sae(cfg.sae)
    trains = cfg.sae == "train" and cfg.model != DEFAULT_MODEL
    if trains:  # before the layer: reading it may first convert an embedded model (minutes)
        check_recipe_sae(cfg.model, cfg.layer, cfg.quick)
    n_layers, d_model = model_shape(cfg.model)
    if cfg.layer is None:
        cfg = replace(cfg, layer=recipe_shape(n_layers, d_model)[0])
    elif not 0 <= cfg.layer < n_layers:
        raise MechValueError(f"--layer {cfg.layer}: model {cfg.model} has layers 0..{n_layers - 1}")
    if trains:
        check_recipe_sae(cfg.model, cfg.layer, cfg.quick)
    same_settings(out, cfg)
    return cfg


def check_recipe_sae(model: str, layer: int | None, quick: bool = False) -> None:
    """For `--sae train` on a model other than the default: its recipe SAE exists at `layer` (None:
    at any layer), made beforehand by `mechvalue sae-train` (or under `quick` by an earlier quick
    run). `run` trains the recipe SAE itself only for the default model (minutes on a CPU; Gemma 3
    270M's took 49), so any other model without one stops here, saying what to pass or run."""
    from glob import escape

    from mechvalue.interp.sae_recipe import recipe_folder
    from mechvalue.lm.literals import DEFAULT_MODEL

    if layer is None:
        first = recipe_folder(model, 0)
        made = list(first.parent.glob(escape(first.name[:-1]) + "*/metrics.json"))
    else:
        tags = ["", "-quick"] if quick else [""]
        made = [f for t in tags if (f := recipe_folder(model, layer, t) / "metrics.json").exists()]
    if made:
        return
    where = f"at layer {layer} in {recipe_folder(model, layer)}" if layer is not None else "at any layer"
    raise MechValueError(
        f"model {model}: no --sae and no recipe SAE {where} (run trains one itself only for "
        f"{DEFAULT_MODEL}); pass --sae (an SAE folder or a SAELens release:sae_id) or make the recipe "
        f"SAE first: mechvalue sae-train --model {model}" + (f" --layer {layer}" if layer is not None else "")
    )
