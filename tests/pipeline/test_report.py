"""The report cannot mislead: `mechvalue run --quick` on a tiny random-weight Llama-3 folder with a
sparsify SAE, once as is (conftest's `tiny_llama3_run`) and once with a scorer that never sees the
persona (every role scores the same, as on a broken install), each page rendered in headless
Chromium at 1280 px.

The page must fit the window (wide tables scroll inside their box), show no "nan", "None" or
Python literal in its visible text, and the degenerate run must say at the top and in every
section that its numbers mean nothing, instead of drawing them."""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest
import torch

from mechvalue.distributed.executor import ExecutorConfig, LocalExecutor
from mechvalue.measurement.scoring import Measurer
from mechvalue.pipeline.config import RunConfig
from mechvalue.pipeline.run import run
from mechvalue.pipeline.stages import STAGES
from tests import browser
from tests.interp.sae_fixtures import write_sparsify
from tests.lm.tiny import D_MODEL, write_tiny
from tests.pipeline.conftest import LAYER

RAW = [r"\bnan\b", r"\bNone\b", r"\{\s*['\"]", r"['\"]\s*:\s*[\[{'\"\d]", r"\binf\b"]


def render(report: Path) -> tuple[dict, str]:
    """The report at 1280 px: its width and its visible text without the model's own generations
    (random text)."""
    return browser.render(report, drop=".model-text")


def role_blind(self, batch, cond):
    """A scorer that never sees the persona or the steering: logits from the last tokens of the
    prompt only (the question), plus a persona-dependent wobble far below float32 rounding."""
    vocab = self.model.cfg.d_vocab
    out = torch.empty(len(batch), vocab)
    for i, p in enumerate(batch):
        out[i] = torch.randn(vocab, generator=torch.Generator().manual_seed(sum(p.tokens[-6:])))
        out[i] += 1e-7 * (len(p.tokens) % 5)  # shifts every logit alike: rounding-level change
    return out


@pytest.fixture(scope="module")
def as_is(tiny_llama3_run):
    return tiny_llama3_run


@pytest.fixture(scope="module")
def degenerate(tmp_path_factory):
    """The same run, in this process, with a scorer that never sees the persona."""
    root = tmp_path_factory.mktemp("degenerate")
    model = write_tiny("llama3", root / "models")
    sae = write_sparsify(root / "checkpoints" / "run", D_MODEL, 128, k=8, hookpoint=f"layers.{LAYER}")
    out = root / "run"
    cfg = RunConfig.quick_preset(model=str(model), sae=str(sae), layer=LAYER)
    with pytest.MonkeyPatch.context() as mp, LocalExecutor(ExecutorConfig("local"), progress=False) as here:
        mp.setattr(Measurer, "answer_logits", role_blind)  # in this process: no worker processes
        run(out, cfg, progress=False, executor=here)
    for s, _ in STAGES:
        assert (out / s / "done.json").exists(), s
    return out


@pytest.mark.parametrize("which", ["as_is", "degenerate"])
def test_report_fits_1280_px_and_shows_no_raw_values(which, request):
    out = request.getfixturevalue(which)
    size, visible = render(out / "report" / "report.html")
    assert size["scrollWidth"] <= size["clientWidth"] <= browser.WIDTH, size
    for pattern in RAW:
        hits = [visible[max(0, m.start() - 60) : m.end() + 60] for m in re.finditer(pattern, visible)]
        assert not hits, (pattern, hits[:3])
    assert "Settings" in visible and "Timings" in visible and "Time per stage" in visible


def _sections(page: str) -> dict[str, str]:
    """Section title -> its HTML, from the report."""
    parts = re.split(r"<h2>\d+\. (.*?)</h2>", page)
    return dict(zip(parts[1::2], parts[2::2]))


