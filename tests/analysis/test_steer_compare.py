"""The steering comparison: fluency and effect statistics against hand computations, and a planted
tiny random-weight Llama where one residual direction controls p(yes): DiffMean and CAA recover it,
steer the target value with small side effects, strength 0 changes no score, and train and test
items and roles never meet."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from mechvalue.analysis import steer_compare as sc
from mechvalue.analysis.steering.base import SteerContext, TrainContext
from mechvalue.analysis.steering.fluency import mean_kl, perplexity
from mechvalue.analysis.steering.methods import METHODS, Vector
from mechvalue.analysis.steering.stats import effect_metrics
from mechvalue.causal.graph import Edge, ValueGraph
from mechvalue.errors import MechValueError
from mechvalue.measurement.steering_inputs import SteeringInputs
from mechvalue.study.inventory import split

# ------------------------------------------------------------------ pure statistics


def test_perplexity_and_kl_equal_hand_computation():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 3.0]])
    targets = torch.tensor([0, 2])
    L = logits.double().numpy()
    p = np.exp(L) / np.exp(L).sum(1, keepdims=True)
    nll = -np.log([p[0, 0], p[1, 2]])
    assert perplexity(logits, targets) == pytest.approx(math.exp(nll.mean()), rel=1e-12)
    q_logits = torch.tensor([[0.0, 0.0, 0.0], [1.0, -2.0, 0.0]])
    Q = q_logits.double().numpy()
    q = np.exp(Q) / np.exp(Q).sum(1, keepdims=True)
    kl = (p * np.log(p / q)).sum(1).mean()
    assert mean_kl(logits, q_logits) == pytest.approx(kl, rel=1e-12)
    assert mean_kl(logits, logits) == 0.0


def _tables(n: int, shift: float, noise: float = 0.01, seed: int = 0):
    rng = np.random.default_rng(seed)
    vals = ["A", "B", "C", "D"]
    base = pd.DataFrame(rng.normal(0, 1, (n, 4)), index=[f"r{i}" for i in range(n)], columns=vals)
    steered = base + rng.normal(0, noise, base.shape)
    steered["A"] = base["A"] + shift * base["A"].std(ddof=1)
    steered["B"] = base["B"] + 0.5 * base["B"].std(ddof=1)  # B is A's descendant and moves
    return base, steered


def test_effect_metrics_numbers_and_too_few_roles():
    base, steered = _tables(12, 2.0)
    g = ValueGraph(["A", "B", "C", "D"], [Edge("A", "B", "directed"), Edge("C", "D", "directed")])
    m = effect_metrics(base, steered, "A", g, n_boot=200, n_null=100)
    assert m["efficacy"] == pytest.approx(2.0, abs=1e-9) and m["n_roles"] == 12 and m["note"] == ""
    assert m["share_up"] == 1.0 and m["share_up_lo"] > 0.7
    d = (steered - base) / base.std(ddof=1)
    assert m["off_target"] == pytest.approx(d[["B", "C", "D"]].abs().to_numpy().mean())
    assert m["selectivity"] == pytest.approx(2.0 / m["off_target"])
    assert m["efficacy_lo"] <= 2.0 <= m["efficacy_hi"]
    gap = d["B"].abs().mean() - d[["C", "D"]].abs().to_numpy().mean()
    assert m["desc_gap"] == pytest.approx(gap) and m["desc_gap"] > 0.4
    few = effect_metrics(*_tables(sc.MIN_ROLES - 1, 2.0), "A", g)
    assert "too few roles" in few["note"] and math.isnan(few["efficacy"]) and math.isnan(few["selectivity"])


def test_best_strength_respects_the_fluency_bound():
    cmp = pd.DataFrame(
        {
            "method": ["caa"] * 3 + ["sae_grad"],
            "value": ["A"] * 4,
            "strength": [0.5, 1, 2, 8],
            "efficacy": [0.5, 1.0, 3.0, 0.2],
            "selectivity": [1, 2, 3, 1],
            "kl": [0.01, 0.1, 2.0, 0.01],
            "admissible": [True, True, False, True],
        }
    )
    best = sc.best_table(cmp)
    assert best.set_index("method").loc["caa", "strength"] == 1.0  # 2.0 moves more but breaks fluency
    assert sc.winners(best)["overall"] == "caa"
    assert "caa" in sc.verdict(best)


# ------------------------------------------------------------------ planted tiny model

VALUES = ["Power", "Security", "Tradition"]


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """A 2-layer random Llama with the SmolLM2 tokenizer; direction u controls p(yes): the unembedding
    reads +u for " yes" and -u for " no", and the embeddings of " yes" / " inclined" carry +u, of
    " no" / the pieces of " disinclined" -u (so the model "writes" u when it agrees or is inclined)."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from mechvalue.lm.models import _smollm2_hf_dir, load_model

    src = _smollm2_hf_dir()
    tok = AutoTokenizer.from_pretrained(src)
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=512,
        tie_word_embeddings=False,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
    )
    hf = LlamaForCausalLM(cfg).eval()
    u = torch.zeros(64)
    u[5] = 1.0

    def enc(w: str) -> list[int]:
        return tok.encode(w, add_special_tokens=False)

    yes, no = enc(" yes")[0], enc(" no")[0]
    with torch.no_grad():
        emb, head = hf.model.embed_tokens.weight, hf.lm_head.weight
        emb[:, 5] = 0.0  # u is clean: only the planted tokens write it
        head[:, 5] = 0.0
        head[yes, 5], head[no, 5] = 4.0, -4.0
        for t in enc(" inclined") + [yes]:
            emb[t, 5] = 3.0
        for t in set(enc(" disinclined")) - set(enc(" inclined")) | {no}:
            emb[t, 5] = -3.0
    folder = tmp_path_factory.mktemp("planted")
    hf.save_pretrained(folder)
    tok.save_pretrained(folder)
    model, info = load_model(str(folder))
    return model, info, u


