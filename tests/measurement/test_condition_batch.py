"""The grid with its SAE conditions batched together (one edit per row, the prompt before the
span run once) gives the one-condition-at-a-time grid's tables: same rows, same answers, scores
and probabilities within 1e-5."""

import numpy as np
import pandas as pd
import pytest
import torch

from mechvalue.errors import MechValueError
from mechvalue.interp.sae import SAE, SAEConfig
from mechvalue.measurement import condition_batch
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
    items = inv.load_inventory().iloc[[0, 4, 8, 12, 16, 20]].reset_index(drop=True)
    return model, info, sae, items, [None, *generate_roles(2, 0)]


def assert_same_tables(got: dict, want: dict) -> None:
    assert got.keys() == want.keys()
    for name in want:
        g, w = got[name], want[name]
        assert list(g.columns) == list(w.columns) and len(g) == len(w)
        for col in w.columns:
            if pd.api.types.is_float_dtype(w[col]):
                assert np.allclose(g[col], w[col], atol=1e-5, rtol=0, equal_nan=True), (name, col)
            else:
                assert g[col].equals(w[col]), (name, col)


@pytest.mark.parametrize("mode,strengths", [("add", [0.0, 40.0]), ("clamp", [30.0])])
def test_batched_grid_equals_one_condition_at_a_time(setup, tmp_path, monkeypatch, mode, strengths):
    model, info, sae, items, roles = setup
    m = Measurer(model, info.prompt_format, batch_size=4)  # two batches of items per role
    spec = GridSpec([3, 7], strengths, mode, units="raw", hard_prompts=mode == "add")
    asked = []
    group_logits = condition_batch.ConditionGroup.all_logits
    with monkeypatch.context() as mp:
        mp.setattr(
            condition_batch.ConditionGroup,
            "all_logits",
            lambda self, *a: asked.append(len(self.conds)) or group_logits(self, *a),
        )
        got = run_grid(SteeringInputs(m, sae, None, items, roles), spec, tmp_path / "batched", progress=False)
    if mode == "add":  # a resumed grid recomputes a missing condition with its whole group: same bytes
        (tmp_path / "batched" / "parts" / "0002.csv").unlink()
        again = run_grid(SteeringInputs(m, sae, None, items, roles), spec, tmp_path / "batched", progress=False)
        for name in got:
            pd.testing.assert_frame_equal(again[name], got[name], check_exact=True)
    one = SteeringInputs(m, sae, None, items, roles, batch_conditions=False)
    want = run_grid(one, spec, tmp_path / "one", progress=False)
    assert_same_tables(got, want)
    n_conds = 1 + 2 * len(strengths)
    assert asked == [n_conds] * (len(roles) * 2)  # every role's two batches, all conditions at once
    steer = want["steer"]
    assert abs(steer.iloc[:3, 2:].to_numpy(float) - steer.iloc[-3:, 2:].to_numpy(float)).max() > 1e-3


def test_conditions_that_do_not_fit_are_measured_alone(setup):
    model, info, sae, items, roles = setup
    from mechvalue.measurement.grid import conditions

    conds = conditions(sae, None, GridSpec([3], [5.0], "add", "prompt", "raw"), sorted(items["value"].unique()))
    assert [condition_batch.fits(c) for c in conds] == [True, False, False, False]


def test_vector_conditions_together_equal_one_at_a_time(setup):
    """Steering-vector conditions (a zero vector among them) measured together: the one-at-a-time
    rows within 1e-5; conditions of two kinds are refused together."""
    from mechvalue.interp.steering import SAEEditHook, SteeringSpec
    from mechvalue.interp.vectors import VectorAddHook
    from mechvalue.measurement.scoring import Condition
    from mechvalue.measurement.tasks import measure_block

    model, info, sae, items, roles = setup
    m = Measurer(model, info.prompt_format, batch_size=8)
    torch.manual_seed(2)
    vecs = [torch.randn(576) * 4, torch.zeros(576), torch.randn(576) * 8]
    conds = [Condition()] + [Condition(f"v{i}", [(HOOK, VectorAddHook(v))], info={"kind": "v"}) for i, v in enumerate(vecs)]
    got = condition_batch.measure_together(m, items.head(4), roles[:2], conds)
    for g, c in zip(got, conds):
        want = measure_block(m, items.head(4), roles[:2], c)
        assert_same_tables({"t": g}, {"t": want})
    sae_cond = Condition("f", [(HOOK, SAEEditHook(sae, SteeringSpec([3], "add", 5.0)))])
    assert not condition_batch.stackable([conds[1], sae_cond])
    with pytest.raises(MechValueError, match="one kind of edit"):
        condition_batch.measure_together(m, items.head(4), roles[:1], [conds[1], sae_cond])
