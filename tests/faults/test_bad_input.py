"""Bad input, fuzzed (hypothesis): each kind of file the CLI reads, corrupted in each way it can
be (missing, renamed, duplicated, non-numeric and empty columns, NaN, wrong encoding, empty file,
broken JSON, wrong shapes, missing or mis-shaped tensors, model folders without weights). Every
case must exit 2 with one line naming the file, no traceback, and leave no output behind."""

from __future__ import annotations

import io
import json
import shutil
import tempfile
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mechvalue.lm.models as models
from mechvalue.cli.main import main
from mechvalue.study.inventory import load_inventory
from tests.faults.harness import count

CI, FULL = 25, 200  # examples per input kind: default run, -m slow
TEXT = st.text(
    st.characters(min_codepoint=33, max_codepoint=0x2FF, blacklist_characters=",\"'\n\r"),
    min_size=1,
    max_size=12,
)


def fuzz(n: int):
    return settings(
        max_examples=n,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )


class ModelReached(AssertionError):
    pass


@pytest.fixture(autouse=True)
def no_model():
    """The bad file must be refused before any model is loaded (tests needing one say so)."""
    real = models.load_model

    def refuse(*a, **k):
        raise ModelReached("the corrupt input was accepted: the command went on to load the model")

    models.load_model = refuse
    yield
    models.load_model = real


def refused(argv: list[str], named: Path | str, out: Path | None, kind: str) -> str:
    """Run the CLI in-process; assert exit 2, one line naming `named`, no traceback, no output."""
    err = io.StringIO()
    with redirect_stderr(err), redirect_stdout(io.StringIO()):
        try:
            code = main(argv)
        except SystemExit as e:  # argparse
            code = e.code
        except ModelReached:
            raise
        except Exception as e:  # noqa: BLE001  # a traceback: the test's failure message says which
            pytest.fail(f"{kind}: {type(e).__name__}: {e} (argv {argv})")
    lines = err.getvalue().strip().splitlines()
    assert code == 2, (kind, code, err.getvalue())
    assert len(lines) == 1 and str(named) in lines[0], (kind, lines)
    if out is not None:
        assert not out.exists() or not [p for p in out.rglob("*") if p.is_file()], (
            kind,
            list(out.rglob("*")),
        )
    count("bad inputs", kind)
    return lines[0]


# ---- CSV corruptions ------------------------------------------------------------------------------


def corrupt_csv(
    df: pd.DataFrame, data, required: list[str], numeric: list[str], text: list[str]
) -> tuple[bytes, str]:
    """One corruption of `df` drawn by hypothesis: (file bytes, what was done)."""
    how = data.draw(
        st.sampled_from(
            [
                "missing",
                "renamed",
                "duplicated",
                "non-numeric",
                "empty column",
                "NaN",
                "latin-1",
                "utf-16",
                "empty file",
                "header only",
                "ragged row",
                "binary",
            ]
        )
    )
    df = df.copy()
    if how == "missing":
        df = df.drop(columns=[data.draw(st.sampled_from(required))])
    elif how == "renamed":
        c = data.draw(st.sampled_from(required))
        new = data.draw(TEXT.filter(lambda s: s.strip() and s.strip() not in df.columns))
        df = df.rename(columns={c: new})
    elif how == "duplicated":
        c = data.draw(st.sampled_from(list(df.columns)))
        df = pd.concat([df, df[[c]]], axis=1)
    elif how in ("non-numeric", "NaN"):
        c = data.draw(st.sampled_from(numeric))
        i = data.draw(st.integers(0, len(df) - 1))
        df[c] = df[c].astype(object)
        df.iloc[i, df.columns.get_loc(c)] = (
            data.draw(TEXT.filter(lambda s: _not_number(s))) if how == "non-numeric" else "NaN"
        )
    elif how == "empty column":
        c = data.draw(st.sampled_from(numeric + text))
        df[c] = ""
    raw = df.to_csv(index=False)
    if how == "latin-1":
        c = data.draw(st.sampled_from(text))
        df[c] = df[c].astype(str) + "é"
        return df.to_csv(index=False).encode("latin-1"), how
    if how == "utf-16":
        return raw.encode("utf-16"), how
    if how == "empty file":
        return data.draw(st.sampled_from([b"", b"\n", b"  \n\n"])), how
    if how == "header only":
        return raw.splitlines()[0].encode() + b"\n", how
    if how == "ragged row":
        lines = raw.splitlines()
        i = data.draw(st.integers(1, len(lines) - 1))
        lines[i] += ",extra,fields"
        return "\n".join(lines).encode(), how
    if how == "binary":
        return bytes(data.draw(st.lists(st.integers(0, 255), min_size=8, max_size=64))) + b"\x00\xff", how
    return raw.encode(), how


