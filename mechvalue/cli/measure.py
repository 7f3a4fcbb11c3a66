"""CLI: `measure` (value orientations across roles)."""

from __future__ import annotations

import argparse
from pathlib import Path

from mechvalue.cli.common import (
    add_design_args,
    add_model_args,
    add_persona_arg,
    add_protocol_arg,
    add_scoring_arg,
    csv_list,
)
from mechvalue.distributed.executor import add_executor_args, executor_from_args
from mechvalue.study.prompts import FORMS


def cmd_measure(a: argparse.Namespace) -> None:
    import torch

    from mechvalue.distributed.measure import measure_roles
    from mechvalue.io import write_csv
    from mechvalue.lm.models import load_model
    from mechvalue.measure.scoring import Measurer
    from mechvalue.study import inventory as inv
    from mechvalue.study.personas import persona_set
    from mechvalue.study.roles import load_players

    torch.manual_seed(a.seed)
    items = inv.select(
        inv.load_inventory(a.inventory), csv_list(a.questionnaire), csv_list(a.values), a.min_items
    )
    roles = load_players(a.players)[: a.roles] if a.players else persona_set(a.persona, a.roles, a.seed)
    model, info = load_model(a.model, a.device, a.dtype, a.prompt_format)
    fmt = info.prompt_format
    m = Measurer(model, fmt, a.scoring, a.batch_size, a.max_new_tokens, form=a.form, protocol=a.protocol)
    out = Path(a.out)
    with executor_from_args(a) as ex:
        long, wide = measure_roles(m, items, [None, *roles], ex, info)
        write_csv(long, out / "items.csv")
        write_csv(wide, out / "values.csv")
        ex.log.write(out)
    print(f"wrote {out / 'values.csv'} ({len(wide)} rows x {wide.shape[1] - 2} values) and items.csv")


def register(sub) -> None:
    m = sub.add_parser("measure", help="measure value orientations across roles")
    add_model_args(m)
    add_design_args(m, roles=10)
    m.add_argument("--values", default=None, help="comma-separated value names")
    m.add_argument("--min-items", type=int, default=0)
    m.add_argument("--players", default=None, help="study players*.json instead of generated roles")
    add_scoring_arg(m)
    add_protocol_arg(m)
    add_persona_arg(m)
    m.add_argument(
        "--form", choices=FORMS, default="study", help="the instrument's wording (robustness checks)"
    )
    m.add_argument("--batch-size", type=int, default=16)
    m.add_argument("--max-new-tokens", type=int, default=100)
    add_executor_args(m)
    m.add_argument("--out", required=True)
    m.set_defaults(fn=cmd_measure)
