"""SAE formats: small random SAEs written the way each publisher writes them (Gemma Scope's npz
layout, Gemma Scope 2's config.json + params.safetensors, EleutherAI sparsify's save_to_disk, SAELens's save_model, a SAELens release in a Hugging Face
cache) load into SAEs that compute what the publisher's code computes; bad folders give clear errors."""

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from mechvalue.errors import MechValueError
from mechvalue.interp.sae_formats import (
    FORMATS,
    detect_format,
    gemma_scope_hook_name,
    hf_hook_to_tl,
    load_sae,
    sparsify_hook_name,
)
from tests.interp.sae_fixtures import (
    gemma_scope_2_tensors,
    gemma_scope_arrays,
    gs2_id,
    sparsify_tensors,
    write_gemma_scope,
    write_gemma_scope_2,
    write_gemma_scope_2_to_hf_cache,
    write_release_to_hf_cache,
    write_saelens,
    write_sparsify,
)

D_IN, D_SAE = 24, 96


def _x(n=64, seed=1):
    return torch.randn(n, D_IN, generator=torch.Generator().manual_seed(seed))


# --- Gemma Scope --------------------------------------------------------------------------------


def _gemma_scope_reference(a, x):
    """Gemma Scope's JumpReLUSAE (its tutorial), in numpy: no b_dec before encoding."""
    pre = x @ a["W_enc"] + a["b_enc"]
    acts = (pre > a["threshold"]) * np.maximum(pre, 0)
    return acts, acts @ a["W_dec"] + a["b_dec"]


def test_gemma_scope_npz_matches_the_release_math(tmp_path):
    folder = write_gemma_scope(tmp_path / "gemma-scope-2b-pt-res", D_IN, D_SAE, layer=12, seed=3)
    assert folder.relative_to(tmp_path).as_posix() == "gemma-scope-2b-pt-res/layer_12/width_16k/average_l0_82"
    sae = load_sae(folder)
    a = gemma_scope_arrays(D_IN, D_SAE, seed=3)
    for name in ("W_enc", "W_dec", "b_enc", "b_dec", "threshold"):
        assert torch.equal(getattr(sae, name).detach(), torch.from_numpy(a[name])), name
    assert (sae.cfg.activation, sae.cfg.hook_name, sae.cfg.apply_b_dec_to_input, sae.cfg.input_scale) == (
        "jumprelu",
        "blocks.12.hook_resid_post",
        False,
        1.0,
    )
    x = _x()
    acts, recon = _gemma_scope_reference(a, x.numpy().astype(np.float64))
    with torch.no_grad():
        f = sae.encode(x)
        assert 0.1 < (f > 0).float().mean() < 0.6  # the fixture is not trivially dead or dense
        assert torch.equal(f > 0, torch.from_numpy(acts > 0))
        np.testing.assert_allclose(f.numpy(), acts, atol=1e-5)
        np.testing.assert_allclose(sae(x).numpy(), recon, atol=1e-4)
    # the params.npz file itself loads the same SAE
    assert torch.equal(load_sae(folder / "params.npz").W_enc, sae.W_enc)


@pytest.mark.parametrize(
    ("path", "hook"),
    [
        ("gemma-scope-2b-pt-res/layer_5/width_16k/average_l0_82/params.npz", "blocks.5.hook_resid_post"),
        (
            "models--google--gemma-scope-9b-it-res/snapshots/abc/layer_20/width_131k/average_l0_9/params.npz",
            "blocks.20.hook_resid_post",
        ),
        (
            "models--google--gemma-scope-2b-pt-mlp/snapshots/abc/layer_3/width_65k/average_l0_7/params.npz",
            "blocks.3.hook_mlp_out",
        ),
        (
            "my_saes/layer_7/width_16k/average_l0_1/params.npz",
            "blocks.7.hook_resid_post",
        ),  # site unsaid: residual
    ],
)
def test_gemma_scope_hook_from_the_release_layout(path, hook):
    assert gemma_scope_hook_name(path) == hook