def _not_number(s: str) -> bool:
    try:
        float(s)
        return False
    except ValueError:
        return s.strip().lower() not in ("nan", "na", "n/a", "") and bool(s.strip())


def _tmp() -> Path:
    return Path(tempfile.mkdtemp(prefix="mv-bad-"))


INVENTORY = load_inventory().groupby("value").head(2).reset_index(drop=True)


def inventory_case(data):
    d = _tmp()
    blob, how = corrupt_csv(
        INVENTORY, data, list(INVENTORY.columns), ["agreement"], ["question", "value", "questionnaire"]
    )
    f = d / "inventory.csv"
    f.write_bytes(blob)
    out = d / "out"
    refused(
        ["measure", "--inventory", str(f), "--roles", "2", "--out", str(out)], f, out, f"inventory CSV: {how}"
    )
    shutil.rmtree(d)


def value_table() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    vals = ["Achievement", "Benevolence", "Power", "Security"]
    df = pd.DataFrame(rng.normal(size=(12, 4)), columns=vals)
    df.insert(0, "player_name", [f"p{i}" for i in range(12)])
    df.insert(0, "steer_dim", np.nan)
    return df


TABLE = value_table()


def value_table_case(data):
    d = _tmp()
    blob, how = corrupt_csv(
        TABLE, data, ["steer_dim", "player_name"], list(TABLE.columns[2:]), ["player_name"]
    )
    f = d / "table.csv"
    f.write_bytes(blob)
    out = d / "out"
    refused(["graph", "--table", str(f), "--out", str(out)], f, out, f"value table CSV: {how}")
    shutil.rmtree(d)


def pvq40_case(data):
    rng = np.random.default_rng(0)
    cols = [
        f"{c}{i}"
        for c, i in zip(
            ["sd", "st", "he", "ac", "po", "se", "co", "tr", "be", "un"] * 4, sorted(range(1, 41))
        )
    ]
    base = pd.DataFrame(rng.integers(1, 7, size=(30, 40)), columns=cols)
    d = _tmp()
    blob, how = corrupt_csv(base, data, cols, cols, cols)
    if how in (
        "non-numeric",
        "NaN",
        "renamed",
        "duplicated",
    ):  # one cell off-scale is a missing answer, by design:
        col = data.draw(st.sampled_from(cols))  # spoil the whole column so no one has complete answers
        base = base.astype(object)
        base[col] = "x" if how == "non-numeric" else "NaN"
        blob = base.to_csv(index=False).encode() if how in ("non-numeric", "NaN") else blob
    f = d / "pvq40.csv"
    f.write_bytes(blob)
    out = d / "out"
    refused(["human-graph", "--pvq40", str(f), "--out", str(out)], f, out, f"PVQ-40 answers: {how}")
    shutil.rmtree(d)


# ---- JSON corruptions -----------------------------------------------------------------------------


def corrupt_json(obj, data, mutations: dict) -> tuple[bytes, str]:
    how = data.draw(st.sampled_from(["truncated", "not an object", "utf-16", "empty file", *mutations]))
    text = json.dumps(obj)
    if how == "truncated":
        return text[: data.draw(st.integers(1, len(text) - 1))].encode(), how
    if how == "not an object":
        return json.dumps(data.draw(st.sampled_from([[], [1, 2], "text", 3, None, [obj]]))).encode(), how
    if how == "utf-16":
        return text.encode("utf-16"), how
    if how == "empty file":
        return b"", how
    return json.dumps(mutations[how](json.loads(text), data)).encode(), how