def test_degenerate_run_says_at_the_top_and_in_every_section_that_its_numbers_mean_nothing(degenerate):
    page = (degenerate / "report" / "report.html").read_text()
    top = html.unescape(page.split("<h2>")[0])
    assert (
        'id="banner"' in top
        and "These numbers mean nothing" in top
        and "No value's between-role SD exceeds what measurement noise alone reaches" in top
    )
    sections = _sections(page)
    for title, body in sections.items():
        if title in ("Settings", "Timings"):
            continue
        said = any(
            s in body
            for s in (
                "No value varies between roles beyond the measurement noise",
                "No value&#39;s between-role SD exceeds",
                "No steered change exceeds",
                "No graph",
            )
        )
        assert said and 'class="warning"' in body, title
    # nothing drawn from the noise: no profile heatmap, no graph, no effects heatmap, no reliability figures
    assert "data:image/png" not in sections["Value profile across roles"]
    assert "data:image/png" not in sections["Value graph: learned vs reference"]
    assert "data:image/png" not in sections["SAE and the features behind each value"]
    validity = sections["Are the scores measurements? Reliability and validity"]
    assert ">-1<" not in validity and ">-1.00<" not in validity  # no ICC(1) = -1/(k-1) from identical rows


def test_degenerate_run_chooses_no_feature_by_correlation(degenerate):
    import json

    feats = json.loads((degenerate / "features" / "features.json").read_text())
    assert "correlation" not in {f["reason"] for f in feats["features"]} and not feats["correlation"]["used"]


def test_degenerate_run_counts_no_known_group_hit_and_learns_no_graph(degenerate):
    import json

    v = json.loads((degenerate / "validity" / "validity.json").read_text())
    kg = v["known_groups"]
    assert kg["hits"] == 0 and kg["within_noise"] == kg["predictions"] > 0
    assert set(v["flagged"].values()) == {"no role variance beyond the noise"}
    g = json.loads((degenerate / "graph" / "summary.json").read_text())
    assert g["learned"] is False and g["edges"] == 0 and not (degenerate / "graph" / "learned.json").exists()


def test_timings_record_every_stage(as_is):
    import json

    t = json.loads((as_is / "timings.json").read_text())
    assert [s for s, _ in STAGES] == list(t["run_stages"])
    assert all(isinstance(x, float) for x in t["run_stages"].values())


def test_compare_runs_sets_runs_side_by_side_and_says_which_measures(as_is, degenerate, tmp_path, capsys):
    import json

    import pandas as pd

    from mechvalue.cli.main import main

    out = tmp_path / "cmp"
    assert main(["compare-runs", str(as_is), str(degenerate), "--out", str(out), "--null", "50"]) == 0
    md = capsys.readouterr().out
    assert md == (out / "compare.md").read_text()
    t = pd.read_csv(out / "compare.csv", index_col=0)
    healthy, broken = t.columns  # the same tiny model twice: columns named with their run folders
    assert str(as_is) in healthy and str(degenerate) in broken
    assert t.loc["graph edges", broken] == "not learned" and "a graph was not learned" in md
    v = json.loads((as_is / "validity" / "validity.json").read_text())
    assert t.loc["alpha median (raw)", healthy] == f"{v['median_alpha']:.2f}"
    assert t.loc["values with ICC(1) CI above 0.05", broken].startswith("0 of ")
    assert f"{broken}: does not pass the thresholds" in md
    assert "Not ranked: too small" in md and "a --quick run" in md  # two --quick runs: no winner
    assert main(["compare-runs", str(as_is), "--out", str(out)]) == 2  # one run: nothing to compare
    assert main(["compare-runs", str(as_is), str(tmp_path), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and str(tmp_path / "config.json") in err[1]


def test_the_top_and_the_steering_table_say_which_values_are_measurements(as_is):
    import json

    status = json.loads((as_is / "validity" / "validity.json").read_text())["measurements"]
    page = (as_is / "report" / "report.html").read_text()
    top = page.split("<h2>")[0]
    passing = [v for v, why in status.items() if not why]
    assert f"{len(passing)} of {len(status)} pass" in top
    steering = _sections(page)["Which steering method? Prompting, DiffMean, CAA and SAE features"]
    assert "status (one rule: see the top)" in steering
    failing = [v for v, why in status.items() if why]
    assert failing and any(f"fail: {html.escape(status[v])}" in steering for v in failing)
