"""Caches of converted weights, keyed by what produced them, and loaded strictly.

A cached folder holds `mechvalue_source.json`: the key (each source file's path, size and mtime,
the versions of the libraries that converted it, the dtype) and a manifest of every tensor
written (file, name, shape, dtype, read from the safetensors headers). A changed source file or
library upgrade changes the key, so the folder is rebuilt rather than reused stale; a folder whose
tensors no longer match its manifest (a file lost, cut short or replaced) is refused with an error
naming it, instead of loading with missing weights."""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path

from platformdirs import user_cache_dir

from mechvalue.errors import MechValueError


def cache_dir() -> Path:
    """Where converted weights, trained SAEs and self-check records live (`$MECHVALUE_CACHE`
    overrides)."""
    return Path(os.environ.get("MECHVALUE_CACHE") or user_cache_dir("mechvalue"))


KEY_FILE = "mechvalue_source.json"
WEIGHT_GLOBS = (
    "*.safetensors",
    "pytorch_model*.bin",
    "*.safetensors.index.json",
    "pytorch_model.bin.index.json",
)


def source_key(files: list[Path], libraries: tuple[str, ...], **extra) -> dict:
    """What a conversion depends on: its source files (size + mtime) and library versions."""
    src = {}
    for f in files:
        st = Path(f).stat()
        src[str(Path(f).resolve())] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
    versions = {}
    for lib in libraries:
        try:
            versions[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            versions[lib] = None
    return {"sources": src, "versions": versions, **extra}


def safetensors_manifest(folder: Path) -> dict[str, dict]:
    """{file: {tensor: [dtype, shape]}} from the headers of the folder's safetensors files."""
    out = {}
    for f in sorted(Path(folder).glob("*.safetensors")):
        out[f.name] = {k: [v["dtype"], v["shape"]] for k, v in _header(f).items() if k != "__metadata__"}
    return out


def _header(f: Path) -> dict:
    try:
        with open(f, "rb") as fh:
            n = struct.unpack("<Q", fh.read(8))[0]
            if n > 100_000_000 or f.stat().st_size < 8 + n:
                raise ValueError("header longer than the file")
            head = json.loads(fh.read(n))
        end = max((v["data_offsets"][1] for k, v in head.items() if k != "__metadata__"), default=0)
        if f.stat().st_size < 8 + n + end:
            raise ValueError(f"{f.stat().st_size} bytes, the tensors need {8 + n + end}")
        return head
    except (OSError, ValueError, struct.error, KeyError, TypeError) as e:
        raise MechValueError(f"{f}: not a readable safetensors file ({e})") from None


def seal(folder: Path, key: dict) -> None:
    """Record the key and the tensor manifest of a freshly written folder."""
    (Path(folder) / KEY_FILE).write_text(
        json.dumps({"key": key, "tensors": safetensors_manifest(folder)}, indent=1)
    )


def reusable(folder: Path, key: dict) -> bool:
    """True if `folder` was built from exactly `key` and its tensors still match their manifest
    (strict: a missing, shortened or reshaped tensor file raises, naming the folder)."""
    rec_file = Path(folder) / KEY_FILE
    if not rec_file.exists():
        return False
    try:
        rec = json.loads(rec_file.read_text())
    except (OSError, ValueError):
        return False
    if rec.get("key") != key:
        return False
    now = safetensors_manifest(folder)
    if now != rec.get("tensors"):
        lost = sorted(set(rec.get("tensors", {})) - set(now)) or sorted(
            f for f in now if now[f] != rec["tensors"].get(f)
        )
        raise MechValueError(
            f"{folder}: cached weights no longer match their manifest ({lost}); "
            "delete the folder to rebuild it"
        )
    return True


def require_weights(folder: Path) -> None:
    """A model folder must hold weights; readable safetensors headers if it holds safetensors."""
    folder = Path(folder)
    if not any(next(folder.glob(g), None) for g in WEIGHT_GLOBS):
        raise MechValueError(
            f"{folder}: no weights (*.safetensors or pytorch_model*.bin) in the model folder"
        )
    for f in folder.glob("*.safetensors"):
        _header(f)


@contextmanager
def building(folder: Path) -> Iterator[None]:
    """Hold FOLDER.lock while checking or building a cache folder: two processes never convert at once."""
    from filelock import FileLock

    Path(folder).parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder) + ".lock", timeout=3600):
        yield
