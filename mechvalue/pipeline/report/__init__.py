"""The self-contained HTML report of a `mechvalue run` folder (figures embedded as base64).

One module per section in this package. A section module has `STAGE` (the stage whose output it
needs, None for none), `ORDER` (its place on the page) and `build(page) -> section | None`: a
title and typed blocks (`blocks`) built from the run folder and its grounds (`grounds.Grounds`:
the noise model, between-role spread, roles and items, the steered changes, each value's status
under the one pass rule, the SAE's metrics). A new section is one new module here; `SECTIONS`
finds it. A section checks what its result stands on before it shows it: a statistic that is
undefined, or rests on differences within the noise, too few roles or items, or an SAE below the
quality bar, is replaced or accompanied by a sentence saying so. The top of the page (`top`)
states each value's status once; sections repeat it in the same words. The Jinja2 template
`mechvalue/pipeline/templates/report.html.j2` renders the blocks.
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path
from types import ModuleType

import jinja2

from mechvalue.io import write_text
from mechvalue.pipeline.grounds import grounds
from mechvalue.pipeline.report import top
from mechvalue.pipeline.report.common import SCORE_UNITS, Page
from mechvalue.pipeline.workspace import Workspace


def sections() -> list[ModuleType]:
    """Every section module of this package, in page order (`ORDER`)."""
    mods = [importlib.import_module(f"{__name__}.{m.name}") for m in pkgutil.iter_modules(__path__)]
    return sorted((m for m in mods if hasattr(m, "build") and hasattr(m, "ORDER")), key=lambda m: m.ORDER)


def write_report(ws: Workspace, d: Path, stages: list[str]) -> Path:
    """Render every section whose stage has finished into `d/report.html`."""
    gr = grounds(ws)
    page = Page(ws, d, gr, tuple(stages))
    built = [m.build(page) for m in sections() if m.STAGE is None or ws.done(m.STAGE)]
    s = ws.cfg
    env = jinja2.Environment(loader=jinja2.PackageLoader("mechvalue.pipeline", "templates"), autoescape=True)
    html = env.get_template("report.html.j2").render(
        title=s.model,
        sections=[x for x in built if x],
        banner=gr.why_meaningless() if gr.no_role_variance else None,
        caution=top.caution(gr),
        measured=top.measured(gr, getattr(s, "protocol", "study")),
        sae=top.sae(gr),
        reading=f"Scores: {SCORE_UNITS}. {gr.describe_noise().capitalize()}. A difference between roles, or "
        "between steered and unsteered, counts only when it exceeds this noise; a smaller one is a tie.",
        subtitle=f"{gr.roles} personas and the no-role prompt x {sum(gr.items.values())} items "
        f"({len(gr.items)} values); SAE at blocks.{s.layer}.hook_resid_post; seed {s.seed}.",
    )
    path = d / "report.html"
    write_text(html, path)
    return path
