"""Executors: `local` (this process, one task after another), `processes` (one-thread worker
processes on this machine, one per core) and `ray` (tasks spread over Ray workers on one machine or
a cluster). All run the same tasks and hand each finished one to the driver's `on_done`, so what is
written does not depend on the executor, only on the torch thread count a task ran at (a BLAS
reduction's order follows its thread split): workers run at one thread, so their tables equal a
one-thread local run's, whatever the number of workers or the machine's load, and are within 1e-5
of a two-thread one's.

`auto` (the default) is `processes` on a CPU with two or more cores, else `local`: on a small CPU,
torch's threads in one process wait for each other at every parallel region, and beside another
busy process (whose thread holds a core) they wait for a descheduled partner; one-thread workers
never wait for each other (benchmarks/test_executor.py: quiet, beside one busy process).

With Ray, model-holding workers are actors (one per GPU with `num_gpus=1`, else one per
`cpus_per_worker` CPUs) that load the model and SAE once, from their names and folders. A worker
that dies mid-task is restarted by Ray (`max_restarts`) and the task retried there
(`max_task_retries`); a task that fails on every try fails the run, naming its condition, after
the tasks still running have finished and been written.
"""

from __future__ import annotations

import itertools
import math
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Literal, get_args

import pandas as pd
from tqdm.auto import tqdm

from mechvalue.distributed.timings import TimeLog
from mechvalue.errors import MechValueError
from mechvalue.measurement.tasks import GridJob, Task

ExecutorKind = Literal["auto", "local", "processes", "ray"]


class TaskFailed(MechValueError):
    """A task failed on every try; the message names it. Finished tasks are on disk."""


def _ray(name: str) -> dict:
    return {"flag": f"--ray-{name}"}


@dataclass(frozen=True)
class ExecutorConfig:
    """Where tasks run: the `--executor` and `--ray-*` options of every command that runs tasks."""

    kind: ExecutorKind = field(default="auto", metadata={"flag": "--executor"})
    """auto: processes on a CPU with 2 or more cores, else local; local: this process; processes:
    one-thread model workers on this machine, one per core (each holds the model); ray: tasks over
    Ray workers (pip install -e .[ray])"""
    address: str | None = field(default=None, metadata=_ray("address"))
    """Ray cluster to join ('auto' after `ray start`, 'ray://host:10001', host:port); default: start a
    local Ray instance"""
    workers: int | None = None
    """worker processes (processes: default one per core; ray: default one per GPU with --device
    cuda, else one per CPU share)"""
    cpus_per_worker: int = field(default=1, metadata=_ray("cpus-per-worker"))
    """CPUs (torch threads) per Ray worker"""
    max_restarts: int = field(default=3, metadata=_ray("max-restarts"))
    """restarts of a Ray worker process that dies"""
    max_task_retries: int = field(default=1, metadata=_ray("max-task-retries"))
    """retries of a task whose worker died (1: a task is tried twice)"""

    def __post_init__(self):
        if self.kind not in get_args(ExecutorKind):
            raise MechValueError(f"--executor must be one of {get_args(ExecutorKind)}, not {self.kind!r}")
        if self.kind != "ray" and self.address:
            raise MechValueError("--ray-address needs --executor ray")
        for name, flag in (("workers", "--workers"), ("cpus_per_worker", "--ray-cpus-per-worker")):
            v = getattr(self, name)
            if v is not None and v < 1:
                raise MechValueError(f"{flag} must be at least 1, not {v}")


def cpu_cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def make_executor(cfg: ExecutorConfig | None = None, progress: bool = True, device: str = "cpu") -> Executor:
    """The executor `cfg` names; `auto` resolved for `device` (the model's: a GPU model runs here)."""
    cfg = cfg or ExecutorConfig()
    kind = cfg.kind
    if kind == "auto":
        kind = "processes" if str(device) == "cpu" and cpu_cores() >= 2 and cfg.workers != 1 else "local"
    cls = {"local": LocalExecutor, "processes": ProcessExecutor, "ray": RayExecutor}[kind]
    return cls(cfg, progress)


