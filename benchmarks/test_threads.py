"""CPU thread policy beside other work: SmolLM2 throughput under each OpenMP setting at load 0, 1
and 3 (that many busy processes, started and killed here): a forward of 16 prompts x 128 tokens
(activations), a greedy decode of 16 prompts x 16 new tokens (the generate scorer) and the study's
log-prob scoring of one persona on the 40 items (shared prefix, small suffix batches: many short
parallel regions).

OpenMP reads its environment when torch loads, so every setting runs in a fresh process; the
settings run interleaved (the order rotates each round; medians over rounds), and each load's
figures are stored with the 1-minute load average seen while they were measured. The policy the
command line sets (`mechvalue.threads.POLICY`) keeps at least 0.7 of torch's default speed on a
quiet machine and is at least twice as fast beside busy processes."""

import os
import statistics
import subprocess
import sys
import time

from conftest import need_smollm2, record, within_budget

from mechvalue.threads import POLICY

# name -> environment set before torch loads (None: unset, whatever the caller had)
UNSET = {"OMP_NUM_THREADS": None, "OMP_WAIT_POLICY": None, "GOMP_SPINCOUNT": None}
POLICIES = {
    "default": UNSET,
    "threads1": UNSET | {"OMP_NUM_THREADS": "1"},
    "passive": UNSET | {"OMP_WAIT_POLICY": "PASSIVE"},
    "spin5000": UNSET | {"GOMP_SPINCOUNT": "5000"},
}
KINDS = ("forward", "decode", "score")
LOADS = (0, 1, 3)
ROUNDS = int(os.environ.get("MECHVALUE_BENCH_THREAD_ROUNDS", "3"))
# prompts per call; fewer where the machine is too busy for 16 to finish in time
BATCH = int(os.environ.get("MECHVALUE_BENCH_THREAD_BATCH", "16"))
# timed calls of each kind per process (after one warm-up), their median reported
CALLS = int(os.environ.get("MECHVALUE_BENCH_THREAD_CALLS", "3"))

_CHILD = """
import statistics, time
import torch
from mechvalue.lm.generation import greedy_generate, last_logits
from mechvalue.lm.models import load_model
from mechvalue.measurement.scoring import Measurer, measure
from mechvalue.study.inventory import load_inventory
from mechvalue.study.roles import generate_roles
model, info = load_model(check=False)
m, items, roles = Measurer(model, info.prompt_format), load_inventory(), generate_roles(1, 0)
g = torch.Generator().manual_seed(0)
prompts = torch.randint(100, 40000, ({batch}, 128), generator=g).tolist()
def timed(fn):
    fn()
    ts = []
    for _ in range({calls}):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)
fwd = timed(lambda: last_logits(model, prompts))
dec = timed(lambda: greedy_generate(model, prompts, 16, set()))
score = timed(lambda: measure(m, items, roles, progress=False))
print(fwd, dec, score, torch.get_num_threads())
"""


def _env(policy: dict) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in policy}
    return env | {k: v for k, v in policy.items() if v is not None}


def _seconds(policy: dict) -> tuple[tuple[float, ...], int]:
    """((forward s, decode s, scoring s), torch threads) in a fresh process under `policy`."""
    code = _CHILD.format(calls=CALLS, batch=BATCH)
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=_env(policy)
    )
    *secs, threads = r.stdout.split()[-4:]
    return tuple(map(float, secs)), int(threads)


def test_thread_policies_under_load():
    need_smollm2()
    names = list(POLICIES)
    figures: dict = {"prompts": BATCH}
    for load in LOADS:
        within_budget()
        busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(load)]
        samples: dict[str, list[tuple[float, ...]]] = {k: [] for k in names}
        loadavg: list[float] = []
        try:
            time.sleep(2 if load else 0)
            for r in range(ROUNDS):
                for name in names[r % len(names) :] + names[: r % len(names)]:
                    secs, figures[f"{name}_threads"] = _seconds(POLICIES[name])
                    samples[name].append(secs)
                    loadavg.append(os.getloadavg()[0])
                    took = ", ".join(f"{k} {t:.3f} s" for k, t in zip(KINDS, secs))
                    print(f"load {load} round {r} {name}: {took} (load {loadavg[-1]:.2f})", flush=True)
        finally:
            for p in busy:
                p.kill()
                p.wait()
        figures[f"load{load}_loadavg_1min"] = round(statistics.mean(loadavg), 2)
        for i, kind in enumerate(KINDS):
            med = {k: statistics.median(s[i] for s in v) for k, v in samples.items()}
            for name in names:
                figures[f"load{load}_{kind}_{name}_s"] = med[name]
                figures[f"load{load}_{kind}_{name}_vs_default"] = med["default"] / med[name]
    record("threads", figures)
    chosen = next(k for k, v in POLICIES.items() if {a: b for a, b in v.items() if b} == POLICY)
    for n in LOADS:
        for kind in KINDS:
            bar = 0.7 if n == 0 else 2.0
            assert figures[f"load{n}_{kind}_{chosen}_vs_default"] >= bar, f"{chosen}: {kind} at load {n}"
