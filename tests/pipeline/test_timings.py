"""The run's plan and its timings.json: tokens per stage counted as the model runs, equal to the
plan's count and to an independent count; the limit probe; `--plan` writes nothing."""

import json
import os
import subprocess
import sys

import pytest

from mechvalue.pipeline.stages import STAGES
from tests.pipeline.conftest import LAYER, ROOT

FIELDS = (
    "prompt_tokens",
    "generated_tokens",
    "seconds",
    "tokens_per_s",
    "limit_tokens_per_s",
    "ratio_to_limit",
)
COUNTED = ("measure", "activations", "features", "validity")  # planned prompt tokens exact


def _common_prefix(seqs: list[list[int]]) -> int:
    """Longest common prefix, leaving every row at least one token of its own."""
    n = 0
    while n < min(map(len, seqs)) - 1 and len({s[n] for s in seqs}) == 1:
        n += 1
    return n


def test_timings_has_the_limit_and_every_stages_tokens(tiny_llama3_run):
    t = json.loads((tiny_llama3_run / "timings.json").read_text())
    assert set(t["limit"]) >= {"gflops", "shape", "threads"} and t["limit"]["gflops"] > 0
    assert isinstance(t["limit"]["threads"], int) and "x" in t["limit"]["shape"]
    rows = {s: t["stages"][s] for s, _ in STAGES}
    for s, row in rows.items():
        assert all(k in row for k in FIELDS), s
        if row["prompt_tokens"] + row["generated_tokens"]:
            want = (row["prompt_tokens"] + row["generated_tokens"]) / row["seconds"]
            assert row["tokens_per_s"] == pytest.approx(want, rel=1e-2)
            ratio = row["tokens_per_s"] / t["limit"]["limit_tokens_per_s"]
            assert row["ratio_to_limit"] == pytest.approx(ratio, rel=1e-2)
    for s in ("graph", "tables", "report"):  # no model
        assert rows[s]["prompt_tokens"] == rows[s]["generated_tokens"] == 0
    assert rows["generations"]["generated_tokens"] > 0
    assert set(t["plan"]["stages"]) == {s for s, _ in STAGES}


def test_counted_tokens_equal_the_plan_and_an_independent_count(tiny_llama3_run):
    from transformers import AutoTokenizer

    from mechvalue.study import inventory as inv
    from mechvalue.study.prompts import render
    from mechvalue.study.roles import generate_roles

    t = json.loads((tiny_llama3_run / "timings.json").read_text())
    rows = t["stages"]
    for s in COUNTED:
        assert rows[s]["prompt_tokens"] == rows[s]["planned_prompt_tokens"] > 0, s
    grid = rows["grid"]  # conditions measured together run their shared prefix once: fewer tokens
    assert 0 < grid["prompt_tokens"] < grid["planned_prompt_tokens"]
    gen = rows["generations"]
    assert gen["prompt_tokens"] == gen["planned_prompt_tokens"]
    assert 0 < gen["generated_tokens"] <= gen["planned_generated_tokens"]
    # measure, by hand: every role's items in one batch (--quick: 32), the shared prefix run once
    settings = json.loads((tiny_llama3_run / "config.json").read_text())["settings"]
    fmt = json.loads((tiny_llama3_run / "measure" / "inputs.json").read_text())["prompt_format"]
    tok = AutoTokenizer.from_pretrained(settings["model"])
    items = inv.load_inventory(None).groupby("value", sort=False).head(2)
    assert len(items) <= 32
    want = 0
    for role in [None, *generate_roles(settings["roles"], settings["seed"])]:
        seqs = [render(q, role, fmt, tok, answer_prefix="Answer:").tokens for q in items["question"]]
        n = _common_prefix(seqs)
        want += n + len(seqs) * max(len(s) - n for s in seqs)
    assert rows["measure"]["prompt_tokens"] == want


def test_plan_prints_the_plan_and_writes_nothing(tiny_llama3_run, tmp_path):
    settings = json.loads((tiny_llama3_run / "config.json").read_text())["settings"]
    out = tmp_path / "not-written"
    args = ["run", "--quick", "--model", settings["model"], "--sae", settings["sae"], "--layer", str(LAYER)]
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    r = subprocess.run(
        [sys.executable, "-m", "mechvalue.cli", *args, "--out", str(out), "--plan"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert not out.exists()
    lines = r.stdout.splitlines()
    for s, _ in STAGES:
        assert any(line.startswith(s + " ") for line in lines), s
    assert any(line.startswith("total") for line in lines) and "tokens/s" in r.stdout


def test_every_stage_has_a_planner():
    from mechvalue.pipeline.plan import PLANNERS

    assert list(PLANNERS) == [s for s, _ in STAGES]


def test_etas_follow_the_runs_drift():
    from mechvalue.lm.tokens import TokenCount
    from mechvalue.pipeline.plan import Calibration, Plan, Work

    cal = Calibration(0.01, 0.01, 0.1, 0.01, 1.0, 0.0)
    plan = Plan({"measure": Work(predicted_s=10.0), "grid": Work(predicted_s=20.0)}, cal, None)
    assert "predicted 10 s, ends" in plan.eta("measure")
    row = plan.actual("measure", TokenCount(prompt=100, prompt_real=90, generated=5, forwards=3), 20.0)
    assert (row["prompt_tokens"], row["prompt_tokens_real"], row["generated_tokens"]) == (100, 90, 5)
    assert row["eta_s"] == 10.0 and row["tokens_per_s"] == 5.2 and row["ratio_to_limit"] is None
    assert plan.drift() == 2.0 and "predicted 20 s x 2.00 so far = 40 s" in plan.eta("grid")
    assert plan.actual("grid", TokenCount(), 30.0)["eta_s"] == 40.0
    assert cal.predict(Work(prompt_tokens=100, decode_steps=10, generated_tokens=20, quiet_s=2.0)) == (
        pytest.approx(100 * 0.01 + 10 * 0.1 + 20 * 0.01 + 2.0)
    )
    assert cal.predict(Work(quiet_s=None)) is None


def test_a_resumed_runs_plan_keeps_the_earlier_stages():
    from mechvalue.pipeline.plan import Calibration, Plan, Work

    first = Plan({"measure": Work(predicted_s=10.0)}, Calibration(0.01, 0.02, 0.1, 0.01, 1.0, 3.0), {"x": 1})
    again = Plan({"report": Work(predicted_s=2.0)}, Calibration(0.0, 0.0, 0.0, 0.0, 1.0, 0.0), None)
    out = again.merged(first.as_dict())
    assert list(out["stages"]) == ["measure", "report"] and out["predicted_total_s"] == 12.0
    assert out["calibration"]["prompt_token_s"] == 0.01  # no model left to calibrate: the earlier one kept
