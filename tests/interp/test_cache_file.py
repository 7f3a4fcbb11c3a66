"""The activation cache file as docs/guides/activation-cache.md documents it (datasets, attributes,
read with h5py and with `ActivationStore`), the model name recorded however the file is written, position 0 (the
attention sink) left out on request, and `cache --prompts` with an explicit template."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch

import mechvalue
from mechvalue.cli.main import main
from mechvalue.errors import MechValueError
from tests.lm.tiny import write_tiny

HOOK = "blocks.1.hook_resid_post"


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return mechvalue.load_model(str(write_tiny("llama3", tmp_path_factory.mktemp("tiny"))))


def _prompts(model):
    items = mechvalue.load_inventory().head(3)
    return mechvalue.render_prompts(model, items, [None, *mechvalue.generate_personas(1)])


def test_file_layout_as_documented_and_read_back_both_ways(model, tmp_path):
    rendered = _prompts(model)
    prompts = [mechvalue.CachePrompt(p.tokens) for p in rendered]
    path = mechvalue.cache_activations(
        model, prompts, [HOOK], tmp_path / "a.h5", first_position="drop", progress=False
    )
    with h5py.File(path, "r") as f:
        assert sorted(f) == sorted([HOOK, "prompt_id", "position", "token_id", "commits"])
        assert set(f.attrs) == {
            "model",
            "hooks",
            "dtype",
            "tokenizer",
            "mechvalue_version",
            "settings",
            "settings_hash",
            "complete",
        }
        assert (
            f.attrs["model"] == model.name and json.loads(f.attrs["hooks"]) == [HOOK] and f.attrs["complete"]
        )
        assert json.loads(f.attrs["settings"])["first_position"] == "drop"
        x, pid, pos, tid = f[HOOK][:], f["prompt_id"][:], f["position"][:], f["token_id"][:]
        rows, done, _crc = f["commits"][-1]
    n = sum(len(p.tokens) - 1 for p in rendered)  # every position but 0
    assert x.shape == (n, 64) and rows == n and done == len(rendered) and pos.min() == 1
    assert all(tid[i] == rendered[pid[i]].tokens[pos[i]] for i in range(0, n, 37))
    # the same rows as the model gives now, position 0 left out
    with torch.no_grad():
        _, cache = model.run_with_cache(torch.tensor([rendered[2].tokens]), names_filter=HOOK)
    assert np.allclose(x[pid == 2], cache[HOOK][0, 1:].numpy(), atol=1e-5)
    store = mechvalue.ActivationStore(path)
    try:
        index = store.index()
        assert list(index.columns) == ["prompt_id", "position", "token_id"] and len(index) == n
        assert torch.equal(store.for_prompt(2, HOOK), torch.from_numpy(x[pid == 2]))
        assert store.summary()["model"] == model.name
    finally:
        store.close()
    assert mechvalue.verify_cache(path)["ok"]


def test_the_model_name_is_recorded_for_a_bare_bridge_too(model, tmp_path):
    prompts = [mechvalue.CachePrompt(p.tokens) for p in _prompts(model)[:2]]
    path = mechvalue.cache_activations(
        model.bridge, prompts, [HOOK], tmp_path / "b.h5", "last", progress=False
    )
    with h5py.File(path, "r") as f:
        assert f.attrs["model"] and json.loads(f.attrs["settings"])["model"] == f.attrs["model"]
        assert "first_position" not in json.loads(f.attrs["settings"])  # keep: the settings as before
    with pytest.raises(MechValueError, match="first_position='sink'"):
        mechvalue.cache_activations(model, prompts, [HOOK], tmp_path / "c.h5", first_position="sink")


def test_prompts_file_needs_an_explicit_template(model, tmp_path, capsys):
    lines = tmp_path / "prompts.txt"
    lines.write_text("Is honesty important?\nShould I save money?\n")
    base = ["cache", "--model", model.name, "--prompts", str(lines), "--hooks", HOOK]
    assert main([*base, "--out", str(tmp_path / "x.h5")]) == 2
    assert "--prompts needs --template: raw" in capsys.readouterr().err and not (tmp_path / "x.h5").exists()
    tok = model.tokenizer
    expect = {
        "raw": tok.encode("Is honesty important?", add_special_tokens=False),
        "chat": tok.apply_chat_template(
            [{"role": "user", "content": "Is honesty important?"}], add_generation_prompt=True, tokenize=False
        ),
        "study": mechvalue.render_prompt(model, "Is honesty important?", answer_prefix="Thought:").tokens,
    }
    expect["chat"] = tok.encode(expect["chat"], add_special_tokens=False)
    for template, want in expect.items():
        out = tmp_path / f"{template}.h5"
        assert main([*base, "--template", template, "--out", str(out)]) == 0
        with h5py.File(out, "r") as f:
            got = f["token_id"][f["prompt_id"][:] == 0]
            assert f.attrs["model"] == model.name
        assert got.tolist() == want, template
    assert (
        main(
            [
                "cache",
                "--model",
                model.name,
                "--template",
                "chat",
                "--hooks",
                HOOK,
                "--roles",
                "1",
                "--out",
                str(tmp_path / "y.h5"),
            ]
        )
        == 2
    )
    assert "--template applies to --prompts FILE" in capsys.readouterr().err
