"""Benchmarks print their figures (run `pytest benchmarks/ -s`) and write them to
`benchmarks/results.json`; every ratio compares two paths measured in the same run."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch

RESULTS = Path(__file__).with_name("results.json")


@pytest.fixture(scope="session")
def smollm2():
    from mechvalue.lm.models import load_model

    return load_model(device="cuda" if torch.cuda.is_available() else "cpu")


def timed(fn, repeat: int = 1):
    """(result, best wall time over `repeat` runs); CUDA is synchronised around each run."""
    best, out = float("inf"), None
    for _ in range(repeat):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t = time.perf_counter()
        out = fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    return out, best


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
