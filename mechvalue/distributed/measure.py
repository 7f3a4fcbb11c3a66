"""`measure` (every role, unsteered) on an executor: roles in blocks over the workers, rows put
back in role order, so the tables are the ones `mechvalue.measurement.scoring.measure` writes."""

from __future__ import annotations

import uuid

import pandas as pd

from mechvalue.measurement.tasks import GridJob, Task, measurer_settings, roles_per_task
from mechvalue.study.roles import Role
from mechvalue.study.schema import wide_table


def measure_roles(
    measurer, items: pd.DataFrame, roles: list[Role | None], executor=None, model=None, stage: str = "measure"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(items_long, values_wide) as `measure(measurer, items, roles)`; with a Ray executor each
    worker loads `model` (the driver's loaded model, or a name or folder) itself."""
    from mechvalue.measurement.scoring import measure

    if executor is None:
        return measure(measurer, items, roles)
    if executor.kind == "local":  # one task: `measure` itself, timed
        per = len(roles)
        local = lambda t: measure(measurer, items, roles, progress=executor.progress)[0]  # noqa: E731
    elif model is None:
        raise ValueError("a distributed measure needs model=: workers load it themselves")
    else:
        per = roles_per_task(len(roles), 1, executor.workers(model))
        local = None
    tasks = [Task(0, lo, min(lo + per, len(roles)), "unsteered") for lo in range(0, len(roles), per)]
    got: dict[int, pd.DataFrame] = {}
    job = GridJob(f"measure:{uuid.uuid4()}", items, roles, measurer_settings(measurer), labels=["None"])
    executor.run_tasks(
        stage, tasks, lambda t, rows: got.__setitem__(t.lo, rows), model=model, job=job, local=local
    )
    long = pd.concat([got[k] for k in sorted(got)], ignore_index=True)
    return long, wide_table(long)
