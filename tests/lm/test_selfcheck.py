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
