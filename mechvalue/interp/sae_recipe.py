"""The SmolLM2 SAE recipe: cache a middle layer on questionnaire prompts plus text the model
generates itself (no corpus can be downloaded), train, measure, and save under the cache.
`recipe_sae(model, layer)` is the one call that gives it: loaded when made before, else trained."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from mechvalue.errors import MechValueError
from mechvalue.interp.cache import ActivationStore, CachePrompt, cache_activations
from mechvalue.interp.sae import SAE
from mechvalue.interp.sae_formats import load_sae
from mechvalue.interp.sae_training import TrainConfig, sae_metrics, spliced_loss, train_sae
from mechvalue.io import write_json
from mechvalue.lm.generation import greedy_generate
from mechvalue.lm.models import model_device
from mechvalue.lm.weights_cache import building
from mechvalue.study.inventory import load_inventory, select
from mechvalue.study.prompts import render
from mechvalue.study.roles import generate_roles


def recipe_folder(model: str, layer: int, tag: str = "") -> Path:
    """Where the recipe keeps a model's SAE for a layer (shared by `sae-train`, `run`, the examples)."""
    from mechvalue.lm.models import cache_dir

    return cache_dir() / "saes" / f"{model.replace('/', '_')}-L{layer}{tag}"


def recipe_sae(
    model,
    layer: int | None = None,
    train: bool = True,
    device: str | torch.device | None = None,
    config: TrainConfig | None = None,
    **recipe,
) -> SAE:
    """The recipe SAE of `model` (a `LoadedModel`) at `layer`: loaded from `recipe_folder(model.name,
    layer)` when `mechvalue sae-train` or an earlier call made it; otherwise trained there now (a
    few minutes on a CPU, with progress bars; `config` and `recipe` go to `sae_recipe` then), or,
    with `train=False`, an error saying what to run. `layer` None: the model's middle layer."""
    layer = model_recipe_shape(model)[0] if layer is None else layer
    folder = recipe_folder(model.name, layer)
    made = lambda: (folder / "sae").exists() and (folder / "metrics.json").exists()  # noqa: E731
    if not made():
        if not train:
            raise MechValueError(
                f"no recipe SAE for {model.name} at layer {layer} in {folder}: run `mechvalue sae-train "
                f"--model {model.name} --layer {layer}` (or mechvalue.recipe_sae(model, {layer}), which trains it)"
            )
        with building(folder):  # a second process waits for the first one's SAE rather than training its own
            if not made():
                print(
                    f"training the recipe SAE for {model.name}, layer {layer} (once; cached in {folder})",
                    file=sys.stderr,
                )
                metrics = sae_recipe(model, folder, Recipe(layer, train=config, **recipe))
                print(f"recipe SAE: {describe(metrics)}", file=sys.stderr)
    return load_sae(folder / "sae", device or model_device(model))


def describe(metrics: dict) -> str:
    """One line on a trained SAE: sparsity, variance explained, what splicing it in costs."""
    return (
        f"L0 {metrics['l0']:.1f}, FVE {metrics['fve']:.3f}, delta loss {metrics['delta_loss']:+.3f} "
        f"(d_sae {metrics['d_sae']}, {metrics['activation']}, {metrics['rows']} training rows)"
    )


@dataclass
class Recipe:
    """What the SAE recipe trains on and how (recorded in `metrics.json`; the same settings again
    reuse the SAE)."""

    layer: int
    roles: int = 8
    """personas whose questionnaire prompts are cached (plus the no-role prompt)"""
    gen_prompts: int = 48
    """prompts the model continues itself, for text beyond the questionnaire"""
    gen_tokens: int = 48
    train: TrainConfig | None = None
    """None: `TrainConfig(seed=seed)`"""
    inventory: str | None = None
    questionnaire: list[str] | None = None
    seed: int = 0


