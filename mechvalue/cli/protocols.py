"""CLI: `protocols` (every measurement protocol through the same validity battery, one table)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from mechvalue.cli.common import DesignOptions, ModelOptions, csv_list
from mechvalue.cli.options import add_dataclass_args
from mechvalue.errors import MechValueError


def cmd_protocols(a: argparse.Namespace) -> None:
    import torch

    from mechvalue.analysis.protocol_compare import ProtocolDesign, compare
    from mechvalue.lm.models import load_model
    from mechvalue.measurement.protocols import PROTOCOLS
    from mechvalue.pipeline.preflight import check_design
    from mechvalue.study.personas import PERSONA_KINDS
    from mechvalue.study.settings import default_human_answers

    protocols = csv_list(a.protocols) or list(PROTOCOLS)
    personas = csv_list(a.persona) or ["one-line"]
    for name, known, flag in ((protocols, PROTOCOLS, "--protocols"), (personas, PERSONA_KINDS, "--persona")):
        bad = [x for x in name if x not in known]
        if bad:
            raise MechValueError(f"{flag}: unknown {', '.join(bad)}; expected some of {', '.join(known)}")
    if a.roles < 3 or a.bootstrap < 0 or a.permutations < 0:
        raise MechValueError("--roles must be >= 3, --bootstrap and --permutations >= 0")
    human = a.human or default_human_answers()
    if human and not Path(human).is_file():
        raise MechValueError(f"{human}: no such PVQ-40 answers file (--human)")
    torch.manual_seed(a.seed)
    items = check_design(a, a.out)  # every input before the model loads
    design = ProtocolDesign(
        protocols, personas, a.roles, human, a.seed, a.bootstrap, a.permutations, a.batch_size
    )
    res = compare(load_model(a.model, a.device, a.dtype, a.prompt_format), items, design, a.out)
    print(res["markdown"])
    print(f"\nrank agreement (median Spearman over values):\n{res['ranks_markdown']}")
    met = res["summary"].loc[res["summary"]["goal"], ["protocol", "persona"]]
    goal = ", ".join(f"{p}@{k}" for p, k in met.itertuples(index=False)) or "no protocol"
    print(
        f"\ngoal (>= 5 values with centred alpha >= .70 and ICC(1) CI above .05, matrix r >= .6): "
        f"met by {goal} -> {Path(a.out) / 'protocols.md'}"
    )


@dataclass(kw_only=True)
class ProtocolsOptions(ModelOptions, DesignOptions):
    """The options of `mechvalue protocols`."""

    roles: int = 40
    protocols: str | None = None
    """comma-separated protocol names (default: all; `mechvalue measure --help` lists them)"""
    persona: str = "one-line"
    """comma-separated persona strengths: one-line, biography, known-groups"""
    human: str | None = None
    """PVQ-40 answers CSV (default: ../shared/data/human/PVQ40.csv)"""
    bootstrap: int = 200
    """respondent resamples for alpha/omega CIs"""
    permutations: int = 2000
    batch_size: int = 40
    """items per forward batch (PVQ40: a role at once)"""
    out: str


def register(sub) -> None:
    p = sub.add_parser("protocols", help="every measurement protocol through the same validity battery")
    add_dataclass_args(p, ProtocolsOptions)
    p.set_defaults(fn=cmd_protocols)
