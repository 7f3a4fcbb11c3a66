"""SAE file formats: a registry mapping each format to (detector, loader), and `load_sae`, which finds
a folder's format and loads it into our `SAE`. SAELens release names ("release:sae_id") resolve through
the local Hugging Face cache, so with HF_HUB_OFFLINE=1 nothing touches the network."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

import torch
from torch import Tensor

from mechvalue.errors import MechValueError
from mechvalue.interp.sae import SAE, SAEConfig
from mechvalue.lm.models import DType

# (folder, hook_name override or None) -> SAE on the CPU in float32
Loader = Callable[[Path, "str | None"], SAE]


@dataclass(frozen=True)
class SAEFormat:
    name: str
    layout: str  # the files it expects, shown when a folder matches no format
    detect: Callable[[Path], bool]
    load: Loader


def load_sae(
    path: str | Path,
    device: str | torch.device = "cpu",
    dtype: DType | torch.dtype | None = None,
    hook_name: str | None = None,
) -> SAE:
    """Load an SAE from a folder of any format in `FORMATS` (or a Gemma Scope params.npz file), or
    a SAELens release as "release:sae_id". `hook_name` overrides the TransformerLens hook the files
    record; `dtype` (default float32) is the parameters' dtype."""
    torch_dtype = _torch_dtype(dtype)
    kind = check_sae_path(path)
    if kind == RELEASE:
        sae = load_release(*str(path).split(":", 1), hook_name)
    else:
        sae = FORMATS[kind].load(Path(path), hook_name)
    return sae.to(device=device, dtype=torch_dtype or torch.float32)


RELEASE = "release"  # what `check_sae_path` says of a SAELens "release:sae_id" name


def check_sae_path(path: str | Path) -> str:
    """What `load_sae` will read at `path`, checked without reading any weights: the name of the
    format in `FORMATS` whose files the folder holds, or `RELEASE` for a SAELens "release:sae_id"
    that SAELens's directory lists. Anything else is one error (a missing folder; a folder of no
    known format, listing the formats; an unknown release or SAE id, listing those there are), so a
    command can refuse a bad `--sae` before it loads a model or writes a file."""
    p = Path(path)
    if p.exists():
        return detect_format(p).name
    if ":" in str(path):
        _release_entry(*str(path).split(":", 1))
        return RELEASE
    raise MechValueError(f"{p}: no such SAE folder (nor a SAELens 'release:sae_id')")


def sae_reference(path: str | Path) -> str:
    """How a run records an SAE: an existing path made absolute without resolving links (files in a
    Hugging Face cache snapshot are links to blobs named by hash), a "release:sae_id" name as it is."""
    p = Path(path)
    return str(p.absolute()) if p.exists() or ":" not in str(path) else str(path)


def detect_format(path: str | Path) -> SAEFormat:
    """The first format in `FORMATS` whose detector accepts `path`; an error listing them all if none."""
    path = Path(path)
    for fmt in FORMATS.values():
        if fmt.detect(path):
            return fmt
    known = "; ".join(f"{f.name} ({f.layout})" for f in FORMATS.values())
    raise MechValueError(
        f"{path}: not an SAE folder of a known format. Formats: {known}; "
        "or a SAELens release as 'release:sae_id'"
    )


# --- shared checks ---------------------------------------------------------------------------------


def _torch_dtype(dtype: DType | torch.dtype | None) -> torch.dtype | None:
    allowed = {getattr(torch, d) for d in get_args(DType)}
    if dtype is None or dtype in allowed:
        return dtype  # type: ignore[return-value]
    if isinstance(dtype, str) and dtype in get_args(DType):
        return getattr(torch, dtype)
    raise MechValueError(f"SAE dtype {dtype!r} is not one of {get_args(DType)}")


def _read_json(file: Path) -> dict[str, Any]:
    try:
        cfg = json.loads(file.read_text())
    except (OSError, ValueError) as e:
        raise MechValueError(f"{file}: not readable JSON ({e})") from None
    if not isinstance(cfg, dict):
        raise MechValueError(f"{file}: expected a JSON object")
    return cfg


def _peek_json(file: Path) -> dict[str, Any]:
    """For detectors: the JSON object in `file`, or {} if there is none."""
    try:
        cfg = json.loads(file.read_text())
    except (OSError, ValueError):
        return {}
    return cfg if isinstance(cfg, dict) else {}


