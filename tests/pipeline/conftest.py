"""The tiny-model quick run shared by the pipeline tests: a random-weight Llama-3 folder with an
EleutherAI sparsify TopK SAE, run as a user types the command (a fresh process), once per session."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mechvalue.pipeline.stages import STAGES

LAYER = 1
ROOT = Path(__file__).resolve().parents[2]


def quick_cli(tmp: Path, model: Path, sae: Path, *extra: str) -> Path:
    """`mechvalue run --quick` on `model` and `sae` in a fresh process; every stage must finish."""
    out = tmp / "run"
    args = ["run", "--quick", "--model", str(model), "--sae", str(sae), "--layer", str(LAYER), *extra]
    env = {k: v for k, v in os.environ.items() if k != "MECHVALUE_HUMAN"} | {"PYTHONPATH": str(ROOT)}
    r = subprocess.run(
        [sys.executable, "-m", "mechvalue.cli", *args, "--out", str(out)],
        capture_output=True,
        text=True,
        cwd=tmp,
        env=env,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    for s, _ in STAGES:
        assert (out / s / "done.json").exists(), s
    return out


@pytest.fixture(scope="session")
def tiny_llama3_run(tmp_path_factory) -> Path:
    pytest.importorskip("safetensors")
    from tests.interp.sae_fixtures import write_sparsify
    from tests.lm.tiny import D_MODEL, write_tiny

    tmp = tmp_path_factory.mktemp("tiny_llama3")
    model = write_tiny("llama3", tmp / "models")
    sae = write_sparsify(tmp / "checkpoints" / "run", D_MODEL, 128, k=8, hookpoint=f"layers.{LAYER}")
    return quick_cli(tmp, model, sae)