@pytest.mark.parametrize(
    ("path", "msg"),
    [
        ("saes/width_16k/params.npz", "no layer_<n> folder"),
        ("gemma-scope-2b-pt-att/layer_3/width_16k/average_l0_5/params.npz", "'att' SAEs are not supported"),
        ("gemma-scope-2b-pt-res/embedding/width_4k/average_l0_6/params.npz", "embedding SAEs"),
    ],
)
def test_gemma_scope_layout_that_cannot_be_read_is_a_clear_error(path, msg):
    with pytest.raises(MechValueError, match=msg):
        gemma_scope_hook_name(path)


def test_gemma_scope_hook_override_and_dtype(tmp_path):
    folder = write_gemma_scope(tmp_path / "x", D_IN, D_SAE, layer=2)
    sae = load_sae(folder, dtype="bfloat16", hook_name="blocks.1.hook_resid_post")
    assert sae.cfg.hook_name == "blocks.1.hook_resid_post"
    assert {p.dtype for p in sae.parameters()} == {torch.bfloat16}
    assert load_sae(folder, dtype=torch.float16).W_dec.dtype == torch.float16
    with pytest.raises(MechValueError, match="dtype 'int8'"):
        load_sae(folder, dtype="int8")


def test_gemma_scope_missing_or_misshaped_tensor_names_file_and_tensor(tmp_path):
    folder = write_gemma_scope(tmp_path / "gemma-scope-2b-pt-res", D_IN, D_SAE, layer=1)
    a = gemma_scope_arrays(D_IN, D_SAE)
    np.savez(folder / "params.npz", **{k: v for k, v in a.items() if k != "threshold"})
    with pytest.raises(MechValueError, match=r"params\.npz: no tensor 'threshold'"):
        load_sae(folder)
    np.savez(folder / "params.npz", **(a | {"b_dec": a["b_dec"][:-1]}))
    with pytest.raises(
        MechValueError, match=rf"params\.npz: tensor 'b_dec' has shape \({D_IN - 1},\), expected \({D_IN},\)"
    ):
        load_sae(folder)
    np.savez(folder / "params.npz", **(a | {"W_enc": a["W_enc"].ravel()}))
    with pytest.raises(MechValueError, match=r"params\.npz: tensor 'W_enc' has shape"):
        load_sae(folder)
    (folder / "params.npz").write_bytes(b"not a zip")
    with pytest.raises(MechValueError, match=r"params\.npz: not a readable \.npz"):
        load_sae(folder)


# --- EleutherAI sparsify ------------------------------------------------------------------------


def _sparsify_reference(t, x, k):
    """sparsify's SparseCoder math: TopK(ReLU((x - b_dec) @ encoder.weight.T + bias)), f @ W_dec + b_dec."""
    pre = torch.relu((x - t["b_dec"]) @ t["encoder.weight"].T + t["encoder.bias"])
    vals, idx = pre.topk(k, dim=-1)
    f = torch.zeros_like(pre).scatter(-1, idx, vals)
    return f, f @ t["W_dec"] + t["b_dec"]


def test_sparsify_folder_matches_sparsify(tmp_path):
    k = 6
    folder = write_sparsify(tmp_path / "checkpoints" / "run", D_IN, D_SAE, k=k, hookpoint="layers.6", seed=5)
    assert sorted(p.name for p in folder.iterdir()) == ["cfg.json", "sae.safetensors"]
    sae = load_sae(folder)
    t = sparsify_tensors(D_IN, D_SAE, seed=5)
    assert torch.equal(sae.W_enc, t["encoder.weight"].T) and torch.equal(sae.b_enc, t["encoder.bias"])
    assert torch.equal(sae.W_dec, t["W_dec"]) and torch.equal(sae.b_dec, t["b_dec"])
    assert (sae.cfg.activation, sae.cfg.k, sae.cfg.hook_name, sae.cfg.apply_b_dec_to_input) == (
        "topk",
        k,
        "blocks.6.hook_resid_post",
        True,
    )
    x = _x()
    with torch.no_grad():
        f, recon = _sparsify_reference(t, x, k)
        assert torch.allclose(sae.encode(x), f, atol=1e-6) and torch.allclose(sae(x), recon, atol=1e-5)
    # the checkpoint folder holding one hookpoint loads the same SAE
    assert torch.equal(load_sae(folder.parent).W_enc, sae.W_enc)


