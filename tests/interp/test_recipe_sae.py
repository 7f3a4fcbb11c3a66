"""One obvious way to get an SAE: `mechvalue.recipe_sae(model, layer)` on an empty cache trains the
recipe SAE (saying so), the next call loads it; without training it, and for a missing folder,
the error says what to run; `run --quick` reuses the recipe SAE; `sae-train` prints a summary,
never its training items. A tiny Llama-3 folder and small training settings keep it short."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch

import mechvalue
from mechvalue.cli.main import main
from mechvalue.errors import MechValueError
from mechvalue.interp.sae_training import TrainConfig
from tests.lm.tiny import write_tiny

SMALL = {"roles": 1, "gen_prompts": 4, "gen_tokens": 4, "config": TrainConfig(d_sae=64, epochs=1)}


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return mechvalue.load_model(str(write_tiny("llama3", tmp_path_factory.mktemp("tiny"))))


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MECHVALUE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_recipe_sae_trains_once_then_loads(model, empty_cache, capsys):
    with pytest.raises(
        MechValueError, match=r"no recipe SAE .* layer 1 .*run `mechvalue sae-train --model .* --layer 1`"
    ):
        mechvalue.recipe_sae(model, 1, train=False)
    sae = mechvalue.recipe_sae(model, 1, **SMALL)
    err = capsys.readouterr().err
    assert "training the recipe SAE" in err and "recipe SAE: L0 " in err and "FVE" in err
    folder = mechvalue.recipe_folder(model.name, 1)
    assert folder.is_relative_to(empty_cache) and (folder / "sae").is_dir()
    assert sae.cfg.hook_name == "blocks.1.hook_resid_post" and sae.cfg.d_sae == 64
    again = mechvalue.recipe_sae(model, 1, train=False)  # no training: it exists
    assert "training" not in capsys.readouterr().err
    assert torch.equal(again.W_dec, sae.W_dec)
    # typical activations from the recipe's own training cache: positive, one per feature
    typ = mechvalue.typical_activations(sae, folder / "activations.h5")
    assert typ.shape == (64,) and bool((typ > 0).all())

    # run --quick reuses it rather than training a smaller SAE beside it
    from mechvalue.pipeline.config import RunConfig
    from mechvalue.pipeline.stages import sae as sae_stage

    out = empty_cache.parent / "stage"
    out.mkdir()
    sae_stage(
        out,
        SimpleNamespace(cfg=RunConfig.quick_preset(model=model.name, layer=1), loaded=(model.bridge, model)),
    )
    ref = json.loads((out / "sae.json").read_text())
    assert ref["path"] == str(folder / "sae") and ref["reused"] == "the recipe SAE"
    assert ref["metrics"]["d_sae"] == 64 and not mechvalue.recipe_folder(model.name, 1, "-quick").exists()


def test_a_missing_sae_folder_says_how_to_make_one(empty_cache):
    with pytest.raises(
        MechValueError, match=r"no such SAE folder .*mechvalue\.recipe_sae\(model, layer\).*sae-train"
    ):
        mechvalue.load_sae(empty_cache / "saes" / "nothing" / "sae")


def test_sae_train_prints_a_summary_not_its_items(model, tmp_path, capsys, monkeypatch):
    import mechvalue.interp.sae_recipe as recipe

    questions = list(mechvalue.load_inventory()["question"])
    metrics = {
        "l0": 31.5,
        "fve": 0.71,
        "delta_loss": 0.12,
        "d_sae": 64,
        "activation": "topk",
        "rows": 900,
        "settings": {"items": questions},
    }  # what sae_recipe returns, training items included
    monkeypatch.setattr(recipe, "sae_recipe", lambda *a, **k: metrics)
    code = main(["sae-train", "--model", model.name, "--layer", "1", "--out", str(tmp_path / "sae")])
    out = capsys.readouterr().out
    assert code == 0 and out == (
        f"SAE saved to {tmp_path / 'sae' / 'sae'}: L0 31.5, FVE 0.710, delta loss +0.120 "
        f"(d_sae 64, topk, 900 training rows); metrics in {tmp_path / 'sae' / 'metrics.json'}\n"
    )
    assert not any(q in out for q in questions)


def test_two_calls_at_once_train_the_recipe_once(model, empty_cache, monkeypatch):
    import threading
    import time

    import mechvalue.interp.sae_recipe as recipe
    from mechvalue.interp.sae import SAEConfig

    calls = []

    def train(model, out, recipe):  # stands in for the minutes of training
        calls.append(out)
        time.sleep(0.5)
        mechvalue.SAE(SAEConfig(64, 32, hook_name=f"blocks.{recipe.layer}.hook_resid_post")).save(out / "sae")
        (out / "metrics.json").write_text("{}")
        return {"l0": 1.0, "fve": 0.5, "delta_loss": 0.0, "d_sae": 32, "activation": "relu", "rows": 10}

    monkeypatch.setattr(recipe, "sae_recipe", train)
    got = []
    threads = [threading.Thread(target=lambda: got.append(mechvalue.recipe_sae(model, 2))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len(got) == 2 and all(s.cfg.d_sae == 32 for s in got)
