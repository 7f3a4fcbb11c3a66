import json

import numpy as np
import pandas as pd
import pytest

from mechvalue.causal.compare import compare, compare_with_null
from mechvalue.causal.discovery import fisherz_from_correlation, learn_graph
from mechvalue.causal.graph import Edge, ValueGraph, load_graph
from mechvalue.causal.human import human_graph, pvq40_value_scores
from mechvalue.causal.simulate import random_dag, recovery_curve, sample
from mechvalue.causal.stability import bootstrap_edges, edges_recurring, stable_graph
from mechvalue.causal.study import greedy_transitive_reduction, study_graph
from mechvalue.cli.main import main
from mechvalue.errors import MechValueError
from mechvalue.study.schema import load_table, select_rows, value_matrix
from tests.conftest import GEMMA_KEPT, need_shared


def test_study_gemma_graph_edge_for_edge():
    table = load_table(need_shared("paper_release", "ans_gemma_train_formal.csv"))
    learned, final = study_graph(table, GEMMA_KEPT)
    assert len(select_rows(table, GEMMA_KEPT)) == 1111
    assert len(learned.edges) == 44
    assert len(final.edges) == 28
    ref = load_graph(need_shared("paper_release", "reference_graphs.json"), "gemma")
    assert {(e.source, e.target) for e in final.edges} == {(e.source, e.target) for e in ref.edges}


def test_greedy_reduction_depends_on_order():
    nodes = ["A", "B", "C"]
    cyc = [Edge("A", "B"), Edge("B", "A"), Edge("A", "C"), Edge("B", "C")]
    assert set(greedy_transitive_reduction(nodes, cyc)) == {Edge("A", "B"), Edge("B", "A"), Edge("B", "C")}
    assert set(greedy_transitive_reduction(nodes, cyc[::-1])) == {
        Edge("A", "B"),
        Edge("B", "A"),
        Edge("A", "C"),
    }
    dag = [Edge("A", "B"), Edge("B", "C"), Edge("A", "C")]
    assert greedy_transitive_reduction(nodes, dag) == dag[:2]


def test_compare_metrics_on_hand_made_graphs():
    n = ["A", "B", "C", "D"]
    ref = ValueGraph(n, [Edge("A", "B"), Edge("B", "C"), Edge("C", "D", "undirected")])
    got = ValueGraph(n, [Edge("B", "A"), Edge("B", "C"), Edge("A", "D")])
    m = compare(got, ref)
    # pairs: AB reversed (1), BC same (0), CD missing (1), AD extra (1)
    assert m["shd"] == 3
    assert m["skeleton_precision"] == pytest.approx(2 / 3) and m["skeleton_recall"] == pytest.approx(2 / 3)
    assert m["arrowhead_precision"] == pytest.approx(1 / 3) and m["arrowhead_recall"] == pytest.approx(1 / 2)
    assert compare(ref, ref)["shd"] == 0 and compare(ref, ref)["skeleton_f1"] == 1.0
    res = compare_with_null(ref, ref, n_null=200)
    assert res["random_graph"]["p_skeleton_f1"] < 0.2


def test_pc_recovers_simulated_dag_with_enough_rows():
    rng = np.random.default_rng(1)
    truth, w = random_dag(6, 6, rng)
    g = learn_graph(pd.DataFrame(sample(w, 3000, rng), columns=truth.nodes))
    assert compare(g, truth)["skeleton_f1"] > 0.9
    curve = recovery_curve([30, 1000], n_nodes=6, n_edges=6, reps=3)
    assert curve["skeleton_f1"].iloc[1] > curve["skeleton_f1"].iloc[0]


def test_context_variables_get_no_parents():
    rng = np.random.default_rng(0)
    s = rng.integers(0, 2, 800).astype(float)
    a = s + 0.3 * rng.standard_normal(800)
    b = a + 0.3 * rng.standard_normal(800)
    g = learn_graph(pd.DataFrame({"steer": s, "A": a, "B": b}), context=["steer"])
    assert all(e.target != "steer" or e.kind != "directed" for e in g.edges)
    assert any({e.source, e.target} == {"steer", "A"} for e in g.edges)


def test_bootstrap_by_role_is_seeded():
    table = load_table(need_shared("paper_release", "ans_gemma_train_formal.csv"))
    rows = select_rows(table, GEMMA_KEPT)
    x = value_matrix(rows)
    f1 = bootstrap_edges(x, rows["player_name"], 4, seed=1, workers=1)
    f2 = bootstrap_edges(x, rows["player_name"], 4, seed=1, workers=1)
    pd.testing.assert_frame_equal(f1, f2)
    assert not f1.equals(bootstrap_edges(x, rows["player_name"], 4, seed=2, workers=1))
    learned, _ = study_graph(table, GEMMA_KEPT)
    freq = {frozenset((r.source, r.target)): r.skeleton_freq for r in f1.itertuples()}
    recurring = [e for e in learned.edges if freq.get(frozenset((e.source, e.target)), 0) >= 0.8]
    assert edges_recurring(learned, f1, 0.8) == len({frozenset((e.source, e.target)) for e in recurring}) > 0


