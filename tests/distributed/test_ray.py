"""The Ray executor on a local Ray instance with 2 CPU workers, against the local executor on the
real SmolLM2: the same files byte for byte (grid, measure, bootstrap), a worker killed mid-grid,
a driver killed mid-grid and the grid rerun, a task that fails twice. One Ray instance per module;
the grid is tiny (2 items x 3 roles x 4 conditions) to stay within CI's budget on 2 cores.

The local references run at the workers' one thread (tests/distributed/tiny_grid.py), and the local
measure tables at this process's own thread count are checked within 1e-5 of them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ray = pytest.importorskip("ray")

from mechvalue.causal.stability import bootstrap_edges  # noqa: E402
from mechvalue.cli.main import main  # noqa: E402
from mechvalue.distributed.executor import ExecutorConfig, RayExecutor, TaskFailed  # noqa: E402
from mechvalue.measurement.tasks import GridParts, roles_per_task  # noqa: E402
from mechvalue.study.roles import Role, generate_roles  # noqa: E402
from mechvalue.threads import one_torch_thread as one_thread  # noqa: E402
from tests.distributed.tiny_grid import D_SAE, check_measure, same_tables, tiny_grid  # noqa: E402

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def cluster():
    """A local Ray instance: 2 CPUs for the module's 2 workers, 1 for a second driver's worker."""
    ray.init(num_cpus=3, include_dashboard=False, log_to_driver=False, object_store_memory=256 * 2**20)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="module")
def ex(cluster, design):
    e = RayExecutor(ExecutorConfig("ray", workers=2), progress=False)
    e.prepare(design["info"])  # the workers load SmolLM2 while the local reference runs
    yield e
    e.close()


@pytest.fixture(scope="module")
def local_grid(design, ex, tmp_path_factory):
    out = tmp_path_factory.mktemp("local")
    with one_thread():
        tiny_grid(design, out)
    return out


def test_grid_on_two_workers_writes_the_local_tables(design, ex, local_grid, tmp_path):
    tiny_grid(design, tmp_path, ex)
    same_tables(local_grid, tmp_path)
    assert sorted(p.name for p in (tmp_path / "parts").iterdir()) == [f"{k:04d}.csv" for k in range(4)]
    st = ex.log.data["stages"]["grid"]
    per = roles_per_task(3, 4, 2)
    assert per == 1 and st["tasks"] == 12  # 4 conditions x one role each
    assert sorted(st["workers"]) == ["0", "1"] and all(w["tasks"] >= 1 for w in st["workers"].values())
    assert all(w["threads"] == 1 and w["load_s"] > 0 for w in st["workers"].values())
    assert st["tokens"]["prompt"] > 0 and st["tokens"]["forwards"] >= st["tasks"]  # the workers' model tokens


def test_measure_on_two_workers_gives_the_local_tables(design, ex):
    st = check_measure(design, ex)
    assert st["tasks"] == 3  # one role each: 3 tasks keep 2 workers busy


def test_graph_bootstrap_on_ray_writes_the_local_frequencies(cluster, tmp_path):
    rng = np.random.default_rng(0)
    n, values = 30, ["A", "B", "C", "D", "E"]
    a = rng.normal(size=n)
    x = np.column_stack(
        [
            a,
            a + 0.5 * rng.normal(size=n),
            rng.normal(size=n),
            a * 0.7 + rng.normal(size=n),
            rng.normal(size=n),
        ]
    )
    table = pd.DataFrame(x, columns=values)
    table.insert(0, "player_name", [f"p{i}" for i in range(n)])
    table.insert(0, "steer_dim", np.nan)
    table.to_csv(tmp_path / "values.csv", index=False)
    args = ["graph", "--table", str(tmp_path / "values.csv"), "--bootstrap", "24", "--seed", "3"]
    assert main([*args, "--workers", "1", "--out", str(tmp_path / "local")]) == 0
    assert main([*args, "--executor", "ray", "--ray-address", cluster, "--out", str(tmp_path / "ray")]) == 0
    for f in ("edge_frequencies.csv", "stable_graph.json", "summary.json"):
        assert (tmp_path / "ray" / f).read_bytes() == (tmp_path / "local" / f).read_bytes(), f
    timing = (tmp_path / "ray" / "timings.json").read_text()
    assert '"bootstrap"' in timing
    # and through the library, more resamples than blocks: same table as one process
    groups = table["player_name"]
    one = bootstrap_edges(table[values], groups, 40, seed=1, workers=1)
    ex1 = RayExecutor(ExecutorConfig("ray", workers=2), progress=False)
    spread = bootstrap_edges(table[values], groups, 40, seed=1, executor=ex1)
    pd.testing.assert_frame_equal(one, spread)
    assert ex1.log.data["stages"]["bootstrap"]["tasks"] == 8  # blocks of 5 resamples


def test_worker_killed_mid_grid_is_restarted_and_the_tables_match(design, ex, local_grid, tmp_path):
    pids = ex.worker_pids(design["info"])
    killed = []

    def kill_when_started():  # the first finished task: the other worker is mid-task
        deadline = time.time() + 600
        while time.time() < deadline and not any((tmp_path / "parts").glob("*.csv")):
            time.sleep(0.05)
        os.kill(pids[1], signal.SIGKILL)
        killed.append(pids[1])

    t = threading.Thread(target=kill_when_started)
    t.start()
    tiny_grid(design, tmp_path, ex)
    t.join()
    same_tables(local_grid, tmp_path)
    assert killed == [pids[1]]
    assert ex.worker_pids(design["info"])[1] != pids[1]  # Ray restarted the worker in a new process


DRIVER = textwrap.dedent("""
    import sys, torch
    from mechvalue.distributed.executor import ExecutorConfig, RayExecutor
    from mechvalue.interp.sae_formats import load_sae
    from mechvalue.lm.models import load_model
    from mechvalue.measurement.grid import GridSpec, run_grid
    from mechvalue.measurement.scoring import Measurer
    from mechvalue.measurement.steering_inputs import SteeringInputs
    import pandas as pd, pickle
    address, sae_path, out, design = sys.argv[1:5]
    items, roles = pickle.load(open(design, "rb"))
    model, info = load_model()
    ex = RayExecutor(ExecutorConfig("ray", address=address, workers=1), progress=False)
    inputs = SteeringInputs(Measurer(model, info.prompt_format), load_sae(sae_path), torch.ones(D_SAE), items, roles)
    run_grid(inputs, GridSpec([3], [8.0]), out, executor=ex, model=info, sae_path=sae_path)
