"""Small random SAEs written the way each publisher writes them, for format tests and tiny-model runs.

- `write_gemma_scope`: params.npz (W_enc, W_dec, b_enc, b_dec, threshold; float32) under the release's
  layout `<root>/layer_<l>/width_<w>/average_l0_<n>/`, as in google/gemma-scope-2b-pt-res.
- `write_sparsify`: a hookpoint folder (`layers.<l>/cfg.json + sae.safetensors`) saved by EleutherAI
  sparsify's own `SparseCoder.save_to_disk` when the library imports, else written as its source does.
- `write_gemma_scope_2`: config.json + params.safetensors (w_enc, w_dec, b_enc, b_dec, threshold) under
  google/gemma-scope-2-*'s layout `<root>/<site>/layer_<l>_width_<w>_l0_<size>/`, config naming the site
  HF's way (`hf_hook_point_in`: "model.layers.<l>.output"); `write_gemma_scope_2_to_hf_cache` puts one
  where a SAELens `gemma-scope-2-*` release id resolves in a Hugging Face cache.
- `write_saelens`: a SAELens folder saved by `sae_lens` itself; `write_release_to_hf_cache` puts one where
  a SAELens release name resolves to in a Hugging Face cache (what `hf download` leaves).
Each returns the folder `load_sae` takes; the `*_tensors` functions give the tensors the writers store.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import torch


def gemma_scope_arrays(d_in: int, d_sae: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Gemma Scope's tensors with their shapes and dtype; scaled so that, for inputs of unit-variance
    entries, pre-activations are ~N(0, 1) and a threshold in [0, 1) leaves ~30% of features active."""
    rng = np.random.default_rng(seed)
    W_dec = rng.normal(size=(d_sae, d_in))
    W_dec /= np.linalg.norm(W_dec, axis=1, keepdims=True)
    arrays = {
        "W_enc": rng.normal(scale=d_in**-0.5, size=(d_in, d_sae)),
        "W_dec": W_dec,
        "b_enc": rng.normal(scale=0.1, size=d_sae),
        "b_dec": rng.normal(scale=0.1, size=d_in),
        "threshold": rng.uniform(0.0, 1.0, size=d_sae),
    }
    return {k: v.astype(np.float32) for k, v in arrays.items()}


def write_gemma_scope(
    folder: str | Path,
    d_in: int,
    d_sae: int,
    layer: int,
    seed: int = 0,
    width: str = "16k",
    average_l0: int = 82,
) -> Path:
    """`folder` plays the release repository (name it e.g. gemma-scope-2b-pt-res to record the site);
    returns `folder/layer_<layer>/width_<width>/average_l0_<n>`, holding params.npz."""
    out = Path(folder) / f"layer_{layer}" / f"width_{width}" / f"average_l0_{average_l0}"
    out.mkdir(parents=True, exist_ok=True)
    np.savez(out / "params.npz", **gemma_scope_arrays(d_in, d_sae, seed))
    return out


def sparsify_tensors(
    d_in: int, num_latents: int, seed: int = 0, dtype: torch.dtype = torch.float32
) -> dict[str, torch.Tensor]:
    """The state dict sparsify's `SparseCoder` saves: encoder.weight (num_latents, d_in), encoder.bias,
    W_dec (num_latents, d_in, unit rows as `normalize_decoder` keeps them) and b_dec (d_in)."""
    g = torch.Generator().manual_seed(seed)
    W_dec = torch.randn(num_latents, d_in, generator=g)
    W_dec /= W_dec.norm(dim=1, keepdim=True)
    tensors = {
        "encoder.weight": torch.randn(num_latents, d_in, generator=g) * d_in**-0.5,
        "encoder.bias": torch.randn(num_latents, generator=g) * 0.1,
        "W_dec": W_dec,
        "b_dec": torch.randn(d_in, generator=g) * 0.1,
    }
    return {k: v.to(dtype) for k, v in tensors.items()}


