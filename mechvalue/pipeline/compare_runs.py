"""Two or more `mechvalue run` folders side by side, as the study compared its two models: the
measurement's reliability and validity, the value graphs (each against the human graph with its
nulls, and against each other with the same nulls), the steering comparison's winners per value,
and where the time went. Reads only what the runs wrote; a missing stage is one error naming it.
Each value's status is the one pass rule's (mechvalue.analysis.status), as in each run's report;
runs too small to tell values apart (a `--quick` run, fewer than MIN_RANK_ITEMS items per value or
MIN_RANK_ROLES roles) are described but never ranked."""

from __future__ import annotations

import json
from itertools import combinations
from pathlib import Path

import pandas as pd

from mechvalue.analysis.status import ALPHA_MIN, ICC1_MIN, RULE, failing, passing, sae_quality, value_status
from mechvalue.causal.compare import compare_with_null
from mechvalue.causal.graph import load_graph
from mechvalue.errors import MechValueError
from mechvalue.io import write_csv, write_json, write_text
from mechvalue.pipeline.grounds import MIN_CORR_ROLES

MIN_RANK_ITEMS = 3  # items per value: omega needs 3, and alpha over 2 items swings with either
MIN_RANK_ROLES = MIN_CORR_ROLES


def _read(run: Path, *parts: str):
    p = run.joinpath(*parts)
    if not p.is_file():
        raise MechValueError(f"{p}: missing; is {run} a finished `mechvalue run` folder?")
    return json.loads(p.read_text()) if p.suffix == ".json" else pd.read_csv(p)


def _fmt(x, digits: int = 2) -> str:
    return "n/a" if x is None or x != x else f"{x:.{digits}f}"


def _reliability(run: Path) -> dict:
    v = _read(run, "validity", "validity.json")
    rows, tables = {}, {}
    for kind, f in (("raw", "reliability.csv"), ("centred", "reliability_centered.csv")):
        r = tables[kind] = _read(run, "validity", f)
        rows[kind] = {
            "alpha_median": v["median_alpha" + ("" if kind == "raw" else "_centered")],
            "omega_median": v["median_omega" + ("" if kind == "raw" else "_centered")],
            "icc1_median": v["median_icc1" + ("" if kind == "raw" else "_centered")],
            "values_alpha_ok": int((r["alpha"] >= ALPHA_MIN).sum()),
            "values_icc1_ci_above": int((r["icc1_lo"] > ICC1_MIN).sum()),
            "values": len(r),
        }
    kg = v.get("known_groups") or {}
    status = value_status(tables["raw"], tables["centred"])  # the report's and `protocols`' rule
    return {
        **rows,
        "status": status,
        "measured_values": sorted(passing(status)),
        "respondents": v["respondents"],
        "matrix_r": v.get("matrix_r"),
        "matrix_p": v.get("matrix_p"),
        "circle_rho": v.get("circle_rho_model"),
        "circle_p": v.get("circle_p_model"),
        "known_groups": {k: kg.get(k) for k in ("hits", "predictions", "p_sign")},
        "human_alpha_centred": v.get("human_median_alpha_centered"),
    }


def _graph(run: Path) -> dict:
    s = _read(run, "graph", "summary.json")
    out = {"learned": bool(s.get("learned")), "edges": s.get("edges"), "reference": s.get("reference")}
    if out["learned"]:
        c = s["compare"]
        out |= {
            "shd_to_reference": c["observed"]["shd"],
            "f1_to_reference": c["observed"]["skeleton_f1"],
            "p_shd_random": c["random_graph"]["p_shd"],
            "p_shd_permuted": c["permuted_labels"]["p_shd"],
        }
    return out


def _steering(run: Path) -> dict:
    s = _read(run, "steer_compare", "summary.json")
    w = s.get("winners") or {}
    return {"verdict": s.get("verdict"), "per_value": w.get("per_value") or {}, "overall": w.get("overall")}


def _times(run: Path) -> dict:
    t = _read(run, "timings.json").get("run_stages") or {}
    return {"total_s": round(sum(t.values()), 1), "stages_s": t}


