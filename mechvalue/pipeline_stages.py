"""The stages of `mechvalue run`, one function each: read the earlier stages' files, write
their own into `run.dir(stage)`, return a small summary for `done.json`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .io import write_csv, write_json
from .pipeline import Run

TOL = 0.02  # score changes up to this size count as "unchanged" in the side-effect tables


def _read(run: Run, stage: str, name: str) -> pd.DataFrame:
    return pd.read_csv(run.out / stage / name)


def _json(run: Run, stage: str, name: str):
    return json.loads((run.out / stage / name).read_text())


def measure(run: Run) -> dict:
    from .measure import measure as measure_values

    long, wide = measure_values(run.measurer(), run.items(), run.roles())
    d = run.dir("measure")
    write_csv(long, d / "items.csv")
    write_csv(wide, d / "values.csv")
    return {"rows": len(wide), "items": int(long["item"].nunique())}


def sae(run: Run) -> dict:
    from .sae import TrainConfig
    from .sae_recipe import recipe_folder, sae_recipe

    cfg = run.cfg
    if cfg.sae != "train":
        ref = {"path": str(Path(cfg.sae).resolve()), "trained": False, "metrics": {}}
    else:
        model, info = run.model
        kw = dict(cfg.sae_train)
        train = TrainConfig(seed=cfg.seed, **{k: kw.pop(k) for k in ("d_sae", "epochs", "k") if k in kw})
        tag = "-quick" if cfg.quick else ""  # the default is `mechvalue sae-train`'s folder
        folder = recipe_folder(cfg.model, cfg.layer, tag)
        q = [cfg.questionnaire] if cfg.questionnaire else None
        metrics = sae_recipe(
            model,
            info,
            folder,
            cfg.layer,
            train=train,
            inventory=cfg.inventory,
            questionnaire=q,
            seed=cfg.seed,
            **kw,
        )
        ref = {"path": str(folder / "sae"), "trained": True, "activations": str(folder / "activations.h5"),
               "metrics": {k: v for k, v in metrics.items() if k != "settings"}}  # fmt: skip
    write_json(ref, run.dir("sae") / "sae.json")
    return {"path": ref["path"]}


def _grid_roles(run: Run) -> list:
    """Roles of the steering grid, whose activations are also cached and correlated with their scores."""
    return run.roles()[: run.cfg.grid_roles + 1]


def _prompts(run: Run):
    from .prompts import render

    model, info = run.model
    items = run.items()
    return [render(q, r, info.prompt_format, model.tokenizer, answer_prefix="Answer:")
            for r in _grid_roles(run) for q in items["question"]]  # fmt: skip


def activations(run: Run) -> dict:
    from .cache import cache_activations
    from .features import cache_prompts

    model, info = run.model
    sae, _ = run.sae()
    prompts = cache_prompts(_prompts(run))
    out = run.dir("activations") / "acts.h5"
    cache_activations(model, prompts, [sae.cfg.hook_name], out, "mask", model_name=run.cfg.model)
    return {"prompts": len(prompts)}


def features(run: Run) -> dict:
    from .attribution import correlation, gradient_attribution
    from .cache import ActivationStore
    from .features import prompt_features, span_candidates, typical_activation, typical_from_store

    sae, ref = run.sae()
    hook = sae.cfg.hook_name
    items, roles = run.items(), _grid_roles(run)
    store = ActivationStore(run.out / "activations" / "acts.h5")
    span, last = prompt_features(store, sae, hook, len(items) * len(roles))
    if ref.get("activations") and Path(ref["activations"]).exists():  # the SAE's own training cache
        typical = typical_from_store(sae, ref["activations"])
    else:
        typical = typical_activation(sae, store.rows(hook))
    store.close()
    names = [r.name if r else "" for r in roles for _ in range(len(items))]
    values = list(items["value"]) * len(roles)
    wide = _read(run, "measure", "values.csv")
    corr = correlation(last, names, values, wide)
    grad = gradient_attribution(run.measurer(), sae, items, roles[:4])
    grad_typ = grad.mul(typical.numpy(), axis=0)  # per typical unit of steering
    k = run.cfg.features
    chosen = {f: "span" for f in span_candidates(span, max(1, k // 3))}
    for why, score in (("correlation", corr.abs()), ("attribution", grad_typ.abs())):
        quota = len(chosen) + (max(1, k // 3) if why == "correlation" else k)
        for f in score.max(axis=1).sort_values(ascending=False).index:
            if len(chosen) >= min(quota, k):
                break
            chosen.setdefault(int(f), why)
    d = run.dir("features")
    write_csv(corr.assign(feature=corr.index), d / "correlation.csv")
    write_csv(grad_typ.assign(feature=grad_typ.index).loc[list(chosen)], d / "gradient_attribution.csv")
    torch.save(typical, d / "typical.pt")
    write_json({"features": [{"feature": f, "reason": why, "typical": float(typical[f]),
                              "span_activation": float(span[:, f].mean())} for f, why in chosen.items()]},
               d / "features.json")  # fmt: skip
    return {"features": list(chosen)}


def _features(run: Run) -> list[int]:
    return [f["feature"] for f in _json(run, "features", "features.json")["features"]]


def grid(run: Run) -> dict:
    from .steer_grid import GridSpec, run_grid

    sae, _ = run.sae()
    typical = torch.load(run.out / "features" / "typical.pt")
    spec = GridSpec(_features(run), [run.cfg.strength], "add", "span", "typical")
    t = run_grid(run.measurer(), run.items(), _grid_roles(run), sae, typical, spec, run.dir("grid"))
    return {"rows": len(t["steer"])}


def generations(run: Run) -> dict:
    from .prompts import render
    from .steering import SAEEditHook, SteeringSpec, generate_steered

    model, info = run.model
    sae, _ = run.sae()
    typical = torch.load(run.out / "features" / "typical.pt")
    items = run.items()
    qs = list(items.groupby("value", sort=False).head(1)["question"][:2])
    ps = [render(q, None, info.prompt_format, model.tokenizer) for q in qs]
    n = 24 if run.cfg.quick else 40
    plain = generate_steered(model, ps, sae.cfg.hook_name, lambda r, hook: r, "all", n)
    out = []
    for f in _features(run):
        spec = SteeringSpec([f], "add", run.cfg.gen_strength, "all", "typical")
        steered = generate_steered(
            model, ps, sae.cfg.hook_name, SAEEditHook(sae, spec, typical=typical), "all", n
        )
        out += [
            {"feature": f, "question": q, "unsteered": a, "steered": b} for q, a, b in zip(qs, plain, steered)
        ]
    write_json(
        {"strength": run.cfg.gen_strength, "where": "all", "examples": out},
        run.dir("generations") / "generations.json",
    )
    return {"changed": sum(o["steered"] != o["unsteered"] for o in out), "of": len(out)}


def _reference(run: Run, nodes: list[str]):
    """The human reference graph over `nodes`: PVQ-40 answers if given, else Schwartz's circle
    (neighbours linked)."""
    from .causal.graph import Edge, ValueGraph
    from .causal.human import human_graph
    from .inventory import SCHWARTZ_VALUES

    if run.cfg.human:
        edges = [e for e in human_graph(run.cfg.human).edges if e.source in nodes and e.target in nodes]
        return ValueGraph(nodes, edges), f"human PVQ-40 answers ({Path(run.cfg.human).name})"
    ring = [v for v in SCHWARTZ_VALUES if v in nodes]  # listed in circle order
    edges = [Edge(a, b, "undirected") for a, b in zip(ring, ring[1:] + ring[:1])] if len(ring) > 2 else []
    return ValueGraph(nodes, edges), "Schwartz's circle (adjacent values linked)"


def graph(run: Run) -> dict:
    from .causal.compare import compare_with_null
    from .causal.data import select_rows, value_matrix
    from .causal.discovery import learn_graph
    from .causal.stability import bootstrap_edges, edges_recurring
    from .plots import draw_graph

    wide = _read(run, "measure", "values.csv")
    rows = select_rows(wide, [])
    x = value_matrix(rows, drop_constant=True)
    g = learn_graph(x, "pc", 0.05)
    d = run.dir("graph")
    g.save(d / "learned.json")
    freqs = bootstrap_edges(x, rows["player_name"], run.cfg.bootstrap, "pc", 0.05, run.cfg.seed)
    write_csv(freqs, d / "edge_frequencies.csv")
    ref, ref_name = _reference(run, list(x.columns))
    ref.save(d / "reference.json")
    cmp = compare_with_null(g, ref, run.cfg.null, run.cfg.seed)
    stable = edges_recurring(g, freqs, 0.8)
    fq = {frozenset((r.source, r.target)): r.skeleton_freq for r in freqs.itertuples()}
    draw_graph(
        g, d / "learned.png", f"{run.cfg.model}: {len(g.edges)} edges ({stable} in >=80% of resamples)", fq
    )
    draw_graph(ref, d / "reference.png", f"reference: {ref_name}")
    summary = {"edges": len(g.edges), "edges_recurring_80pct": stable, "reference": ref_name,
               "reference_edges": len(ref.edges), "compare": cmp, "rows": len(x),
               "failed_resamples": freqs.attrs["failed_resamples"]}  # fmt: skip
    write_json(summary, d / "summary.json")
    return {"edges": len(g.edges)}


def tables(run: Run) -> dict:
    from .attribution import interventional, side_effects
    from .causal.graph import load_graph
    from .experiments import pies, table1, table2, table2_improved
    from .inventory import split
    from .measure import wide_table

    d = run.dir("tables")
    conds = _json(run, "grid", "conditions.json")["conditions"]
    steer = _read(run, "grid", "steer.csv")
    long = _read(run, "grid", "items.csv")
    learned = load_graph(run.out / "graph" / "learned.json")
    ref = load_graph(run.out / "graph" / "reference.json")
    feats = [c["label"] for c in conds if c["kind"] == "sae"]
    nb = 50 if run.cfg.quick else 200
    train, test = split(run.items(), run.cfg.seed)
    sae_rows = long[~long["steer_dim"].astype(str).str.startswith("hard:")]
    t1 = table1(wide_table(sae_rows[sae_rows["item"].isin(train["item"])]),
                wide_table(sae_rows[sae_rows["item"].isin(test["item"])]), feats)  # fmt: skip
    write_csv(t1["cells"], d / "table1_cells.csv")
    first_role = steer["player_name"].dropna().iloc[0]
    res = {"table1": {k: t1[k] for k in ("mean_similarity", "noise_ratio")},
           "table2_study": table2(steer, learned, ref, first_role),
           "table2_learned": table2_improved(steer, learned, n_boot=nb, n_null=nb, seed=run.cfg.seed, tol=TOL),
           "table2_reference": table2_improved(steer, ref, n_boot=nb, n_null=nb, seed=run.cfg.seed, tol=TOL)}  # fmt: skip
    res["table2_study"].pop("per_value")
    eff = interventional(steer, conds)
    write_csv(eff, d / "interventional.csv")
    res["side_effects_learned"] = side_effects(eff, learned)
    res["side_effects_reference"] = side_effects(eff, ref)
    best = eff[eff["effect"] > 0].sort_values("t", ascending=False).drop_duplicates("value")
    chosen = {r.value: r.label for r in best.itertuples()}
    if chosen and (run.out / "grid" / "hard_positive.csv").exists():
        res["pies_positive"] = pies(steer, _read(run, "grid", "hard_positive.csv"), chosen)
    write_json(res, d / "tables.json")
    return {"features": len(feats)}


def report(run: Run) -> dict:
    from .report import write_report

    path = write_report(run)
    return {
        "html": str(path),
        "bytes": path.stat().st_size,
        "total_seconds_before_report": float(np.sum(list(run.timings().values()))),
    }