PLAYERS = {"Ann": {"mini_trait": "a careful planner"}, "Bob": {"mini_trait": "a bold explorer"}}
PLAYER_MUTATIONS = {
    "no players": lambda o, d: {},
    "player not an object": lambda o, d: o | {"Ann": d.draw(st.sampled_from(["text", 1, None, []]))},
    "no mini_trait": lambda o, d: o | {"Ann": {"trait": "x"}},
    "mini_trait not text": lambda o, d: (
        o | {"Bob": {"mini_trait": d.draw(st.sampled_from([1, None, [], {}, ""]))}}
    ),
}


def players_case(data):
    d = _tmp()
    blob, how = corrupt_json(PLAYERS, data, PLAYER_MUTATIONS)
    f = d / "players.json"
    f.write_bytes(blob)
    out = d / "out"
    refused(["measure", "--players", str(f), "--out", str(out)], f, out, f"players JSON: {how}")
    shutil.rmtree(d)


GRAPH = {
    "nodes": ["Power", "Security", "Benevolence"],
    "edges": [
        {"source": "Power", "target": "Security", "kind": "directed"},
        {"source": "Security", "target": "Benevolence", "kind": "undirected"},
    ],
}
GRAPH_MUTATIONS = {
    "no nodes": lambda o, d: {"edges": o["edges"]},
    "no edges": lambda o, d: {"nodes": o["nodes"]},
    "nodes not a list": lambda o, d: o | {"nodes": d.draw(st.sampled_from(["Power", 3, {"a": 1}, None]))},
    "node not text": lambda o, d: o | {"nodes": [*o["nodes"], d.draw(st.sampled_from([1, None, [], ""]))]},
    "node twice": lambda o, d: o | {"nodes": [*o["nodes"], "Power"]},
    "edges not a list": lambda o, d: o | {"edges": d.draw(st.sampled_from([{}, "x", 1]))},
    "edge to unknown node": lambda o, d: o | {"edges": [{"source": "Power", "target": d.draw(TEXT)}]},
    "edge of unknown kind": lambda o, d: (
        o | {"edges": [{"source": "Power", "target": "Security", "kind": d.draw(TEXT)}]}
    ),
    "edge of wrong shape": lambda o, d: (
        o | {"edges": [d.draw(st.sampled_from([["Power"], {"source": "Power"}, 7, None]))]}
    ),
}


def graph_case(data):
    d = _tmp()
    blob, how = corrupt_json(GRAPH, data, GRAPH_MUTATIONS)
    good, bad = d / "good.json", d / "graph.json"
    good.write_text(json.dumps(GRAPH))
    bad.write_bytes(blob)
    out = d / "out"
    pair = [str(bad), str(good)] if data.draw(st.booleans()) else [str(good), str(bad)]
    refused(["graph-compare", *pair, "--null", "5", "--out", str(out)], bad, out, f"graph JSON: {how}")
    shutil.rmtree(d)


KINDS = {
    "inventory CSV": inventory_case,
    "value table CSV": value_table_case,
    "PVQ-40 answers": pvq40_case,
    "players JSON": players_case,
    "graph JSON": graph_case,
}


@pytest.mark.parametrize("kind", list(KINDS))
def test_bad_input_ci(kind):
    fuzz(CI)(given(st.data())(KINDS[kind]))()


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(KINDS))
def test_bad_input_full(kind):
    fuzz(FULL)(given(st.data())(KINDS[kind]))()


# ---- SAE folders and model folders ------------------------------------------------------------------

SAE_CASES = [
    "no weights file",
    "no config",
    "config not JSON",
    "config not an object",
    "config without d_in",
    "tensor missing",
    "tensor mis-shaped",
    "weights not safetensors",
    "weights cut short",
    "d_in unlike the model",
    "hook not in the model",
    "empty folder",
]