def _check_shapes(
    file: Path, shapes: Mapping[str, tuple[int, ...]], expected: Mapping[str, tuple[int, ...]]
) -> None:
    """Every expected tensor is in the file with the expected shape; the error names file and tensor."""
    for name, want in expected.items():
        if name not in shapes:
            raise MechValueError(
                f"{file}: no tensor {name!r} (it holds {', '.join(sorted(shapes)) or 'nothing'})"
            )
        if tuple(shapes[name]) != tuple(want):
            raise MechValueError(
                f"{file}: tensor {name!r} has shape {tuple(shapes[name])}, expected {tuple(want)}"
            )


def _safetensors_shapes(file: Path) -> dict[str, tuple[int, ...]]:
    from safetensors import safe_open

    if not file.is_file():
        raise MechValueError(f"{file}: missing (the weights of the SAE in {file.parent})")
    try:
        with safe_open(str(file), framework="pt") as f:
            return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118
    except Exception as e:  # a truncated or foreign file
        raise MechValueError(
            f"{file}: not a readable safetensors file ({str(e).splitlines()[0][:160]})"
        ) from None


def _load_safetensors(file: Path) -> dict[str, Tensor]:
    from safetensors.torch import load_file

    _safetensors_shapes(file)  # clear errors for a missing or unreadable file
    return load_file(str(file))


def _fill(sae: SAE, tensors: Mapping[str, Tensor]) -> SAE:
    """Copy tensors (any float dtype) into `sae`'s parameters of the same names, in float32."""
    with torch.no_grad():
        for name, t in tensors.items():
            getattr(sae, name).copy_(t.float())
    return sae


# --- our own format --------------------------------------------------------------------------------


def _is_mechvalue(path: Path) -> bool:
    return (path / "mechvalue_sae.json").is_file()


def _load_mechvalue(path: Path, hook_name: str | None) -> SAE:
    cfg_file = path / "mechvalue_sae.json"
    try:
        cfg = SAEConfig(**_read_json(cfg_file))
    except TypeError as e:
        raise MechValueError(f"{cfg_file}: not an SAE config ({e})") from None
    if hook_name:
        cfg.hook_name = hook_name
    file = path / "sae.safetensors"
    d_in, d_sae = cfg.d_in, cfg.d_sae
    _check_shapes(
        file,
        _safetensors_shapes(file),
        {
            "W_enc": (d_in, d_sae),
            "b_enc": (d_sae,),
            "W_dec": (d_sae, d_in),
            "b_dec": (d_in,),
            "threshold": (d_sae,),
        },
    )
    sae = SAE(cfg)
    sae.load_state_dict(_load_safetensors(file))
    return sae


# --- SAELens folders (cfg.json + sae_weights.safetensors) ------------------------------------------


def _is_saelens(path: Path) -> bool:
    if not (path / "cfg.json").is_file():
        return False
    return (path / "sae_weights.safetensors").exists() or "d_sae" in _peek_json(path / "cfg.json")


def _load_saelens(path: Path, hook_name: str | None) -> SAE:
    cfg = _read_json(path / "cfg.json")
    file = path / "sae_weights.safetensors"
    shapes = _safetensors_shapes(file)
    if (
        cfg.get("architecture", "standard") in ("standard", "jumprelu", "topk")
        and {"d_in", "d_sae"} <= cfg.keys()
    ):
        d_in, d_sae = int(cfg["d_in"]), int(cfg["d_sae"])
        _check_shapes(
            file,
            shapes,
            {"W_enc": (d_in, d_sae), "b_enc": (d_sae,), "W_dec": (d_sae, d_in), "b_dec": (d_in,)},
        )
    try:
        from sae_lens import SAE as LensSAE
    except ImportError:
        raise MechValueError(
            f"{path}: a SAELens folder; reading it needs sae-lens (pip install sae-lens)"
        ) from None
    try:
        lens = LensSAE.load_from_disk(str(path), device="cpu")
    except Exception as e:
        raise MechValueError(f"{path}: SAELens could not load it ({str(e).splitlines()[0][:200]})") from None
    return from_saelens(lens, hook_name, where=str(path))


