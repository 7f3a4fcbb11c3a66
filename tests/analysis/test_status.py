"""One pass rule and one noise model everywhere: on one constructed validity folder, the
validity summary, the report's top, its validity table, its graph warnings and `compare-runs`
give every value the same status; differences within the item-resampling noise are ties."""

import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from mechvalue.analysis import noise as N
from mechvalue.analysis import validity as V
from mechvalue.analysis.status import NO_VARIANCE, failing, label, passing, sae_quality, value_status
from mechvalue.analysis.validity_report import report_section, save


def items_table(n_roles=14, n_items=4, seed=1) -> pd.DataFrame:
    """Signal: roles differ a lot against item disagreement; Weak: little; Flat: no role effect."""
    rng = np.random.default_rng(seed)
    rows = []
    role_fx = rng.normal(size=n_roles)
    for r in range(n_roles):
        for value, between, within in (("Signal", 0.5, 0.05), ("Weak", 0.02, 0.3), ("Flat", 0.0, 0.2)):
            for i in range(n_items):
                item_fx = 0.1 * i
                rows.append(
                    {
                        "player_name": f"r{r}",
                        "value": value,
                        "item": f"{value}{i}",
                        "score": between * role_fx[r] + item_fx + within * rng.normal(),
                    }
                )
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    long = items_table()
    noise = N.item_table_noise(long)
    res = V.validity(long, settings=V.BatterySettings(n_boot=20, n_perm=20, noise=noise))
    out = tmp_path_factory.mktemp("run")
    s = save(res, out / "validity")
    long.assign(question=long["item"]).to_csv(out / "items.csv", index=False)
    return out, s, noise


def test_the_one_rule_is_the_same_in_the_summary_the_report_and_compare_runs(folder):
    from mechvalue.pipeline.compare_runs import _reliability
    from mechvalue.pipeline.report.common import STATUS_COLUMN
    from mechvalue.pipeline.report.top import measured
    from mechvalue.pipeline.report.validity import reliability_table

    out, s, _ = folder
    status = s["measurements"]
    assert status["Signal"] == "" and status["Flat"] == NO_VARIANCE and status["Weak"]
    assert s["flagged"] == failing(status)
    rel = pd.read_csv(out / "validity" / "reliability.csv")
    cen = pd.read_csv(out / "validity" / "reliability_centered.csv")
    assert value_status(rel, cen) == status  # the rule re-read from the files
    sec = report_section(out / "validity")
    assert {r["value"]: r["status"] for r in sec["table"]} == status
    table = reliability_table(sec["table"], status).set_index("value")[STATUS_COLUMN]
    assert table.to_dict() == {v: label(status, v) for v in status}
    top = measured(SimpleNamespace(status=status), "study")
    assert f"{len(passing(status))} of 3 pass: Signal." in top
    for v, why in failing(status).items():
        assert f"{v} ({why})" in top
    assert _reliability(out)["status"] == status and _reliability(out)["measured_values"] == ["Signal"]
    w = V.graph_warnings(["Signal", "Weak", "Flat"], [("Signal", "Weak")], status)
    assert w["nodes"] == sorted(failing(status), key=["Signal", "Weak", "Flat"].index)


def test_a_difference_within_the_item_noise_is_a_tie_and_a_value_without_role_effect_does_not_vary(folder):
    _, _, noise = folder
    assert noise["n_boot"] == N.N_BOOT and set(noise["by_value"]) == {"Signal", "Weak", "Flat"}
    t = N.noise_for(noise, "Flat")
    assert t > 1e-3  # statistical noise, not float rounding (about 1e-5 here)
    assert N.is_tie(noise, "Flat", 0.9 * t) and not N.is_tie(noise, "Flat", 1.1 * t)
    long = items_table()
    sd = long.groupby(["value", "player_name"])["score"].mean().groupby("value").std()
    assert N.varies(noise, "Signal", sd["Signal"]) and not N.varies(noise, "Flat", sd["Flat"])
    assert N.item_noise(long, seed=0).equals(N.item_noise(long, seed=0))  # seeded