def _items() -> pd.DataFrame:
    """Power: every item agrees with the value; the others alternate, so a pure p(yes) shift
    leaves their mean score nearly unchanged."""
    rows = []
    for v in VALUES:
        for i in range(4):
            rows.append(
                {"questionnaire": "t", "item": len(rows) + 1, "value": v, "question": f"Question {v} {i}?"}
            )
    items = pd.DataFrame(rows)
    _, test = split(items, 0)
    agree = []
    for r in items.itertuples():
        if r.value == "Power":
            agree.append(1)
        else:
            same = test[test["value"] == r.value]["item"].tolist()
            agree.append(1 if r.item not in same or same.index(r.item) % 2 == 0 else -1)
    items["agreement"] = agree
    return items[["questionnaire", "item", "value", "agreement", "question"]]


def test_planted_direction_recovered_and_selective(planted, tmp_path, monkeypatch):
    from mechvalue.interp.sae import SAE, SAEConfig
    from mechvalue.interp.vectors import residual_rows
    from mechvalue.measurement.scoring import Condition, Measurer, measure
    from mechvalue.study.roles import generate_roles

    model, info, u = planted
    items = _items()
    train, test = split(items, 0)
    roles = generate_roles(26, 0)  # 26 - int(0.7 x 26) = 8 test roles = MIN_ROLES
    sae = SAE(SAEConfig(64, 16, hook_name="blocks.0.hook_resid_post"))
    measurer = Measurer(model, info.prompt_format)

    seen = []  # every sequence the train side runs: no test question may appear in it
    real = residual_rows

    def spy(model_, hook, seqs, positions, batch_size=16):
        seen.extend(seqs)
        return real(model_, hook, seqs, positions, batch_size)

    monkeypatch.setattr(sc.vec, "residual_rows", spy)
    spec = sc.CompareSpec(
        values=["Power"],
        methods=["prompting", "diffmean", "caa"],
        vector_strengths=[0.0, 4.0],
        vector_roles=3,
        neutral_prompts=2,
        neutral_texts=2,
        gen_tokens=8,
        n_boot=100,
        n_null=50,
        kl_bound=1e9,
        design="exhaustive",
    )
    inputs = SteeringInputs(measurer, sae, torch.ones(16), items, roles)
    prep, test_items, test_roles = sc.prepare(inputs, spec, False)
    text = model.tokenizer.batch_decode(seen)
    assert seen and not any(q in t for q in test["question"] for t in text)
    assert set(prep.train_items).isdisjoint(prep.test_items) and set(prep.train_roles).isdisjoint(
        prep.test_roles
    )
    assert sorted(prep.test_items) == sorted(test["item"]) and len(test_roles) == sc.MIN_ROLES
    for m in ("diffmean", "caa"):
        cos = float(torch.cosine_similarity(prep.built[m]["Power"], u, 0))
        assert cos > 0.9, (m, cos)

    res = sc.run_compare(inputs, spec, tmp_path, progress=False)
    cmp = res["compare"].set_index(["method", "strength"])
    for m in ("diffmean", "caa"):
        r = cmp.loc[(m, 4.0)]
        assert r["efficacy"] > 2.0 and r["share_up"] == 1.0 and r["efficacy_lo"] > 0, r
        assert r["selectivity"] > 3.0 and r["off_target"] < r["efficacy"] / 3, r
        assert cmp.loc[(m, 0.0), "efficacy"] == 0.0 and cmp.loc[(m, 0.0), "off_target"] == 0.0
    design = json.loads((tmp_path / "design.json").read_text())
    assert set(design["test_items"]).isdisjoint(design["train_items"])
    assert (tmp_path / "best.csv").exists() and (tmp_path / "tradeoff.png").exists()

    # strength 0: every item's score bit for bit as unsteered (test items, test roles)
    ctx = SteerContext(prep.unit, prep.hook, sae, None, VALUES, "all")
    zero = sc.condition_for("caa", "Power", 0.0, prep, ctx).condition
    a, _ = measure(measurer, test_items, test_roles[:2], [Condition(where="all")], progress=False)
    b, _ = measure(measurer, test_items, test_roles[:2], [zero], progress=False)
    assert np.array_equal(a["score"].to_numpy(), b["score"].to_numpy())
    c, _ = measure(measurer, test_items, test_roles[:2], progress=False)
    assert np.array_equal(a["score"].to_numpy(), c["score"].to_numpy())

    # resumable: a second run reads every part file and measures nothing
    from mechvalue.measurement import tasks

    monkeypatch.setattr(tasks, "measure_block", lambda *a, **k: pytest.fail("remeasured"))
    again = sc.run_compare(inputs, spec, tmp_path, progress=False)
    pd.testing.assert_frame_equal(again["compare"], res["compare"])