def from_saelens(lens: Any, hook_name: str | None = None, where: str = "SAELens SAE") -> SAE:
    """Convert a loaded SAELens SAE (standard, jumprelu or topk) to ours, with the same outputs."""
    arch = lens.cfg.architecture()
    act = {"standard": "relu", "jumprelu": "jumprelu", "topk": "topk"}.get(arch)
    if act is None:
        raise MechValueError(
            f"{where}: SAELens architecture {arch!r} is not supported (standard, jumprelu, topk)"
        )
    # SAELens applies "expected_average_only_in" at load time (folded) or not at all; the others run per token
    norm = getattr(lens.cfg, "normalize_activations", "none") or "none"
    if norm not in ("none", "expected_average_only_in"):
        raise MechValueError(f"{where}: normalize_activations={norm!r} is not supported (only 'none')")
    if (getattr(lens.cfg, "reshape_activations", "none") or "none") != "none":
        raise MechValueError(
            f"{where}: reshape_activations={lens.cfg.reshape_activations!r} (hook_z SAEs) is not supported"
        )
    hook = hook_name or getattr(lens.cfg.metadata, "hook_name", None) or ""
    cfg = SAEConfig(
        lens.cfg.d_in,
        lens.cfg.d_sae,
        act,
        int(getattr(lens.cfg, "k", 32)),
        hook,  # type: ignore[arg-type]
        bool(lens.cfg.apply_b_dec_to_input),
    )
    W_enc, b_enc, W_dec = (
        lens.W_enc.detach().float(),
        lens.b_enc.detach().float(),
        lens.W_dec.detach().float(),
    )
    if act == "topk" and getattr(lens.cfg, "rescale_acts_by_decoder_norm", False):
        # SAELens scales pre-activations by |W_dec row| and divides it out again when decoding: fold it in
        n = W_dec.norm(dim=1)
        W_enc, b_enc, W_dec = W_enc * n, b_enc * n, W_dec / n[:, None]
    tensors = {"W_enc": W_enc, "b_enc": b_enc, "W_dec": W_dec, "b_dec": lens.b_dec.detach()}
    if act == "jumprelu":
        tensors["threshold"] = lens.threshold.detach()
    return _fill(SAE(cfg), tensors)


# --- SAELens release names through the local Hugging Face cache -------------------------------------

_TL_HOOK = re.compile(r"^(blocks\.\d+\.)?hook_\w+$")


def _release_entry(release: str, sae_id: str):
    """SAELens's directory entry of `release`, which must list `sae_id`; one error naming what is not
    there (with similar releases, or the release's SAE ids) otherwise."""
    try:
        from sae_lens.loading.pretrained_saes_directory import get_pretrained_saes_directory
    except ImportError:
        raise MechValueError(
            f"SAELens release {release}:{sae_id}: needs sae-lens (pip install sae-lens)"
        ) from None
    directory = get_pretrained_saes_directory()
    if release not in directory:
        near = sorted(r for r in directory if release.split("-")[0].lower() in r.lower())[:8]
        raise MechValueError(
            f"unknown SAELens release {release!r}" + (f" (similar: {', '.join(near)})" if near else "")
        )
    ids = list(directory[release].saes_map)
    if sae_id not in ids:
        raise MechValueError(
            f"SAELens release {release!r} has no SAE {sae_id!r} (it has {', '.join(ids[:8])}"
            + (", ..." if len(ids) > 8 else "")
            + ")"
        )
    return directory[release]


def load_release(release: str, sae_id: str, hook_name: str | None = None) -> SAE:
    """A SAELens pretrained release (e.g. "gemma-2b-it-res-jb", "blocks.12.hook_resid_post"), read by
    SAELens from the Hugging Face cache (HF_HUB_CACHE); downloaded only where the hub is reachable and
    HF_HUB_OFFLINE is not set."""
    entry = _release_entry(release, sae_id)
    from huggingface_hub import constants
    from sae_lens import SAE as LensSAE
    from sae_lens.loading.pretrained_saes_directory import get_repo_id_and_folder_name

    repo_id, folder = get_repo_id_and_folder_name(release, sae_id)
    if entry.conversion_func == "gemma_3":  # Gemma Scope 2
        return _load_gemma_scope_2_release(release, sae_id, repo_id, folder, hook_name)
    try:
        lens = LensSAE.from_pretrained(release, sae_id, device="cpu")
    except Exception as e:
        first = str(e).splitlines()[0][:160] if str(e) else type(e).__name__
        if constants.is_offline_mode() or isinstance(e, (FileNotFoundError, ConnectionError, OSError)):
            raise MechValueError(
                f"SAELens release {release}:{sae_id} (Hugging Face {repo_id}, folder {folder}) is not in the local "
                f"cache {constants.HF_HUB_CACHE}{' and HF_HUB_OFFLINE is set' if constants.is_offline_mode() else ''}; "
                f"fetch it where the hub is reachable: hf download {repo_id} --include '{folder}/*' ({first})"
            ) from None
        raise MechValueError(f"SAELens release {release}:{sae_id} not loadable ({first})") from None
    if not hook_name and not getattr(lens.cfg.metadata, "hook_name", None) and _TL_HOOK.match(sae_id):
        hook_name = sae_id  # SAELens ids of residual-stream releases are the hook names
    return from_saelens(lens, hook_name, where=f"{release}:{sae_id}")


