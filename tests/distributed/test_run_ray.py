"""`mechvalue run --quick --executor ray` (a local Ray instance, 2 CPU workers) writes the tables
the local executor writes. Slow: two whole quick runs (run with -m slow)."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("ray")

from mechvalue.cli.main import main  # noqa: E402

TABLES = [
    "measure/items.csv",
    "measure/values.csv",
    "grid/steer.csv",
    "grid/items.csv",  # no hard prompts in --quick
    "graph/edge_frequencies.csv",
    "graph/learned.json",
    "tables/tables.json",
]


@pytest.mark.slow
@pytest.mark.model
def test_quick_run_on_ray_writes_the_local_tables(smollm2, tmp_path):
    assert main(["run", "--quick", "--out", str(tmp_path / "local")]) == 0
    assert (
        main(["run", "--quick", "--executor", "ray", "--workers", "2", "--out", str(tmp_path / "ray")]) == 0
    )
    for f in TABLES:
        assert (tmp_path / "ray" / f).read_bytes() == (tmp_path / "local" / f).read_bytes(), f
    timings = json.loads((tmp_path / "ray" / "timings.json").read_text())
    assert timings["executor"]["kind"] == "ray"
    for stage in ("measure", "grid", "bootstrap"):
        assert timings["stages"][stage]["tasks"] >= 2, stage
    assert set(timings["stages"]["grid"]["workers"]) == {"0", "1"}
    assert {"measure", "grid", "graph", "report"} <= set(timings["run_stages"])