def write_sparsify(
    folder: str | Path,
    d_in: int,
    num_latents: int,
    k: int,
    hookpoint: str = "layers.6",
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
) -> Path:
    """`folder` plays a sparsify checkpoint (`checkpoints/<run>`); returns `folder/<hookpoint>`."""
    out = Path(folder) / hookpoint
    tensors = sparsify_tensors(d_in, num_latents, seed, dtype)
    cfg = {
        "activation": "topk",
        "expansion_factor": 32,
        "normalize_decoder": True,
        "num_latents": num_latents,
        "k": k,
        "multi_topk": False,
        "skip_connection": False,
        "transcode": False,
    }
    try:
        from sparsify import SaeConfig, SparseCoder
    except (
        ImportError
    ):  # written as sparsify's save_to_disk does: safetensors' save_model, cfg.to_dict() + d_in
        from safetensors.torch import save_file

        out.mkdir(parents=True, exist_ok=True)
        save_file({k_: v.contiguous() for k_, v in tensors.items()}, str(out / "sae.safetensors"))
        (out / "cfg.json").write_text(json.dumps({**cfg, "d_in": d_in}))
        return out
    sae = SparseCoder(d_in, SaeConfig(**cfg), dtype=dtype)
    with torch.no_grad():
        sae.encoder.weight.copy_(tensors["encoder.weight"])
        sae.encoder.bias.copy_(tensors["encoder.bias"])
        sae.W_dec.copy_(tensors["W_dec"])
        sae.b_dec.copy_(tensors["b_dec"])
    sae.save_to_disk(out)
    return out


def saelens_sae(architecture: str, d_in: int, d_sae: int, hook_name: str, k: int = 8):
    """An untrained SAELens SAE object (standard, jumprelu or topk) reading `hook_name`."""
    from sae_lens import (
        JumpReLUSAE,
        JumpReLUSAEConfig,
        StandardSAE,
        StandardSAEConfig,
        TopKSAE,
        TopKSAEConfig,
    )
    from sae_lens.saes.sae import SAEMetadata

    meta = SAEMetadata(hook_name=hook_name)
    return {
        "standard": lambda: StandardSAE(StandardSAEConfig(d_in=d_in, d_sae=d_sae, metadata=meta)),
        "jumprelu": lambda: JumpReLUSAE(JumpReLUSAEConfig(d_in=d_in, d_sae=d_sae, metadata=meta)),
        "topk": lambda: TopKSAE(TopKSAEConfig(d_in=d_in, d_sae=d_sae, k=k, metadata=meta)),
    }[architecture]()


def write_saelens(
    folder: str | Path,
    d_in: int,
    d_sae: int,
    hook_name: str,
    seed: int = 0,
    architecture: str = "standard",
    k: int = 8,
) -> Path:
    """A SAELens SAE (standard, jumprelu or topk) with random weights, saved by SAELens's `save_model`."""
    lens = saelens_sae(architecture, d_in, d_sae, hook_name, k)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in lens.named_parameters():
            p.copy_(torch.randn(p.shape, generator=g) * (d_in**-0.5 if name.startswith("W_") else 0.1))
        if architecture == "jumprelu":
            lens.threshold.copy_(torch.rand(d_sae, generator=g))
    out = Path(folder)
    lens.save_model(str(out))
    return out


def write_release_to_hf_cache(
    cache_dir: str | Path, release: str, sae_id: str, d_in: int, d_sae: int, seed: int = 0
) -> Path:
    """A small SAELens-format SAE where `release:sae_id` resolves in a Hugging Face cache
    (`models--<org>--<repo>/snapshots/<commit>/<folder>` with refs/main), as a download leaves it."""
    from sae_lens.loading.pretrained_saes_directory import get_repo_id_and_folder_name

    repo_id, sub = get_repo_id_and_folder_name(release, sae_id)
    repo = Path(cache_dir) / ("models--" + repo_id.replace("/", "--"))
    commit = f"{seed:040x}"
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    return write_saelens(repo / "snapshots" / commit / sub, d_in, d_sae, sae_id, seed)