# --- Gemma Scope (params.npz) ----------------------------------------------------------------------

_GEMMA_SCOPE_SITE = re.compile(r"gemma-scope.*-(res|mlp|att|transcoders)(?:-|$)")


def _gemma_scope_file(path: Path) -> Path:
    return path if path.name == "params.npz" else path / "params.npz"


def _is_gemma_scope(path: Path) -> bool:
    return _gemma_scope_file(path).is_file()


def gemma_scope_hook_name(file: str | Path) -> str:
    """Where a Gemma Scope SAE reads, from the release's layout: the layer from a `layer_<n>` folder
    (`layer_12/width_16k/average_l0_82/params.npz`), the site from the repository's name when the path
    holds it (`gemma-scope-2b-pt-res`, `-mlp`, `-att`, also as `models--google--gemma-scope-2b-pt-res`
    in the HF cache); residual stream when the path does not say."""
    parts = Path(file).absolute().parts
    layers = [int(m.group(1)) for part in parts if (m := re.fullmatch(r"layer_(\d+)", part))]
    sites = [m.group(1) for part in parts if (m := _GEMMA_SCOPE_SITE.search(part.lower()))]
    if "embedding" in parts:
        raise MechValueError(
            f"{file}: Gemma Scope embedding SAEs are not supported (pass hook_name= to force one)"
        )
    if not layers:
        raise MechValueError(
            f"{file}: no layer_<n> folder in the path to tell the layer; lay it out as Gemma "
            "Scope does (layer_12/width_16k/average_l0_82/params.npz) or pass hook_name="
        )
    site = sites[-1] if sites else "res"
    if site not in ("res", "mlp"):
        raise MechValueError(
            f"{file}: Gemma Scope '{site}' SAEs are not supported (residual and MLP-output SAEs are)"
        )
    return f"blocks.{layers[-1]}.hook_resid_post" if site == "res" else f"blocks.{layers[-1]}.hook_mlp_out"


def _load_gemma_scope(path: Path, hook_name: str | None) -> SAE:
    import numpy as np

    file = _gemma_scope_file(path)
    try:
        with np.load(file, allow_pickle=False) as data:
            # the release names them W_enc, W_dec, b_enc, b_dec, threshold (SAELens also accepts w_enc, w_dec)
            arrays = {("W_" + k[2:] if k.startswith("w_") else k): data[k] for k in data.files}
    except (OSError, ValueError) as e:
        raise MechValueError(f"{file}: not a readable .npz file ({e})") from None
    shapes = {k: tuple(v.shape) for k, v in arrays.items()}
    if "W_enc" not in shapes or len(shapes["W_enc"]) != 2:
        got = (
            f"has shape {shapes['W_enc']}"
            if "W_enc" in shapes
            else f"is missing (it holds {', '.join(sorted(shapes))})"
        )
        raise MechValueError(f"{file}: tensor 'W_enc' {got}, expected (d_in, d_sae)")
    d_in, d_sae = shapes["W_enc"]
    _check_shapes(
        file, shapes, {"W_dec": (d_sae, d_in), "b_enc": (d_sae,), "b_dec": (d_in,), "threshold": (d_sae,)}
    )
    hook = hook_name or gemma_scope_hook_name(file)
    # Gemma Scope encodes x @ W_enc + b_enc (no b_dec subtracted), keeps ReLU(pre) where pre > threshold
    sae = SAE(SAEConfig(d_in, d_sae, "jumprelu", hook_name=hook, apply_b_dec_to_input=False))
    return _fill(
        sae,
        {
            k: torch.from_numpy(np.asarray(arrays[k], dtype=np.float32))
            for k in ("W_enc", "W_dec", "b_enc", "b_dec", "threshold")
        },
    )