class Executor:
    """Runs tasks and records where time went (`log`, per stage and worker)."""

    kind: str = "local"

    def __init__(self, cfg: ExecutorConfig, progress: bool = True):
        self.cfg, self.progress = cfg, progress
        self.log = TimeLog(self.describe())

    def describe(self) -> dict:
        return asdict(self.cfg) | {"kind": self.kind}  # `auto` as resolved

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        pass

    def workers(self, model=None) -> int:
        return 1

    def prepare(self, model) -> None:
        """Start the workers for `model` now, so they load while the driver does other work."""

    def run_tasks(
        self,
        stage: str,
        tasks: list[Task],
        on_done: Callable[[Task, pd.DataFrame], None],
        *,
        local: Callable[[Task], pd.DataFrame],
        job: GridJob | None,
        model,
    ) -> None:
        """Run model tasks: `local(task)` in this process, or `job`'s task on a worker that loads
        `model` (a loaded model, its name or folder: see `worker.load_kwargs`); `on_done(task, rows)`
        in this process as each finishes."""
        raise NotImplementedError

    def map(self, stage: str, fn: Callable, shared, items: list) -> list:
        """[fn(shared, x) for x in items], in order; `fn` a module-level function (CPU work)."""
        raise NotImplementedError


class LocalExecutor(Executor):
    kind = "local"

    def run_tasks(self, stage, tasks, on_done, *, local, job, model) -> None:
        self.log.start(stage)
        for t in tqdm(tasks, desc=stage, unit="task", disable=not self.progress):
            t0 = time.perf_counter()
            rows = local(t)
            on_done(t, rows)
            self.log.task(stage, _local_info(time.perf_counter() - t0))
        self.log.stop(stage)

    def map(self, stage, fn, shared, items) -> list:
        self.log.start(stage)
        t0 = time.perf_counter()
        out = [fn(shared, x) for x in items]
        self.log.task(stage, _local_info(time.perf_counter() - t0))
        self.log.stop(stage)
        return out


def _local_info(seconds: float) -> dict:
    return {
        "worker": "local",
        "node": os.uname().nodename,
        "pid": os.getpid(),
        "device": None,
        "threads": None,
        "load_s": 0.0,
        "seconds": round(seconds, 3),
    }


class ProcessExecutor(LocalExecutor):
    """Model tasks on one-thread worker processes of this machine (`concurrent.futures`, spawned):
    each loads the model once (with its load-time self-check) on its first task, and the SAEs its
    tasks name; `prepare` starts them early. CPU work (`map`: bootstrap blocks) runs on a process
    pool of the same size. A task that fails stops the stage after the running ones are written,
    naming its condition; a worker that dies ends the pool (a later stage starts a new one)."""

    kind = "processes"

    def __init__(self, cfg: ExecutorConfig, progress: bool = True):
        super().__init__(cfg, progress)
        self._pool = None
        self._load: dict | None = None

    def workers(self, model=None) -> int:
        return self.cfg.workers or cpu_cores()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool, self._load = None, None

    def _pool_for(self, model):
        """The pool whose workers hold `model` (a new one for another model)."""
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        from mechvalue.distributed.worker import load_kwargs, number_worker

        load = load_kwargs(model)
        if self._pool is None or load != self._load:
            self.close()
            ctx = multiprocessing.get_context("spawn")  # no copy of this process's torch threads
            counter = ctx.Value("i", 0)
            self._pool = ProcessPoolExecutor(
                self.workers(), mp_context=ctx, initializer=number_worker, initargs=(counter,)
            )
            self._load = load
        return self._pool

    def prepare(self, model) -> None:
        from mechvalue.distributed.worker import load_in_process

        pool = self._pool_for(model)
        for _ in range(self.workers()):  # each submit finds no idle worker, so starts a process
            pool.submit(load_in_process, self._load)

    def run_tasks(self, stage, tasks, on_done, *, local, job, model) -> None:
        from concurrent.futures import CancelledError, as_completed

        from mechvalue.distributed.worker import run_in_process

        pool = self._pool_for(model)
        futures = {pool.submit(run_in_process, self._load, job, t): t for t in tasks}
        failure = None
        self.log.start(stage)
        desc = f"{stage} ({self.workers()} workers)"
        with tqdm(total=len(tasks), desc=desc, unit="task", disable=not self.progress) as bar:
            for f in as_completed(futures):
                t = futures[f]
                try:
                    rows, info = f.result()
                except CancelledError:
                    continue
                except Exception as e:  # the task's error, or the pool broken by a dead worker
                    failure = failure or (t, e)
                    for g in futures:  # submit nothing more; the running tasks finish and are written
                        g.cancel()
                    continue
                on_done(t, rows)
                self.log.task(stage, info)
                bar.update()
        self.log.stop(stage)
        if failure:
            from concurrent.futures.process import BrokenProcessPool

            if isinstance(failure[1], BrokenProcessPool):
                self._pool = self._load = None  # a later stage starts fresh workers
            raise _failed(stage, *failure, 1)

    def map(self, stage, fn, shared, items) -> list:
        from concurrent.futures import ProcessPoolExecutor
        from functools import partial

        self.log.start(stage)
        t0 = time.perf_counter()
        per = max(1, math.ceil(len(items) / (4 * self.workers())))  # about 4 blocks per worker
        with ProcessPoolExecutor(self.workers()) as pool:
            out = list(pool.map(partial(fn, shared), items, chunksize=per))
        self.log.task(stage, _local_info(time.perf_counter() - t0))
        self.log.stop(stage)
        return out


