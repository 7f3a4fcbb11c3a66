"""CLI: `measure` (value orientations across roles)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from mechvalue.cli.common import DesignOptions, ModelOptions, add_executor_args, executor_from_args
from mechvalue.cli.options import add_dataclass_args, given
from mechvalue.measurement.options import ScoringOptions
from mechvalue.study.personas import PersonaKind


def cmd_measure(a: argparse.Namespace) -> None:
    import torch

    from mechvalue.distributed.measure import measure_roles
    from mechvalue.io import write_csv
    from mechvalue.lm.models import load_model
    from mechvalue.measurement.scoring import Measurer
    from mechvalue.pipeline.preflight import check_design
    from mechvalue.study.personas import persona_set
    from mechvalue.study.roles import load_players

    torch.manual_seed(a.seed)
    items = check_design(a, a.out, a.values, a.min_items)  # every input before the model loads
    roles = load_players(a.players)[: a.roles] if a.players else persona_set(a.persona, a.roles, a.seed)
    model, info = load_model(a.model, a.device, a.dtype, a.prompt_format)
    m = Measurer(model, info.prompt_format, **given(ScoringOptions, a))
    out = Path(a.out)
    with executor_from_args(a) as ex:
        long, wide = measure_roles(m, items, [None, *roles], ex, info)
        write_csv(long, out / "items.csv")
        write_csv(wide, out / "values.csv")
        ex.log.write(out)
    print(f"wrote {out / 'values.csv'} ({len(wide)} rows x {wide.shape[1] - 2} values) and items.csv")


@dataclass(kw_only=True)
class MeasureOptions(ModelOptions, DesignOptions, ScoringOptions):
    """The options of `mechvalue measure`."""

    values: str | None = None
    """comma-separated value names"""
    min_items: int = 0
    players: str | None = None
    """study players*.json instead of generated roles"""
    persona: PersonaKind = "one-line"
    """who answers: the study's one-line persona, the same with a value-neutral biography, or the
    known-group personas (12 at most)"""
    out: str


def register(sub) -> None:
    m = sub.add_parser("measure", help="measure value orientations across roles")
    add_dataclass_args(m, MeasureOptions)
    add_executor_args(m)
    m.set_defaults(fn=cmd_measure)
