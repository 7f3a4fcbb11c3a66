"""`mechvalue` command line. Bad input exits with status 2 and a one-line reason."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import MechValueError


def _csv_list(s: str | None) -> list[str] | None:
    return [x.strip() for x in s.split(",") if x.strip()] if s else None


def cmd_measure(a: argparse.Namespace) -> None:
    import torch

    from . import inventory as inv
    from .io import write_csv
    from .measure import Measurer, measure
    from .models import load_model
    from .roles import generate_roles, load_players

    torch.manual_seed(a.seed)
    items = inv.select(
        inv.load_inventory(a.inventory), _csv_list(a.questionnaire), _csv_list(a.values), a.min_items
    )
    roles = load_players(a.players)[: a.roles] if a.players else generate_roles(a.roles, a.seed)
    model, info = load_model(a.model, a.device)
    fmt = a.prompt_format or info.prompt_format
    m = Measurer(model, fmt, a.scoring, a.batch_size, a.max_new_tokens)
    long, wide = measure(m, items, [None, *roles])
    out = Path(a.out)
    write_csv(long, out / "items.csv")
    write_csv(wide, out / "values.csv")
    print(f"wrote {out / 'values.csv'} ({len(wide)} rows x {wide.shape[1] - 2} values) and items.csv")


def _study_prompts(a: argparse.Namespace, tokenizer, fmt: str, span_text: str):
    """Prompts for the inventory x roles design (one per item and role, no-role first)."""
    from . import inventory as inv
    from .prompts import render_text
    from .roles import generate_roles

    items = inv.select(inv.load_inventory(a.inventory), _csv_list(a.questionnaire))
    roles = [None, *generate_roles(a.roles, a.seed)]
    return [render_text(q, r, fmt, tokenizer) for r in roles for q in items["question"]]


def cmd_cache(a: argparse.Namespace) -> None:
    import json

    from .cache import CachePrompt, cache_activations, verify
    from .models import load_model
    from .prompts import TEMPLATES, tokenize

    if a.verify:
        res = verify(a.verify)
        print(json.dumps(res, indent=1))
        if not res["ok"]:
            raise MechValueError(f"{a.verify}: " + "; ".join(res["problems"]))
        return
    if not a.out or not a.hooks:
        raise MechValueError("--hooks and --out are needed (or --verify FILE)")
    model, info = load_model(a.model, a.device)
    positions, span_text = a.positions, " your values"
    if positions.startswith("span:"):
        positions, span_text = "span", positions[5:].strip('"')
    if a.prompts:
        try:
            texts = [t for t in Path(a.prompts).read_text().splitlines() if t.strip()]
        except OSError as e:
            raise MechValueError(f"{a.prompts}: cannot read prompts ({e})") from None
    else:
        texts = _study_prompts(a, model.tokenizer, info.prompt_format, span_text)
    bos = info.prompt_format in TEMPLATES or (a.prompts is not None and not info.chat)
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
    hooks = _csv_list(a.hooks)
    cache_activations(model, prompts, hooks, a.out, positions, a.batch_size, a.dtype, a.compression, a.model)
    print(json.dumps(verify(a.out), indent=1))


def cmd_sae_train(a: argparse.Namespace) -> None:
    from .models import load_model
    from .sae import TrainConfig
    from .sae_recipe import recipe_folder, sae_recipe

    model, info = load_model(a.model, a.device)
    out = Path(a.out) if a.out else recipe_folder(a.model, a.layer)
    cfg = TrainConfig(d_sae=a.d_sae, activation=a.activation, k=a.k, epochs=a.epochs, seed=a.seed)
    m = sae_recipe(
        model,
        info,
        out,
        a.layer,
        a.roles,
        train=cfg,
        inventory=a.inventory,
        questionnaire=_csv_list(a.questionnaire),
        seed=a.seed,
    )
    print(m)
    print(f"SAE saved to {out / 'sae'}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mechvalue", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)

    m = sub.add_parser("measure", help="measure value orientations across roles")
    m.add_argument("--model", default="smollm2-135m-instruct")
    m.add_argument("--inventory", default=None, help="ValueBench-format CSV (default: shipped)")
    m.add_argument("--questionnaire", default=None, help="comma-separated questionnaire names")
    m.add_argument("--values", default=None, help="comma-separated value names")
    m.add_argument("--min-items", type=int, default=0)
    m.add_argument("--roles", type=int, default=10)
    m.add_argument("--players", default=None, help="study players*.json instead of generated roles")
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--scoring", choices=["logprob", "generate"], default="logprob")
    m.add_argument("--prompt-format", choices=["chat", "gemma", "llama"], default=None)
    m.add_argument("--batch-size", type=int, default=16)
    m.add_argument("--max-new-tokens", type=int, default=100)
    m.add_argument("--device", default="cpu")
    m.add_argument("--out", required=True)
    m.set_defaults(fn=cmd_measure)

    c = sub.add_parser("cache", help="cache activations at hook points to HDF5")
    c.add_argument("--model", default="smollm2-135m-instruct")
    c.add_argument("--hooks", default=None, help="comma-separated hook names")
    c.add_argument("--positions", default="all", help="all, last, or span:TEXT")
    c.add_argument("--prompts", default=None, help="text file, one prompt per line")
    c.add_argument("--inventory", default=None)
    c.add_argument("--questionnaire", default=None)
    c.add_argument("--roles", type=int, default=5)
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--batch-size", type=int, default=16)
    c.add_argument("--dtype", choices=["float32", "float16", "bfloat16"], default="float32")
    c.add_argument("--compression", default=None, help="e.g. gzip")
    c.add_argument("--device", default="cpu")
    c.add_argument("--out", default=None)
    c.add_argument("--verify", default=None, metavar="FILE.h5")
    c.set_defaults(fn=cmd_cache)

    t = sub.add_parser("sae-train", help="train an SAE on the model's own activations (recipe)")
    t.add_argument("--model", default="smollm2-135m-instruct")
    t.add_argument("--layer", type=int, default=15)
    t.add_argument("--d-sae", type=int, default=2048)
    t.add_argument("--activation", choices=["topk", "relu"], default="topk")
    t.add_argument("--k", type=int, default=32)
    t.add_argument("--epochs", type=int, default=4)
    t.add_argument("--roles", type=int, default=8)
    t.add_argument("--inventory", default=None)
    t.add_argument("--questionnaire", default=None)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--device", default="cpu")
    t.add_argument("--out", default=None)
    t.set_defaults(fn=cmd_sae_train)

    from . import cli_graph, cli_reproduce, cli_run

    cli_graph.register(sub)
    cli_reproduce.register(sub)
    cli_run.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.fn(args)
    except MechValueError as e:
        print(f"mechvalue: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
