"""The load-time self-check: cached and shared-prefix logits against full passes, and a clear
stop (exit 2, one line naming the installed versions) when the installed libraries disagree."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mechvalue.errors import MechValueError
from mechvalue.lm import compat
from mechvalue.lm.models import load_model
from mechvalue.lm.selfcheck import self_check
from tests.lm.tiny import write_tiny

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_tiny("gemma2", tmp_path_factory.mktemp("tiny"))


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_self_check_passes_on_the_installed_libraries(folder, dtype):
    err = self_check(load_model(str(folder), dtype=dtype, check=False))
    assert set(err) == {"cached decoding", "shared-prefix scoring"}
    assert max(err.values()) < (1e-4 if dtype == "float32" else 0.1)


def test_an_unfilled_cache_stops_loading_with_the_versions(folder, monkeypatch):
    """A cache the model never sees (as on transformers 5.24 before mechvalue.lm.compat) is caught."""
    monkeypatch.setattr(compat, "cache_kwargs", lambda bridge, cache: {})
    with pytest.raises(MechValueError, match=r"self-check failed.*transformers .*transformer-lens"):
        load_model(str(folder))


def test_a_model_command_exits_2_with_one_line(folder, tmp_path):
    """The same failure from the CLI: exit 2, one line, no traceback."""
    (tmp_path / "sitecustomize.py").write_text(
        "import mechvalue.lm.compat as c\nc.cache_kwargs = lambda bridge, cache: {}\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "mechvalue.cli.main",
            "measure",
            "--model",
            str(folder),
            "--roles",
            "2",
            "--out",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert r.returncode == 2, r.stderr[-2000:]
    lines = [ln for ln in r.stderr.splitlines() if "self-check failed" in ln]
    assert len(lines) == 1 and "Traceback" not in r.stderr
    assert not (tmp_path / "out" / "values.csv").exists()


def test_attention_that_never_sees_the_cache_stops_loading(folder, monkeypatch):
    """TransformerLens's attention reading only `past_key_values` while transformers passes `cache=`
    (the 5.24 breakage, without compat's alias) is caught by the self-check, not left to a warning."""
    monkeypatch.setattr(compat, "_alias_cache", lambda module, args, kwargs: None)
    with pytest.raises(MechValueError, match=r"self-check failed: .*cached decoding off"):
        load_model(str(folder))


def test_generate_warns_of_no_deprecated_cache_keyword(smollm2):
    """TransformerLens's `generate` and mechvalue's `greedy_generate` decode through the KV cache
    without transformers' "`past_key_values` is deprecated" FutureWarning (the cache is fine: the
    self-check ran at load), and agree token for token."""
    import warnings

    from mechvalue.lm.generation import greedy_generate
    from mechvalue.lm.selfcheck import PROBE

    tokens = smollm2.to_tokens(PROBE)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        lens = smollm2.generate(tokens, max_new_tokens=6, do_sample=False, verbose=False, use_past_kv_cache=True)
        bare = smollm2.bridge.generate(tokens, max_new_tokens=6, do_sample=False, verbose=False)
        ours = greedy_generate(smollm2, [tokens[0].tolist()], 6, stop_ids=set())
    said = [str(w.message) for w in caught if "past_key_values" in str(w.message)]
    assert not said, said
    assert lens[0, tokens.shape[1] :].tolist() == ours[0] == bare[0, tokens.shape[1] :].tolist()