# --- Gemma Scope 2 (config.json + params.safetensors, HF-style hook names) ---------------------------
#
# google/gemma-scope-2-<size>-<pt|it> holds one folder per SAE under a site folder:
# `resid_post/layer_12_width_16k_l0_medium/{config.json, params.safetensors}` (also `resid_post_all`,
# `mlp_out[_all]`, `attn_out[_all]`, `transcoder[_all]`, `clt`, `crosscoder`). config.json names the
# site HF's way (`hf_hook_point_in`: "model.layers.12.output"); params.safetensors holds w_enc
# (d_in, d_sae), w_dec (d_sae, d_out), b_enc, b_dec, threshold (JumpReLU, no b_dec before encoding).

GEMMA_SCOPE_2_FILE = "params.safetensors"
_HF_SITE = re.compile(r"^(?:.*\.)?layers\.(\d+)(?:\.(.+))?\.(input|output)$")
# HF module (inside decoder layer l) + "input"/"output" -> TransformerLens hook on block l
_HF_TO_TL = {
    (None, "output"): "hook_resid_post",
    (None, "input"): "hook_resid_pre",
    ("post_feedforward_layernorm", "output"): "hook_mlp_out",
    ("post_attention_layernorm", "output"): "hook_attn_out",
}
_SITE_FOLDER = re.compile(r"^(resid_post|mlp_out|attn_out|transcoder|clt|crosscoder)(?:_all)?$")
_SITE_HF = {
    "resid_post": "model.layers.{l}.output",
    "mlp_out": "model.layers.{l}.post_feedforward_layernorm.output",
    "attn_out": "model.layers.{l}.self_attn.o_proj.input",
}


def hf_hook_to_tl(hf_name: str, where: str = "") -> str:
    """TransformerLens's name for an HF-style site: `model.layers.12.output` -> `blocks.12.hook_resid_post`,
    `...post_feedforward_layernorm.output` -> `hook_mlp_out` (Gemma 2/3 add the MLP output to the residual
    after that norm, where the bridge's hook_mlp_out reads), `...post_attention_layernorm.output` ->
    `hook_attn_out`, `model.layers.12.input` -> `hook_resid_pre`; `model.language_model.layers.N` (the
    multimodal Gemma 3 checkpoints) as `model.layers.N`. Any other site is one error naming it."""
    m = _HF_SITE.match(hf_name)
    hook = _HF_TO_TL.get((m.group(2), m.group(3))) if m else None
    if hook is None:
        why = (
            "attention-output SAEs read o_proj's input (the heads' z before the output projection), "
            "which mechvalue's hooks do not edit"
            if m and m.group(2) == "self_attn.o_proj"
            else "not a residual-stream, MLP-output or attention-output site"
        )
        raise MechValueError(f"{where or hf_name}: HF hook {hf_name!r}: {why}; pass hook_name= to force one")
    return f"blocks.{int(m.group(1))}.{hook}"


def _gemma_scope_2_dir(path: Path) -> Path:
    return path.parent if path.name == GEMMA_SCOPE_2_FILE else path


def _is_gemma_scope_2(path: Path) -> bool:
    d = _gemma_scope_2_dir(path)
    if not (d / GEMMA_SCOPE_2_FILE).exists():
        return False
    return "hf_hook_point_in" in _peek_json(d / "config.json") or bool(_gemma_scope_2_site(d))


def _gemma_scope_2_site(d: Path) -> str | None:
    """The site folder's kind (`resid_post`, `mlp_out`, `transcoder`, ...) from the path, if it says."""
    m = _SITE_FOLDER.match(d.absolute().parent.name)
    return m.group(1) if m else None


_NOT_SAES = ("transcoder", "clt", "crosscoder")  # site folders whose dictionaries predict another site


def _gemma_scope_2_config(d: Path) -> dict[str, Any]:
    """config.json as published, or (as SAELens does where a folder has none) what the path says."""
    cfg_file = d / "config.json"
    if cfg_file.exists():
        return _read_json(cfg_file)
    site, layer = _gemma_scope_2_site(d), re.match(r"layer_(\d+)_", d.name)
    if site in _NOT_SAES:
        return {}
    if site not in _SITE_HF or not layer:
        raise MechValueError(
            f"{cfg_file}: missing, and the path does not say the site and layer "
            "(<site>/layer_<n>_width_<w>_l0_<l0>/, as in google/gemma-scope-2-*); pass hook_name="
        )
    return {"hf_hook_point_in": _SITE_HF[site].format(l=int(layer.group(1)))}


