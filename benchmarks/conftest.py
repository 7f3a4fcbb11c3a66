"""Benchmarks print their figures (run `pytest benchmarks/ -s`) and write them to
`benchmarks/results.json`; every ratio compares two paths measured in the same run, interleaved
(A, B, A, B, ...; medians: `interleaved`), so another process on the machine slows both alike."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

RESULTS = Path(__file__).with_name("results.json")


@pytest.fixture(scope="session")
def smollm2():
    from mechvalue.lm.models import load_model

    return load_model(device="cuda" if torch.cuda.is_available() else "cpu")


def interleaved(variants: dict[str, Callable], rounds: int, inner: int = 1, warmup: int = 1):
    """Median seconds per call of each variant, measured in rounds A, B, C, B, C, A, C, A, B, ...
    (the order rotates: each variant runs first, second, ... in turn); each sample times `inner`
    back-to-back calls (CUDA synchronised around the sample, not each call, so microsecond
    kernels are not timed as launch + sync). Returns (medians, last results)."""
    cuda = torch.cuda.is_available()
    samples: dict[str, list[float]] = {k: [] for k in variants}
    out: dict = {}
    names = list(variants)
    for r in range(warmup + rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            fn = variants[name]
            if cuda:
                torch.cuda.synchronize()
            t = time.perf_counter()
            for _ in range(inner):
                out[name] = fn()
            if cuda:
                torch.cuda.synchronize()
            if r >= warmup:
                samples[name].append((time.perf_counter() - t) / inner)
    return {k: statistics.median(v) for k, v in samples.items()}, out


def record(name: str, figures: dict) -> None:
    """Print and store one benchmark's figures (merged into results.json, keyed by device)."""
    dev = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    print(
        f"\n[{name}] "
        + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in figures.items())
    )
    data = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    data.setdefault(dev, {})[name] = figures
    RESULTS.write_text(json.dumps(data, indent=1))
