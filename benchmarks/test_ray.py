"""The quick grid (20 items x 3 roles x 5 conditions: unsteered, 2 SAE features, 2 hard prompts)
run by the local executor, by Ray with 1 worker (all cores) and by Ray with 2 workers (half the
cores each), interleaved A, B, C, A, B, C (medians), on one local Ray instance whose workers are
started and loaded before timing. Also the time Ray adds once: starting the instance and loading
the model in the workers. Rounds: $MV_BENCH_ROUNDS (default 3); a smaller grid for a busy machine:
$MV_BENCH_VALUES values (default all 10) x $MV_BENCH_ITEMS items each (default 2)."""

from __future__ import annotations

import os
import statistics
import time

import pytest
import torch
from conftest import record

ray = pytest.importorskip("ray")

from mechvalue.distributed.executor import ExecutorConfig, RayExecutor  # noqa: E402
from mechvalue.interp.sae import SAE, SAEConfig  # noqa: E402
from mechvalue.measurement.grid import GridSpec, run_grid  # noqa: E402
from mechvalue.measurement.scoring import Measurer  # noqa: E402
from mechvalue.measurement.steering_inputs import SteeringInputs  # noqa: E402
from mechvalue.study import inventory as inv  # noqa: E402
from mechvalue.study.roles import generate_roles  # noqa: E402


def test_quick_grid_local_vs_ray_1_and_2_workers(smollm2, tmp_path):
    model, info = smollm2
    cores = os.cpu_count() or 2
    torch.set_num_threads(cores)  # local: every core, as a Ray worker given all of them
    torch.manual_seed(0)
    sae = SAE(SAEConfig(model.cfg.d_model, 512, hook_name="blocks.15.hook_resid_post"))  # quick SAE's shape
    sae.save(tmp_path / "sae")
    items = inv.load_inventory()
    items = items[
        items["value"].isin(list(items["value"].unique())[: int(os.environ.get("MV_BENCH_VALUES", "99"))])
    ]
    items = (
        items.groupby("value", sort=False)
        .head(int(os.environ.get("MV_BENCH_ITEMS", "2")))
        .reset_index(drop=True)
    )
    roles = [None, *generate_roles(2, 0)]
    spec, typical = GridSpec([3, 7], [30.0]), torch.ones(512)
    m = Measurer(model, info.prompt_format)
    t0 = time.perf_counter()
    ray.init(
        num_cpus=2 * cores, include_dashboard=False, log_to_driver=False, object_store_memory=256 * 2**20
    )
    t_init = time.perf_counter() - t0  # logical CPUs for both pools; only one pool works at a time
    try:
        one = RayExecutor(ExecutorConfig("ray", workers=1, cpus_per_worker=cores), progress=False)
        two = RayExecutor(
            ExecutorConfig("ray", workers=2, cpus_per_worker=max(1, cores // 2)), progress=False
        )
        t0 = time.perf_counter()
        one.worker_pids(info)  # returns once the worker has loaded the model
        t_load = time.perf_counter() - t0
        two.worker_pids(info)
        runs = {"local": None, "ray1": one, "ray2": two}
        times: dict[str, list[float]] = {k: [] for k in runs}
        tables = {}
        for r in range(int(os.environ.get("MV_BENCH_ROUNDS", "3"))):
            for name, ex in runs.items():
                out = tmp_path / f"{name}{r}"
                t = time.perf_counter()
                run_grid(
                    SteeringInputs(m, sae, typical, items, roles),
                    spec,
                    out,
                    progress=False,
                    executor=ex,
                    model=info,
                    sae_path=str(tmp_path / "sae"),
                )
                times[name].append(time.perf_counter() - t)
                tables[name] = (out / "items.csv").read_bytes()
    finally:
        ray.shutdown()
    med = {k: statistics.median(v) for k, v in times.items()}
    ratio1, ratio2 = med["ray1"] / med["local"], med["ray2"] / med["ray1"]
    record(
        "ray_quick_grid",
        {
            "cores": cores,
            "prompts": len(items) * len(roles) * 5,
            "rounds": len(times["local"]),
            "local_s": med["local"],
            "ray1_s": med["ray1"],
            "ray2_s": med["ray2"],
            "ray1_over_local": ratio1,
            "ray2_over_ray1": ratio2,
            "ray_init_s": t_init,
            "worker_load_s": t_load,
            "load_avg_1min": os.getloadavg()[0],
        },
    )
    assert tables["ray1"] == tables["local"] == tables["ray2"]
    assert ratio1 <= 1.15, f"Ray with 1 worker {ratio1:.2f}x local"
    assert ratio2 < 1.0, f"2 Ray workers {ratio2:.2f}x the time of 1"