def test_values_without_held_out_items_are_named_not_crashed_on():
    """One item per value leaves nothing to build on and judge on: `prepare` names the value (no
    model is touched first) and `held_out_values` tells the run stage to skip, saying why."""
    items = pd.DataFrame(
        {
            "item": ["a", "b", "c"],
            "question": ["Qa?", "Qb?", "Qc?"],
            "value": ["Power", "Power", "Tradition"],
            "agreement": [1, 1, 1],
        }
    )
    assert sc.held_out_values(items) == ["Power"]
    assert sc.held_out_values(items[items["value"] == "Tradition"]) == []
    with pytest.raises(MechValueError, match="'Tradition' has 1 item"):
        sc.prepare(SteeringInputs(None, None, None, items, []), sc.CompareSpec(values=["Power", "Tradition"]))


# ------------------------------------------------------------------ adding a method: one entry


def _random_direction(ctx: TrainContext, value: str) -> torch.Tensor:
    """A seeded random direction per value (the planted model's width): a method that knows nothing."""
    return torch.randn(64, generator=torch.Generator().manual_seed(VALUES.index(value)))


def test_a_new_method_is_one_registry_entry(planted, tmp_path, monkeypatch):
    """Registering one entry puts a method in the default spec, its strengths (by its unit), the
    CLI's --methods help and the whole comparison's tables."""
    import argparse

    from mechvalue.cli import steer_compare as cli
    from mechvalue.measurement.scoring import Measurer
    from mechvalue.study.roles import generate_roles

    monkeypatch.setitem(METHODS, "random", Vector("random", _random_direction))
    assert "random" in sc.CompareSpec().methods
    sub = argparse.ArgumentParser().add_subparsers()
    cli.register(sub)
    assert "random (residual norm)" in sub.choices["steer-compare"].format_help()

    model, info, _ = planted
    spec = sc.CompareSpec(
        values=["Power"],
        methods=["random"],
        vector_strengths=[0.0, 2.0],
        hook="blocks.0.hook_resid_post",
        vector_roles=1,
        neutral_prompts=1,
        neutral_texts=1,
        gen_tokens=4,
        n_boot=20,
        n_null=10,
        design="exhaustive",
    )
    assert spec.strengths("random") == [0.0, 2.0]
    inputs = SteeringInputs(Measurer(model, info.prompt_format), None, None, _items(), generate_roles(26, 0))
    res = sc.run_compare(inputs, spec, tmp_path, progress=False)
    cmp = res["compare"].set_index("strength")
    assert list(res["compare"]["method"]) == ["random", "random"]
    assert cmp.loc[0.0, "efficacy"] == 0.0 and np.isfinite(cmp.loc[2.0, "efficacy"])
    assert (tmp_path / "parts" / "random@2.csv").exists()


