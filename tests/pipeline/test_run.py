"""`mechvalue run --quick` end to end on SmolLM2: every stage, the report, resume, refusal."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from mechvalue.causal.compare import compare_with_null
from mechvalue.causal.graph import load_graph
from mechvalue.cli.main import main
from mechvalue.io import write_json
from mechvalue.pipeline.stages import STAGES


@pytest.fixture(scope="module")
def quick_run(smollm2, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    assert main(["run", "--quick", "--out", str(out)]) == 0
    return out


def test_quick_run_writes_every_stage_and_the_report(quick_run, tmp_path):
    for s, _ in STAGES:
        assert (quick_run / s / "done.json").exists(), s
    page = (quick_run / "report" / "report.html").read_text()
    for section in (
        "Value profile",
        "Value graph",
        "features behind each value",
        "Steered generations",
        "Table 1",
        "Table 2",
        "Settings",
        "Timings",
    ):
        assert section in page
    assert page.count("data:image/png;base64,") >= 4 and 'src="http' not in page
    summary = json.loads((quick_run / "graph" / "summary.json").read_text())
    learned, ref = (
        load_graph(quick_run / "graph" / "learned.json"),
        load_graph(quick_run / "graph" / "reference.json"),
    )
    assert summary["rows"] == 15 and summary["edges"] == len(learned.edges)  # no role + 14 personas
    write_json(compare_with_null(learned, ref, 100, 0), tmp_path / "again.json")  # same settings, recomputed
    assert json.dumps(summary["compare"]) == json.dumps(json.loads((tmp_path / "again.json").read_text()))
    gens = json.loads((quick_run / "generations" / "generations.json").read_text())["examples"]
    assert any(g["steered"] != g["unsteered"] for g in gens)


def test_rerun_resumes_and_redone_stages_match(quick_run):
    before = (quick_run / "tables" / "tables.json").read_text()
    for s in ("graph", "tables", "report"):
        (quick_run / s / "done.json").unlink()
    r = subprocess.run(
        [sys.executable, "-m", "mechvalue.cli", "run", "--quick", "--out", str(quick_run)],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert "measure ..." not in r.stdout and "tables ..." in r.stdout
    assert (quick_run / "tables" / "tables.json").read_text() == before


def test_other_settings_on_the_same_folder_are_refused(quick_run, capsys):
    assert main(["run", "--quick", "--roles", "5", "--out", str(quick_run)]) == 2
    assert "roles" in capsys.readouterr().err


def test_killed_mid_grid_then_rerun_gives_the_same_results(quick_run, tmp_path):
    """kill -9 during the steering grid, rerun: the grid resumes from its parts, results unchanged.
    The quick grid measures its conditions together (one burst of parts at the end), so the kill
    lands while that batch runs; resuming from a subset of parts is tests/measurement/
    test_condition_batch.py's."""
    run = tmp_path / "run"
    shutil.copytree(quick_run, run)
    shutil.rmtree(run / "grid")
    names = [s for s, _ in STAGES]
    for s in names[names.index("grid") :]:
        (run / s / "done.json").unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "mechvalue.cli", "run", "--quick", "--out", str(run)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (run / "grid" / "conditions.json").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(2.0)  # inside the grid's measuring
    assert proc.poll() is None, "the run finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_with = len(list((run / "grid" / "parts").glob("*.csv")))
    assert not (run / "grid" / "done.json").exists() and killed_with < len(
        list((quick_run / "grid" / "parts").glob("*"))
    )
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    for f in ("grid/steer.csv", "grid/items.csv", "tables/tables.json", "graph/learned.json"):
        assert (run / f).read_text() == (quick_run / f).read_text(), f
