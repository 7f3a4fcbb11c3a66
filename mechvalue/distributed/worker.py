"""What runs inside a worker process. `ModelWorker` (a Ray actor, or the one worker of a
`processes` executor's process: `run_in_process`) loads the model once, from its name or folder,
with the public loaders, and each SAE once, from its folder: no weights travel between processes.
It rebuilds a grid's conditions (hooks included) from the grid's spec, so hooks are made where
they run."""

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
        from transformers.utils import logging as hf_logging

        from mechvalue.lm.models import load_model

        hf_logging.disable_progress_bar()  # one bar per worker would interleave with the driver's
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

            measurer = (job.measurer_type or Measurer)(self.model, **job.measurer)
            if job.spec is None:
                conds = [Condition()]
            else:
                from mechvalue.interp.sae_formats import load_sae

                if job.sae is not None and job.sae not in self._saes:
                    t = time.perf_counter()
                    self._saes[job.sae] = load_sae(job.sae, self.device)
                    self.load_s += time.perf_counter() - t
                values = sorted(job.items["value"].unique())
                conds = job.spec.build(self._saes.get(job.sae), job.typical, values)
            labels = [str(c.label) for c in conds]
            if job.labels and labels != job.labels:
                raise RuntimeError(f"worker {self.index} built conditions {labels}, the driver {job.labels}")
            self._jobs = {job.key: (measurer, conds)}  # one job at a time: drop the last one's hooks
        return self._jobs[job.key]

    def run(self, job: GridJob, task: Task):
        """(rows, timing) of one task (rows: a list of tables for a task measured together)."""
        from mechvalue.lm import tokens

        measurer, conds = self._job(job)
        t = time.perf_counter()
        tokens.take()
        roles = job.roles[task.lo : task.hi]
        with torch.no_grad():
            if task.conds:
                from mechvalue.measurement.condition_batch import measure_together

                rows = measure_together(measurer, job.items, roles, [conds[k] for k in task.conds])
            else:
                rows = measure_block(measurer, job.items, roles, conds[task.cond])
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


_HERE: dict = {"index": 0}  # a `processes` worker's number and its ModelWorker


def number_worker(counter) -> None:
    """A `processes` worker's initializer: its number (0, 1, ...) from the pool's shared counter."""
    with counter.get_lock():
        _HERE["index"] = counter.value
        counter.value += 1


def _in_process(load: dict) -> ModelWorker:
    """This process's ModelWorker for `load` (at one torch thread), made on first use."""
    if _HERE.get("load") != load:
        _HERE["worker"], _HERE["load"] = ModelWorker(_HERE["index"], load, 1), load
    return _HERE["worker"]


def load_in_process(load: dict) -> None:
    """Load `load`'s model in this `processes` worker now (`ProcessExecutor.prepare`)."""
    _in_process(load)


def run_in_process(load: dict, job: GridJob, task: Task):
    """One task in a `processes` worker: `ModelWorker.run`."""
    return _in_process(load).run(job, task)


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