# ------------------------------------------------------------------ the designs


def test_design_cost_and_halfwidths_are_monotone_and_the_plan_meets_its_targets():
    from mechvalue.analysis.steering.design import Plan, RoleVariance, Targets, cost, halfwidths, plan

    spec = sc.CompareSpec()
    var = RoleVariance(sd_effect=4.0, sd_diff=5.0, effect=20.0, diff=10.0)
    tokens = [[cost(Plan("powered", v, n, 20), spec)["tokens"] for n in range(8, 13)] for v in range(1, 11)]
    assert np.all(np.diff(tokens, axis=0) > 0) and np.all(np.diff(tokens, axis=1) > 0)
    hw = [[halfwidths(n, v, var) for n in range(8, 13)] for v in range(1, 11)]
    get = lambda k: np.array([[h[k] for h in row] for row in hw])  # noqa: E731
    assert np.all(np.diff(get("overall"), axis=0) < 0) and np.all(np.diff(get("overall"), axis=1) < 0)
    assert np.all(np.diff(get("per_value"), axis=1) < 0) and np.all(np.diff(get("per_value"), axis=0) == 0)
    assert np.all(np.diff(get("power"), axis=1) >= 0) and np.all(np.diff(get("power_overall"), axis=0) >= 0)
    # hand check: t(11) * sd / sqrt(12) for a value's efficacy on 12 roles, the paired difference's
    # interval over 10 values, and the power to find a difference of 10 at sd_diff 10 on one value
    h = halfwidths(12, 10, var)
    assert h["per_value"] == pytest.approx(2.200985 * 4 / math.sqrt(12), rel=1e-6)
    assert h["overall"] == pytest.approx(2.200985 * 5 / math.sqrt(120), rel=1e-6)
    noisy = RoleVariance(sd_effect=8.0, sd_diff=10.0, effect=20.0, diff=10.0)
    assert halfwidths(12, 1, noisy)["power"] == pytest.approx(
        0.8967, abs=1e-3
    )  # Phi(10 / (10 / sqrt 12) - t)
    # the exhaustive sweep measures every strength: it costs more than the powered design of the
    # same sizes, and takes everything available
    full = Plan("exhaustive", 10, 12, 20)
    assert (
        cost(full, replace_design(spec, "exhaustive"))["tokens"]
        > 2 * cost(Plan("powered", 10, 12, 20), spec)["tokens"]
    )
    assert plan(replace_design(spec, "exhaustive"), full) == full
    # powered: the fewest roles meeting the targets, then the most values within the budget
    targets = Targets(precision=0.25, power=0.8, minutes=8.0)
    chosen = plan(spec, full, targets, var)
    n, v = chosen.test_roles, chosen.values
    h = halfwidths(n, 1, var)
    assert h["per_value"] <= 0.25 * 20 and h["power"] >= 0.8 and n >= sc.MIN_ROLES
    if n > sc.MIN_ROLES:
        fewer = halfwidths(n - 1, 1, var)
        assert fewer["per_value"] > 0.25 * 20 or fewer["power"] < 0.8
    assert (
        2 < v < 10
        and cost(chosen, spec)["minutes"] <= 8.0 < cost(Plan("powered", v + 1, n, 20), spec)["minutes"]
    )
    noisier = plan(spec, full, targets, noisy)
    assert noisier.test_roles > n and noisier.values <= v
    # unreachable targets: every role; no budget: still two values; too few roles: all there are
    assert plan(spec, full, Targets(precision=0.01), var).test_roles == 12
    assert plan(spec, full, Targets(minutes=0.0), var).values == 2
    assert plan(spec, Plan("powered", 10, 3, 20), targets, var) == Plan("powered", 10, 3, 20)