def sae_recipe(model, out: Path, recipe: Recipe) -> dict:
    """Train the recipe SAE of `model` (a `LoadedModel`) into `out` (its `sae/` folder,
    `activations.h5` training cache and `metrics.json`) and return the metrics; with the same
    settings as before, return them at once. `recipe_sae(model, layer)` is the usual way in."""
    layer, roles, gen_prompts, gen_tokens = recipe.layer, recipe.roles, recipe.gen_prompts, recipe.gen_tokens
    inventory, questionnaire, seed = recipe.inventory, recipe.questionnaire, recipe.seed
    train = recipe.train or TrainConfig(seed=seed)
    hook = f"blocks.{layer}.hook_resid_post"
    items = select(load_inventory(inventory), questionnaire)
    settings = {
        "model": model.name,
        "layer": layer,
        "roles": roles,
        "gen_prompts": gen_prompts,
        "gen_tokens": gen_tokens,
        "train": asdict(train),
        "items": list(items["question"]),
        "seed": seed,
    }
    done = out / "metrics.json"
    if done.exists():
        before = json.loads(done.read_text())
        if (out / "sae").exists() and before.get("settings") == settings:
            return before  # trained before with the same settings
        (out / "activations.h5").unlink(missing_ok=True)  # another recipe's cache: start afresh
    people = [None, *generate_roles(roles, seed)]
    fmt = model.prompt_format
    rendered = [render(q, r, fmt, model.tokenizer) for r in people for q in items["question"]]
    g = torch.Generator().manual_seed(seed)
    pick = torch.randperm(len(rendered), generator=g)[:gen_prompts].tolist()
    seqs = [rendered[i].tokens for i in pick]
    new = []
    for i in tqdm(range(0, len(seqs), 16), desc="sae recipe: self-generated text", leave=False):
        new += greedy_generate(model, seqs[i : i + 16], gen_tokens)
    selfgen = [s + n for s, n in zip(seqs, new)]
    # position 0 (<|im_start|> / BOS) is an attention sink with ~150x the usual norm: left out
    seqs = [p.tokens for p in rendered] + selfgen
    prompts = [CachePrompt(t, mask=[False] + [True] * (len(t) - 1)) for t in seqs]
    held = prompts[-8:]
    out.mkdir(parents=True, exist_ok=True)
    h5 = out / "activations.h5"
    cache_activations(model, prompts[:-8], [hook], h5, "mask", model_name=model.name)
    store = ActivationStore(h5)
    sae, log = train_sae(store, hook, train)
    x = store.rows(hook, 0, min(store.n, 20000))
    metrics = sae_metrics(sae, x) | spliced_loss(model, sae, [p.tokens for p in held]) | log
    metrics |= {
        "rows": store.n,
        "layer": layer,
        "d_sae": train.d_sae,
        "activation": train.activation,
        "settings": settings,
    }
    store.close()
    sae.save(out / "sae")
    write_json(metrics, out / "metrics.json")
    return metrics


def recipe_shape(n_layers: int, d_model: int) -> tuple[int, int]:
    """The recipe's layer and width from a model's shape, the same rule for every model: the middle
    layer (n_layers // 2; SmolLM2-135M's 30 -> 15, Gemma 3 270M's 18 -> 9, a layer Gemma Scope 2 also
    covers) and the smallest power of two at least 3 x d_model (576 -> 2048, 640 -> 2048)."""
    d_sae = 1
    while d_sae < 3 * d_model:
        d_sae *= 2
    return n_layers // 2, d_sae


def model_recipe_shape(model) -> tuple[int, int]:
    """`recipe_shape` of a loaded model (a `LoadedModel` or a bridge)."""
    return recipe_shape(int(model.cfg.n_layers), int(model.cfg.d_model))


def model_shape(name_or_path: str) -> tuple[int, int]:
    """(layers, d_model) of a model by name or folder, read from its `config.json` without loading
    the weights."""
    from transformers import AutoConfig

    from mechvalue.lm.models import model_folder

    cfg = AutoConfig.from_pretrained(model_folder(name_or_path))
    cfg = getattr(cfg, "text_config", None) or cfg
    return int(cfg.num_hidden_layers), int(cfg.hidden_size)


def recipe_layer(name_or_path: str) -> int:
    """The recipe's layer for a model by name or folder, read from its `config.json` without loading
    the weights: the default `--layer` of `run`, `sae-train` and `steer-compare`."""
    return recipe_shape(*model_shape(name_or_path))[0]