def _load_gemma_scope_2(path: Path, hook_name: str | None) -> SAE:
    d = _gemma_scope_2_dir(path)
    file = d / GEMMA_SCOPE_2_FILE
    cfg, kind = _gemma_scope_2_config(d), _gemma_scope_2_site(d)
    site_in, site_out = cfg.get("hf_hook_point_in"), cfg.get("hf_hook_point_out")
    shapes = _safetensors_shapes(file)
    transcoder = (site_out and site_out != site_in) or "affine_skip_connection" in shapes
    if kind in _NOT_SAES or transcoder:
        what = (
            "a crosscoder (several layers at once)"
            if kind == "crosscoder"
            else (
                f"a transcoder (reads {site_in or 'the MLP input'}, predicts {site_out or 'the MLP output'})"
            )
        )
        raise MechValueError(
            f"{file}: Gemma Scope 2 {what}: not supported; mechvalue edits with SAEs "
            "that reconstruct the site they read (resid_post, mlp_out SAEs)"
        )
    if cfg.get("architecture", "jump_relu") != "jump_relu":
        raise MechValueError(
            f"{d / 'config.json'}: architecture {cfg['architecture']!r}, expected 'jump_relu'"
        )
    if not site_in and not hook_name:
        raise MechValueError(f"{d / 'config.json'}: no 'hf_hook_point_in' to tell the site; pass hook_name=")
    if "w_enc" not in shapes or len(shapes["w_enc"]) != 2:
        got = (
            f"has shape {shapes['w_enc']}"
            if "w_enc" in shapes
            else f"is missing (it holds {', '.join(sorted(shapes))})"
        )
        raise MechValueError(f"{file}: tensor 'w_enc' {got}, expected (d_in, d_sae)")
    d_in, d_sae = shapes["w_enc"]
    _check_shapes(
        file, shapes, {"w_dec": (d_sae, d_in), "b_enc": (d_sae,), "b_dec": (d_in,), "threshold": (d_sae,)}
    )
    if cfg.get("width") is not None and int(cfg["width"]) != d_sae:
        raise MechValueError(
            f"{d / 'config.json'}: width {cfg['width']} but {file.name} has {d_sae} features"
        )
    hook = hook_name or hf_hook_to_tl(str(site_in), where=str(d / "config.json"))
    t = _load_safetensors(file)
    # the same JumpReLU as Gemma Scope 1: x @ W_enc + b_enc, ReLU(pre) where pre > threshold
    sae = SAE(SAEConfig(d_in, d_sae, "jumprelu", hook_name=hook, apply_b_dec_to_input=False))
    return _fill(
        sae,
        {
            "W_enc": t["w_enc"],
            "W_dec": t["w_dec"],
            "b_enc": t["b_enc"],
            "b_dec": t["b_dec"],
            "threshold": t["threshold"],
        },
    )


def _load_gemma_scope_2_release(
    release: str, sae_id: str, repo_id: str, folder: str, hook_name: str | None
) -> SAE:
    """A Gemma Scope 2 release id, read from the HF cache by mechvalue itself: SAELens's own loader asks
    the hub for the tensor shapes even when the files are cached, so it cannot run offline."""
    from huggingface_hub import constants, try_to_load_from_cache

    cached = try_to_load_from_cache(
        repo_id, f"{folder}/{GEMMA_SCOPE_2_FILE}", cache_dir=constants.HF_HUB_CACHE
    )
    if not isinstance(cached, str):
        raise MechValueError(
            f"SAELens release {release}:{sae_id} (Hugging Face {repo_id}, folder {folder}) is not in the local "
            f"cache {constants.HF_HUB_CACHE}; fetch it where the hub is reachable: "
            f"hf download {repo_id} --include '{folder}/*'"
        )
    return _load_gemma_scope_2(Path(cached).parent, hook_name)


# --- EleutherAI sparsify (cfg.json + sae.safetensors, one folder per hookpoint) ----------------------

_SPARSIFY_RESID = re.compile(r"^(?:.*\.)?(?:layers|h)[._](\d+)$")


