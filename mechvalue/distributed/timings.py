"""Where time went: per stage, the wall time, the tasks and, per worker, its load time (model and
SAE), busy time, task count and processes (a worker restarted after a crash shows two pids);
the machine's matmul limit (`limit`: gflops, shape, threads, params, limit_tokens_per_s,
mechvalue.lm.limit), per pipeline stage (in `stages`, with the executor's) the tokens run through
the model and their rate against that limit (prompt_tokens, prompt_tokens_real, generated_tokens,
forwards, seconds, tokens_per_s, limit_tokens_per_s, ratio_to_limit, predicted_s, the planned
tokens, load_avg_1min), and the run's plan (`plan`,
mechvalue.pipeline.plan). Written to `OUT/timings.json`; `time_summary(out)` returns it for the
report."""

from __future__ import annotations

import json
import time
from pathlib import Path

from mechvalue.io import write_json

FILE = "timings.json"


class TimeLog:
    """Collects one run's per-stage, per-worker times (driver side)."""

    def __init__(self, executor: dict):
        from mechvalue.threads import thread_settings

        self.data: dict = {"executor": executor, "threads": thread_settings(), "stages": {}}
        self._t0: dict[str, float] = {}
        self._summing: str | None = None

    def start(self, stage: str) -> None:
        """A stage's tasks start: a new record, but within the pipeline stage `begin` named, whose
        task runs add up (validity measures several forms)."""
        self._t0[stage] = time.perf_counter()
        if stage != self._summing or stage not in self.data["stages"]:
            self.data["stages"][stage] = {"seconds": None, "tasks": 0, "workers": {}}

    def begin(self, stage: str) -> None:
        """A pipeline stage begins: what an earlier (interrupted) try of it recorded is dropped,
        and its task runs add up until the next `begin`."""
        self.data["stages"].pop(stage, None)
        self._summing = stage

    def task(self, stage: str, info: dict) -> None:
        """One finished task; `info`: worker, node, pid, device, threads, load_s, seconds."""
        s = self.data["stages"].setdefault(stage, {"seconds": None, "tasks": 0, "workers": {}})
        s["tasks"] += 1
        w = s["workers"].setdefault(
            str(info["worker"]),
            {
                "node": info.get("node"),
                "device": info.get("device"),
                "threads": info.get("threads"),
                "tasks": 0,
                "busy_s": 0.0,
                "load_s": 0.0,
                "pids": [],
            },
        )
        w["tasks"] += 1
        if info.get("tokens"):  # a worker process's model tokens, summed per stage
            s["tokens"] = {k: s.get("tokens", {}).get(k, 0) + v for k, v in info["tokens"].items()}
        w["busy_s"] = round(w["busy_s"] + info["seconds"], 3)
        if info.get("pid") not in w["pids"]:
            w["pids"].append(info.get("pid"))
            w["load_s"] = round(w["load_s"] + info.get("load_s", 0.0), 3)  # each process loads once

    def stage(self, name: str, seconds: float, cpu_seconds: float | None = None) -> None:
        """A whole pipeline stage's wall time (whatever ran it) and, if given, the CPU time this
        process spent on it (all its threads; Ray workers not included)."""
        self.data.setdefault("run_stages", {})[name] = round(seconds, 3)
        if cpu_seconds is not None:
            self.data.setdefault("run_stages_cpu", {})[name] = round(cpu_seconds, 3)

    def throughput(self, name: str, row: dict) -> None:
        """A pipeline stage's tokens and rate (`mechvalue.lm.limit.throughput` plus extra counts),
        into its `stages` entry (beside an executor stage's tasks and workers; `seconds` becomes
        the whole stage's)."""
        self.data["stages"].setdefault(name, {"tasks": 0, "workers": {}}).update(row)

    def stop(self, stage: str) -> dict:
        s = self.data["stages"][stage]
        s["seconds"] = round((s["seconds"] or 0) + time.perf_counter() - self._t0.pop(stage), 3)
        for w in s["workers"].values():
            w["utilisation"] = round(w["busy_s"] / s["seconds"], 3) if s["seconds"] else None
        return s

    def write(self, out: str | Path) -> None:
        write_json(self.data, Path(out) / FILE)

    def merge_from(self, out: str | Path) -> None:
        """Keep the stages an earlier (interrupted) run of the same folder recorded."""
        p = Path(out) / FILE
        if p.exists():
            old = json.loads(p.read_text())
            for k in ("stages", "run_stages", "run_stages_cpu"):
                self.data[k] = {**old.get(k, {}), **self.data.get(k, {})}
            for k in ("limit", "plan"):  # the latest run's, else the earlier one's
                if k in old and k not in self.data:
                    self.data[k] = old[k]


def time_summary(out: str | Path) -> dict | None:
    """The report's "where time went" data: executor, and per stage seconds, tasks and per-worker
    load/busy seconds, utilisation and pids; None for a folder without timings."""
    p = Path(out) / FILE
    return json.loads(p.read_text()) if p.exists() else None
