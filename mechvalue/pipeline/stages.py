"""The stages of `mechvalue run`, in order, one function each. A stage writes into `out` (its own
folder), reads its other inputs from the run's `Resources` (the model, the SAE, the items, ...,
each built once), and returns a small summary for its `done.json`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from mechvalue.io import save_torch, write_csv, write_json
from mechvalue.pipeline.config import RunConfig, csv_list
from mechvalue.pipeline.resources import Resources

TOL = 0.02  # score changes up to this size count as "unchanged" in the side-effect tables


def measure(out: Path, r: Resources) -> dict:
    """Every item x every role; inputs.json records what the settings resolved to (the inventory
    file, the questionnaires, the prompt format the model got), for the report."""
    from mechvalue.distributed.measure import measure_roles
    from mechvalue.study.inventory import default_inventory_path

    measurer, items, roles, info, cfg = r.measurer, r.items, r.roles, r.info, r.cfg

    long, wide = measure_roles(measurer, items, roles, r.executor, info)
    write_csv(long, out / "items.csv")
    write_csv(wide, out / "values.csv")
    write_json(
        {
            "model": info.name,
            "prompt_format": info.prompt_format,
            "scoring": measurer.scoring,
            "protocol": measurer.protocol or measurer.scoring,
            "inventory": str(cfg.inventory or default_inventory_path()),
            "questionnaires": sorted(items["questionnaire"].unique()),
            "items": len(items),
            "values": int(items["value"].nunique()),
            "roles": len(roles) - 1,
        },
        out / "inputs.json",
    )
    return {"rows": len(wide), "items": int(long["item"].nunique())}


def sae(out: Path, r: Resources) -> dict:
    """The SAE of the run: `--sae` as given; else the recipe SAE, trained once and cached (`--quick`
    reuses the full recipe SAE when it exists, and trains a smaller one of its own only when not)."""
    import json

    from mechvalue.interp.sae_recipe import Recipe, recipe_folder, sae_recipe
    from mechvalue.interp.sae_training import TrainConfig

    cfg = r.cfg
    if cfg.sae != "train":
        from mechvalue.interp.sae_formats import load_sae, sae_reference

        path = sae_reference(cfg.sae)
        given = load_sae(path)  # a folder of no known format fails here, before anything is measured
        ref = {
            "path": path,
            "trained": False,
            "metrics": {},
            "hook_name": given.cfg.hook_name,
            "activation": given.cfg.activation,
            "d_sae": given.cfg.d_sae,
        }
    elif cfg.quick and (recipe_folder(cfg.model, cfg.layer) / "metrics.json").exists():
        # the recipe SAE `sae-train` (or mechvalue.recipe_sae) made: reused, never a smaller one trained beside it
        folder = recipe_folder(cfg.model, cfg.layer)
        metrics = json.loads((folder / "metrics.json").read_text())
        ref = {
            "path": str(folder / "sae"),
            "trained": True,
            "reused": "the recipe SAE",
            "activations": str(folder / "activations.h5"),
            "metrics": {k: v for k, v in metrics.items() if k != "settings"},
        }
    else:
        kw = dict(cfg.sae_train)
        train = TrainConfig(seed=cfg.seed, **{k: kw.pop(k) for k in ("d_sae", "epochs", "k") if k in kw})
        folder = recipe_folder(cfg.model, cfg.layer, "-quick" if cfg.quick else "")  # default: `sae-train`'s
        q = csv_list(cfg.questionnaire)
        metrics = sae_recipe(
            r.info,
            folder,
            Recipe(cfg.layer, train=train, inventory=cfg.inventory, questionnaire=q, seed=cfg.seed, **kw),
        )
        ref = {
            "path": str(folder / "sae"),
            "trained": True,
            "activations": str(folder / "activations.h5"),
            "metrics": {k: v for k, v in metrics.items() if k != "settings"},
        }
    write_json(ref, out / "sae.json")
    return {"path": ref["path"]}


def activations(out: Path, r: Resources) -> dict:
    """The SAE layer at " your values" and the answer position of every `act_items` x `act_roles` prompt."""
    from mechvalue.interp.cache import cache_activations
    from mechvalue.interp.features import cache_prompts
    from mechvalue.study.prompts import render

    model, info, act_items, act_roles = r.model, r.info, r.act_items, r.act_roles

    rendered = [
        render(q, r, info.prompt_format, model.tokenizer, answer_prefix="Answer:")
        for r in act_roles
        for q in act_items["question"]
    ]
    prompts = cache_prompts(rendered)
    cache_activations(model, prompts, [r.sae.cfg.hook_name], out / "acts.h5", "mask", model_name=r.cfg.model)
    return {"prompts": len(prompts)}


def features(out: Path, r: Resources) -> dict:
    """Typical activations, the span rule, correlations (used to choose only with enough roles and
    role variance) and gradient attribution (on the cached items, first 4 cached roles); the chosen
    features."""
    from mechvalue.analysis.attribution import correlation, gradient_attribution
    from mechvalue.interp.cache import ActivationStore
    from mechvalue.interp.features import (
        prompt_features,
        span_candidates,
        typical_activation,
        typical_from_store,
    )
    from mechvalue.pipeline.grounds import MIN_CORR_ROLES, grounds

    ws, sae, sae_ref, act_items, act_roles = r.ws, r.sae, r.sae_ref, r.act_items, r.act_roles
    hook = sae.cfg.hook_name
    store = ActivationStore(ws.out / "activations" / "acts.h5")
    span, last = prompt_features(store, sae, hook, len(act_items) * len(act_roles))
    if sae_ref.get("activations") and Path(sae_ref["activations"]).exists():  # the SAE's own training cache
        typical = typical_from_store(sae, sae_ref["activations"])
    else:
        typical = typical_activation(sae, store.rows(hook))
    store.close()
    names = [r.name if r else "" for r in act_roles for _ in range(len(act_items))]
    values = list(act_items["value"]) * len(act_roles)
    corr = correlation(last, names, values, ws.read_csv("measure", "values.csv"))
    grad = gradient_attribution(r.measurer, sae, act_items, act_roles[:4])
    grad_typ = grad.mul(typical.numpy(), axis=0)  # per typical unit of steering
    k = r.cfg.features
    chosen = {f: "span" for f in span_candidates(span.mean(0), max(1, k // 3))}
    # correlations choose only with enough roles, and only for values that vary between roles
    usable = [v for v in corr.columns if v in grounds(ws).varying] if len(act_roles) >= MIN_CORR_ROLES else []
    why_not = (
        ""
        if usable
        else f"{len(act_roles)} roles (correlations need {MIN_CORR_ROLES})"
        if len(act_roles) < MIN_CORR_ROLES
        else "no value varies between roles beyond the noise"
    )
    for why, score in [
        *([("correlation", corr[usable].abs())] if usable else []),
        ("attribution", grad_typ.abs()),
    ]:
        quota = len(chosen) + (max(1, k // 3) if why == "correlation" else k)
        for f in score.max(axis=1).sort_values(ascending=False).index:
            if len(chosen) >= min(quota, k):
                break
            chosen.setdefault(int(f), why)
    write_csv(corr.assign(feature=corr.index), out / "correlation.csv")
    write_csv(grad_typ.assign(feature=grad_typ.index).loc[list(chosen)], out / "gradient_attribution.csv")
    save_torch(typical, out / "typical.pt")
    write_json(
        {
            "features": [
                {
                    "feature": f,
                    "reason": why,
                    "typical": float(typical[f]),
                    "span_activation": float(span[:, f].mean()),
                }
                for f, why in chosen.items()
            ],
            "correlation": {
                "used": bool(usable),
                "roles": len(act_roles),
                "values": usable,
                "why_not": why_not,
            },
        },
        out / "features.json",
    )
    return {"features": list(chosen)}


def grid(out: Path, r: Resources) -> dict:
    from mechvalue.measurement.grid import GridSpec, run_grid
    from mechvalue.measurement.steering_inputs import SteeringInputs

    cfg = r.cfg

    # --quick leaves out the hard-prompt conditions: per value a prefix pass of its own for every role,
    # four times the rest of the grid; steer_compare's prompting method still runs that path
    spec = GridSpec(r.chosen, [cfg.strength], "add", "span", "typical", hard_prompts=not cfg.quick)
    inputs = SteeringInputs(r.measurer, r.sae, r.typical, r.items, r.grid_roles)
    t = run_grid(inputs, spec, out, executor=r.executor, model=r.info, sae_path=r.sae_ref["path"])
    return {"rows": len(t["steer"])}


def generations(out: Path, r: Resources) -> dict:
    from mechvalue.interp.steering import SAEEditHook, SteeringSpec, generate_steered
    from mechvalue.study.prompts import render

    model, info, sae, cfg = r.model, r.info, r.sae, r.cfg

    qs = list(r.items.groupby("value", sort=False).head(1)["question"][:2])
    ps = [render(q, None, info.prompt_format, model.tokenizer) for q in qs]
    n = 16 if cfg.quick else 40
    plain = generate_steered(model, ps, sae.cfg.hook_name, None, "all", n)
    examples = []
    for f in r.chosen:
        spec = SteeringSpec([f], "add", cfg.gen_strength, units="typical")
        steered = generate_steered(
            model, ps, sae.cfg.hook_name, SAEEditHook(sae, spec, typical=r.typical), "all", n
        )
        examples += [
            {"feature": f, "question": q, "unsteered": a, "steered": b} for q, a, b in zip(qs, plain, steered)
        ]
    write_json({"strength": cfg.gen_strength, "where": "all", "examples": examples}, out / "generations.json")
    return {"changed": sum(o["steered"] != o["unsteered"] for o in examples), "of": len(examples)}


def _reference(cfg: RunConfig, nodes: list[str]):
    """The human reference graph over `nodes`: PVQ-40 answers if given, else Schwartz's circle
    (neighbours linked)."""
    from mechvalue.causal.graph import Edge, ValueGraph
    from mechvalue.causal.human import human_graph
    from mechvalue.study.inventory import SCHWARTZ_VALUES

    if cfg.human:
        edges = [e for e in human_graph(cfg.human).edges if e.source in nodes and e.target in nodes]
        return ValueGraph(nodes, edges), f"human PVQ-40 answers ({Path(cfg.human).name})"
    ring = [v for v in SCHWARTZ_VALUES if v in nodes]  # listed in circle order
    edges = [Edge(a, b, "undirected") for a, b in zip(ring, ring[1:] + ring[:1])] if len(ring) > 2 else []
    return ValueGraph(nodes, edges), "Schwartz's circle (adjacent values linked)"


def graph(out: Path, r: Resources) -> dict:
    """PC on the unsteered rows over the values that vary between roles by more than the measurement
    noise (a value that does not would give PC edges learned from rounding); with fewer than two
    such values no graph is learned, and summary.json says why."""
    from mechvalue.analysis.noise import describe_noise
    from mechvalue.analysis.plots import draw_graph
    from mechvalue.causal.compare import compare_with_null
    from mechvalue.causal.discovery import GraphMethod
    from mechvalue.causal.stability import bootstrap_edges, edges_recurring
    from mechvalue.pipeline.grounds import grounds
    from mechvalue.study.schema import select_rows, value_matrix

    ws, cfg = r.ws, r.cfg
    rows = select_rows(ws.read_csv("measure", "values.csv"), [])
    gr = grounds(ws)
    keep = [c for c in rows.columns if c in gr.varying]
    base = {"rows": len(rows), "values": keep, "no_role_variance": gr.flat, "noise": gr.noise["noise"]}
    if len(keep) < 2:
        why = (
            f"not learned: {len(keep)} of {len(gr.values)} values vary between roles by more than the "
            f"measurement noise ({describe_noise(gr.noise)}); PC needs at least 2"
        )
        ref, ref_name = _reference(cfg, gr.values)
        ref.save(out / "reference.json")  # the tables still compare steering with the reference
        write_json(
            base
            | {
                "learned": False,
                "why": why,
                "edges": 0,
                "reference": ref_name,
                "reference_edges": len(ref.edges),
            },
            out / "summary.json",
        )
        return {"edges": 0, "learned": False}
    x = value_matrix(rows[["steer_dim", "player_name", *keep]], drop_constant=True)
    how = GraphMethod()  # the study's: PC, Fisher-z, alpha .05
    g = how.learn(x)
    g.save(out / "learned.json")
    # --quick: its 20 small resamples in this process (a worker pool's start-up costs more than they do)
    freqs = bootstrap_edges(
        x,
        rows["player_name"],
        cfg.bootstrap,
        how,
        cfg.seed,
        workers=1 if cfg.quick else None,
        executor=r.executor,
    )
    write_csv(freqs, out / "edge_frequencies.csv")
    ref, ref_name = _reference(cfg, list(x.columns))
    ref.save(out / "reference.json")
    cmp = compare_with_null(g, ref, cfg.null, cfg.seed)
    stable = edges_recurring(g, freqs, 0.8)
    fq = {frozenset((r.source, r.target)): r.skeleton_freq for r in freqs.itertuples()}
    draw_graph(
        g, out / "learned.png", f"{cfg.model}: {len(g.edges)} edges ({stable} in >=80% of resamples)", fq
    )
    draw_graph(ref, out / "reference.png", f"reference: {ref_name}")
    summary = base | {
        "learned": True,
        "edges": len(g.edges),
        "edges_recurring_80pct": stable,
        "reference": ref_name,
        "reference_edges": len(ref.edges),
        "compare": cmp,
        "failed_resamples": freqs.attrs["failed_resamples"],
    }
    write_json(summary, out / "summary.json")
    return {"edges": len(g.edges)}


def tables(out: Path, r: Resources) -> dict:
    """Table 1, Table 2 (against the learned graph when one was learned, and the reference), the
    interventional effects, side effects and pies; tables.json also records the items and roles
    each rests on."""
    from mechvalue.analysis.attribution import interventional, side_effects
    from mechvalue.analysis.tables import pies, table1, table2, table2_improved
    from mechvalue.causal.graph import load_graph
    from mechvalue.study.inventory import split
    from mechvalue.study.schema import is_hard, wide_table

    ws, items, cfg = r.ws, r.items, r.cfg
    conds = ws.read_json("grid", "conditions.json")["conditions"]
    steer, long = ws.read_csv("grid", "steer.csv"), ws.read_csv("grid", "items.csv")
    lpath = ws.out / "graph" / "learned.json"
    learned = load_graph(lpath) if lpath.exists() else None  # none when too few values vary
    ref = load_graph(ws.out / "graph" / "reference.json")
    graphs = ({"learned": learned} if learned is not None else {}) | {"reference": ref}
    feats = [c["label"] for c in conds if c["kind"] == "sae"]
    nb = 50 if cfg.quick else 200
    train, test = split(items, cfg.seed)
    sae_rows = long[~is_hard(long["steer_dim"])]
    t1 = table1(
        wide_table(sae_rows[sae_rows["item"].isin(train["item"])]),
        wide_table(sae_rows[sae_rows["item"].isin(test["item"])]),
        feats,
    )
    write_csv(t1["cells"], out / "table1_cells.csv")
    first_role = steer["player_name"].dropna().iloc[0]
    study = table2(steer, learned or ref, ref, first_role)
    for half in ("prompt", "sae"):  # without a learned graph only the reference half is meaningful
        study[half] = {g: study[half][g] for g in graphs}
    res = {
        "table1": {k: t1[k] for k in ("mean_similarity", "noise_ratio")}
        | {
            "train_items": len(train),
            "test_items": len(test),
            "values": sorted(set(train["value"]) & set(test["value"])),
        },
        "roles": int(steer["player_name"].dropna().nunique()),
        "first_role": first_role,
        "graphs": list(graphs),
        "table2_study": study,
    }
    for g, graph in graphs.items():
        res[f"table2_{g}"] = table2_improved(steer, graph, n_boot=nb, n_null=nb, seed=cfg.seed, tol=TOL)
    res["table2_study"].pop("per_value")
    eff = interventional(steer, conds)
    write_csv(eff, out / "interventional.csv")
    for g, graph in graphs.items():
        res[f"side_effects_{g}"] = side_effects(eff, graph)
    best = eff[eff["effect"] > 0].sort_values("t", ascending=False).drop_duplicates("value")
    chosen = {r.value: r.label for r in best.itertuples()}
    if chosen and (ws.out / "grid" / "hard_positive.csv").exists():
        res["pies_positive"] = pies(steer, ws.read_csv("grid", "hard_positive.csv"), chosen)
    write_json(res, out / "tables.json")
    return {"features": len(feats)}


def validity(out: Path, r: Resources) -> dict:
    """Are the scores measurements? Reliability and structure from measure/items.csv; the known-group
    personas measured here (2 pairs under --quick); other forms and scorers on the grid roles (not
    under --quick); the learned graph's nodes and edges that rest on flagged values."""
    from dataclasses import replace

    from mechvalue.analysis.validity import (
        BatterySettings,
        graph_warnings,
        known_groups_path,
        load_known_groups,
        validity,
    )
    from mechvalue.analysis.validity_report import save
    from mechvalue.causal.graph import load_graph
    from mechvalue.distributed.measure import measure_roles
    from mechvalue.pipeline.grounds import run_noise
    from mechvalue.study.roles import load_players

    ws, cfg, measurer, items = r.ws, r.cfg, r.measurer, r.items
    long, groups = ws.read_csv("measure", "items.csv"), load_known_groups()
    kg_roles = load_players(known_groups_path())[: 4 if cfg.quick else None]
    groups = {r.name: groups[r.name] for r in kg_roles}
    kg, _ = measure_roles(measurer, items, kg_roles, r.executor, r.info, "validity")
    forms = {}
    if not cfg.quick:
        for name, m in [
            *((f, replace(measurer, form=f)) for f in ("swapped", "plain", "reflect")),
            *((sc, replace(measurer, scoring=sc, protocol=None)) for sc in ("likert", "generate")),
        ]:
            forms[name] = measure_roles(m, items, r.grid_roles, r.executor, r.info, "validity")[0]
    battery = BatterySettings(50 if cfg.quick else 200, 500 if cfg.quick else 5000, cfg.seed, run_noise(ws))
    res = validity(pd.concat([long, kg], ignore_index=True), cfg.human, forms, groups, battery)
    s = save(res, out, f"{cfg.model} ({measurer.scoring}): alpha, omega, ICC(1) per value")
    if (ws.out / "graph" / "learned.json").exists():
        g = load_graph(ws.out / "graph" / "learned.json")
        write_json(
            graph_warnings(g.nodes, [(e.source, e.target) for e in g.edges], s["measurements"]),
            out / "graph_warnings.json",
        )
    return {"flagged": len(s["flagged"]), "median_alpha": s["median_alpha"], "median_icc1": s["median_icc1"]}


