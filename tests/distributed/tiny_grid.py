"""A tiny steering grid (2 items x 3 roles x 4 conditions, a seeded random SAE) the executor tests
run on every executor, and the one-thread reference they compare with.

Byte identity holds at equal torch thread counts: a BLAS reduction's order follows its thread
split, so the local references run at the workers' one thread (`mechvalue.threads.one_torch_thread`)."""

from __future__ import annotations

import filecmp
from pathlib import Path

import pandas as pd

from mechvalue.distributed.measure import measure_roles
from mechvalue.measurement.grid import GridSpec, run_grid
from mechvalue.measurement.scoring import Measurer
from mechvalue.measurement.steering_inputs import SteeringInputs
from mechvalue.study.roles import generate_roles
from mechvalue.threads import one_torch_thread

OUTPUTS = ["steer.csv", "items.csv", "hard_positive.csv", "hard_negative.csv", "conditions.json"]
SPEC = GridSpec([3], [8.0])
D_SAE = 64


def tiny_design(smollm2, folder: Path) -> dict:
    """The grid's inputs: the SAE saved to `folder` (workers load it there), 2 items, no role + 2 roles."""
    import torch

    from mechvalue.interp.sae import SAE, SAEConfig
    from mechvalue.study import inventory as inv

    model, info = smollm2
    torch.manual_seed(0)
    sae = SAE(SAEConfig(model.cfg.d_model, D_SAE, hook_name="blocks.15.hook_resid_post"))
    sae.save(folder)
    items = inv.load_inventory()
    items = items[items["value"].isin(sorted(items["value"].unique())[:2])]
    items = items.groupby("value", sort=False).head(1).reset_index(drop=True)
    return {
        "model": model,
        "info": info,
        "sae": sae,
        "sae_path": str(folder),
        "items": items,
        "roles": [None, *generate_roles(2, 0)],
        "typical": torch.ones(D_SAE),
    }


def tiny_grid(d: dict, out: Path, executor=None, roles=None, together: bool = False):
    """The grid on `executor` (None: this process); `together`: the SAE conditions and the
    unsteered one measured together (condition_batch), else one condition at a time."""
    m = Measurer(d["model"], d["info"].prompt_format)
    return run_grid(
        SteeringInputs(m, d["sae"], d["typical"], d["items"], roles or d["roles"], batch_conditions=together),
        SPEC,
        out,
        progress=False,
        executor=executor,
        model=d["info"],
        sae_path=d["sae_path"],
    )


def same_tables(a: Path, b: Path) -> None:
    for f in OUTPUTS:
        assert filecmp.cmp(a / f, b / f, shallow=False), f


def check_measure(d: dict, executor) -> dict:
    """`measure_roles` on `executor`'s workers gives the one-thread tables of this process byte for
    byte, and this process's own threads' within 1e-5; returns the executor's measure record."""
    m = Measurer(d["model"], d["info"].prompt_format)
    with one_torch_thread():
        long_l, wide_l = measure_roles(m, d["items"], d["roles"])
    long_w, wide_w = measure_roles(m, d["items"], d["roles"], executor, d["info"])
    assert long_w.to_csv(index=False) == long_l.to_csv(index=False)
    assert wide_w.to_csv(index=False) == wide_l.to_csv(index=False)
    _, wide_here = measure_roles(m, d["items"], d["roles"])  # this process's threads
    pd.testing.assert_frame_equal(wide_here, wide_w, check_exact=False, rtol=0, atol=1e-5)
    return executor.log.data["stages"]["measure"]