GEMMA_SCOPE_2_SITES = {  # site folder -> hf_hook_point_in (and _out for transcoders), as the configs name them
    "resid_post": ("model.layers.{l}.output", None),
    "mlp_out": ("model.layers.{l}.post_feedforward_layernorm.output", None),
    "attn_out": ("model.layers.{l}.self_attn.o_proj.input", None),
    "transcoder": (
        "model.layers.{l}.pre_feedforward_layernorm.output",
        "model.layers.{l}.post_feedforward_layernorm.output",
    ),
}


def gemma_scope_2_tensors(
    d_in: int, d_sae: int, seed: int = 0, affine: bool = False
) -> dict[str, torch.Tensor]:
    """params.safetensors' tensors (lower-case names, float32), scaled as `gemma_scope_arrays`."""
    t = {k.lower(): torch.from_numpy(v) for k, v in gemma_scope_arrays(d_in, d_sae, seed).items()}
    if affine:  # skip-transcoders: (d_in, d_out)
        t["affine_skip_connection"] = (
            torch.randn(d_in, d_in, generator=torch.Generator().manual_seed(seed)) * 0.01
        )
    return t


def gs2_id(site: str, layer: int, affine: bool = False) -> str:
    """A Gemma Scope 2 SAE id as published, `<site>/layer_<l>_width_16k_l0_medium[_affine]`."""
    return f"{site}/layer_{layer}_width_16k_l0_medium" + ("_affine" if affine else "")


def write_gemma_scope_2(
    root: str | Path, sae_id: str, d_in: int, d_sae: int, seed: int = 0, config: bool = True
) -> Path:
    """`root` plays google/gemma-scope-2-<size>-<pt|it>; returns `root/<sae_id>`, e.g.
    `resid_post/layer_12_width_16k_l0_medium` (sites `resid_post`, `mlp_out_all`, `transcoder`,
    ...; `_affine` ends an affine transcoder's name), holding config.json (unless `config` is
    False, as some folders are published) and params.safetensors."""
    from safetensors.torch import save_file

    site, name = sae_id.split("/")
    layer, affine = int(re.match(r"layer_(\d+)_", name).group(1)), name.endswith("_affine")
    out = Path(root) / site / name
    out.mkdir(parents=True, exist_ok=True)
    save_file(gemma_scope_2_tensors(d_in, d_sae, seed, affine), str(out / "params.safetensors"))
    hook_in, hook_out = GEMMA_SCOPE_2_SITES[site.removesuffix("_all")]
    if config:
        cfg = {
            "hf_hook_point_in": hook_in.format(l=layer),
            "width": d_sae,
            "model_name": "gemma-v3-270m-pt",
            "architecture": "jump_relu",
            "l0": 60,
            "type": "transcoder" if hook_out else "sae",
        }
        if hook_out:
            cfg |= {"hf_hook_point_out": hook_out.format(l=layer), "affine_connection": affine}
        (out / "config.json").write_text(json.dumps(cfg))
    return out


def write_gemma_scope_2_to_hf_cache(
    cache_dir: str | Path,
    release: str,
    sae_id: str,
    d_in: int,
    d_sae: int,
    seed: int = 0,
    config: bool = True,
) -> Path:
    """A Gemma Scope 2 SAE where SAELens's `release:sae_id` resolves in a Hugging Face cache
    (`models--google--gemma-scope-2-...` / snapshots / <commit> / <site> / <sae folder>)."""
    from sae_lens.loading.pretrained_saes_directory import get_repo_id_and_folder_name

    repo_id, sub = get_repo_id_and_folder_name(release, sae_id)
    repo = Path(cache_dir) / ("models--" + repo_id.replace("/", "--"))
    commit = f"{seed + 1:040x}"
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    return write_gemma_scope_2(repo / "snapshots" / commit, sub, d_in, d_sae, seed, config)