def sae_case(data, inputs, tmp: Path):
    from safetensors.torch import load_file, save_file

    how = data.draw(st.sampled_from(SAE_CASES))
    d = Path(tempfile.mkdtemp(dir=tmp))
    sae = d / "sae"
    shutil.copytree(inputs["sae"], sae)
    weights, cfg_file = sae / "sae.safetensors", sae / "mechvalue_sae.json"
    cfg = json.loads(cfg_file.read_text())
    tensors = load_file(weights)
    if how == "no weights file":
        weights.unlink()
    elif how == "no config":
        cfg_file.unlink()
    elif how == "config not JSON":
        cfg_file.write_text(json.dumps(cfg)[: data.draw(st.integers(1, 20))])
    elif how == "config not an object":
        cfg_file.write_text(json.dumps(data.draw(st.sampled_from([[], 1, "x", None]))))
    elif how == "config without d_in":
        cfg_file.write_text(json.dumps({k: v for k, v in cfg.items() if k != "d_in"}))
    elif how == "tensor missing":
        k = data.draw(st.sampled_from(sorted(tensors)))
        save_file({n: t for n, t in tensors.items() if n != k}, weights)
    elif how == "tensor mis-shaped":
        k = data.draw(st.sampled_from(["W_enc", "W_dec", "b_enc", "b_dec"]))
        tensors[k] = tensors[k][..., : tensors[k].shape[-1] - data.draw(st.integers(1, 3))].contiguous()
        save_file(tensors, weights)
    elif how == "weights not safetensors":
        weights.write_bytes(bytes(data.draw(st.lists(st.integers(0, 255), min_size=0, max_size=64))))
    elif how == "weights cut short":
        b = weights.read_bytes()
        weights.write_bytes(b[: data.draw(st.integers(0, len(b) - 1))])
    elif how == "d_in unlike the model":
        n = data.draw(st.sampled_from([64, 575, 1024]))
        save_file(
            {
                k: (t[:n] if k in ("W_enc", "b_dec") else t[:, :n] if k == "W_dec" else t).contiguous()
                for k, t in tensors.items()
            },
            weights,
        )
        cfg_file.write_text(json.dumps(cfg | {"d_in": n}))
    elif how == "hook not in the model":
        cfg_file.write_text(
            json.dumps(cfg | {"hook_name": data.draw(st.sampled_from(["blocks.99.hook_resid_post", "nope"]))})
        )
    elif how == "empty folder":
        shutil.rmtree(sae)
        sae.mkdir()
    out = d / "out"
    argv = [
        "steer-grid",
        "--sae",
        str(sae),
        "--features",
        "1",
        "--no-hard",
        "--inventory",
        str(inputs["inventory2"]),
        "--roles",
        "1",
        "--out",
        str(out),
    ]
    refused(argv, sae, out, f"SAE folder: {how}")
    shutil.rmtree(d)


@pytest.fixture
def grid_refused():
    """A corrupt SAE must be refused before the grid runs."""
    import mechvalue.measurement.grid as grid

    real = grid.run_grid

    def refuse(*a, **k):
        raise ModelReached("the corrupt SAE was accepted: the grid started")

    grid.run_grid = refuse
    yield
    grid.run_grid = real


def test_bad_sae_folder_ci(zygote, inputs, grid_refused, tmp_path, monkeypatch):
    monkeypatch.setattr(models, "load_model", lambda *a, **k: zygote)
    fuzz(CI)(given(st.data())(lambda data: sae_case(data, inputs, tmp_path)))()


@pytest.mark.slow
def test_bad_sae_folder_full(zygote, inputs, grid_refused, tmp_path, monkeypatch):
    monkeypatch.setattr(models, "load_model", lambda *a, **k: zygote)
    fuzz(FULL)(given(st.data())(lambda data: sae_case(data, inputs, tmp_path)))()


MODEL_CASES = [
    "empty folder",
    "config only",
    "config and tokenizer, no weights",
    "config not JSON",
    "not a causal LM",
    "weights not safetensors",
    "weights cut short",
]


def model_case(data, real_load, tmp: Path):
    how = data.draw(st.sampled_from(MODEL_CASES))
    src = models.model_folder(models.DEFAULT_MODEL)
    d = Path(tempfile.mkdtemp(dir=tmp))
    m = d / "model"
    m.mkdir()
    if how != "empty folder":
        shutil.copy(src / "config.json", m / "config.json")
    if how in ("config and tokenizer, no weights", "weights not safetensors", "weights cut short"):
        for f in src.glob("tokenizer*"):
            shutil.copy(f, m / f.name)
    if how == "config not JSON":
        (m / "config.json").write_text("{" + data.draw(TEXT))
    elif how == "not a causal LM":
        (m / "config.json").write_text(json.dumps({"architectures": ["BertModel"], "model_type": "bert"}))
    elif how == "weights not safetensors":
        (m / "model.safetensors").write_bytes(bytes(data.draw(st.lists(st.integers(0, 255), max_size=64))))
    elif how == "weights cut short":
        with open(src / "model.safetensors", "rb") as f:
            (m / "model.safetensors").write_bytes(f.read(data.draw(st.integers(8, 4096))))
    out = d / "out"
    models.load_model = real_load
    refused(
        [
            "measure",
            "--model",
            str(m),
            "--inventory",
            str(tmp / "inv.csv"),
            "--roles",
            "1",
            "--out",
            str(out),
        ],
        m,
        out,
        f"model folder: {how}",
    )
    shutil.rmtree(d)


