"""The `processes` executor (one-thread model workers on this machine: the default on a CPU with
two or more cores) on the real SmolLM2: the measure and the grid, its conditions measured together
on the workers, equal one-thread local runs byte for byte and two-thread ones within 1e-5; a task
that fails stops the stage naming its condition, with the finished tasks on disk; `auto` resolves
by device, cores and workers."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from mechvalue.distributed.executor import (
    ExecutorConfig,
    LocalExecutor,
    ProcessExecutor,
    TaskFailed,
    make_executor,
)
from mechvalue.distributed.measure import measure_roles
from mechvalue.measurement.scoring import Measurer
from mechvalue.study.roles import Role, generate_roles
from mechvalue.threads import one_torch_thread as one_thread
from tests.distributed.tiny_grid import check_measure, same_tables, tiny_grid

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def ex(design):
    e = ProcessExecutor(ExecutorConfig("processes", workers=2), progress=False)
    e.prepare(design["info"])  # the workers load SmolLM2 while the local references run
    yield e
    e.close()


def test_auto_is_processes_on_a_cpu_with_two_cores_else_local(monkeypatch):
    import mechvalue.distributed.executor as executor

    monkeypatch.setattr(executor, "cpu_cores", lambda: 2)
    assert type(make_executor(progress=False)) is ProcessExecutor
    assert type(make_executor(progress=False, device="cuda")) is LocalExecutor
    assert type(make_executor(ExecutorConfig(workers=1), progress=False)) is LocalExecutor
    assert make_executor(progress=False).describe()["kind"] == "processes"
    monkeypatch.setattr(executor, "cpu_cores", lambda: 1)
    assert type(make_executor(progress=False)) is LocalExecutor


def test_measure_on_two_workers_gives_the_one_thread_tables(design, ex):
    st = check_measure(design, ex)
    assert st["tasks"] == 3 and sorted(st["workers"]) == ["0", "1"]
    assert all(w["threads"] == 1 and w["load_s"] > 0 for w in st["workers"].values())
    assert st["tokens"]["prompt"] > 0  # the workers' model tokens reach the driver's log


def test_grid_measured_together_on_workers_gives_the_one_thread_tables(design, ex, tmp_path):
    with one_thread():
        tiny_grid(design, tmp_path / "local", together=True)
    tiny_grid(design, tmp_path / "workers", ex, together=True)
    same_tables(tmp_path / "local", tmp_path / "workers")
    st = ex.log.data["stages"]["grid"]
    # the SAE condition and the unsteered one together, each hard prompt alone: 3 units of work, one
    # role each
    assert st["tasks"] == 3 * 3 and set(st["workers"]) == {"0", "1"}
    with one_thread():  # and one condition at a time gives the same tables
        tiny_grid(design, tmp_path / "alone")
    same_tables(tmp_path / "alone", tmp_path / "workers")


@dataclass(frozen=True)
class FailingRole(Role):
    """A role whose prompt cannot be rendered in a worker process."""

    def __getattribute__(self, name):
        if name == "trait":
            import os

            if os.environ.get("MV_TEST_DRIVER") != str(os.getpid()):
                raise RuntimeError("this role cannot be rendered")
        return object.__getattribute__(self, name)


def test_a_failing_task_names_its_condition_and_keeps_what_finished(design, ex, tmp_path, monkeypatch):
    import os

    monkeypatch.setenv("MV_TEST_DRIVER", str(os.getpid()))
    roles = [None, generate_roles(1, 0)[0], FailingRole("X", "Gender: female; Job: nurse, MBTI: INTJ")]
    with pytest.raises(TaskFailed, match=r"grid: condition \d \([^)]+\), roles 2-2 failed \(RuntimeError"):
        tiny_grid(design, tmp_path, ex, roles)
    assert list((tmp_path / "parts").glob("*.r*-*.csv"))  # finished blocks are on disk
    m = Measurer(design["model"], design["info"].prompt_format)
    long, _ = measure_roles(m, design["items"], design["roles"][:2], ex, design["info"])
    assert len(long) == 2 * len(design["items"])  # the same workers go on after a failed task
