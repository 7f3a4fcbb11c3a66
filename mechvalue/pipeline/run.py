"""`mechvalue run`: the whole study on one model, as resumable stages.

Every stage writes its files into `OUT/<stage>/` and then `OUT/<stage>/done.json` (with its
time); a rerun skips finished stages, so an interrupted run resumes (the steering grid also
resumes inside its stage). `OUT/config.json` records every setting and library version, and a
rerun with different settings on the same folder is refused.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from mechvalue.pipeline.config import RunConfig
from mechvalue.pipeline.resources import Resources
from mechvalue.pipeline.stages import STAGES
from mechvalue.pipeline.workspace import Workspace, run_lock


def run(out: str | Path, cfg: RunConfig, progress: bool = True) -> Path:
    """Run (or resume) every stage; returns the report's path."""
    torch.manual_seed(cfg.seed)
    with run_lock(out):  # one run per folder at a time
        ws = Workspace(out, cfg)
        res = Resources(ws)
        for name, fn in STAGES:
            if ws.done(name):
                continue
            t0 = time.perf_counter()
            if progress:
                print(f"[mechvalue run] {name} ...", flush=True)
            info = fn(ws.dir(name), **res.arguments(fn)) or {}
            ws.finish(name, t0, **info)  # the done marker, written last
    return ws.out / "report" / "report.html"
