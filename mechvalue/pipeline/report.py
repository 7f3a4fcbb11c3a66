"""The self-contained HTML report of a `mechvalue run` folder (figures embedded as base64).

Each section is a function of the run folder that returns its title and a list of typed blocks
(text, note, heading, figures, table, kv, generations) or None when its stage did not run; the
Jinja2 template `templates/report.html.j2` renders them. Analysis stays in the section
functions and the modules they call, markup stays in the template.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path

import jinja2
import pandas as pd

from mechvalue.distributed.timings import time_summary
from mechvalue.io import atomic_path
from mechvalue.pipeline.workspace import Workspace

Block = dict
Section = dict
MIN_ROLES = 10  # correlations across fewer roles are not shown as numbers (|r| near 1 by chance)


def text(s: str) -> Block:
    return {"kind": "text", "text": s}


def note(s: str) -> Block:
    return {"kind": "note", "text": s}


def heading(s: str) -> Block:
    return {"kind": "heading", "text": s}


def figures(*paths_captions: tuple[Path, str]) -> Block:
    """PNG files embedded as base64 (missing files are left out)."""
    figs = [
        {"b64": base64.b64encode(p.read_bytes()).decode(), "caption": c}
        for p, c in paths_captions
        if p.exists()
    ]
    return {"kind": "figures", "figures": figs}


def table(df: pd.DataFrame, digits: int = 3) -> Block:
    return {
        "kind": "table",
        "html": df.to_html(float_format=lambda x: f"{x:.{digits}f}", border=0, na_rep=""),
    }


def kv(d: dict) -> Block:
    fmt = lambda x: f"{x:.3f}" if isinstance(x, float) else str(x)  # noqa: E731
    return {"kind": "kv", "pairs": [(str(k), fmt(v)) for k, v in d.items()]}


def _profile(ws: Workspace, d: Path) -> Section:
    from mechvalue.analysis.plots import heatmap

    values = ws.read_csv("measure", "values.csv")
    prof = values.set_index(values["player_name"].fillna("(no role)")).drop(
        columns=["steer_dim", "player_name"]
    )
    lim = float(prof.abs().max().max()) or 1.0
    heatmap(prof, d / "profile.png", "value scores: agreement x (p(yes) - p(no)), mean per value", -lim, lim)
    cap = "rows: roles, columns: values; blue = endorsed, red = rejected (colour scale: the largest |score|)"
    return {"title": "Value profile across roles", "blocks": [figures((d / "profile.png", cap))]}


def _graph(ws: Workspace, d: Path) -> Section:
    g, settings = ws.read_json("graph", "summary.json"), ws.cfg
    cmp = g["compare"]
    obs = cmp["observed"]
    return {"title": "Value graph: learned vs reference", "blocks": [
        figures((ws.out / "graph" / "learned.png", "PC (Fisher-z, alpha .05) on the unsteered rows; edge width = bootstrap frequency"),
                (ws.out / "graph" / "reference.png", g["reference"])),
        text(f"{g['edges']} learned edges, {g['edges_recurring_80pct']} of them in at least 80% of "
             f"{settings.bootstrap} role-bootstrap resamples."),
        kv({"SHD (each differing pair counts 1)": obs["shd"], "skeleton precision": obs["skeleton_precision"],
            "skeleton recall": obs["skeleton_recall"], "skeleton F1": obs["skeleton_f1"],
            "p(SHD) vs random graphs": cmp["random_graph"]["p_shd"],
            "p(F1) vs random graphs": cmp["random_graph"]["p_skeleton_f1"],
            "p(SHD) vs permuted labels": cmp["permuted_labels"]["p_shd"], "null draws": cmp["n_null"]}),
        heading("Most stable edges"), table(ws.read_csv("graph", "edge_frequencies.csv").head(15), 2)]}  # fmt: skip


def feature_effects(ws: Workspace) -> dict:
    """The features section's data: effects (feature x value), gradient attribution, top correlated
    features per value, and the agreement of attribution patching with the measured effects."""
    from mechvalue.analysis.attribution import attribution_agreement

    eff = ws.read_csv("tables", "interventional.csv")
    emat = eff.pivot_table(index="feature", columns="value", values="effect", sort=False)
    grad = ws.read_csv("features", "gradient_attribution.csv").set_index("feature")[emat.columns]
    corr = ws.read_csv("features", "correlation.csv").set_index("feature")[emat.columns]
    top = pd.DataFrame({v: [f"{f} ({corr.loc[f, v]:+.2f})" for f in corr[v].abs().nlargest(3).index]
                        for v in corr.columns}, index=["1st", "2nd", "3rd"]).T  # fmt: skip
    feats = pd.DataFrame(ws.read_json("features", "features.json")["features"]).set_index("feature")
    moves = emat.abs().idxmax(axis=1)
    feats["moves most"] = [moves.get(f, "") for f in feats.index]
    return {"effects": emat, "gradient": grad, "top_correlated": top, "features": feats,
            "agreement": attribution_agreement(grad.loc[emat.index], emat), "n_roles": ws.cfg.grid_roles + 1}  # fmt: skip


def _features(ws: Workspace, d: Path) -> Section:
    from mechvalue.analysis.plots import heatmap

    fe, m = feature_effects(ws), ws.read_json("sae", "sae.json")
    lim = float(fe["effects"].abs().max().max()) or 1.0
    heatmap(fe["effects"], d / "effects.png", "interventional effect per typical unit of steering", -lim, lim)
    metrics = {k: m["metrics"][k] for k in ("l0", "fve", "dead_frac", "loss_clean", "loss_spliced", "delta_loss", "rows")
               if k in m.get("metrics", {})}  # fmt: skip
    return {"title": "SAE and the features behind each value", "blocks": [
        kv(metrics | {"path": m["path"]}), table(fe["features"]),
        figures((d / "effects.png", "change of each value score per typical unit of 'add' steering at ' your values' (mean over roles)")),
        text(f"Attribution patching (one backward pass, the derivative at strength 0) vs the effects measured at "
             f"strength {ws.cfg.strength:g}: r = {fe['agreement']:.3f} (a linear estimate; far from 0 it need not hold)."),
        heading("Gradient attribution (per typical unit)"), table(fe["gradient"], 4),
        heading("Features most correlated with each value across roles (answer-position activation vs score)"),
        table(fe["top_correlated"]) if fe["n_roles"] >= MIN_ROLES else
        note(f"too few roles for correlations: n = {fe['n_roles']} (reported from {MIN_ROLES} roles on)")]}  # fmt: skip


def _generations(ws: Workspace, d: Path) -> Section:
    gens = ws.read_json("generations", "generations.json")
    return {"title": "Steered generations", "blocks": [
        note(f"greedy, every position steered, add {gens['strength']:g} x typical activation."),
        {"kind": "generations", "rows": gens["examples"]}]}  # fmt: skip


def _table1(ws: Workspace, d: Path) -> Section:
    t = ws.read_json("tables", "tables.json")
    return {"title": "Table 1: are steering effects consistent across item splits?",
            "blocks": [table(pd.DataFrame({"mean similarity": t["table1"]["mean_similarity"]}))]}  # fmt: skip


def _table2(ws: Workspace, d: Path) -> Section:
    t = ws.read_json("tables", "tables.json")
    study = pd.DataFrame(
        {f"{h} / {g}": t["table2_study"][h][g] for h in ("prompt", "sae") for g in ("learned", "reference")}
    ).T
    imp = pd.DataFrame({f"{h} / {g}": {**{k: v for k, v in t[f"table2_{g}"][h].items() if k != "gap_ci95"},
                                       "gap CI95": "[{:.3f}, {:.3f}]".format(*t[f"table2_{g}"][h]["gap_ci95"])}
                        for g in ("learned", "reference") for h in ("sae", "prompt")}).T  # fmt: skip
    keys = ("side_effects", "on_descendants", "share_on_descendants", "chance_share", "p_value")
    side = pd.DataFrame({g: {k: t[f"side_effects_{g}"][k] for k in keys} for g in ("learned", "reference")}).T
    blocks = [heading("The study's statistic (one role for the SAE half)"), table(study),
              note("The study counts any change; with continuous log-prob scores every value moves a little under "
                   "any edit, so its shares saturate near 1. The all-roles table below counts changes larger than "
                   f"{t['table2_learned']['sae']['tol']:g}."),
              heading("All roles, bootstrap CI of the expected - unexpected gap, p-values"), table(imp),
              heading("Side effects of each feature on graph descendants of its target value"), table(side)]  # fmt: skip
    pies = t.get("pies_positive")
    if pies:
        blocks += [heading("Targeted value's direction: its strongest SAE feature vs the hard prompt 'inclined to V' (%)"),
                   kv({f"SAE {k}": v for k, v in pies["sae"].items()} | {f"hard prompt {k}": v for k, v in pies["hard_prompt"].items()})]  # fmt: skip
    return {"title": "Table 2: side effects against the graphs", "blocks": blocks}


def _flat(d: dict) -> dict:
    """Scalars of a nested dict with dotted keys (lists joined), for a key-value table."""
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out |= {f"{k}.{kk}": vv for kk, vv in _flat(v).items()}
        else:
            out[k] = ", ".join(map(str, v)) if isinstance(v, list) else v
    return out


def _validity(ws: Workspace, d: Path) -> Section | None:
    from mechvalue.analysis.validity_report import report_section

    v = report_section(ws.out / "validity")
    if v is None:
        return None
    s = v["summary"]
    blocks = [
        text(
            "Roles are the respondents: internal consistency of each value's items (Cronbach's alpha, "
            "McDonald's omega), the share of score variance between roles (ICC(1)), the value structure "
            "against the human PVQ-40 answers and Schwartz's circle, contrasting personas, and the same "
            "scores under other forms of the instrument."
        ),
        kv(_flat(s)),
        figures((Path(v["figure"]), "per value: model alpha, omega, ICC(1) (CI bars); human alpha, omega")),
    ]
    if s.get("flagged"):
        blocks.append(
            note(
                "Flagged values (below the thresholds above): "
                + ", ".join(map(str, s["flagged"]))
                + ". Graph nodes and edges resting on them are listed in graph_warnings.json."
            )
        )
    blocks += [heading("Per value"), table(pd.DataFrame(v["table"]).set_index("value"))]
    for key, title in (
        ("known_groups", "Known groups: contrasting personas, theory's direction"),
        ("forms", "Robustness to the instrument's form (rank correlation per value)"),
    ):
        if v.get(key):
            blocks += [heading(title), table(pd.DataFrame(v[key]))]
    return {"title": "Are the scores measurements? Reliability and validity", "blocks": blocks}  # fmt: skip


def _steer_compare(ws: Workspace, d: Path) -> Section:
    from mechvalue.analysis.steer_compare import report_section

    c = report_section(ws.out / "steer_compare")
    return {"title": "Which steering method? Prompting, DiffMean, CAA and SAE features", "blocks": [
        text(c["verdict"]),
        note(f"Test items and roles only; each method at its best strength whose mean KL on neutral text stays "
             f"under {c.get('kl_bound', float('nan')):g}; statistics from fewer than {c.get('min_roles', '?')} roles "
             "are reported as too few."),
        table(pd.DataFrame(c["best"])),
        figures(*((Path(p), Path(p).stem) for p in c["plots"]))]}  # fmt: skip


def _settings(ws: Workspace, d: Path, stages: list[str]) -> Section:
    conf = ws.read_json(".", "config.json")
    versions = ", ".join(f"{k} {v}" for k, v in conf["versions"].items())
    timings = {f"{k} (s)": float(v) for k, v in ws.timings(stages).items()}
    blocks = [kv(conf["settings"] | {"versions": versions}), kv(timings)]
    spent = time_summary(ws.out)
    if spent and spent.get("stages"):
        rows = [{"stage": st, "worker": w, **{k: info[k] for k in ("tasks", "busy_s", "load_s", "utilisation") if k in info}}
                for st, s in spent["stages"].items() for w, info in s["workers"].items()]  # fmt: skip
        blocks += [
            heading(f"Where time went (executor: {_flat(spent.get('executor', {}))})"),
            table(pd.DataFrame(rows)),
        ]
    return {"title": "Settings and timings", "blocks": blocks}


SECTIONS: list[tuple[str, Callable[[Workspace, Path], Section]]] = [
    ("measure", _profile), ("graph", _graph), ("tables", _features), ("generations", _generations),
    ("tables", _table1), ("tables", _table2), ("validity", _validity), ("steer_compare", _steer_compare),
]  # (the stage whose output a section needs, the section)  # fmt: skip


def write_report(ws: Workspace, d: Path, stages: list[str]) -> Path:
    """Render every section whose stage has finished into `d/report.html`."""
    sections = [fn(ws, d) for stage, fn in SECTIONS if ws.done(stage)]
    sections.append(_settings(ws, d, stages))
    s = ws.cfg
    n_roles = len(ws.read_csv("measure", "values.csv"))
    env = jinja2.Environment(loader=jinja2.PackageLoader("mechvalue.pipeline", "templates"), autoescape=True)
    page = env.get_template("report.html.j2").render(
        title=s.model, sections=[x for x in sections if x],
        subtitle=f"{n_roles} prompts-roles ({n_roles - 1} personas + no role), questionnaire "
                 f"{s.questionnaire or 'shipped MVI10'}; SAE at blocks.{s.layer}.hook_resid_post; seed {s.seed}.")  # fmt: skip
    path = d / "report.html"
    with atomic_path(path) as tmp:
        tmp.write_text(page)
    return path
