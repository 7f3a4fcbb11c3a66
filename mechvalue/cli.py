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
    items = inv.select(inv.load_inventory(a.inventory), _csv_list(a.questionnaire), _csv_list(a.values), a.min_items)
    roles = load_players(a.players)[: a.roles] if a.players else generate_roles(a.roles, a.seed)
    model, info = load_model(a.model, a.device)
    fmt = a.prompt_format or info.prompt_format
    m = Measurer(model, fmt, a.scoring, a.batch_size, a.max_new_tokens)
    long, wide = measure(m, items, [None, *roles])
    out = Path(a.out)
    write_csv(long, out / "items.csv")
    write_csv(wide, out / "values.csv")
    print(f"wrote {out / 'values.csv'} ({len(wide)} rows x {wide.shape[1] - 2} values) and items.csv")


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

    from . import cli_graph, cli_reproduce

    cli_graph.register(sub)
    cli_reproduce.register(sub)
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
