"""`mechvalue run`: the whole study on one model, as resumable stages.

Every stage writes its files into `OUT/<stage>/` and then `OUT/<stage>/done.json` (with its
time); a rerun skips finished stages, so an interrupted run resumes (the steering grid also
resumes inside its stage). `OUT/config.json` records every setting and library version, and a
rerun with different settings on the same folder is refused. Every input is checked first
(`pipeline.preflight.check_run`: model, prompt format, SAE, inventory and questionnaires, layer,
output folder and its settings), so a bad one stops the run before any stage or file. The
executor (this process, or Ray workers: mechvalue.distributed) runs the measure, grid and
bootstrap work and does not change the results; where time went goes to `OUT/timings.json`: every stage's wall seconds (`run_stages`) and
this process's CPU seconds (`run_stages_cpu`), and per executor stage (measure, grid, bootstrap)
its tasks and workers (`stages`).
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from mechvalue.pipeline.config import RunConfig
from mechvalue.pipeline.resources import Resources
from mechvalue.pipeline.stages import STAGES
from mechvalue.pipeline.workspace import Workspace, run_lock


def run(out: str | Path, cfg: RunConfig, progress: bool = True, executor=None) -> Path:
    """Run (or resume) every stage; returns the report's path."""
    from mechvalue.distributed.executor import make_executor
    from mechvalue.pipeline.preflight import check_run

    cfg = check_run(out, cfg)  # every input, before the folder is touched; the layer resolved
    torch.manual_seed(cfg.seed)
    executor = executor or make_executor(progress=progress)
    with run_lock(out):  # one run per folder at a time
        ws = Workspace(out, cfg)
        res = Resources(ws, executor)
        executor.log.merge_from(ws.out)
        for name, fn in STAGES:
            if ws.done(name):
                continue
            t0, c0 = time.perf_counter(), time.process_time()
            if progress:
                print(f"[mechvalue run] {name} ...", flush=True)
            info = fn(ws.dir(name), res) or {}
            cpu = time.process_time() - c0
            executor.log.stage(name, time.perf_counter() - t0, cpu)
            executor.log.write(ws.out)
            ws.finish(name, t0, cpu_seconds=round(cpu, 2), **info)  # the done marker, written last
    return ws.out / "report" / "report.html"