def test_human_graph_from_pvq40():
    path = need_shared("human", "PVQ40.csv")
    scores = pvq40_value_scores(path)
    ref = pd.read_csv(need_shared("human", "PVQ40_value_scores_importance.csv")).set_index("id")
    assert len(scores) == 151
    assert np.allclose(scores.to_numpy(), ref.to_numpy(), atol=1e-5)
    g = human_graph(path)
    pairs = g.skeleton()
    assert frozenset(("Conformity", "Tradition")) in pairs and frozenset(("Achievement", "Power")) in pairs
    corr = pd.read_csv(need_shared("human", "PVQ40_corr_pearson_raw.csv"), index_col=0)
    g2 = fisherz_from_correlation(corr.to_numpy(), 151, list(corr.columns))
    assert frozenset(("Conformity", "Tradition")) in g2.skeleton()


def test_bad_tables_are_named(tmp_path):
    p = tmp_path / "t.csv"
    pd.DataFrame({"steer_dim": [None, None], "player_name": ["a", "b"], "X": [1, 1], "Y": [1, 2]}).to_csv(
        p, index=False
    )
    with pytest.raises(MechValueError, match=r"constant column\(s\) \['X'\]"):
        value_matrix(load_table(p))
    with pytest.raises(MechValueError, match="no rows for feature"):
        select_rows(load_table(p), [123])
    pd.DataFrame({"steer_dim": [None], "player_name": ["a"], "Y": ["x"]}).to_csv(p, index=False)
    with pytest.raises(MechValueError, match=r"column 'Y', row 2: 'x' is not a number"):
        load_table(p)
    (tmp_path / "g.json").write_text(json.dumps({"nodes": ["A"], "edges": [{"source": "A", "target": "Z"}]}))
    with pytest.raises(MechValueError, match="unknown node 'Z'"):
        load_graph(tmp_path / "g.json")


def test_stable_graph_keeps_recurring_pairs_in_their_commonest_kind():
    freqs = pd.DataFrame(
        [
            ("A", "B", "directed", 0.5, 0.9),
            ("B", "A", "directed", 0.3, 0.9),
            ("B", "C", "undirected", 0.7, 0.7),
        ],
        columns=["source", "target", "kind", "freq", "skeleton_freq"],
    )
    g = stable_graph(freqs, ["A", "B", "C"], 0.8)
    assert [(e.source, e.target, e.kind) for e in g.edges] == [("A", "B", "directed")]
    assert len(stable_graph(freqs, ["A", "B", "C"], 0.7).edges) == 2


def test_graph_cli_bootstrap_writes_frequencies_and_the_stable_graph(tmp_path):
    table = need_shared("paper_release", "ans_gemma_train_formal.csv")
    args = ["graph", "--table", str(table), "--features", ",".join(map(str, GEMMA_KEPT)), "--bootstrap", "4"]
    assert main([*args, "--workers", "1", "--out", str(tmp_path)]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    freqs = pd.read_csv(tmp_path / "edge_frequencies.csv")
    stable = load_graph(tmp_path / "stable_graph.json")
    recurring = {
        frozenset(p) for p in freqs.loc[freqs["skeleton_freq"] >= 0.8, ["source", "target"]].to_numpy()
    }
    assert stable.skeleton() == recurring and summary["stable_edges_0.8"] == len(stable.edges)
    assert (tmp_path / "graph.png").stat().st_size > 0


def test_human_graph_cli_from_a_correlation_matrix(tmp_path, capsys):
    corr_path = need_shared("human", "PVQ40_corr_pearson_raw.csv")
    assert main(["human-graph", "--corr", str(corr_path), "--n", "151", "--out", str(tmp_path)]) == 0
    corr = pd.read_csv(corr_path, index_col=0)
    direct = fisherz_from_correlation(corr.to_numpy(), 151, list(corr.columns))
    assert load_graph(tmp_path / "graph.json").skeleton() == direct.skeleton()
    assert main(["human-graph", "--corr", str(corr_path), "--out", str(tmp_path)]) == 2
    assert "--n" in capsys.readouterr().err
    bad = corr.copy()
    bad.iloc[0, 1] += 0.3
    bad.to_csv(tmp_path / "bad.csv")
    assert (
        main(["human-graph", "--corr", str(tmp_path / "bad.csv"), "--n", "151", "--out", str(tmp_path)]) == 2
    )
    assert "bad.csv: not a correlation matrix" in capsys.readouterr().err
