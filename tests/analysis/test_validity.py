"""Validity: synthetic respondents of known reliability, the human PVQ-40 alphas, the Likert
expected value, known groups, structure, prompt forms and the CLI's bad-input path."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from mechvalue.analysis import validity as V
from mechvalue.cli.main import main
from tests.conftest import need_shared


def congeneric(n: int, loadings, noise_var, seed: int = 0) -> pd.DataFrame:
    """x_ij = lambda_j T_i + e_ij, T ~ N(0, 1), e_ij ~ N(0, psi_j)."""
    rng = np.random.default_rng(seed)
    t = rng.normal(size=(n, 1))
    lam, psi = np.asarray(loadings, float), np.asarray(noise_var, float)
    return pd.DataFrame(
        t * lam + rng.normal(size=(n, len(lam))) * np.sqrt(psi), columns=[f"i{j}" for j in range(len(lam))]
    )


def true_alpha_parallel(k: int, noise_var: float) -> float:
    rho = 1 / (1 + noise_var)  # inter-item correlation of parallel items
    return k * rho / (1 + (k - 1) * rho)


def true_omega(loadings, noise_var) -> float:
    """Omega of the standardised items."""
    lam, psi = np.asarray(loadings, float), np.asarray(noise_var, float)
    s = lam / np.sqrt(lam**2 + psi)
    return s.sum() ** 2 / (s.sum() ** 2 + (1 - s**2).sum())


@pytest.mark.parametrize("noise_var", [0.25, 1.0, 4.0])
def test_alpha_and_omega_recover_parallel_items(noise_var):
    k = 5
    x = congeneric(4000, [1] * k, [noise_var] * k, seed=1)
    want = true_alpha_parallel(k, noise_var)  # parallel items: alpha = omega = Spearman-Brown
    assert V.cronbach_alpha(x) == pytest.approx(want, abs=0.02)
    assert V.mcdonald_omega(x) == pytest.approx(want, abs=0.02)


def test_omega_exceeds_alpha_for_congeneric_items_and_matches_truth():
    lam, psi = [1.5, 1.0, 0.6, 0.3], [0.5, 1.0, 1.0, 1.0]
    x = congeneric(5000, lam, psi, seed=2)
    assert V.mcdonald_omega(x) == pytest.approx(true_omega(lam, psi), abs=0.02)
    assert V.cronbach_alpha(x) < V.mcdonald_omega(x)  # alpha is a lower bound off tau-equivalence


def test_bootstrap_ci_covers_truth_and_degenerate_inputs_are_nan():
    x = congeneric(300, [1] * 4, [1.0] * 4, seed=3)
    r = V.consistency({"v": x}, n_boot=100, seed=0).iloc[0]
    want = true_alpha_parallel(4, 1.0)
    assert r.alpha_lo < want < r.alpha_hi and r.omega_lo < want < r.omega_hi
    assert r.alpha_hi - r.alpha_lo < 0.12
    assert math.isnan(V.mcdonald_omega(x.iloc[:, :2]))  # one-factor model needs 3 items
    assert math.isnan(V.cronbach_alpha(x.assign(**{c: 1.0 for c in x.columns})))


def long_table(n_roles: int, k: int, between_var: float, noise_var: float, seed: int = 0, values=("A", "B")):
    """score = role effect (variance between_var) + noise; ICC(1) = between / (between + noise)."""
    rng = np.random.default_rng(seed)
    rows = []
    for v in values:
        eff = rng.normal(scale=math.sqrt(between_var), size=n_roles)
        for r in range(n_roles):
            for j in range(k):
                rows.append(
                    {
                        "steer_dim": None,
                        "player_name": f"r{r}",
                        "value": v,
                        "item": f"{v}{j}",
                        "agreement": 1,
                        "score": eff[r] + rng.normal(scale=math.sqrt(noise_var)),
                    }
                )
    return pd.DataFrame(rows)


@pytest.mark.parametrize("between", [0.0, 0.2, 0.6])
def test_icc1_recovers_share_of_variance_between_roles(between):
    long = long_table(400, 5, between, 1 - between, seed=4)
    for x in V.item_matrices(long).values():
        r = V.icc1(x)
        assert r["icc1"] == pytest.approx(between, abs=0.05)
        assert r["icc1_lo"] - 0.01 <= between <= r["icc1_hi"] + 0.01


def test_the_one_rule_fails_noise_and_passes_signal():
    from mechvalue.analysis.status import value_status

    long = pd.concat(
        [
            long_table(60, 4, 0.0, 1.0, seed=5, values=("Noise",)),
            long_table(60, 4, 0.8, 0.2, seed=6, values=("Signal",)),
        ]
    )
    rel = V.reliability(long, n_boot=0)
    status = value_status(rel, V.reliability(V.center_scores(long), n_boot=0))
    assert "ICC(1) CI from" in status["Noise"] and "centred alpha" in status["Noise"]
    assert status["Signal"] == "" and rel.set_index("value").loc["Signal", "alpha"] > 0.9
    w = V.graph_warnings(["Noise", "Signal", "C"], [("Noise", "Signal"), ("Signal", "C")], status)
    assert w["nodes"] == ["Noise"] and w["edges"] == [["Noise", "Signal"]] and w["edges_total"] == 2


def test_human_pvq40_alphas_equal_direct_computation():
    path = need_shared("human", "PVQ40.csv")
    raw = pd.read_csv(path)
    got = V.consistency(V.human_item_matrices(path), n_boot=0).set_index("value")
    codes = {"sd": "Self-Direction", "un": "Universalism", "tr": "Tradition", "po": "Power"}
    for code, value in codes.items():
        cols = [c for c in raw.columns if c[:2] == code and c[2:].isdigit()]
        x = raw[cols].astype(float)
        x = x[((x >= 1) & (x <= 6)).all(axis=1)].to_numpy()  # listwise; 0 and empty are missing
        k = x.shape[1]
        alpha = k / (k - 1) * (1 - x.var(axis=0, ddof=1).sum() / x.sum(axis=1).var(ddof=1))
        assert got.loc[value, "alpha"] == pytest.approx(alpha, abs=1e-10)
        assert got.loc[value, "n_respondents"] == len(x)
    assert got["alpha"].between(0.5, 0.95).all()  # the PVQ's usual range


def test_human_structure_follows_the_circle():
    path = need_shared("human", "PVQ40.csv")
    c = V.circle_structure(V.human_value_scores(path).corr(), n_perm=500)
    assert c["rho"] < -0.6 and c["p"] < 0.01
    assert c["mean_r_by_distance"][1] > c["mean_r_by_distance"][5]


def test_matrix_correlation_and_circle_on_a_circumplex():
    vals = list(V.SCHWARTZ_VALUES)
    m = pd.DataFrame(
        [
            [math.cos(2 * math.pi * V.circle_distance(a, b) / 10) * (a != b) + (a == b) for b in vals]
            for a in vals
        ],
        index=vals,
        columns=vals,
    )
    assert V.circle_structure(m, 200)["rho"] == pytest.approx(-1)
    same = V.matrix_correlation(m, m, 500, seed=0)
    assert same["r"] == pytest.approx(1) and same["p"] < 0.01
    rng = np.random.default_rng(0)
    p = rng.permutation(10)
    shuffled = pd.DataFrame(m.to_numpy()[np.ix_(p, p)], index=vals, columns=vals)
    assert V.matrix_correlation(m, shuffled, 500)["r"] < same["r"]
    # a value no respondent moves has no correlations: both use the other nine
    scores = pd.DataFrame(rng.normal(size=(30, 10)), columns=vals).assign(Universalism=0.5)
    flat = scores.corr()
    assert V.matrix_correlation(flat, m, 200)["values"] == [v for v in vals if v != "Universalism"]
    assert np.isfinite(V.matrix_correlation(flat, m, 200)["r"])
    c = V.circle_structure(flat, 200)
    assert len(c["values"]) == 9 and np.isfinite(c["rho"])


def test_known_groups_hits_and_sign_test():
    groups = V.load_known_groups()
    pred = V.known_group_predictions(groups)
    assert len(pred) == 24 and set(pred["value"]) <= set(V.SCHWARTZ_VALUES)
    # scores that follow theory for all but the monk-vs-promoter pair (which is reversed)
    rows = []
    for r in pred.itertuples():
        sign = -1 if r.pair == "monk-vs-promoter" else 1
        rows += [
            {"player_name": r.higher, "value": r.value, "item": "x", "score": 0.5 * sign},
            {"player_name": r.lower, "value": r.value, "item": "x", "score": -0.5 * sign},
        ]
    table, s = V.known_groups(pd.DataFrame(rows), groups)
    assert s["predictions"] == 24 and s["hits"] == 20 and s["hit_rate"] == pytest.approx(20 / 24)
    assert s["p_sign"] == pytest.approx(sum(math.comb(24, k) for k in range(20, 25)) / 2**24)
    assert not table[table["pair"] == "monk-vs-promoter"]["hit"].any()


def test_form_robustness_is_rank_correlation_per_value():
    base = long_table(30, 3, 0.5, 0.5, seed=7)
    flipped = base.assign(score=-base["score"])
    monotone = base.assign(score=base["score"] * 3 + 1)
    f = V.form_robustness(base, {"flipped": flipped, "monotone": monotone}).set_index(["form", "value"])
    assert np.allclose(f.loc["monotone", "rho"], 1) and np.allclose(f.loc["flipped", "rho"], -1)
    assert (f["roles"] == 30).all()


def test_likert_expected_value_by_hand():
    from mechvalue.measurement.likert import importance_of_answer, likert_expectation

    ids = [3, 4, 5, 6, 7, 8]
    weights = [4, 3, 1, 1, 0.5, 0.5]  # option probabilities .4 .3 .1 .1 .05 .05
    logits = torch.full((1, 10), -1e9)
    logits[0, ids] = torch.log(torch.tensor(weights))
    logits[0, [0, 1]] = math.log(5.0)  # 10 more units of mass elsewhere: options hold half
    p, ev, mass = likert_expectation(logits, ids, importance_of_answer("study"))
    assert p[0].tolist() == pytest.approx([0.4, 0.3, 0.1, 0.1, 0.05, 0.05])
    # "1" = very much like me = importance 6: .4*6 + .3*5 + .1*4 + .1*3 + .05*2 + .05*1
    assert float(ev[0]) == pytest.approx(4.75)
    assert float(mass[0]) == pytest.approx(0.5)
    _, ev_swapped, _ = likert_expectation(logits, ids, importance_of_answer("swapped"))
    assert float(ev_swapped[0]) == pytest.approx(0.4 + 0.6 + 0.3 + 0.4 + 0.25 + 0.3)


def test_prompt_forms_default_is_the_study_text():
    from mechvalue.study import prompts as P
    from mechvalue.study.roles import Role

    role = Role("A", "Gender: female; Job: nurse, MBTI: ISFJ")
    want = P.GEMMA_TEMPLATE.format(
        instruction=P.INSTRUCTION.format(bio_hint=P.bio_hint(role)), examples=P.EXAMPLES, question="Q?"
    )
    assert P.render_text("Q?", role, "gemma") == want == P.render_text("Q?", role, "gemma", form="study")
    texts = {f: P.render_text("Q?", role, "gemma", form=f) for f in P.FORMS}
    assert len(set(texts.values())) == len(P.FORMS)
    assert all(P.STEER_SPAN_TEXT in t for t in texts.values())
    assert texts["swapped"].index("Answer: no") < texts["swapped"].index("Answer: yes")
    with pytest.raises(ValueError, match="unknown prompt form"):
        P.render_text("Q?", role, "gemma", form="nope")


def test_cli_writes_outputs_and_exits_2_on_bad_input(tmp_path, capsys):
    long = pd.concat([long_table(20, 4, 0.5, 0.5, seed=8, values=V.SCHWARTZ_VALUES[:5])])
    items = tmp_path / "items.csv"
    long.to_csv(items, index=False)
    assert (
        main(
            [
                "validity",
                "--items",
                str(items),
                "--bootstrap",
                "20",
                "--permutations",
                "50",
                "--out",
                str(tmp_path / "v"),
            ]
        )
        == 0
    )
    for f in (
        "reliability.csv",
        "reliability_centered.csv",
        "structure.json",
        "validity.json",
        "validity.png",
    ):
        assert (tmp_path / "v" / f).stat().st_size > 0
    from mechvalue.analysis.validity_report import report_section

    sec = report_section(tmp_path / "v")
    assert len(sec["table"]) == 5 and {"alpha", "icc1", "alpha_centered", "status"} <= set(sec["table"][0])
    assert sec["summary"]["respondents"] == 20 and "known_groups" not in sec["summary"]
    capsys.readouterr()
    long.drop(columns="score").to_csv(tmp_path / "bad.csv", index=False)
    for argv in (
        ["--items", str(tmp_path / "bad.csv")],
        ["--items", str(tmp_path / "missing.csv")],
        ["--items", str(items), "--forms", "swapped"],
    ):
        assert main(["validity", *argv, "--out", str(tmp_path / "x")]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("mechvalue: error:")


def test_graph_summary_flags_nodes_and_edges_on_unreliable_values(tmp_path):
    from mechvalue.study.schema import wide_table

    noise = long_table(40, 4, 0.0, 1.0, seed=9, values=("Power", "Hedonism"))
    signal = long_table(40, 4, 0.8, 0.2, seed=10, values=("Security", "Tradition"))
    long = pd.concat([noise, signal])
    long["score"] += long["player_name"].str[1:].astype(int) * 0.05  # something for PC to link
    long.to_csv(tmp_path / "items.csv", index=False)
    wide_table(long).to_csv(tmp_path / "values.csv", index=False)
    assert main(["graph", "--table", str(tmp_path / "values.csv"), "--out", str(tmp_path / "g")]) == 0
    w = json.loads((tmp_path / "g" / "summary.json").read_text())["validity_warnings"]
    assert sorted(w["nodes"]) == ["Hedonism", "Power"] and w["thresholds"] == {"alpha": 0.7, "icc1": 0.05}
    g = json.loads((tmp_path / "g" / "graph.json").read_text())
    on_noise = [e for e in g["edges"] if {e["source"], e["target"]} & {"Power", "Hedonism"}]
    assert len(w["edges"]) == len(on_noise) and w["edges_total"] == len(g["edges"])


@pytest.mark.slow  # ~20 s of model time; `mechvalue run --quick` (tests/pipeline) runs the stage in CI
def test_validity_stage_quick_on_smollm2(smollm2, tmp_path):
    """The `mechvalue run` stage: reliability from measure/items.csv, 2 known-group pairs measured,
    the learned graph's warnings, and the report section's data."""
    from mechvalue.analysis.validity_report import report_section
    from mechvalue.measurement.scoring import Measurer
    from mechvalue.pipeline.config import RunConfig
    from mechvalue.pipeline.stages import validity as stage
    from mechvalue.pipeline.workspace import Workspace
    from mechvalue.study import inventory as inv

    model, info = smollm2
    cfg = RunConfig.quick_preset()
    ws = Workspace(tmp_path, cfg)
    items = inv.load_inventory().groupby("value", sort=False).head(1).reset_index(drop=True)
    long = long_table(12, 4, 0.3, 0.7, seed=11, values=list(items["value"]))
    ws.dir("measure")
    long.to_csv(tmp_path / "measure" / "items.csv", index=False)
    ws.dir("graph")
    (tmp_path / "graph" / "learned.json").write_text(
        json.dumps(
            {
                "nodes": list(items["value"]),
                "edges": [{"source": "Power", "target": "Security", "kind": "directed"}],
            }
        )
    )
    done = stage(ws.dir("validity"), ws, cfg, Measurer(model, info.prompt_format), items, [])
    sec = report_section(tmp_path / "validity")
    assert done["flagged"] == len(sec["summary"]["flagged"])
    assert sec["summary"]["known_groups"]["predictions"] == 8  # 2 pairs x 2 sides x 2 values
    assert len(sec["table"]) == 10 and {"alpha", "omega", "icc1", "status"} <= set(sec["table"][0])
    assert sec["graph_warnings"]["edges_total"] == 1 and (tmp_path / "validity" / "validity.png").exists()


def test_likert_scorer_on_smollm2_prefix_cache_and_batching_agree(smollm2):
    from mechvalue.measurement.scoring import Measurer
    from mechvalue.study import inventory as inv
    from mechvalue.study.roles import Role

    model, info = smollm2
    items = inv.load_inventory().iloc[[0, 5, 9]].reset_index(drop=True)
    role = Role("A", "Gender: female; Job: nurse, MBTI: ISFJ")
    a = Measurer(model, info.prompt_format, scoring="likert").score_items(items, role)
    b = Measurer(model, info.prompt_format, scoring="likert", batch_size=1, prefix_cache=False).score_items(
        items, role
    )
    p = a[[f"p_{k}" for k in range(1, 7)]].to_numpy()
    assert np.allclose(p.sum(1), 1) and (a["mass"] > 0.5).all()  # the digits hold most of the mass
    assert np.allclose(a["importance"], p @ np.arange(6, 0, -1))
    assert np.allclose(a["score"], items["agreement"] * (a["importance"] - 3.5) / 2.5)
    assert np.allclose(a["importance"], b["importance"], atol=2e-3)


def test_centering_removes_acquiescence_that_passes_for_consistency():
    """A role-wide shift shared by every value (a persona that says yes to everything) makes
    alpha high within each value; centred on each role's mean it is gone, value signal stays."""
    rng = np.random.default_rng(12)
    shift = rng.normal(size=50)
    own = rng.normal(size=50)  # value-specific trait of "Signal" only
    rows = [
        {
            "player_name": f"r{r}",
            "value": v,
            "item": f"{v}{j}",
            "score": shift[r] + (own[r] if v == "Signal" else 0) + rng.normal(scale=0.5),
        }
        for v in ("Signal", "A", "B", "C")
        for r in range(50)
        for j in range(4)
    ]
    long = pd.DataFrame(rows)
    raw = V.reliability(long, n_boot=0).set_index("value")
    cen = V.reliability(V.center_scores(long), n_boot=0).set_index("value")
    assert (raw["alpha"] > 0.9).all()
    assert cen.loc["Signal", "alpha"] > 0.8 and (cen.loc[["A", "B", "C"], "alpha"] < 0.5).all()
    # a value every role answers the same way has no reliability, centred or not (centring would
    # make its items agree perfectly: the role shift is all that is left of them)
    flat = pd.concat(
        [long, long[long["value"] == "A"].assign(value="Flat", item=lambda d: "F" + d["item"], score=-1.0)]
    )
    assert np.isnan(V.reliability(flat, n_boot=0).set_index("value").loc["Flat", "alpha"])
    cen = V.reliability(V.center_scores(flat), n_boot=0).set_index("value")
    assert "Flat" not in cen.index and cen.loc["Signal", "alpha"] > 0.8
