"""Measurement noise, between-role spread, and the statistics that must not count rounding:
known-group hits within the noise are ties, reliability of a value with no between-role
variance is undefined (not ICC(1) = -1/(k-1))."""

import numpy as np
import pandas as pd
import pytest

from mechvalue.analysis import noise as N
from mechvalue.analysis import validity as V


def wide(rows: dict[str, list[float]], values=("Power", "Tradition"), label=None) -> pd.DataFrame:
    return pd.DataFrame(
        [{"steer_dim": label, "player_name": r, **dict(zip(values, s))} for r, s in rows.items()]
    )


def test_rounding_floor_scales_with_the_answer_probability_and_the_dtype():
    assert N.rounding_floor([0.5, -0.9], "float32") == pytest.approx(0.9e-5)
    assert N.rounding_floor([0.5, -0.9], "bfloat16") == pytest.approx(0.045)
    assert N.rounding_floor([np.nan], "float32") == 0.0


def test_repeat_difference_compares_the_same_roles_only():
    a = wide({"A": [0.1, 0.2], "B": [0.3, 0.4]})
    b = wide({"A": [0.1 + 3e-6, 0.2], "C": [9.0, 9.0]})
    assert N.repeat_difference(a, b) == pytest.approx(3e-6)
    assert N.repeat_difference(a, wide({"Z": [0, 0]})) is None


def test_values_that_differ_between_roles_only_by_rounding_do_not_vary():
    v = wide({"A": [-0.3, 0.1], "B": [-0.3 + 1e-7, 0.2], "C": [-0.3 - 1e-7, 0.3]})
    n = N.measurement_noise(v, "float32")
    assert n["noise"] == pytest.approx(3e-6) and n["repeat"] is None
    assert [x for x, sd in N.role_spread(v).items() if N.varies(n["noise"], x, sd)] == ["Tradition"]
    assert "3e-06" in N.describe_noise(n)


def _long(scores: dict[str, dict[str, float]]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"player_name": p, "value": v, "item": f"{v}{i}", "score": s + 0.01 * i}
            for p, d in scores.items()
            for v, s in d.items()
            for i in range(3)
        ]
    )


def test_known_group_differences_within_the_noise_are_ties_not_hits():
    groups = V.load_known_groups()
    pred = V.known_group_predictions(groups)
    scores: dict[str, dict[str, float]] = {}
    for r in pred.itertuples():  # the predicted persona higher by 1.4e-7 (rounding) everywhere
        scores.setdefault(r.higher, {})[r.value] = -0.3 + 1.4e-7
        scores.setdefault(r.lower, {})[r.value] = -0.3
    long = _long(scores)
    _, s0 = V.known_groups(long, groups)  # no noise given: every rounding difference was a hit
    table, s = V.known_groups(long, groups, min_diff=3e-6)
    assert s0["hits"] == 24 and s["hits"] == 0 and s["within_noise"] == 24 and table["within_noise"].all()
    _, s2 = V.known_groups(
        _long({p: {v: x * 100 + 30 for v, x in d.items()} for p, d in scores.items()}), groups, 3e-6
    )
    assert s2["hits"] == 24  # the same ordering, 1.4e-5 apart: above the noise


def test_reliability_of_a_value_without_role_variance_is_undefined_not_minus_one():
    rng = np.random.default_rng(0)
    rows = []
    for p in range(12):
        role = rng.normal()
        for i in range(2):
            rows += [
                {
                    "player_name": f"r{p}",
                    "value": "Flat",
                    "item": f"f{i}",
                    "score": -0.3 + 1e-8 * rng.normal() + 0.1 * i,
                },
                {
                    "player_name": f"r{p}",
                    "value": "Real",
                    "item": f"g{i}",
                    "score": 0.2 * role + 0.02 * rng.normal(),
                },
            ]
    rel = V.reliability(pd.DataFrame(rows), n_boot=20, noise=3e-6).set_index("value")
    assert not rel.loc["Flat", "varies"]
    assert rel.loc["Flat", ["alpha", "omega", "icc1", "icc1_lo", "icc1_hi"]].isna().all()
    assert rel.loc["Real", "icc1"] > 0.5 and rel.loc["Real", "varies"]
    unguarded = V.reliability(pd.DataFrame(rows), n_boot=20).set_index("value")
    assert unguarded.loc["Flat", "icc1"] == pytest.approx(-1.0, abs=0.05)  # the unguarded figure
