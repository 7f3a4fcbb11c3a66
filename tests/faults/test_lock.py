"""One `mechvalue run` per folder: a second exits 2 naming the holder's pid; the lock of a killed
run is taken over."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
from contextlib import redirect_stderr
from pathlib import Path

from mechvalue.cli.main import main
from mechvalue.pipeline.workspace import run_lock

HOLD = (
    "import sys, time; from mechvalue.pipeline.workspace import run_lock\n"
    "with run_lock(sys.argv[1]):\n    print('held', flush=True); time.sleep(600)"
)


def _holder(folder: Path) -> subprocess.Popen:
    p = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(folder)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert p.stdout.readline().strip() == "held"
    return p


def test_second_run_on_a_folder_in_use_exits_2_naming_the_pid(tmp_path):
    p = _holder(tmp_path)
    try:
        err = io.StringIO()
        with redirect_stderr(err):
            code = main(["run", "--quick", "--out", str(tmp_path)])
        lines = err.getvalue().strip().splitlines()
        assert code == 2 and len(lines) == 1
        assert f"pid {p.pid}" in lines[0] and str(tmp_path) in lines[0]
        assert not (tmp_path / "config.json").exists()  # refused before touching the folder
    finally:
        p.kill()
        p.wait()


def test_stale_lock_of_a_killed_run_is_taken_over(tmp_path):
    p = _holder(tmp_path)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    assert (tmp_path / ".lock").read_text().strip() == str(p.pid)  # the dead holder's record is still there
    with run_lock(tmp_path):  # timeout 0: raises unless taken at once
        assert (tmp_path / ".lock").read_text().strip() == str(os.getpid())