def summarize(run: str | Path) -> dict:
    """What one finished run says about its model, read from its files."""
    run = Path(run)
    cfg = _read(run, "config.json")
    items = _read(run, "measure", "items.csv")
    return {
        "run": str(run),
        "model": cfg["settings"]["model"],
        "settings": {k: cfg["settings"].get(k) for k in ("dtype", "layer", "roles", "seed", "quick")},
        "versions": cfg["versions"],
        "items": int(items["question"].nunique()),
        "min_items_per_value": int(items.groupby("value")["item"].nunique().min()),
        "sae_problem": sae_quality(_read(run, "sae", "sae.json").get("metrics")),
        "reliability": _reliability(run),
        "graph": _graph(run),
        "steering": _steering(run),
        "times": _times(run),
    }


def graph_distances(summaries: list[dict], n_null: int = 1000, seed: int = 0) -> list[dict]:
    """Each pair of runs' learned graphs (`summarize`'s): SHD and skeleton F1, with p against random
    same-size graphs and against permuted labels (`causal.compare.compare_with_null`, the first
    graph as `learned`)."""
    out = []
    for sa, sb in combinations(summaries, 2):
        a, b = Path(sa["run"]), Path(sb["run"])
        if not (sa["graph"]["learned"] and sb["graph"]["learned"]):
            out.append({"a": str(a), "b": str(b), "note": "a graph was not learned"})
            continue
        ga, gb = load_graph(a / "graph" / "learned.json"), load_graph(b / "graph" / "learned.json")
        c = compare_with_null(ga, gb, n_null, seed)
        out.append(
            {
                "a": str(a),
                "b": str(b),
                "shd": c["observed"]["shd"],
                "f1": c["observed"]["skeleton_f1"],
                "p_shd_random": c["random_graph"]["p_shd"],
                "p_shd_permuted": c["permuted_labels"]["p_shd"],
            }
        )
    return out


def labels(summaries: list[dict]) -> list[str]:
    """Column names: the model (a folder's last part), with the run folder when models repeat."""
    names = [Path(s["model"]).name for s in summaries]
    if len(set(names)) < len(names):
        names = [f"{n} ({s['run']})" for n, s in zip(names, summaries)]
    return names


def table(summaries: list[dict]) -> pd.DataFrame:
    """One row per figure, one column per run (named by its model)."""
    rows: dict[str, list[str]] = {}

    def put(name: str, f) -> None:
        rows[name] = [f(s) for s in summaries]

    put("items x roles", lambda s: f"{s['items']} x {s['reliability']['respondents']}")
    put("dtype, layer", lambda s: f"{s['settings']['dtype']}, {s['settings']['layer']}")
    for kind in ("raw", "centred"):
        put(f"alpha median ({kind})", lambda s, k=kind: _fmt(s["reliability"][k]["alpha_median"]))
        put(f"omega median ({kind})", lambda s, k=kind: _fmt(s["reliability"][k]["omega_median"]))
        put(
            f"values with alpha >= {ALPHA_MIN:.2f} ({kind})",
            lambda s, k=kind: f"{s['reliability'][k]['values_alpha_ok']} of {s['reliability'][k]['values']}",
        )
    put(
        "values that pass the one rule",
        lambda s: f"{len(s['reliability']['measured_values'])} of {s['reliability']['raw']['values']}",
    )
    put("too small to rank", lambda s: too_small(s) or "no")
    put("ICC(1) median", lambda s: _fmt(s["reliability"]["raw"]["icc1_median"]))
    put(
        f"values with ICC(1) CI above {ICC1_MIN}",
        lambda s: f"{s['reliability']['raw']['values_icc1_ci_above']} of {s['reliability']['raw']['values']}",
    )
    put(
        "matrix r with humans (p)",
        lambda s: f"{_fmt(s['reliability']['matrix_r'])} ({_fmt(s['reliability']['matrix_p'], 3)})",
    )
    put(
        "circle rho (p)",
        lambda s: f"{_fmt(s['reliability']['circle_rho'])} ({_fmt(s['reliability']['circle_p'], 3)})",
    )
    put(
        "known groups hits (p)",
        lambda s: (
            "n/a"
            if s["reliability"]["known_groups"]["hits"] is None
            else f"{s['reliability']['known_groups']['hits']} of {s['reliability']['known_groups']['predictions']} "
            f"({_fmt(s['reliability']['known_groups']['p_sign'], 3)})"
        ),
    )
    put("graph edges", lambda s: str(s["graph"]["edges"]) if s["graph"]["learned"] else "not learned")
    put(
        "SHD to human graph (p random, p permuted)",
        lambda s: (
            "n/a"
            if not s["graph"]["learned"]
            else f"{s['graph']['shd_to_reference']} ({_fmt(s['graph']['p_shd_random'], 3)}, "
            f"{_fmt(s['graph']['p_shd_permuted'], 3)})"
        ),
    )
    put(
        "best steering method per value",
        lambda s: (
            ", ".join(f"{v}: {m}" for v, m in sorted(s["steering"]["per_value"].items())) or "none ranked"
        ),
    )
    put(
        "SAE below the quality bar (its features mean little)",
        lambda s: "not measured" if s.get("sae_problem") is None else s["sae_problem"] or "no",
    )
    put("run time (s)", lambda s: f"{s['times']['total_s']:.0f}")
    names = labels(summaries)
    return pd.DataFrame(rows, index=names).T


