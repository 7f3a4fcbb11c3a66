"""The examples (the docs' tutorials include them verbatim) and the README's Python blocks run as is.
The ones without an SAE run by default; the rest are `-m slow` (the first run trains the recipe SAE
for SmolLM2's layer 15, minutes on a CPU)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import need_shared

ROOT = Path(__file__).resolve().parents[1]


def _run(args: list[str]) -> str:
    r = subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=ROOT, timeout=1800)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout


@pytest.mark.model
def test_measure_personas_tutorial_runs_as_is():
    out = _run(["examples/measure_personas.py", "--personas", "2", "--values", "Power,Tradition"])
    assert re.search(r"span \(\d+, \d+\) = ' your values'", out), out
    assert out.count("\n     None ") >= 3, out  # value table: the no-persona row and two personas
    scores = [float(x) for x in re.findall(r"^\s+None (?:Power|Tradition)\s+[\d.]+\s+[\d.]+\s+(-?[\d.]+)$", out, re.M)]
    assert scores and all(-1 <= x <= 1 for x in scores), out
    assert "logprob chat |" in out and "likert |" in out, out


@pytest.mark.model
def test_activation_cache_tutorial_runs_as_is(tmp_path):
    out = _run(["examples/activation_cache.py", "--out", str(tmp_path / "acts.h5"), "--personas", "1"])
    rows = re.search(r"smollm2-135m-instruct: (\d+) rows x 576, float16, complete True", out)
    assert rows and int(rows.group(1)) > 0, out
    assert "16 prompts, positions from 1" in out, out  # (no persona + 1) x 8 items, position 0 dropped
    assert "verify: ok" in out, out


@pytest.mark.slow
@pytest.mark.parametrize("script", ["research_api.py", "steer_values.py", "feature_attribution.py"])
def test_sae_examples_run_as_is(script):
    assert _run([f"examples/{script}"]).strip()


@pytest.mark.slow
def test_reproduce_paper_example_reproduces_the_graph(tmp_path):
    out = _run(["examples/reproduce_paper.py", "--out", str(tmp_path)])
    assert "graph: PC 44 edges -> reduced 28; vs the authors' graph SHD 0" in out, out


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
    """Every Python block of the README as printed (the research example)."""
    script = tmp_path / "snippet.py"
    script.write_text(README_BLOCKS[block])
    assert _run([str(script)]).strip()  # each prints what it found


def test_docs_figures_script_draws_the_figures(tmp_path):
    """docs/figures/make_figures.py redraws the docs' figures from the released tables (no model)."""
    need_shared("paper_release")
    out = _run(["docs/figures/make_figures.py", "--out", str(tmp_path)])
    assert "'sae': {'up': 31.5, 'unchanged': 56.9, 'down': 11.5, 'n': 260}" in out, out  # the study's pie
    names = ["human_graph.png", "pie_sae_negative.png", "pie_sae_positive.png", "study_graph.png"]
    assert sorted(p.name for p in tmp_path.glob("*.png")) == names
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in tmp_path.glob("*.png"))