@pytest.fixture
def real_load(tmp_path):
    INVENTORY.head(2).to_csv(tmp_path / "inv.csv", index=False)
    return REAL_LOAD


REAL_LOAD = models.load_model  # captured at import, before any fixture swaps it


def test_bad_model_folder_ci(real_load, tmp_path):
    fuzz(10)(given(st.data())(lambda data: model_case(data, real_load, tmp_path)))()


@pytest.mark.slow
def test_bad_model_folder_full(real_load, tmp_path):
    fuzz(60)(given(st.data())(lambda data: model_case(data, real_load, tmp_path)))()


# ---- every input checked before the first stage (pipeline.preflight) --------------------------------
# The autouse `no_model` fixture turns a model load into a failure, and `refused` asserts that the
# output folder holds no file: each bad input below stops the command before any stage, any model
# load and any write, so a rerun with the input fixed starts on a clean folder.


def _empty(out: Path) -> None:
    assert not out.exists(), list(out.rglob("*"))


@pytest.mark.parametrize("command", ["run", "steer-grid", "steer-compare"])
@pytest.mark.parametrize("how", ["missing folder", "folder of no known format", "unknown release"])
def test_a_bad_sae_stops_before_any_stage(command, how, tmp_path):
    sae = {
        "missing folder": str(tmp_path / "no-such-sae"),
        "folder of no known format": str(tmp_path),
        "unknown release": "no-such-release:blocks.3.hook_resid_post",
    }[how]
    out = tmp_path / "out"
    line = refused([command, "--sae", sae, "--out", str(out)], sae.split(":")[0], out, f"--sae: {how}")
    _empty(out)
    if how == "folder of no known format":  # the formats it could have been are listed
        assert "mechvalue (mechvalue_sae.json" in line and "gemma-scope-2" in line


@pytest.mark.parametrize("command", ["run", "measure", "steer-grid", "steer-compare", "protocols"])
def test_an_unknown_questionnaire_lists_those_the_inventory_has(command, inputs, tmp_path):
    out = tmp_path / "out"
    argv = [command, "--questionnaire", "PVQ4", "--out", str(out)]
    argv += ["--sae", str(inputs["sae"])] if command == "steer-grid" else []
    line = refused(argv, "mechvalue_values.csv", out, "unknown questionnaire")
    assert "unknown questionnaire 'PVQ4'" in line and line.endswith("it has: MVI10")
    _empty(out)


def test_unknown_questionnaires_and_values_of_a_given_inventory_are_listed(inputs, tmp_path):
    out = tmp_path / "out"
    inv = str(inputs["inventory"])
    argv = ["measure", "--inventory", inv, "--out", str(out)]
    line = refused([*argv, "--questionnaire", "PVQ40,MVI10,X"], inv, out, "unknown questionnaires")
    assert "unknown questionnaires 'PVQ40', 'X'" in line and line.endswith("it has: MVI10")
    line = refused([*argv, "--values", "Power,Powr"], inv, out, "unknown value")
    assert "unknown value 'Powr'" in line and "it has: Benevolence, Power, Security, Self-Direction" in line
    _empty(out)


@pytest.mark.parametrize("command", ["run", "steer-grid", "measure"])
@pytest.mark.parametrize("how", ["empty folder", "not a causal LM", "no such folder"])
def test_a_bad_model_folder_stops_before_any_stage(command, how, inputs, tmp_path):
    m = tmp_path / "model"
    if how != "no such folder":
        m.mkdir()
    if how == "not a causal LM":
        (m / "config.json").write_text(json.dumps({"architectures": ["BertModel"], "model_type": "bert"}))
    out = tmp_path / "out"
    argv = [command, "--model", str(m), "--out", str(out)]
    argv += ["--sae", str(inputs["sae"])] if command != "measure" else []
    refused(argv, m, out, f"model folder: {how}")
    _empty(out)


