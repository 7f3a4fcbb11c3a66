"""`mechvalue run`: the whole study on one model, as resumable stages.

Every stage writes its files into `OUT/<stage>/` and then `OUT/<stage>/done.json` (with its
time); a rerun skips finished stages, so an interrupted run resumes (the steering grid also
resumes inside its stage). `OUT/config.json` records every setting and library version, and a
rerun with different settings on the same folder is refused. Every input is checked first
(`pipeline.preflight.check_run`: model, prompt format, SAE, inventory and questionnaires, layer,
output folder and its settings), so a bad one stops the run before any stage or file. The executor (default: one-thread
worker processes on a CPU with 2+ cores, else this process; or Ray workers: mechvalue.distributed)
runs the measure, grid, validity and steering-comparison measurements and the bootstrap; it
changes no result but through the torch thread count (workers: one); where time went goes to `OUT/timings.json`: every stage's wall seconds (`run_stages`) and
this process's CPU seconds (`run_stages_cpu`), per executor stage (measure, grid, validity, steer_compare,
bootstrap) its tasks and workers (`stages`), the machine's matmul limit (`limit`) and per stage the tokens
run through the model against it (in `stages`); before the first stage the plan (stages, prompts,
tokens, predicted seconds: mechvalue.pipeline.plan) is printed and kept in `plan`, and each stage
prints its predicted end.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from mechvalue.pipeline.config import RunConfig
from mechvalue.pipeline.resources import Resources
from mechvalue.pipeline.stages import STAGES
from mechvalue.pipeline.workspace import Workspace, run_lock


def preview(out: str | Path, cfg: RunConfig, executor=None) -> str:
    """The plan of `run(out, cfg, executor=executor)`'s pending stages (mechvalue.pipeline.plan),
    writing nothing and starting no worker."""
    from mechvalue.distributed.executor import make_executor
    from mechvalue.pipeline.plan import Plan, Unwritten
    from mechvalue.pipeline.preflight import check_run

    cfg = check_run(out, cfg)  # every input checked, the layer resolved
    torch.manual_seed(cfg.seed)
    ws = Unwritten(Path(out), cfg)
    pending = [name for name, _ in STAGES if not ws.done(name)]
    if not pending:
        return f"{out}: every stage is done"
    executor = executor or make_executor(progress=False, device=cfg.device)
    return Plan.make(Resources(ws, executor), pending).table()


def run(out: str | Path, cfg: RunConfig, progress: bool = True, executor=None) -> Path:
    """Run (or resume) every stage; returns the report's path."""
    from mechvalue.distributed.executor import make_executor
    from mechvalue.lm import tokens
    from mechvalue.pipeline.plan import Plan
    from mechvalue.pipeline.preflight import check_run

    cfg = check_run(out, cfg)  # every input, before the folder is touched; the layer resolved
    torch.manual_seed(cfg.seed)
    if executor is None:
        with make_executor(progress=progress, device=cfg.device) as ex:
            return run(out, cfg, progress, ex)
    with run_lock(out):  # one run per folder at a time
        ws = Workspace(out, cfg)
        res = Resources(ws, executor)
        executor.log.merge_from(ws.out)
        pending = [name for name, _ in STAGES if not ws.done(name)]
        plan = Plan.make(res, pending) if pending else None
        if plan is not None:
            executor.log.data["plan"] = plan.merged(executor.log.data.get("plan"))
            if plan.limit is not None:
                executor.log.data["limit"] = plan.limit
            if progress:
                print(plan.table(), flush=True)
        for name, fn in STAGES:
            if ws.done(name):
                continue
            t0, c0 = time.perf_counter(), time.process_time()
            if progress:
                print(f"[mechvalue run] {name} ... {plan.eta(name)}", flush=True)
            tokens.take()
            executor.log.begin(name)
            info = fn(ws.dir(name), res) or {}
            cpu = time.process_time() - c0
            seconds = time.perf_counter() - t0
            executor.log.stage(name, seconds, cpu)
            count = tokens.take()  # this process's, and the worker processes' the executor reported
            count = count.add(
                tokens.TokenCount(**executor.log.data["stages"].get(name, {}).get("tokens", {}))
            )
            executor.log.throughput(name, plan.actual(name, count, seconds))
            executor.log.write(ws.out)
            ws.finish(name, t0, cpu_seconds=round(cpu, 2), **info)  # the done marker, written last
    return ws.out / "report" / "report.html"
