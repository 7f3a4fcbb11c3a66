"""The study's published Gemma numbers, from its released tables."""

import pandas as pd
import pytest

from mechvalue.analysis import tables as ex
from mechvalue.causal.graph import load_graph
from mechvalue.study.schema import load_table
from mechvalue.study.settings import KEPT_FEATURES as GEMMA_KEPT
from mechvalue.study.settings import PIE_NEGATIVE as NEGATIVE
from mechvalue.study.settings import PIE_POSITIVE as POSITIVE
from mechvalue.study.settings import TABLE1_EXCLUDED as EXCLUDED
from tests.conftest import RELEASE, need_shared

PAPER_T1 = {
    1025: 0.94,
    1312: 0.66,
    1341: 0.90,
    1975: 0.89,
    2965: 0.92,
    4752: 0.90,
    10096: 0.79,
    10605: 0.86,
    14049: 0.84,
    14351: 0.84,
}


@pytest.fixture(scope="module")
def tables():
    return (
        load_table(need_shared("paper_release", "ans_gemma_train_formal.csv")),
        load_table(need_shared("paper_release", "ans_gemma_test_formal.csv")),
    )


def test_table1_mean_similarity(tables):
    res = ex.table1(*tables, GEMMA_KEPT, EXCLUDED)
    assert {int(k): round(v, 2) for k, v in res["mean_similarity"].items()} == PAPER_T1


def test_table2_means(tables):
    ref = RELEASE / "reference_graphs.json"
    res = ex.table2(tables[1], load_graph(ref, "gemma"), load_graph(ref, "human1"), "Mary Holt", GEMMA_KEPT)
    got = {
        h: {g: [round(res[h][g]["expected"], 3), round(res[h][g]["unexpected"], 3)] for g in res[h]}
        for h in ("prompt", "sae")
    }
    assert got == {
        "prompt": {"learned": [0.690, 0.560], "reference": [0.693, 0.593]},
        "sae": {"learned": [0.568, 0.506], "reference": [0.787, 0.504]},
    }


def test_table2_improved_has_ci_and_pvalues(tables):
    g = load_graph(RELEASE / "reference_graphs.json", "gemma")
    res = ex.table2_improved(tables[1], g, GEMMA_KEPT, n_boot=20, n_null=20)
    # the study's figures done properly (docs/guides/reproduction.md): gaps +0.037 (SAE) and +0.130 (prompt); seeded null and bootstrap
    for half, gap, null_hits in (("sae", 0.0367, 7), ("prompt", 0.1303, 5)):
        lo, hi = res[half]["gap_ci95"]
        assert res[half]["gap"] == pytest.approx(gap, abs=1e-4) and lo < gap < hi
        assert res[half]["p_vs_random_graph"] == pytest.approx(null_hits / 21)  # (1 + hits) / (1 + 20)
    assert res["sae"]["n_rows"] == 25 * 10  # 25 roles x 10 features, all roles pooled


def test_pies(tables):
    test = tables[1]
    pos = ex.pies(test, pd.read_csv(RELEASE / "ans_gemma_test_compare_positive_s1.csv"), POSITIVE)
    neg = ex.pies(test, pd.read_csv(RELEASE / "ans_gemma_test_compare_negative_s1.csv"), NEGATIVE)
    strip = lambda d: [d["up"], d["unchanged"], d["down"]]  # noqa: E731
    assert strip(pos["sae"]) == [31.5, 56.9, 11.5] and strip(neg["sae"]) == [6.2, 50.4, 43.5]
    assert strip(pos["hard_prompt"]) == [22.3, 50.8, 26.9] and strip(neg["hard_prompt"]) == [8.1, 25.4, 66.5]
    assert pos["sae"]["n"] == pos["hard_prompt"]["n"] == 260  # 10 targeted values x 26 roles


def test_table1_leaves_out_values_on_one_side_of_the_split():
    """A small inventory can leave a value without test items: Table 1 compares the shared values."""
    rows = lambda vals: pd.DataFrame(  # noqa: E731
        [
            {
                "steer_dim": s,
                "player_name": p,
                **{v: x + (0.1 if s == 7 else 0) * (i + 1) for i, v in enumerate(vals)},
            }
            for s in (float("nan"), 7)
            for p, x in (("a", 0.0), ("b", 0.5))
        ]
    )
    res = ex.table1(rows(["A", "B"]), rows(["A"]), [7])
    assert list(res["cells"]["value"]) == ["A"] and res["mean_similarity"] == {"7": 1.0}
    none = ex.table1(rows(["B"]), rows(["A"]), [7])  # no value on both sides: an empty table, no error
    assert none["cells"].empty and none["mean_similarity"] == {} and none["noise_ratio"] == {}
