"""What runs inside a Ray worker. `ModelWorker` (made a Ray actor by the executor) loads the
model once, from its name or folder, with the public loaders, and each SAE once, from its folder:
no weights travel through the object store. It rebuilds a grid's conditions (hooks included) from
the grid's spec, so hooks are made where they run."""

from __future__ import annotations

import inspect
import os
import socket
import time
from pathlib import Path

import torch

from mechvalue.measurement.tasks import GridJob, Task, measure_block


def set_threads(n: int) -> None:
    """Torch intra-op threads = this worker's CPU share (oversubscribed cores are several times slower)."""
    os.environ["OMP_NUM_THREADS"] = str(n)
    torch.set_num_threads(n)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set in this process
        pass


def load_kwargs(model) -> dict:
    """`load_model`'s arguments that give a worker the driver's model: from a name or folder, a
    dict of arguments, or a loaded model's info (name, device, dtype, prompt format)."""
    from mechvalue.lm.models import load_model

    params = list(inspect.signature(load_model).parameters)
    if isinstance(model, dict):
        kw = dict(model)
    elif isinstance(model, str):
        kw = {params[0]: model}
    else:
        dtype = getattr(model, "dtype", None)
        kw = {
            params[0]: model.name,
            "device": str(getattr(model, "device", "cpu")),
            "dtype": str(dtype).removeprefix("torch.") if dtype is not None else None,
            "prompt_format": getattr(model, "prompt_format", None),
        }
    name = kw.get(params[0])
    if isinstance(name, str) and Path(name).expanduser().exists():  # a folder: the same path on every node
        kw[params[0]] = str(Path(name).expanduser().absolute())
    return {k: v for k, v in kw.items() if k in params and v is not None}


class ModelWorker:
    """One model (and the SAEs its tasks name) in one process; `run` measures one task."""

    def __init__(self, index: int, load: dict, threads: int):
        from mechvalue.lm.models import load_model

        set_threads(threads)
        t = time.perf_counter()
        self.model, self.info = load_model(**load)
        self.index, self.device, self.threads = index, str(load.get("device", "cpu")), threads
        self.load_s = time.perf_counter() - t
        self._saes: dict[str, object] = {}
        self._jobs: dict[str, tuple] = {}

    def pid(self) -> int:
        return os.getpid()

    def _job(self, job: GridJob) -> tuple:
        """(measurer, conditions) of a job, built once per worker."""
        if job.key not in self._jobs:
            from mechvalue.measurement.scoring import Condition, Measurer

            measurer = Measurer(self.model, **job.measurer)
            if job.spec is None:
                conds = [Condition()]
            else:
                from mechvalue.interp.sae_formats import load_sae
                from mechvalue.measurement.grid import conditions

                if job.sae not in self._saes:
                    t = time.perf_counter()
                    self._saes[job.sae] = load_sae(job.sae, self.device)
                    self.load_s += time.perf_counter() - t
                values = sorted(job.items["value"].unique())
                conds = conditions(self._saes[job.sae], job.typical, job.spec, values)
            labels = [str(c.label) for c in conds]
            if job.labels and labels != job.labels:
                raise RuntimeError(f"worker {self.index} built conditions {labels}, the driver {job.labels}")
            self._jobs = {job.key: (measurer, conds)}  # one job at a time: drop the last one's hooks
        return self._jobs[job.key]

    def run(self, job: GridJob, task: Task):
        """(rows, timing) of one task."""
        from mechvalue.lm import tokens

        measurer, conds = self._job(job)
        t = time.perf_counter()
        tokens.take()
        with torch.no_grad():
            rows = measure_block(measurer, job.items, job.roles[task.lo : task.hi], conds[task.cond])
        return rows, {
            "worker": self.index,
            "node": socket.gethostname(),
            "pid": os.getpid(),
            "device": self.device,
            "threads": self.threads,
            "load_s": round(self.load_s, 3),
            "seconds": round(time.perf_counter() - t, 3),
            "tokens": tokens.take().as_dict(),  # run through this worker's model (mechvalue.lm.tokens)
        }


def apply_block(fn, shared, items: list, threads: int):
    """[fn(shared, x) for x in items] in a CPU worker (a block of bootstrap resamples), with timing."""
    set_threads(threads)
    t = time.perf_counter()
    out = [fn(shared, x) for x in items]
    return out, {
        "worker": f"{socket.gethostname()}:{os.getpid()}",
        "node": socket.gethostname(),
        "pid": os.getpid(),
        "device": "cpu",
        "threads": threads,
        "seconds": round(time.perf_counter() - t, 3),
    }
