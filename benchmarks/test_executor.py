"""The default executor on a small CPU: one-thread worker processes (`processes`, one per core)
against this process at torch's threads (`local`), at load 0, 1 and 3 (that many busy processes,
started and killed here): the study's log-prob scoring of 6 personas on the 40 items.

Each load runs in a fresh process under the command line's thread policy
(`mechvalue.threads.POLICY`, set before torch loads), both arms interleaved in it (the order
rotates each round; medians over rounds; the workers load the model before the first round). The
workers' tables are those of a one-thread run: checked within 1e-5 of the local arm's. `processes`
is the default only because it is at least as fast everywhere: no slower than 0.95 of local on a
quiet machine, at least 1.2x beside busy processes."""

import json
import os
import statistics
import subprocess
import sys
import time

from conftest import need_smollm2, record, within_budget

from mechvalue.threads import POLICY

LOADS = (0, 1, 3)
ROUNDS = int(os.environ.get("MECHVALUE_BENCH_EXECUTOR_ROUNDS", "2"))
ROLES = int(os.environ.get("MECHVALUE_BENCH_EXECUTOR_ROLES", "6"))

_CHILD = """
import json, sys, time
import pandas as pd
from mechvalue.distributed.executor import ExecutorConfig, LocalExecutor, ProcessExecutor
from mechvalue.distributed.measure import measure_roles
from mechvalue.lm.models import load_model
from mechvalue.measurement.scoring import Measurer
from mechvalue.study.inventory import load_inventory
from mechvalue.study.roles import generate_roles
sys.path.insert(0, {bench!r})
from conftest import interleaved
import torch
model, info = load_model()
m, items, roles = Measurer(model, info.prompt_format), load_inventory(), generate_roles({roles}, 0)
pool = ProcessExecutor(ExecutorConfig("processes"), progress=False)
local = LocalExecutor(ExecutorConfig("local"), progress=False)
measure_roles(m, items, roles[:pool.workers()], pool, info)  # every worker loads the model
tables = {{}}
def arm(ex):
    def run():
        tables[ex.kind] = measure_roles(m, items, roles, ex, info)[1]
    return run
med, _ = interleaved({{"local": arm(local), "processes": arm(pool)}}, {rounds}, warmup=0)
pool.close()
gap = (tables["local"].select_dtypes("number") - tables["processes"].select_dtypes("number")).abs().max().max()
print(json.dumps({{"local_s": med["local"], "processes_s": med["processes"], "workers": pool.workers(),
                  "threads": torch.get_num_threads(), "max_abs_diff": float(gap)}}))
"""


def test_worker_processes_against_one_process_under_load():
    need_smollm2()
    bench = os.path.dirname(os.path.abspath(__file__))
    code = _CHILD.format(bench=bench, roles=ROLES, rounds=ROUNDS)
    env = os.environ | {k: v for k, v in POLICY.items() if k not in os.environ}
    figures: dict = {"roles": ROLES, "rounds": ROUNDS}
    for load in LOADS:
        within_budget()
        busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(load)]
        try:
            time.sleep(2 if load else 0)
            before = os.getloadavg()[0]
            r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
            assert r.returncode == 0, r.stderr[-3000:]
            got = json.loads(r.stdout.strip().splitlines()[-1])
            loadavg = statistics.mean([before, os.getloadavg()[0]])
        finally:
            for p in busy:
                p.kill()
                p.wait()
        speed = got["local_s"] / got["processes_s"]
        print(
            f"load {load}: local ({got['threads']} threads) {got['local_s']:.2f} s, processes "
            f"({got['workers']} x 1 thread) {got['processes_s']:.2f} s: {speed:.2f}x "
            f"(load average {loadavg:.2f}; tables within {got['max_abs_diff']:.1e})",
            flush=True,
        )
        figures |= {
            f"load{load}_local_s": got["local_s"],
            f"load{load}_processes_s": got["processes_s"],
            f"load{load}_processes_vs_local": speed,
            f"load{load}_loadavg_1min": round(loadavg, 2),
            f"load{load}_max_abs_diff": got["max_abs_diff"],
            "workers": got["workers"],
            "local_threads": got["threads"],
        }
    record("executor", figures)
    for load in LOADS:
        assert figures[f"load{load}_max_abs_diff"] <= 1e-5, load
        bar = 0.95 if load == 0 else 1.2
        assert figures[f"load{load}_processes_vs_local"] >= bar, f"load {load}"
