"""`mechvalue run --quick` end to end on the paths users take: a tiny random-weight Gemma-2 folder
with a Gemma Scope format SAE in bfloat16, and a tiny Llama-3 folder with an EleutherAI sparsify
TopK SAE. The numbers mean nothing on random weights; every stage and the report must complete."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mechvalue.pipeline.stages import STAGES
from tests.interp.sae_fixtures import write_gemma_scope, write_sparsify
from tests.lm.tiny import D_MODEL, write_tiny

LAYER = 1
ROOT = Path(__file__).resolve().parents[2]


def _run(tmp_path, monkeypatch, model, sae, *extra):
    """The command as a user types it, in a fresh process (nothing shared with earlier tests)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MECHVALUE_HUMAN", raising=False)
    out = tmp_path / "run"
    args = ["run", "--quick", "--model", str(model), "--sae", str(sae), "--layer", str(LAYER), *extra]
    r = subprocess.run([sys.executable, "-m", "mechvalue.cli", *args, "--out", str(out)], capture_output=True,
                       text=True, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    for s, _ in STAGES:
        assert (out / s / "done.json").exists(), s
    assert "Value profile" in (out / "report" / "report.html").read_text()
    return out


def test_gemma2_with_gemma_scope_in_bfloat16(tmp_path, monkeypatch):
    model = write_tiny("gemma2", tmp_path / "models")
    sae = write_gemma_scope(tmp_path / "gemma-scope-2b-pt-res", D_MODEL, 128, LAYER)
    out = _run(tmp_path, monkeypatch, model, sae, "--dtype", "bfloat16")
    assert '"dtype": "bfloat16"' in (out / "config.json").read_text()


def test_llama3_with_a_sparsify_topk_sae(tmp_path, monkeypatch):
    pytest.importorskip("safetensors")
    model = write_tiny("llama3", tmp_path / "models")
    sae = write_sparsify(tmp_path / "checkpoints" / "run", D_MODEL, 128, k=8, hookpoint=f"layers.{LAYER}")
    _run(tmp_path, monkeypatch, model, sae)