_POOLS: dict[tuple, list] = {}  # (model, device, threads, n): live actors, reused by later executors


class RayExecutor(Executor):
    kind = "ray"

    def __init__(self, cfg: ExecutorConfig, progress: bool = True):
        super().__init__(cfg, progress)
        try:
            import ray
        except ImportError:
            raise MechValueError("--executor ray needs Ray: pip install -e .[ray]") from None
        self.ray = ray
        self.started = False
        if not ray.is_initialized():
            if cfg.address:
                ray.init(address=cfg.address, log_to_driver=False)
            else:  # a local instance sized for the workers asked for (default: every core)
                n = cfg.workers * cfg.cpus_per_worker if cfg.workers else None
                ray.init(
                    num_cpus=n, include_dashboard=False, log_to_driver=False, object_store_memory=512 * 2**20
                )
            self.started = True
        self.log.data["executor"]["resources"] = {
            k: v for k, v in ray.cluster_resources().items() if k in ("CPU", "GPU", "memory")
        }

    def close(self) -> None:
        if self.started:  # our own instance (or connection): its actors go with it
            _POOLS.clear()
            self.ray.shutdown()
            self.started = False

    def workers(self, model=None) -> int:
        from mechvalue.distributed.worker import load_kwargs

        if self.cfg.workers:
            return self.cfg.workers
        res = self.ray.cluster_resources()
        if model is not None and str(load_kwargs(model).get("device", "cpu")).startswith("cuda"):
            return max(1, int(res.get("GPU", 0)))
        return max(1, int(res.get("CPU", 1) // self.cfg.cpus_per_worker))

    def _actors(self, model) -> list:
        from mechvalue.distributed.worker import ModelWorker, load_kwargs

        kw = load_kwargs(model)
        gpu = str(kw.get("device", "cpu")).startswith("cuda")
        if gpu:  # Ray gives each GPU actor its own CUDA_VISIBLE_DEVICES: inside, the GPU is "cuda"
            kw["device"] = "cuda"
        n, c = self.workers(model), self.cfg.cpus_per_worker
        key = (repr(sorted(kw.items())), c, n, self.cfg.max_restarts, self.cfg.max_task_retries)
        if key not in _POOLS:
            cls = self.ray.remote(ModelWorker).options(
                num_cpus=c,
                num_gpus=1 if gpu else 0,
                max_restarts=self.cfg.max_restarts,
                max_task_retries=self.cfg.max_task_retries,
                max_concurrency=1,
            )
            _POOLS[key] = [cls.remote(i, kw, c) for i in range(n)]
        return _POOLS[key]

    def prepare(self, model) -> None:
        self._actors(model)

    def _release_workers(self) -> None:
        """Model workers keep their CPUs (and GPUs) while alive, so CPU-only tasks (bootstrap blocks)
        queued behind them would wait forever on a cluster they fill: end them first (a later model
        stage starts them again)."""
        for actors in _POOLS.values():
            for a in actors:
                self.ray.kill(a)
        _POOLS.clear()

    def worker_pids(self, model) -> list[int]:
        """The current process of each model worker (tests kill one to check recovery)."""
        return self.ray.get([a.pid.remote() for a in self._actors(model)])

    def run_tasks(self, stage, tasks, on_done, *, local, job, model) -> None:
        ray = self.ray
        actors = self._actors(model)
        job_ref = ray.put(job)
        queue, running, failure = deque(tasks), {}, None
        self.log.start(stage)
        with tqdm(
            total=len(tasks),
            desc=f"{stage} (ray, {len(actors)} workers)",
            unit="task",
            disable=not self.progress,
        ) as bar:
            for i in range(len(actors)):
                if queue:
                    t = queue.popleft()
                    running[actors[i].run.remote(job_ref, t)] = (t, i)
            while running:
                (ref,), _ = ray.wait(list(running), num_returns=1)
                t, i = running.pop(ref)
                try:
                    rows, info = ray.get(ref)
                except (ray.exceptions.RayError, MechValueError) as e:
                    failure = failure or (t, e)
                    queue.clear()  # submit nothing more; let the running tasks finish and be written
                    continue
                on_done(t, rows)
                self.log.task(stage, info)
                bar.update()
                if queue:
                    nxt = queue.popleft()
                    running[actors[i].run.remote(job_ref, nxt)] = (nxt, i)
        self.log.stop(stage)
        if failure:
            if isinstance(failure[1], ray.exceptions.RayActorError):  # a later grid starts fresh workers
                for key in [k for k, v in _POOLS.items() if v is actors]:
                    del _POOLS[key]
            raise _failed(stage, *failure, 1 + self.cfg.max_task_retries)

    def map(self, stage, fn, shared, items) -> list:
        from mechvalue.distributed.worker import apply_block

        ray = self.ray
        self._release_workers()
        c = self.cfg.cpus_per_worker
        remote = ray.remote(apply_block).options(num_cpus=c, max_retries=self.cfg.max_task_retries)
        per = math.ceil(len(items) / max(1, 4 * self.workers()))  # about 4 blocks per worker
        blocks = [items[i : i + per] for i in range(0, len(items), per)]
        shared_ref = ray.put(shared)
        refs = {remote.remote(fn, shared_ref, b, c): k for k, b in enumerate(blocks)}
        out: list = [None] * len(blocks)
        self.log.start(stage)
        with tqdm(total=len(blocks), desc=f"{stage} (ray)", unit="task", disable=not self.progress) as bar:
            pending = list(refs)
            while pending:
                (ref,), pending = ray.wait(pending, num_returns=1)
                k = refs[ref]
                try:
                    out[k], info = ray.get(ref)
                except ray.exceptions.RayError as e:
                    for r in pending:
                        ray.cancel(r)
                    t = Task(k, k * per, k * per + len(blocks[k]), f"block {k}", "resamples")
                    raise _failed(stage, t, e, 1 + self.cfg.max_task_retries) from None
                self.log.task(stage, info)
                bar.update()
        self.log.stop(stage)
        return list(itertools.chain.from_iterable(out))


def _failed(stage: str, task: Task, err: Exception, tries: int) -> TaskFailed:
    cause = getattr(err, "cause", None) or err
    why = str(cause).strip().splitlines()[-1][:300] if str(cause).strip() else type(cause).__name__
    if isinstance(cause, MechValueError):
        return TaskFailed(f"{stage}: {task.describe()}: {cause}")
    tried = "tried once" if tries == 1 else f"tried up to {tries} times"
    return TaskFailed(
        f"{stage}: {task.describe()} failed ({type(cause).__name__}; {tried}): {why}; finished "
        "tasks are on disk, rerun to resume"
    )