def test_sparsify_library_agrees():
    sparsify = pytest.importorskip("sparsify")
    import tempfile
    from pathlib import Path

    k = 5
    with tempfile.TemporaryDirectory() as d:
        folder = write_sparsify(Path(d), D_IN, D_SAE, k=k, hookpoint="layers.2", seed=7)
        ref = sparsify.SparseCoder.load_from_disk(folder)
        ours = load_sae(folder)
    x = _x(33, seed=2)
    with torch.no_grad():
        top_acts, top_idx, _ = ref.encode(x)
        dense = torch.zeros(len(x), D_SAE).scatter(-1, top_idx, top_acts)
        assert torch.allclose(ours.encode(x), dense, atol=1e-6)
        assert torch.allclose(ours(x), ref(x).sae_out, atol=1e-5)


def test_sparsify_bfloat16_checkpoint_loads_exactly(tmp_path):
    folder = write_sparsify(tmp_path, D_IN, D_SAE, k=4, hookpoint="model.layers.3", dtype=torch.bfloat16)
    sae = load_sae(folder)
    assert sae.cfg.hook_name == "blocks.3.hook_resid_post" and sae.W_dec.dtype == torch.float32
    assert torch.equal(sae.W_dec, sparsify_tensors(D_IN, D_SAE, dtype=torch.bfloat16)["W_dec"].float())


@pytest.mark.parametrize(
    ("hookpoint", "hook"),
    [
        ("layers.6", "blocks.6.hook_resid_post"),
        ("model.layers.12", "blocks.12.hook_resid_post"),
        ("gpt_neox.layers.0", "blocks.0.hook_resid_post"),
        ("h.3", "blocks.3.hook_resid_post"),
        ("layers_4", "blocks.4.hook_resid_post"),
        ("layers.6.mlp", None),
        ("embed_tokens", None),
    ],
)
def test_sparsify_hookpoint_names(hookpoint, hook):
    assert sparsify_hook_name(hookpoint) == hook


def test_sparsify_errors_name_the_folder_file_and_tensor(tmp_path):
    run = tmp_path / "run"
    write_sparsify(run, D_IN, D_SAE, k=4, hookpoint="layers.1")
    write_sparsify(run, D_IN, D_SAE, k=4, hookpoint="layers.2")
    with pytest.raises(MechValueError, match=r"2 hookpoints \(layers\.1, layers\.2\); pass one"):
        load_sae(run)
    mlp = write_sparsify(tmp_path / "m", D_IN, D_SAE, k=4, hookpoint="layers.3.mlp")
    with pytest.raises(MechValueError, match=r"'layers\.3\.mlp' is not a residual-stream layer"):
        load_sae(mlp)
    assert load_sae(mlp, hook_name="blocks.3.hook_mlp_out").cfg.hook_name == "blocks.3.hook_mlp_out"

    from safetensors.torch import save_file

    leaf = run / "layers.1"
    t = sparsify_tensors(D_IN, D_SAE)
    save_file({k: v for k, v in t.items() if k != "W_dec"}, str(leaf / "sae.safetensors"))
    with pytest.raises(MechValueError, match=r"layers\.1/sae\.safetensors: no tensor 'W_dec'"):
        load_sae(leaf)
    save_file(t | {"encoder.bias": t["encoder.bias"][:10].clone()}, str(leaf / "sae.safetensors"))
    with pytest.raises(
        MechValueError,
        match=rf"sae\.safetensors: tensor 'encoder\.bias' has shape \(10,\), expected \({D_SAE},\)",
    ):
        load_sae(leaf)
    (leaf / "sae.safetensors").unlink()
    with pytest.raises(MechValueError, match=r"layers\.1/sae\.safetensors: missing"):
        load_sae(leaf)
    cfg = json.loads((run / "layers.2" / "cfg.json").read_text())
    (run / "layers.2" / "cfg.json").write_text(json.dumps(cfg | {"activation": "groupmax"}))
    with pytest.raises(MechValueError, match=r"cfg\.json: activation='groupmax' is not supported"):
        load_sae(run / "layers.2")


