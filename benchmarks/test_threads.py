"""CPU thread policy beside other work: SmolLM2 forward throughput (16 prompts x 128 tokens) under
each OpenMP setting, at load 0, 1 and 3 (that many busy processes started and killed here).

OpenMP reads its environment when torch loads, so every setting runs in a fresh process; the
settings run interleaved (the order rotates each round; medians over rounds), and each figure is
stored with the 1-minute load average seen while it was measured."""

import os
import statistics
import subprocess
import sys
import time

from conftest import need_smollm2, record, within_budget

# name -> environment set before torch loads (None: left unset, whatever the caller had removed)
POLICIES = {
    "default": {"OMP_NUM_THREADS": None, "OMP_WAIT_POLICY": None},
    "threads1": {"OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": None},
    "passive": {"OMP_NUM_THREADS": None, "OMP_WAIT_POLICY": "PASSIVE"},
    "spin10k": {"OMP_NUM_THREADS": None, "OMP_WAIT_POLICY": None, "GOMP_SPINCOUNT": "10000"},
}
LOADS = (0, 1, 3)
ROUNDS = int(os.environ.get("MECHVALUE_BENCH_THREAD_ROUNDS", "3"))
CALLS = 3  # timed forward passes per process (after one warm-up), their median reported

_CHILD = """
import statistics, time
import torch
from mechvalue.lm.generation import last_logits
from mechvalue.lm.models import load_model
model, _ = load_model(check=False)
g = torch.Generator().manual_seed(0)
prompts = torch.randint(100, 40000, (16, 128), generator=g).tolist()
last_logits(model, prompts)
ts = []
for _ in range({calls}):
    t = time.perf_counter()
    last_logits(model, prompts)
    ts.append(time.perf_counter() - t)
print(statistics.median(ts), torch.get_num_threads())
"""


def _env(policy: dict) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in policy and k != "MECHVALUE_THREADS"}
    env["MECHVALUE_THREADS"] = "off"  # the CLI's own policy stays out of the figures
    return env | {k: v for k, v in policy.items() if v is not None}


def _forward_s(policy: dict) -> tuple[float, int]:
    code = _CHILD.format(calls=CALLS)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=_env(policy))
    s, threads = r.stdout.split()[-2:]
    return float(s), int(threads)


def test_thread_policies_under_load():
    need_smollm2()
    names = list(POLICIES)
    figures: dict = {}
    for load in LOADS:
        within_budget()
        busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(load)]
        samples: dict[str, list[float]] = {k: [] for k in names}
        loadavg: list[float] = []
        try:
            time.sleep(2 if load else 0)
            for r in range(ROUNDS):
                for name in names[r % len(names) :] + names[: r % len(names)]:
                    s, threads = _forward_s(POLICIES[name])
                    samples[name].append(s)
                    figures[f"{name}_threads"] = threads
                    loadavg.append(os.getloadavg()[0])
        finally:
            for p in busy:
                p.kill()
                p.wait()
        med = {k: statistics.median(v) for k, v in samples.items()}
        figures[f"load{load}_loadavg_1min"] = round(statistics.mean(loadavg), 2)
        for name in names:
            figures[f"load{load}_{name}_tokens_per_s"] = 16 * 128 / med[name]
            figures[f"load{load}_{name}_vs_default"] = med["default"] / med[name]
    record("threads", figures)
