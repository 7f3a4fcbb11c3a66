"""The steering grid's SAE conditions batched together (per-request steering: one edit per batch
row, the prompt before the " your values" span run once; `mechvalue.measurement.condition_batch`)
against one condition at a time, interleaved (conftest.interleaved), their tables asserted equal
(same answers, scores within 1e-5). The grid's shape is the default run's for one persona: the
unsteered condition and 6 features at one strength, added on the span in typical units (raw here:
a random SAE) at `blocks.15.hook_resid_post`, the 40 items in batches of 16.
"""

import numpy as np
import pandas as pd
import torch
from conftest import interleaved, record

from mechvalue.interp.sae import SAE, SAEConfig
from mechvalue.measurement.condition_batch import measure_together
from mechvalue.measurement.grid import GridSpec, conditions
from mechvalue.measurement.scoring import Measurer
from mechvalue.measurement.tasks import measure_block
from mechvalue.study import inventory as inv
from mechvalue.study.roles import generate_roles

HOOK = "blocks.15.hook_resid_post"


def test_batched_grid_vs_one_condition_at_a_time(smollm2):
    model, info = smollm2
    torch.manual_seed(0)
    sae = SAE(SAEConfig(576, 1024, "relu", hook_name=HOOK)).to(next(model.parameters()).device)
    items = inv.load_inventory()
    roles = generate_roles(1, 0)
    m = Measurer(model, info.prompt_format, batch_size=16)
    spec = GridSpec(list(range(6)), [8.0], "add", "span", "raw", hard_prompts=False)
    conds = conditions(sae, None, spec, sorted(items["value"].unique()))
    with torch.no_grad():
        t, out = interleaved(
            {
                "one_at_a_time": lambda: [measure_block(m, items, roles, c) for c in conds],
                "batched": lambda: measure_together(m, items, roles, conds),
            },
            rounds=3,
        )
    for got, want in zip(out["batched"], out["one_at_a_time"]):
        assert list(got.columns) == list(want.columns)
        for col in want.columns:
            if pd.api.types.is_float_dtype(want[col]):
                assert np.allclose(got[col], want[col], atol=1e-5, rtol=0, equal_nan=True), col
            else:
                assert got[col].equals(want[col]), col
    record(
        "grid_condition_batching",
        {
            "conditions": len(conds),
            "roles": len(roles),
            "items": len(items),
            "one_at_a_time_s": t["one_at_a_time"],
            "batched_s": t["batched"],
            "one_over_batched": t["one_at_a_time"] / t["batched"],
        },
    )