# --- SAELens folders and releases -----------------------------------------------------------------


@pytest.mark.parametrize("architecture", ["standard", "jumprelu", "topk"])
def test_saelens_folder_matches_saelens(tmp_path, architecture):
    pytest.importorskip("sae_lens")
    from sae_lens import SAE as LensSAE

    folder = write_saelens(
        tmp_path / "lens", D_IN, D_SAE, "blocks.4.hook_resid_post", seed=2, architecture=architecture
    )
    assert detect_format(folder).name == "saelens"
    ours, lens = load_sae(folder), LensSAE.load_from_disk(str(folder))
    assert ours.cfg.hook_name == "blocks.4.hook_resid_post"
    x = _x() * 3
    with torch.no_grad():
        f = lens.encode(x)
        assert 0 < (f > 0).float().mean() < 1
        assert torch.allclose(ours.encode(x), f, atol=1e-5) and torch.allclose(ours(x), lens(x), atol=1e-5)


def test_saelens_misshaped_tensor_names_file_and_tensor(tmp_path):
    pytest.importorskip("sae_lens")
    from safetensors.torch import load_file, save_file

    folder = write_saelens(tmp_path / "lens", D_IN, D_SAE, "blocks.4.hook_resid_post")
    t = load_file(str(folder / "sae_weights.safetensors"))
    save_file(t | {"W_dec": t["W_dec"].T.contiguous()}, str(folder / "sae_weights.safetensors"))
    with pytest.raises(
        MechValueError, match=rf"sae_weights\.safetensors: tensor 'W_dec' has shape \({D_IN}, {D_SAE}\)"
    ):
        load_sae(folder)
    (folder / "sae_weights.safetensors").unlink()
    with pytest.raises(MechValueError, match=r"sae_weights\.safetensors: missing"):
        load_sae(folder)


@pytest.fixture
def offline_hf_cache(tmp_path, monkeypatch):
    """An empty Hugging Face cache with the hub switched off, as HF_HUB_OFFLINE=1 HF_HUB_CACHE=... do."""
    pytest.importorskip("sae_lens")
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    return tmp_path / "hub"


def test_study_release_resolves_from_the_local_cache(offline_hf_cache):
    from sae_lens import SAE as LensSAE

    ref = "gemma-2b-it-res-jb:blocks.12.hook_resid_post"
    with pytest.raises(
        MechValueError,
        match=r"not in the local cache .* HF_HUB_OFFLINE is set; .*hf download "
        r"jbloom/Gemma-2b-IT-Residual-Stream-SAEs --include 'gemma_2b_it_blocks\.12\.hook_resid_post_16384/\*'",
    ):
        load_sae(ref)
    folder = write_release_to_hf_cache(
        offline_hf_cache, "gemma-2b-it-res-jb", "blocks.12.hook_resid_post", D_IN, D_SAE
    )
    ours, lens = load_sae(ref), LensSAE.load_from_disk(str(folder))
    assert ours.cfg.hook_name == "blocks.12.hook_resid_post"
    x = _x()
    with torch.no_grad():
        assert torch.allclose(ours(x), lens(x), atol=1e-5)