def sparsify_hook_name(hookpoint: str) -> str | None:
    """TransformerLens's name for a sparsify hookpoint that is a residual-stream layer: the output
    of decoder layer l (`layers.6`, `model.layers.6`, `gpt_neox.layers.6`, `h.6`) is
    `blocks.{l}.hook_resid_post`; None for anything else (MLP, attention, embeddings)."""
    m = _SPARSIFY_RESID.match(hookpoint)
    return f"blocks.{int(m.group(1))}.hook_resid_post" if m else None


def _is_sparsify_leaf(path: Path) -> bool:
    if not (path / "cfg.json").is_file() or (path / "sae_weights.safetensors").exists():
        return False
    cfg = _peek_json(path / "cfg.json")
    return "d_sae" not in cfg and (
        (path / "sae.safetensors").exists() or {"num_latents", "expansion_factor"} & cfg.keys()
    )


def _sparsify_hookpoints(path: Path) -> list[Path]:
    if not path.is_dir() or (path / "cfg.json").exists():
        return []
    return sorted(p for p in path.iterdir() if p.is_dir() and _is_sparsify_leaf(p))


def _is_sparsify(path: Path) -> bool:
    return _is_sparsify_leaf(path) or bool(_sparsify_hookpoints(path))


def _load_sparsify(path: Path, hook_name: str | None) -> SAE:
    if not _is_sparsify_leaf(path):
        found = _sparsify_hookpoints(path)
        if len(found) > 1:
            names = ", ".join(p.name for p in found)
            raise MechValueError(
                f"{path}: sparsify SAEs for {len(found)} hookpoints ({names}); "
                f"pass one hookpoint's folder, e.g. {found[0]}"
            )
        path = found[0]
    cfg_file = path / "cfg.json"
    cfg = _read_json(cfg_file)
    if "d_in" not in cfg:
        raise MechValueError(f"{cfg_file}: no 'd_in' (sparsify's save_to_disk writes it)")
    d_in = int(cfg["d_in"])
    d_sae = int(cfg.get("num_latents") or 0) or d_in * int(cfg.get("expansion_factor", 32))
    for key, ok in (
        ("activation", "topk"),
        ("transcode", False),
        ("skip_connection", False),
        ("signed", False),
    ):
        if cfg.get(key, ok) != ok:
            raise MechValueError(f"{cfg_file}: {key}={cfg[key]!r} is not supported (TopK SAEs only)")
    file = path / "sae.safetensors"
    tensors = _load_safetensors(file)
    _check_shapes(
        file,
        {k: tuple(v.shape) for k, v in tensors.items()},
        {"encoder.weight": (d_sae, d_in), "encoder.bias": (d_sae,), "W_dec": (d_sae, d_in), "b_dec": (d_in,)},
    )
    hook = hook_name or sparsify_hook_name(path.name)
    if hook is None:
        raise MechValueError(
            f"{path}: sparsify hookpoint {path.name!r} is not a residual-stream layer (layers.<n>); "
            "pass hook_name= (the TransformerLens hook it reads)"
        )
    # sparsify encodes TopK(ReLU((x - b_dec) @ encoder.weight.T + encoder.bias)), decodes f @ W_dec + b_dec
    sae = SAE(SAEConfig(d_in, d_sae, "topk", int(cfg.get("k", 32)), hook, apply_b_dec_to_input=True))
    return _fill(
        sae,
        {
            "W_enc": tensors["encoder.weight"].T,
            "b_enc": tensors["encoder.bias"],
            "W_dec": tensors["W_dec"],
            "b_dec": tensors["b_dec"],
        },
    )


FORMATS: dict[str, SAEFormat] = {
    f.name: f
    for f in (
        SAEFormat("mechvalue", "mechvalue_sae.json + sae.safetensors", _is_mechvalue, _load_mechvalue),
        SAEFormat("saelens", "cfg.json + sae_weights.safetensors", _is_saelens, _load_saelens),
        SAEFormat(
            "sparsify",
            "cfg.json + sae.safetensors, or a folder of such hookpoint folders (layers.<n>)",
            _is_sparsify,
            _load_sparsify,
        ),
        SAEFormat(
            "gemma-scope",
            "params.npz with W_enc, W_dec, b_enc, b_dec, threshold under layer_<n>/",
            _is_gemma_scope,
            _load_gemma_scope,
        ),
        SAEFormat(
            "gemma-scope-2",
            "config.json (hf_hook_point_in) + params.safetensors with w_enc, w_dec, b_enc, b_dec, threshold",
            _is_gemma_scope_2,
            _load_gemma_scope_2,
        ),
    )
}