@pytest.fixture(scope="module")
def base_model(tmp_path_factory) -> Path:
    """A tiny model folder whose tokenizer has no chat template (as a base model's)."""
    from tests.lm.tiny import write_tiny

    folder = write_tiny("llama3", tmp_path_factory.mktemp("base"))
    (folder / "chat_template.jinja").unlink(missing_ok=True)
    conf = folder / "tokenizer_config.json"
    conf.write_text(json.dumps({k: v for k, v in json.loads(conf.read_text()).items() if k != "chat_template"}))
    return folder


@pytest.mark.parametrize("command", ["run", "steer-grid", "measure", "cache"])
def test_a_prompt_format_the_model_cannot_take_stops_before_any_stage(command, base_model, inputs, tmp_path):
    out = tmp_path / "out"
    argv = [command, "--model", str(base_model), "--prompt-format", "chat", "--out", str(out)]
    argv += ["--sae", str(inputs["sae"])] if command in ("run", "steer-grid") else []
    argv += ["--hooks", "blocks.1.hook_resid_post"] if command == "cache" else []
    line = refused(argv, base_model, out, "prompt format")
    assert "'chat' needs a chat template" in line
    _empty(out)


def test_a_prompt_format_of_no_known_name_is_refused_by_the_library_too(tmp_path):
    from mechvalue.errors import MechValueError
    from mechvalue.pipeline.config import RunConfig
    from mechvalue.pipeline.run import run

    with pytest.raises(MechValueError, match=r"prompt format 'xml': expected one of chat, gemma, llama"):
        run(tmp_path / "out", RunConfig(prompt_format="xml"), progress=False)
    _empty(tmp_path / "out")


def test_a_model_without_a_recipe_sae_needs_sae_at_once(base_model, tmp_path, monkeypatch):
    """Not the default model, no --sae, no recipe SAE made: stop before measuring, so the folder
    takes the rerun with --sae (no stage has recorded other settings)."""
    monkeypatch.setenv("MECHVALUE_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "out"
    line = refused(["run", "--model", str(base_model), "--out", str(out)], base_model, out, "no --sae")
    assert "no --sae and no recipe SAE at any layer" in line and f"sae-train --model {base_model}" in line
    argv = ["run", "--model", str(base_model), "--layer", "1", "--out", str(out)]
    line = refused(argv, base_model, out, "no --sae at a layer")
    assert "no recipe SAE at layer 1" in line and "--layer 1" in line
    _empty(out)


def test_a_layer_the_model_lacks_stops_before_any_stage(base_model, inputs, tmp_path):
    out = tmp_path / "out"
    argv = ["run", "--model", str(base_model), "--sae", str(inputs["sae"]), "--layer", "3", "--out", str(out)]
    assert "has layers 0..2" in refused(argv, "--layer 3", out, "layer")
    _empty(out)


def test_an_output_path_that_is_a_file_is_refused(tmp_path):
    out = tmp_path / "out"
    out.write_text("a file")
    for command in (["run"], ["measure"], ["validity", "--items", str(tmp_path / "items.csv")]):
        assert "is a file; --out takes a folder" in refused([*command, "--out", str(out)], out, None, "file")
    assert out.read_text() == "a file"


def test_a_folder_of_a_run_with_other_settings_says_which_before_any_work(tmp_path):
    """The settings that differ are named with both values; the folder is left as it was."""
    from dataclasses import asdict

    from mechvalue.pipeline.config import RunConfig
    from mechvalue.study.settings import default_human_answers

    out = tmp_path / "out"
    out.mkdir()
    settings = asdict(RunConfig.quick_preset(layer=15, human=default_human_answers())) | {"roles": 40}
    (out / "config.json").write_text(json.dumps({"settings": settings, "versions": {}}))
    before = (out / "config.json").read_bytes()
    line = refused(["run", "--quick", "--out", str(out)], out, None, "other settings")
    assert "other settings (roles)" in line and "roles: 40 there, 14 now" in line
    assert sorted(p.name for p in out.iterdir()) == ["config.json"]
    assert (out / "config.json").read_bytes() == before
