"""`mechvalue run --quick` end to end on the paths users take: a tiny random-weight Gemma-2 folder
with a Gemma Scope format SAE in bfloat16, and a tiny Llama-3 folder with an EleutherAI sparsify
TopK SAE (the session's `tiny_llama3_run`, also read in a browser by test_report.py). The numbers
mean nothing on random weights; every stage and the report must complete."""

from __future__ import annotations

from tests.interp.sae_fixtures import write_gemma_scope
from tests.lm.tiny import D_MODEL, write_tiny
from tests.pipeline.conftest import LAYER, quick_cli


def test_gemma2_with_gemma_scope_in_bfloat16(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = write_tiny("gemma2", tmp_path / "models")
    sae = write_gemma_scope(tmp_path / "gemma-scope-2b-pt-res", D_MODEL, 128, LAYER)
    out = quick_cli(tmp_path, model, sae, "--dtype", "bfloat16")
    assert '"dtype": "bfloat16"' in (out / "config.json").read_text()
    assert "Value profile" in (out / "report" / "report.html").read_text()


def test_llama3_with_a_sparsify_topk_sae(tiny_llama3_run):
    assert "Value profile" in (tiny_llama3_run / "report" / "report.html").read_text()
    assert '"sae": "' in (tiny_llama3_run / "config.json").read_text()