def test_unknown_release_or_id_is_a_clear_error(offline_hf_cache):
    with pytest.raises(
        MechValueError, match=r"unknown SAELens release 'gemma-2b-it-res-xx' \(similar: .*gemma-2b-it-res-jb"
    ):
        load_sae("gemma-2b-it-res-xx:blocks.12.hook_resid_post")
    with pytest.raises(
        MechValueError,
        match=r"has no SAE 'blocks\.13\.hook_resid_post' \(it has blocks\.12\.hook_resid_post\)",
    ):
        load_sae("gemma-2b-it-res-jb:blocks.13.hook_resid_post")


# --- the registry -----------------------------------------------------------------------------------


def test_unknown_folder_lists_every_format(tmp_path):
    (tmp_path / "weights.bin").write_bytes(b"\0")
    with pytest.raises(MechValueError, match="not an SAE folder of a known format") as e:
        load_sae(tmp_path)
    for name, fmt in FORMATS.items():
        assert f"{name} ({fmt.layout})" in str(e.value)
    assert list(FORMATS) == ["mechvalue", "saelens", "sparsify", "gemma-scope", "gemma-scope-2"]
    with pytest.raises(MechValueError, match="no such SAE folder"):
        load_sae(tmp_path / "absent")


def test_each_fixture_is_detected_as_its_own_format(tmp_path):
    assert detect_format(write_gemma_scope(tmp_path / "g", 4, 8, layer=0)).name == "gemma-scope"
    assert (
        detect_format(write_gemma_scope_2(tmp_path / "g2", gs2_id("resid_post", 0), 4, 8)).name
        == "gemma-scope-2"
    )
    assert detect_format(write_sparsify(tmp_path / "s", 4, 8, k=2)).name == "sparsify"
    assert detect_format(tmp_path / "s").name == "sparsify"


def test_run_records_a_given_sae_and_rejects_an_unknown_folder(tmp_path, monkeypatch):
    from mechvalue.pipeline.config import RunConfig
    from mechvalue.pipeline.stages import sae as sae_stage

    folder = write_gemma_scope(tmp_path / "gemma-scope-2b-pt-res", D_IN, D_SAE, layer=4)
    monkeypatch.chdir(tmp_path)  # a relative --sae is recorded absolute
    sae_stage(tmp_path / "out", SimpleNamespace(cfg=RunConfig(sae=str(folder.relative_to(tmp_path)))))
    ref = json.loads((tmp_path / "out" / "sae.json").read_text())
    assert ref | {"path": None} == {
        "path": None,
        "trained": False,
        "metrics": {},
        "d_sae": D_SAE,
        "hook_name": "blocks.4.hook_resid_post",
        "activation": "jumprelu",
    }
    assert ref["path"] == str(folder) and torch.equal(load_sae(ref["path"]).W_enc, load_sae(folder).W_enc)
    with pytest.raises(MechValueError, match="not an SAE folder of a known format"):
        sae_stage(tmp_path / "out2", SimpleNamespace(cfg=RunConfig(sae=str(tmp_path / "out"))))


def test_run_keeps_a_release_name(offline_hf_cache, tmp_path):
    from mechvalue.pipeline.config import RunConfig
    from mechvalue.pipeline.stages import sae as sae_stage

    write_release_to_hf_cache(
        offline_hf_cache, "gemma-2b-it-res-jb", "blocks.12.hook_resid_post", D_IN, D_SAE
    )
    sae_stage(
        tmp_path / "out", SimpleNamespace(cfg=RunConfig(sae="gemma-2b-it-res-jb:blocks.12.hook_resid_post"))
    )
    ref = json.loads((tmp_path / "out" / "sae.json").read_text())
    assert (ref["path"], ref["hook_name"]) == (
        "gemma-2b-it-res-jb:blocks.12.hook_resid_post",
        "blocks.12.hook_resid_post",
    )