def replace_design(spec, design):
    from dataclasses import replace

    return replace(spec, design=design)


def _tiny_spec(**kw) -> sc.CompareSpec:
    """The configuration the exhaustive design's golden tables were written with."""
    return sc.CompareSpec(
        values=["Power", "Tradition"],
        vector_strengths=[0.0, 4.0],
        sae_strengths=[4.0],
        vector_roles=2,
        corr_roles=8,
        grad_roles=8,
        candidates=4,
        neutral_prompts=1,
        neutral_texts=2,
        gen_tokens=4,
        n_boot=50,
        n_null=20,
        **kw,
    )


def _tiny_inputs(planted) -> SteeringInputs:
    from mechvalue.interp.sae import SAE, SAEConfig
    from mechvalue.measurement.scoring import Measurer
    from mechvalue.study.roles import generate_roles

    model, info, _ = planted
    torch.manual_seed(0)
    sae = SAE(SAEConfig(64, 16, hook_name="blocks.0.hook_resid_post"))
    typical = torch.rand(16) + 0.5
    return SteeringInputs(Measurer(model, info.prompt_format), sae, typical, _items(), generate_roles(26, 0))


GOLDEN = Path(__file__).parent / "golden" / "steer_compare_exhaustive"


def test_exhaustive_design_reproduces_the_sweep_tables_byte_for_byte(planted, tmp_path):
    """Every method x strength x value on every test role: the golden tables (tests/analysis/golden,
    written by the sweep at f7dc53c), byte for byte but the speed ratio (a wall-clock timing),
    compared cell by cell as written."""
    sc.run_compare(_tiny_inputs(planted), _tiny_spec(design="exhaustive"), tmp_path, progress=False)
    _same_as_golden(tmp_path)


def _same_as_golden(folder: Path) -> None:
    for name in ("features.csv", "summary.json"):
        assert (folder / name).read_bytes() == (GOLDEN / name).read_bytes(), name
    for name in ("compare.csv", "best.csv"):
        got, want = (pd.read_csv(f / name, dtype=str, keep_default_na=False) for f in (folder, GOLDEN))
        assert list(got.columns) == list(want.columns) and "speed_ratio" in got, name
        pd.testing.assert_frame_equal(got.drop(columns="speed_ratio"), want.drop(columns="speed_ratio"))
        assert (got["speed_ratio"] != "").all(), name


def test_test_roles_measured_on_worker_processes_give_the_golden_tables(planted, tmp_path):
    """The value test's measurements on two one-thread worker processes (which load the model
    from its folder and the SAE from where it was saved, and rebuild every condition), the fluency
    costs here: the same tables."""
    from mechvalue.distributed.executor import ExecutorConfig, ProcessExecutor
    from mechvalue.measurement.tasks import Placement

    inputs = _tiny_inputs(planted)
    inputs.sae.save(tmp_path / "sae")
    with ProcessExecutor(ExecutorConfig("processes", workers=2), progress=False) as ex:
        sc.run_compare(
            inputs,
            _tiny_spec(design="exhaustive"),
            tmp_path / "run",
            progress=False,
            where=Placement(ex, planted[1], str(tmp_path / "sae")),
        )
        st = ex.log.data["stages"]["steer_compare"]
    _same_as_golden(tmp_path / "run")
    assert st["tasks"] >= 2 and set(st["workers"]) == {"0", "1"}


