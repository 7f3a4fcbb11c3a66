"""The SmolLM2 SAE recipe: cache a middle layer on questionnaire prompts plus text the model
generates itself (no corpus can be downloaded), train, measure, and save under the cache."""

from __future__ import annotations

from pathlib import Path

import torch

from .cache import ActivationStore, CachePrompt, cache_activations
from .generation import greedy_generate
from .inventory import load_inventory, select
from .io import write_json
from .prompts import render
from .roles import generate_roles
from .sae import TrainConfig, sae_metrics, spliced_loss, train_sae


def sae_recipe(model, info, out: Path, layer: int, roles: int = 8, gen_prompts: int = 48,
               gen_tokens: int = 48, train: TrainConfig | None = None, inventory=None,
               questionnaire: list[str] | None = None, seed: int = 0) -> dict:  # fmt: skip
    train = train or TrainConfig(seed=seed)
    hook = f"blocks.{layer}.hook_resid_post"
    items = select(load_inventory(inventory), questionnaire)
    people = [None, *generate_roles(roles, seed)]
    fmt = info.prompt_format
    rendered = [render(q, r, fmt, model.tokenizer) for r in people for q in items["question"]]
    g = torch.Generator().manual_seed(seed)
    pick = torch.randperm(len(rendered), generator=g)[:gen_prompts].tolist()
    seqs = [rendered[i].tokens for i in pick]
    new = []
    for i in range(0, len(seqs), 16):
        new += greedy_generate(model, seqs[i : i + 16], gen_tokens)
    selfgen = [s + n for s, n in zip(seqs, new)]
    prompts = [CachePrompt(p.tokens) for p in rendered] + [CachePrompt(s) for s in selfgen]
    held = prompts[-8:]
    out.mkdir(parents=True, exist_ok=True)
    h5 = out / "activations.h5"
    cache_activations(model, prompts[:-8], [hook], h5, "all", model_name=info.name)
    store = ActivationStore(h5)
    sae, log = train_sae(store, hook, train)
    x = store.rows(hook, 0, min(store.n, 20000))
    metrics = sae_metrics(sae, x) | spliced_loss(model, sae, [p.tokens for p in held]) | log
    metrics |= {"rows": store.n, "layer": layer, "d_sae": train.d_sae, "activation": train.activation}
    store.close()
    sae.save(out / "sae")
    write_json(metrics, out / "metrics.json")
    return metrics
