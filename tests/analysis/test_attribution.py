"""Steer grid, feature-to-value attribution and side effects, on the real model with a small SAE."""

import pandas as pd
import pytest
import torch

from mechvalue.analysis.attribution import correlation, gradient_attribution, interventional, side_effects
from mechvalue.causal.graph import Edge, ValueGraph
from mechvalue.interp.sae import SAE, SAEConfig
from mechvalue.measurement.grid import GridSpec, run_grid
from mechvalue.measurement.scoring import Measurer
from mechvalue.measurement.steering_inputs import SteeringInputs
from mechvalue.study import inventory as inv
from mechvalue.study.roles import generate_roles

HOOK = "blocks.12.hook_resid_post"


@pytest.fixture(scope="module")
def setup(smollm2):
    model, info = smollm2
    torch.manual_seed(1)
    sae = SAE(SAEConfig(576, 32, "relu", hook_name=HOOK))
    items = inv.load_inventory().iloc[[0, 4, 8, 12]].reset_index(drop=True)  # 4 values, 1 item each
    return model, info, sae, items, [None, *generate_roles(2, 0)]


def test_grid_tables_resume_and_zero_strength(setup, tmp_path):
    model, info, sae, items, roles = setup
    m = Measurer(model, info.prompt_format, batch_size=8)
    spec = GridSpec([3], strengths=[0.0, 50.0], units="raw")
    t = run_grid(SteeringInputs(m, sae, None, items, roles), spec, tmp_path, progress=False)
    steer = t["steer"]
    assert list(steer["steer_dim"].map(str)) == ["nan"] * 3 + ["3@0"] * 3 + ["3@50"] * 3
    vals = sorted(items["value"])
    assert sorted(steer.columns[2:]) == vals and len(t["hard_positive"]) == 3
    assert t["hard_positive"]["steer_dim"].isna().all()
    base, zero = steer.iloc[:3, 2:].to_numpy(float), steer.iloc[3:6, 2:].to_numpy(float)
    assert abs(base - zero).max() < 1e-6  # a zero edit changes nothing
    assert abs(base - steer.iloc[6:, 2:].to_numpy(float)).max() > 1e-3

    calls = []
    m.score_items = lambda *a, **k: calls.append(a)  # a resumed grid reads its parts only
    again = run_grid(SteeringInputs(m, sae, None, items, roles), spec, tmp_path, progress=False)
    assert not calls
    pd.testing.assert_frame_equal(again["steer"], steer)


def test_gradient_attribution_predicts_small_interventions(setup, tmp_path):
    """Attribution patching is the derivative of the steered value score at strength 0."""
    model, info, sae, items, roles = setup
    m = Measurer(model, info.prompt_format, batch_size=8)
    grad = gradient_attribution(m, sae, items, roles[:2])
    spec = GridSpec([0, 5], strengths=[0.5], units="raw", hard_prompts=False)
    t = run_grid(SteeringInputs(m, sae, None, items, roles[:2]), spec, tmp_path, progress=False)
    conds = [{"kind": "sae", "label": f, "feature": f, "strength": 0.5} for f in (0, 5)]
    eff = interventional(t["steer"], conds)
    for f in (0, 5):
        e = eff[eff["feature"] == f].set_index("value")["effect"]
        pred = grad.loc[f, e.index]
        assert torch.allclose(
            torch.tensor(pred.values, dtype=torch.float64), torch.tensor(e.values), rtol=0.1, atol=5e-6
        )


def test_correlation_recovers_a_planted_feature():
    wide = pd.DataFrame(
        {"steer_dim": [None] * 4, "player_name": [None, "a", "b", "c"], "V": [0.1, 0.5, -0.2, 0.3]}
    )
    roles = ["", "a", "b", "c"]
    last = torch.zeros(4, 3)
    last[:, 1] = torch.tensor([0.1, 0.5, -0.2, 0.3]) * 2 + 1
    last[:, 2] = torch.tensor([1.0, 0.0, 0.0, 1.0])
    r = correlation(last, roles, ["V"] * 4, wide)
    assert r.loc[1, "V"] == pytest.approx(1.0) and r.loc[0, "V"] == 0.0 and abs(r.loc[2, "V"]) < 1


def test_side_effects_count_descendants():
    g = ValueGraph(["A", "B", "C", "D"], [Edge("A", "B"), Edge("B", "C")])
    eff = pd.DataFrame({"label": ["1"] * 4, "value": list("ABCD"), "t": [9.0, 3.0, 2.5, 0.5]})
    res = side_effects(eff, g)
    f = res["features"][0]
    assert f["target"] == "A" and f["side_effects"] == ["B", "C"] and f["side_on_descendants"] == ["B", "C"]
    assert res["share_on_descendants"] == 1.0 and res["chance_share"] == pytest.approx(2 / 3)