def too_small(s: dict) -> str:
    """Why a run (`summarize`'s) is too small to rank, or "" when it is not."""
    why = []
    if s["settings"].get("quick"):
        why.append("a --quick run")
    n_items = s.get("min_items_per_value")
    if n_items is not None and n_items < MIN_RANK_ITEMS:
        why.append(f"{n_items} item(s) per value (ranking needs {MIN_RANK_ITEMS})")
    roles = s["reliability"]["respondents"]
    if roles < MIN_RANK_ROLES:
        why.append(f"{roles} roles (ranking needs {MIN_RANK_ROLES})")
    return ", ".join(why)


def verdicts(summaries: list[dict]) -> list[str]:
    """Plain sentences: does each model pass the reliability thresholds, and which measures better
    (not said when a run is too small to rank)."""
    out = []
    for name, s in zip(labels(summaries), summaries):
        r = s["reliability"]
        measured, n = r["measured_values"], r["raw"]["values"]
        ok = len(measured) >= 5
        fails = "; ".join(f"{v} ({why})" for v, why in failing(r.get("status", {})).items())
        out.append(
            f"{name}: {'passes' if ok else 'does not pass'} the thresholds: {len(measured)} of {n} values "
            f"pass the one rule ({RULE})"
            f"{' (' + ', '.join(measured) + ')' if measured else ''}{'; fail: ' + fails if fails else ''}; "
            f"humans' centred alpha {_fmt(r['human_alpha_centred'])}."
        )

    def score(s: dict) -> tuple:
        r = s["reliability"]
        return (
            len(r["measured_values"]),
            r["raw"]["values_icc1_ci_above"] + r["centred"]["values_alpha_ok"],
            round(r["matrix_r"], 2) if r["matrix_r"] is not None else -1,  # as shown in the table
        )

    small = {name: why for name, s in zip(labels(summaries), summaries) if (why := too_small(s))}
    if small:
        out.append(
            "Not ranked: too small to tell which measures values better ("
            + "; ".join(f"{name}: {why}" for name, why in small.items())
            + "). Their statuses come from too few items and roles to rest a comparison on."
        )
        return out
    ranked = sorted(zip(labels(summaries), summaries), key=lambda x: score(x[1]), reverse=True)
    if score(ranked[0][1]) == score(ranked[1][1]):
        out.append("Neither measures values better by these figures (a tie).")
    else:
        out.append(
            f"Measures values better: {ranked[0][0]} (more values that are measurements, then more passing either rule, then matrix r with humans)."
        )
    return out


def compare_runs(runs: list[str | Path], out: str | Path, n_null: int = 1000, seed: int = 0) -> str:
    """Write `compare.json`, `compare.csv` and `compare.md` into `out`; return the markdown."""
    if len(runs) < 2:
        raise MechValueError(f"compare-runs needs two or more run folders, got {len(runs)}")
    summaries = [summarize(r) for r in runs]
    t = table(summaries)
    dist = graph_distances(summaries, n_null, seed)
    said = verdicts(summaries)
    lines = [t.to_markdown(), ""]
    for d in dist:
        a, b = Path(d["a"]).name, Path(d["b"]).name
        lines.append(
            f"- graphs {a} vs {b}: "
            + (
                d["note"]
                if "note" in d
                else f"SHD {d['shd']}, skeleton F1 {_fmt(d['f1'])} (p random {_fmt(d['p_shd_random'], 3)}, "
                f"p permuted {_fmt(d['p_shd_permuted'], 3)}; {n_null} null draws, seed {seed})"
            )
        )
    lines += [f"- {v}" for v in said]
    md = "\n".join(lines) + "\n"
    out = Path(out)
    write_json({"runs": summaries, "graph_distances": dist, "verdicts": said}, out / "compare.json")
    write_csv(t, out / "compare.csv", index=True)
    write_text(md, out / "compare.md")
    return md
