"""`mechvalue doctor`: what it prints, and exit 2 for a failed self-check or a shadowed package."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch

from mechvalue.lm.selfcheck import record_key

ROOT = Path(__file__).resolve().parents[1]


def doctor(cwd: Path, cache: Path, *args: str) -> subprocess.CompletedProcess:
    env = {"MECHVALUE_CACHE": str(cache), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "mechvalue.cli", "doctor", *args], cwd=cwd, env=env, capture_output=True, text=True
    )


def recorded(cache: Path, passed: bool) -> None:
    key = record_key("smollm2-135m-instruct", torch.float32, "cpu")
    entry = {"date": "2026-12-06T00:00:00", "passed": passed}
    entry.update({"errors": {"cached decoding": 3e-6}} if passed else {"failure": "self-check failed: KV off"})
    (cache / "selfcheck.json").write_text(json.dumps({key: entry}))


def test_doctor_reports_versions_threads_cache_and_the_recorded_check(tmp_path):
    cache = tmp_path / "cache"
    (cache / "saes").mkdir(parents=True)
    (cache / "saes" / "x.bin").write_bytes(b"0" * 4096)
    recorded(cache, passed=True)
    r = doctor(tmp_path, cache)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    for want in ("transformers ", "transformer-lens ", "torch build: ", "threads: torch ", "load average"):
        assert want in out, want
    assert f"cache: {cache} (4 KiB: saes 4 KiB)" in out
    assert "self-check (smollm2-135m-instruct): passed at the model load of 2026-12-06T00:00:00" in out


def test_doctor_exits_2_on_a_failed_self_check(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    recorded(cache, passed=False)
    r = doctor(tmp_path, cache)
    assert r.returncode == 2 and "FAILED at the model load of 2026-12-06T00:00:00: self-check failed" in r.stdout


def test_doctor_exits_2_when_a_folder_shadows_an_installed_package(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    recorded(cache, passed=True)
    (tmp_path / "gguf").mkdir()
    (tmp_path / "gguf" / "__init__.py").write_text("")
    (tmp_path / "run.py").write_text("import sys\nfrom mechvalue.cli.main import main\nsys.exit(main(['doctor']))\n")
    env = {"MECHVALUE_CACHE": str(cache), "PATH": "/usr/bin:/bin"}
    r = subprocess.run([sys.executable, "run.py"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert r.returncode == 2, r.stdout + r.stderr
    assert f"SHADOWED: 'import gguf' finds {tmp_path / 'gguf' / '__init__.py'}" in r.stdout