# --- Gemma Scope 2 ------------------------------------------------------------------------------


def test_gemma_scope_2_matches_the_release_math(tmp_path):
    root = tmp_path / "gemma-scope-2-270m-pt"
    folder = write_gemma_scope_2(root, gs2_id("resid_post", 12), D_IN, D_SAE, seed=3)
    assert (
        folder.relative_to(tmp_path).as_posix()
        == "gemma-scope-2-270m-pt/resid_post/layer_12_width_16k_l0_medium"
    )
    a = gemma_scope_arrays(D_IN, D_SAE, seed=3)
    for path in (folder, folder / "params.safetensors"):
        sae = load_sae(path)
        assert detect_format(path).name == "gemma-scope-2"
        for name in ("W_enc", "W_dec", "b_enc", "b_dec", "threshold"):
            assert torch.equal(getattr(sae, name).detach(), torch.from_numpy(a[name])), name
        assert (sae.cfg.activation, sae.cfg.hook_name, sae.cfg.apply_b_dec_to_input) == (
            "jumprelu",
            "blocks.12.hook_resid_post",
            False,
        )
    x = _x()
    acts, recon = _gemma_scope_reference(a, x.numpy().astype(np.float64))
    with torch.no_grad():
        f = sae.encode(x)
        assert torch.equal(f > 0, torch.from_numpy(acts > 0))
        np.testing.assert_allclose(f.numpy(), acts, atol=1e-5)
        np.testing.assert_allclose(sae.decode(f).numpy(), recon, atol=1e-4)


@pytest.mark.parametrize(
    ("site", "config", "hook"),
    [
        ("resid_post", True, "blocks.5.hook_resid_post"),
        ("resid_post_all", False, "blocks.5.hook_resid_post"),
        ("mlp_out", True, "blocks.5.hook_mlp_out"),
        ("mlp_out_all", False, "blocks.5.hook_mlp_out"),
    ],
)
def test_gemma_scope_2_hook_from_config_or_layout(tmp_path, site, config, hook):
    """The HF-style site of config.json, or (where a folder has none) the site folder and layer_<n>."""
    folder = write_gemma_scope_2(
        tmp_path / "gemma-scope-2-1b-it", gs2_id(site, 5), D_IN, D_SAE, config=config
    )
    assert load_sae(folder).cfg.hook_name == hook
    assert load_sae(folder, hook_name="blocks.2.hook_resid_post").cfg.hook_name == "blocks.2.hook_resid_post"


@pytest.mark.parametrize(
    ("hf", "tl"),
    [
        ("model.layers.12.output", "blocks.12.hook_resid_post"),
        ("model.layers.3.post_feedforward_layernorm.output", "blocks.3.hook_mlp_out"),
        ("model.layers.3.post_attention_layernorm.output", "blocks.3.hook_attn_out"),
        ("model.layers.0.input", "blocks.0.hook_resid_pre"),
        ("model.language_model.layers.20.output", "blocks.20.hook_resid_post"),
    ],
)
def test_hf_hook_names_map_to_transformerlens(hf, tl):
    assert hf_hook_to_tl(hf) == tl


def test_gemma_scope_2_sites_it_cannot_edit_are_clear_errors(tmp_path):
    root = tmp_path / "gemma-scope-2-270m-pt"
    with pytest.raises(
        MechValueError,
        match=r"config\.json: HF hook 'model\.layers\.4\.self_attn\.o_proj\.input': "
        "attention-output SAEs read o_proj's input",
    ):
        load_sae(write_gemma_scope_2(root, gs2_id("attn_out", 4), D_IN, D_SAE))
    with pytest.raises(MechValueError, match="not a residual-stream, MLP-output or attention-output site"):
        hf_hook_to_tl("model.layers.4.mlp.down_proj.output")
    for affine, config in ((False, True), (True, True), (False, False)):
        folder = write_gemma_scope_2(root, gs2_id("transcoder", 9, affine), D_IN, D_SAE, config=config)
        with pytest.raises(
            MechValueError,
            match=rf"{folder.name}/params\.safetensors: Gemma Scope 2 a transcoder "
            r"\(reads .*\): not supported",
        ):
            load_sae(folder)