def steer_compare(out: Path, r: Resources) -> dict:
    """Every steering method on the held-out value test (mechvalue.analysis.steer_compare) in the
    run's --steer-design (mechvalue.analysis.steering.design); under --quick one target value, one
    strength per method, 3 roles (2 train, 1 test: every statistic is then "too few roles", the
    fluency and speed costs are measured), one neutral prompt of 8 tokens and 2 neutral texts."""
    from mechvalue.analysis.steer_compare import (
        CompareSpec,
        held_out_values,
        run_compare,
        value_graph,
    )
    from mechvalue.causal.graph import load_graph
    from mechvalue.measurement.scoring import Measurer
    from mechvalue.measurement.steering_inputs import SteeringInputs
    from mechvalue.measurement.tasks import Placement

    cfg, items = r.cfg, r.items
    testable = held_out_values(items, cfg.seed)  # values with items to build on and to judge on
    if not testable:
        verdict = (
            "Not run: no value has both train and test items under the seeded 0.7 split "
            f"(the inventory has at most {items['value'].value_counts().max()} item(s) per value)."
        )
        write_json({"verdict": verdict}, out / "summary.json")
        return {"rows": 0, "verdict": verdict}
    learned = r.ws.out / "graph" / "learned.json"
    graph, gname = (
        (load_graph(learned), "learned (graph stage)")
        if learned.exists()
        else value_graph(sorted(items["value"].unique()), cfg.human)
    )
    spec = CompareSpec(values=testable, seed=cfg.seed, design=cfg.steer_design)
    if cfg.quick:
        spec = CompareSpec(
            values=testable[:1],
            vector_strengths=[0.5],
            sae_strengths=[8.0],
            vector_roles=1,
            corr_roles=2,
            grad_roles=2,
            candidates=4,
            neutral_prompts=1,
            neutral_texts=2,
            gen_tokens=8,
            n_boot=100,
            n_null=50,
            seed=cfg.seed,
            design=cfg.steer_design,
        )
    named = [role for role in r.roles if role is not None]
    measurer = Measurer(r.model, r.info.prompt_format)
    inputs = SteeringInputs(measurer, r.sae, r.typical, items, named[:3] if cfg.quick else named)
    res = run_compare(
        inputs,
        spec,
        out,
        graph,
        graph_name=gname,
        where=Placement(r.executor, r.info, r.sae_ref["path"]),
    )
    return {"rows": len(res["compare"]), "verdict": res["summary"]["verdict"]}


def report(out: Path, r: Resources) -> dict:
    from mechvalue.pipeline.report import write_report

    ws = r.ws

    path = write_report(ws, out, [name for name, _ in STAGES])
    timings = ws.timings([name for name, _ in STAGES])
    return {
        "html": str(path),
        "bytes": path.stat().st_size,
        "total_seconds_before_report": float(sum(timings.values())),
    }


STAGES: list[tuple[str, Callable[[Path, Resources], dict]]] = [
    ("measure", measure),
    ("sae", sae),
    ("activations", activations),
    ("features", features),
    ("grid", grid),
    ("generations", generations),
    ("graph", graph),
    ("tables", tables),
    ("validity", validity),
    ("steer_compare", steer_compare),
    ("report", report),
]
