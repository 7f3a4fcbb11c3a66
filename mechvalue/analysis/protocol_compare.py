"""Every protocol x persona strength measured on the same items and roles, through the same
validity battery (`mechvalue.analysis.protocol_table`), into one table.

Each (protocol, persona) is measured once into `OUT/items/<protocol>@<persona>.csv` with its
settings and wall time beside it (`.json`); a rerun with the same settings reads it instead of
measuring again, so an interrupted comparison resumes. The persona set answers; the known-groups
check needs the twelve known-group personas, which are then asked too, unless the known-groups
persona set is among those compared (it is its own respondents, and gives the check for every
protocol). The no-persona row is no respondent and is not asked.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from mechvalue.analysis.protocol_table import battery, markdown, rank_agreement
from mechvalue.analysis.validity import human_value_scores, load_known_groups
from mechvalue.io import write_csv, write_json, write_text
from mechvalue.measurement.scoring import Measurer, measure
from mechvalue.study.personas import known_groups_path, persona_set
from mechvalue.study.roles import load_players


def measured(
    m: Measurer, items: pd.DataFrame, people: list, path: Path, settings: dict, progress: bool
) -> tuple[pd.DataFrame, float]:
    """(items table, seconds) of `people` under `m`: read from `path` when its settings match."""
    meta = path.with_suffix(".json")
    if path.exists() and meta.exists():
        old = json.loads(meta.read_text())
        if old.get("settings") == settings:
            return pd.read_csv(path), float(old["seconds"])
    t = time.perf_counter()
    long, _ = measure(m, items, people, progress=progress)
    seconds = time.perf_counter() - t
    write_csv(long, path)
    write_json({"settings": settings, "seconds": seconds, "prompts": len(long)}, meta)
    return long, seconds


@dataclass
class ProtocolDesign:
    """What `compare` measures and how it scores: the protocols x persona strengths, the roles, and
    the battery's resamples (recorded with each measurement, so a changed design re-measures)."""

    protocols: list[str]
    personas: list[str]
    n_roles: int
    human_path: str | None = None
    """PVQ-40 answers CSV for the matrix correlation and circle ordering"""
    seed: int = 0
    n_boot: int = 200
    n_perm: int = 2000
    batch_size: int = 16


def compare(
    model, items: pd.DataFrame, design: ProtocolDesign, out: str | Path, progress: bool = True
) -> dict:
    """Measure and score every protocol x persona set of `design` on `model` (a `LoadedModel`);
    write `protocols.csv` (one row each), `values.csv` (per value), `rank_agreement.csv`,
    `protocols.json` and `protocols.md`."""
    d = design
    prompt_format, model_name = model.prompt_format, model.name
    dtype = str(model.dtype).removeprefix("torch.")
    protocols, personas, n_roles, seed = d.protocols, d.personas, d.n_roles, d.seed
    n_boot, n_perm, batch_size, human_path = d.n_boot, d.n_perm, d.batch_size, d.human_path
    out = Path(out)
    groups = load_known_groups(known_groups_path())
    kg_roles = load_players(known_groups_path())
    human = human_value_scores(human_path) if human_path else None
    rows, per_value, longs = [], [], {}
    for kind in personas:
        roles = persona_set(kind, n_roles, seed)
        people = roles + ([] if kind == "known-groups" or "known-groups" in personas else kg_roles)
        for name in protocols:
            m = Measurer(model, prompt_format, batch_size=batch_size, protocol=name)
            settings = {
                "model": model_name,
                "protocol": name,
                "persona": kind,
                "roles": len(roles),
                "seed": seed,
                "dtype": dtype,
                "prompt_format": prompt_format,
                "batch_size": batch_size,
                "items": items["item"].tolist(),
            }
            long, secs = measured(m, items, people, out / "items" / f"{name}@{kind}.csv", settings, progress)
            s, vals = battery(long, human, groups, n_boot, n_perm, seed, dtype)
            rows.append(
                {
                    "protocol": name,
                    "persona": kind,
                    **s,
                    "seconds": secs,
                    "items_per_s": len(long) / secs if secs > 0 else float("nan"),
                }
            )
            per_value.append(vals.assign(protocol=name, persona=kind))
            longs[f"{name}@{kind}"] = long
            if progress:
                print(f"{name}@{kind}: {s['n_pass']} values pass, matrix r {s['matrix_r']:.2f}, {secs:.0f} s")
    summary = pd.DataFrame(rows)
    values = pd.concat(per_value, ignore_index=True)
    ranks = rank_agreement(longs)
    write_csv(summary, out / "protocols.csv")
    write_csv(values, out / "values.csv")
    write_csv(ranks.rename_axis("protocol").reset_index(), out / "rank_agreement.csv")
    table = markdown(summary)
    rank_md = markdown_ranks(ranks)
    write_text(
        f"{table}\n\nRank agreement (median Spearman over values):\n\n{rank_md}\n", out / "protocols.md"
    )
    res = {
        "model": model_name,
        "roles": n_roles,
        "seed": seed,
        "dtype": dtype,
        "items": len(items),
        "summary": summary.to_dict("records"),
        "rank_agreement": ranks.to_dict(),
        "goal_met": summary.loc[summary["goal"], ["protocol", "persona"]].to_dict("records"),
    }
    write_json(res, out / "protocols.json")
    return {
        "summary": summary,
        "values": values,
        "ranks": ranks,
        "markdown": table,
        "ranks_markdown": rank_md,
    }


def markdown_ranks(ranks: pd.DataFrame) -> str:
    cols = list(ranks.columns)
    lines = ["| | " + " | ".join(cols) + " |", "|" + "---|" * (len(cols) + 1)]
    for r in ranks.index:
        cells = ["n/a" if pd.isna(ranks.loc[r, c]) else f"{ranks.loc[r, c]:.2f}" for c in cols]
        lines.append(f"| {r} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