""").replace("D_SAE", str(D_SAE))


def test_driver_killed_mid_grid_then_rerun_measures_the_rest_once(cluster, design, ex, local_grid, tmp_path):
    import pickle

    pickle.dump((design["items"], design["roles"]), open(tmp_path / "design.pkl", "wb"))
    out = tmp_path / "grid"
    proc = subprocess.Popen(
        [sys.executable, "-c", DRIVER, cluster, design["sae_path"], str(out), str(tmp_path / "design.pkl")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.time() + 600
    while proc.poll() is None and time.time() < deadline and not any((out / "parts").glob("*.csv")):
        time.sleep(0.05)
    assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
    proc.kill()
    proc.wait()
    labels = [str(c["label"]) for c in json.loads((out / "conditions.json").read_text())["conditions"]]
    kept = {p.name: p.read_bytes() for p in (out / "parts").glob("*.csv")}
    pending = GridParts(out / "parts", labels, 3).pending(roles_per_task(3, 4, 2))
    done_before = 4 * 3 - sum(t.hi - t.lo for t in pending)
    assert 1 <= done_before < 12 and kept
    tiny_grid(design, out, ex)  # the rerun, on the module's two workers
    same_tables(local_grid, out)
    assert ex.log.data["stages"]["grid"]["tasks"] == len(pending)  # only what was missing
    for name, data in kept.items():  # finished parts untouched; finished blocks merged, not redone
        if (out / "parts" / name).exists():
            assert (out / "parts" / name).read_bytes() == data


@dataclass(frozen=True)
class DyingRole(Role):
    """A role whose prompt kills any worker rendering it (the first `times` times, counted in `marker`)."""

    marker: str = ""
    times: int = 2

    def __getattribute__(self, name):
        if name == "trait" and os.environ.get("MV_TEST_DRIVER") != str(os.getpid()):
            m = Path(object.__getattribute__(self, "marker"))
            n = int(m.read_text()) if m.exists() else 0
            if n < object.__getattribute__(self, "times"):
                m.write_text(str(n + 1))
                os._exit(1)
        return object.__getattribute__(self, name)


@pytest.mark.slow
def test_task_failing_twice_fails_naming_the_condition_and_keeps_what_finished(design, ex, tmp_path):
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    os.environ["MV_TEST_DRIVER"] = str(os.getpid())
    dying = DyingRole("X", "Gender: female; Job: nurse, MBTI: INTJ", str(tmp_path / "deaths"), 99)
    roles = [None, generate_roles(1, 0)[0], dying]  # tasks: one role each; role 2 kills its worker
    with pytest.raises(
        TaskFailed, match=r"grid: condition \d \([^)]+\), roles 2-2 failed .*tried up to 2 times"
    ):
        tiny_grid(design, tmp_path / "grid", ex, roles)
    assert int((tmp_path / "deaths").read_text()) >= 2  # the failing task's two tries at least
    assert list((tmp_path / "grid" / "parts").glob("*.r*-*.csv"))  # finished blocks are on disk


def test_bootstrap_after_model_workers_holding_every_cpu_does_not_wait_on_them(cluster, design, ex):
    """Model workers keep their CPUs while alive, so a CPU-only stage after a model stage must end
    them first: a run with as many workers as CPUs once waited forever on its bootstrap."""
    full = RayExecutor(ExecutorConfig("ray", workers=3), progress=False)
    full.prepare(design["info"])  # with the module's two workers: more model actors than the 3 CPUs
    rng = np.random.default_rng(1)
    table = pd.DataFrame(rng.normal(size=(20, 4)), columns=list("ABCD"))
    groups = pd.Series([f"p{i}" for i in range(20)])
    got = []
    t = threading.Thread(
        target=lambda: got.append(bootstrap_edges(table, groups, 8, seed=2, executor=full)), daemon=True
    )
    t.start()
    t.join(timeout=300)
    assert got, "the bootstrap blocks waited on model workers holding every CPU"
    pd.testing.assert_frame_equal(got[0], bootstrap_edges(table, groups, 8, seed=2, workers=1))