def test_known_group_differences_within_each_values_noise_are_ties():
    groups = V.load_known_groups()
    pred = V.known_group_predictions(groups)
    noise = N.as_noise(0.0) | {"by_value": {v: 0.05 for v in pred["value"]}, "floor": 0.0}
    scores = {}
    for r in pred.itertuples():  # the predicted persona higher by 0.03: within a noise of 0.05
        scores.setdefault(r.higher, {})[r.value] = 0.03
        scores.setdefault(r.lower, {})[r.value] = 0.0
    long = pd.DataFrame(
        [{"player_name": p, "value": v, "item": v, "score": x} for p, d in scores.items() for v, x in d.items()]
    )
    table, s = V.known_groups(long, groups, noise)
    assert s["hits"] == 0 and s["within_noise"] == s["predictions"] > 0
    assert (table["noise"] == 0.05).all()
    _, s0 = V.known_groups(long, groups, 0.0)
    assert s0["hits"] == s0["predictions"]


def test_compare_runs_does_not_rank_runs_too_small_to_rank(folder):
    from mechvalue.pipeline.compare_runs import too_small, verdicts

    out, _, _ = folder

    def summary(quick, items, roles):
        r = {"respondents": roles, "raw": {"values": 3, "values_icc1_ci_above": 1}, "centred": {"values_alpha_ok": 1}}
        r |= {"measured_values": ["Signal"], "human_alpha_centred": None, "matrix_r": None}
        return {"run": str(out), "model": "m", "settings": {"quick": quick}, "min_items_per_value": items, "reliability": r}

    big = summary(False, 10, 40)
    assert too_small(big) == "" and "2 item(s) per value" in too_small(summary(True, 2, 40))
    said = verdicts([big, summary(True, 2, 14) | {"model": "n"}])
    assert said[-1].startswith("Not ranked: too small") and "a --quick run" in said[-1]
    assert not any("Measures values better" in x for x in said)


def test_sae_quality_bar():
    assert sae_quality({"fve": 0.349, "delta_loss": 3.68}).count("bar") == 2
    assert sae_quality({"fve": 0.95, "delta_loss": 0.05}) == "" and sae_quality(None) is None


def test_the_timing_section_shows_token_columns_when_timings_have_them():
    from mechvalue.pipeline.report.timing import stage_table

    times = {"measure": 10.0, "grid": 30.0}
    plain = stage_table(times, {"stages": {"measure": {"seconds": 10.0}}})
    assert "tokens/s" not in plain.columns and plain["wall, s"].iloc[-1] == 40.0
    spent = {
        "stages": {
            "measure": {"prompt_tokens": 1000, "generated_tokens": 0, "tokens_per_s": 100.0,
                        "limit_tokens_per_s": 1000.0, "ratio_to_limit": 0.1},
            "grid": {"prompt_tokens": 3000},
        },
        "limit": {"gflops": 50.0, "shape": "64x576x576"},
    }
    t = stage_table(times, spent)
    assert {"prompt tokens", "tokens/s", "limit, tokens/s", "share of the limit"} <= set(t.columns)
    assert t["prompt tokens"].tolist() == [1000, 3000, 4000] and t["share of the limit"].iloc[0] == 0.1
    assert json.dumps(spent)  # the fields as the timings writer stores them


def test_heatmaps_show_differences_in_noise_units_and_mask_those_within_it():
    from mechvalue.pipeline.report.features import within_noise
    from mechvalue.pipeline.report.profile import in_noise_units

    noise = N.as_noise(0.0) | {"by_value": {"A": 0.02 * np.sqrt(2), "B": 0.2 * np.sqrt(2)}, "floor": 0.0}
    prof = pd.DataFrame({"A": [0.05, -0.05, 0.0], "B": [0.05, -0.05, 0.0]}, index=["r1", "r2", "r3"])
    z = in_noise_units(prof, noise)  # one score's noise: 0.02 for A, 0.2 for B
    assert z.loc["r1", "A"] == pytest.approx(2.5) and z.loc["r2", "A"] == pytest.approx(-2.5)
    assert z["B"].isna().all() and np.isnan(z.loc["r3", "A"])  # within the noise: masked
    eff = pd.DataFrame({"A": [0.01, 0.001], "B": [0.01, 0.001]}, index=[1, 2])  # per typical unit
    kept = within_noise(eff, 10.0, noise)  # changes 0.1 and 0.01 against ties at 0.028 (A), 0.28 (B)
    assert kept.loc[1, "A"] == 0.01 and kept[["B"]].isna().all().all() and np.isnan(kept.loc[2, "A"])