def test_gemma_scope_2_misshaped_or_missing_names_file_and_tensor(tmp_path):
    from safetensors.torch import save_file

    folder = write_gemma_scope_2(tmp_path / "gemma-scope-2-270m-pt", gs2_id("resid_post", 1), D_IN, D_SAE)
    t = gemma_scope_2_tensors(D_IN, D_SAE)
    save_file(t | {"w_dec": t["w_dec"].T.contiguous()}, str(folder / "params.safetensors"))
    with pytest.raises(
        MechValueError, match=rf"params\.safetensors: tensor 'w_dec' has shape \({D_IN}, {D_SAE}\)"
    ):
        load_sae(folder)
    save_file({k: v for k, v in t.items() if k != "threshold"}, str(folder / "params.safetensors"))
    with pytest.raises(MechValueError, match=r"params\.safetensors: no tensor 'threshold'"):
        load_sae(folder)
    save_file(t, str(folder / "params.safetensors"))
    cfg = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(cfg | {"width": 2 * D_SAE}))
    with pytest.raises(
        MechValueError, match=rf"config\.json: width {2 * D_SAE} but params\.safetensors has {D_SAE}"
    ):
        load_sae(folder)


def _local_header_shapes(cache):
    """SAELens asks the hub for a Gemma Scope 2 file's tensor shapes even when the file is cached:
    read them from the cached file's header instead (the only network call its loader makes)."""

    def shapes(repo_id, filename):
        from huggingface_hub import try_to_load_from_cache
        from safetensors import safe_open

        with safe_open(try_to_load_from_cache(repo_id, filename, cache_dir=str(cache)), "pt") as f:
            return {k: list(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118

    return shapes


@pytest.mark.parametrize(
    ("release", "sae_id", "hook"),
    [
        ("gemma-scope-2-270m-pt-res", "layer_12_width_16k_l0_medium", "blocks.12.hook_resid_post"),
        ("gemma-scope-2-270m-pt-mlp", "layer_12_width_16k_l0_small", "blocks.12.hook_mlp_out"),
    ],
)
def test_gemma_scope_2_release_from_the_local_cache_matches_saelens(
    offline_hf_cache, monkeypatch, release, sae_id, hook
):
    from sae_lens import SAE as LensSAE

    ref = f"{release}:{sae_id}"
    with pytest.raises(
        MechValueError,
        match=rf"not in the local cache .*hf download google/gemma-scope-2-270m-pt "
        rf"--include '\w+/{sae_id}/\*'",
    ):
        load_sae(ref)
    write_gemma_scope_2_to_hf_cache(offline_hf_cache, release, sae_id, D_IN, D_SAE, seed=5)
    ours = load_sae(ref)
    assert ours.cfg.hook_name == hook
    monkeypatch.setattr(
        "sae_lens.loading.pretrained_sae_loaders.get_safetensors_tensor_shapes",
        _local_header_shapes(offline_hf_cache),
    )
    lens = LensSAE.from_pretrained(release, sae_id, device="cpu")
    assert (lens.cfg.metadata.hook_name, lens.cfg.metadata.hf_hook_name) == (
        hook,
        json.loads(next(offline_hf_cache.rglob(f"{sae_id}/config.json")).read_text())["hf_hook_point_in"],
    )
    x = _x() * 2
    with torch.no_grad():
        assert torch.equal(ours.encode(x) > 0, lens.encode(x) > 0)
        assert torch.allclose(ours.encode(x), lens.encode(x), atol=1e-5)
        assert torch.allclose(ours(x), lens(x), atol=1e-5)
