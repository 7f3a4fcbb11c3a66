"""The research-script example and the README's Python blocks run as is (`-m slow`: the first run
trains the recipe SAE for SmolLM2's layer 15, minutes on a CPU)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(args: list[str]) -> str:
    r = subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=ROOT, timeout=1800)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout


@pytest.mark.slow
def test_research_hooks_example_runs_as_is():
    out = _run(["examples/research_hooks.py"])
    assert re.search(r"clamped feature \d+: activation at the span now \[0\.0, 0\.0\]", out), out
    steered = re.search(r"^steered .*: (.*)$", out, re.M)
    plain = re.search(r"^unsteered: (.*)$", out, re.M)
    assert steered and plain and steered.group(1) != plain.group(1), out


README_BLOCKS = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)


@pytest.mark.slow
@pytest.mark.parametrize("block", range(len(README_BLOCKS)))
def test_readme_python_blocks_run_as_is(tmp_path, block):
    """Every Python block of the README as printed (the research-API script, the hooks snippet)."""
    script = tmp_path / "snippet.py"
    script.write_text(README_BLOCKS[block])
    assert _run([str(script)]).strip()  # each prints what it found