def test_powered_design_measures_one_admissible_strength_per_method_and_value(planted, tmp_path):
    from mechvalue.analysis.steering.report import report_section

    spec = _tiny_spec(kl_bound=0.05)  # the default design
    assert spec.design == "powered"
    res = sc.run_compare(_tiny_inputs(planted), spec, tmp_path, progress=False)
    cmp = res["compare"]
    design = json.loads((tmp_path / "design.json").read_text())
    n_values = design["design"]["values"]
    assert len(cmp) == len(spec.methods) * n_values and not cmp.duplicated(["method", "value"]).any()
    chosen = json.loads((tmp_path / "parts" / "strengths.json").read_text())
    for r in cmp.itertuples():
        c = chosen[r.method][r.value]
        assert r.strength == c["strength"]
        kl = {float(s): k for s, k in c["kl"].items()}
        if r.method in ("diffmean", "caa"):  # probed from 4 down: 4 if within the bound, else 0
            assert kl[4.0] == pytest.approx(r.kl) if r.strength == 4.0 else kl[4.0] > spec.kl_bound
            assert r.admissible == (r.kl <= spec.kl_bound)
        assert np.isfinite(r.speed_ratio)  # timed once per job, shared by its values
    assert design["design"]["design"] == "powered" and design["design"]["cost"]["tokens"] > 0
    assert len(design["test_roles"]) == design["design"]["test_roles"] == cmp["n_roles"].max()
    golden = pd.read_csv(GOLDEN / "compare.csv")
    assert list(cmp.columns) == list(golden.columns)  # the schema the report reads
    sec = report_section(tmp_path)
    assert sec["best"] and {"method", "value", "strength", "efficacy", "kl", "speed_ratio"} <= set(
        sec["best"][0]
    )
    with pytest.raises(MechValueError, match="holds a comparison of the powered design"):
        sc.run_compare(_tiny_inputs(planted), _tiny_spec(design="exhaustive"), tmp_path, progress=False)
    assert (
        sec["design"].startswith("Powered design")
        and "8 test roles, 2 target value(s) (Power, Tradition)" in sec["design"]
    )


def test_a_run_folder_without_the_steer_design_setting_resumes_as_exhaustive(tmp_path):
    from dataclasses import asdict

    from mechvalue.pipeline.config import RunConfig
    from mechvalue.pipeline.workspace import Workspace

    old = asdict(RunConfig())
    old.pop("steer_design")
    (tmp_path / "config.json").write_text(json.dumps({"settings": old}))
    Workspace(tmp_path, RunConfig(steer_design="exhaustive"))
    with pytest.raises(MechValueError, match=r"other settings \(steer_design\)"):
        Workspace(tmp_path, RunConfig())


def test_prompting_in_one_batch_per_role_scores_as_the_per_value_batches(planted):
    """The powered design's measurer runs prompting's one hard prompt as one prefix per role; the
    scores are the per-value batches' to float rounding."""
    from mechvalue.measurement.scoring import Condition, Measurer, measure
    from mechvalue.study.roles import generate_roles

    model, info, _ = planted
    items = _items()
    per_value = Measurer(model, info.prompt_format)
    one = sc.one_hard(per_value)
    ctx = SteerContext(1.0, "blocks.0.hook_resid_post", None, None, VALUES, "all")
    prep = sc.Prepared(1.0, "", {}, pd.DataFrame(), [], [], [], [])
    cond = sc.condition_for("prompting", "Power", 1.0, prep, ctx).condition
    assert len(per_value.batches(items, cond)) == 3 and len(one.batches(items, cond)) == 1
    assert one.batches(items, Condition()) == per_value.batches(items, Condition())
    roles = generate_roles(3, 0)
    a, _ = measure(per_value, items, roles, [cond], progress=False)
    b, _ = measure(one, items, roles, [cond], progress=False)
    np.testing.assert_allclose(b["score"].to_numpy(), a["score"].to_numpy(), rtol=1e-5, atol=1e-6)
    assert list(b["item"]) == list(a["item"])
