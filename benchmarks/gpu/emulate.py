"""A Python environment holding only what the GPU machine holds, for dry runs of `run.sh` on CPU.

    .venv/bin/python benchmarks/gpu/emulate.py DIR [--override SITE ...]

makes DIR/bin/python: a venv (this interpreter's base, no site packages of its own) whose only
packages are the distributions of this environment named in `present.txt`, linked, not copied.
Each `--override SITE` (a `pip install --target` folder, e.g. triton 3.6.0 and transformers
5.17.0, the GPU machine's versions) replaces the distributions it holds. mechvalue's missing
imports (sae-lens, transformer-lens, ...) are then found only if `run.sh` installed them from
the wheel folder: a dry run checks that the folder is complete.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import sysconfig
from importlib import metadata
from pathlib import Path

from missing import norm, present


def _top_level(dist: metadata.Distribution) -> set[str]:
    """The entries a distribution puts in site-packages (packages, modules, its .dist-info)."""
    tops = set()
    for f in dist.files or []:
        first = f.parts[0]
        if first not in ("..", "__pycache__") and not first.endswith(".pth"):
            tops.add(first)
    return tops


def _dists(path: list[str]) -> dict[str, metadata.Distribution]:
    return {norm(d.metadata["Name"]): d for d in metadata.distributions(path=path)}


def build(dest: Path, overrides: list[Path]) -> Path:
    """Create the venv at `dest`; return its python."""
    if dest.exists():
        shutil.rmtree(dest)
    base = Path(getattr(sys, "_base_executable", sys.executable))  # the interpreter under a venv
    subprocess.run([str(base), "-m", "venv", "--without-pip", str(dest)], check=True)
    python = dest / "bin" / "python"
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    want = present()
    chosen = {k: d for k, d in _dists([sysconfig.get_path("purelib")]).items() if k in want}
    for o in overrides:
        chosen.update({k: d for k, d in _dists([str(o)]).items() if k in want})
    for d in chosen.values():
        root = Path(d.locate_file(""))
        for top in _top_level(d):
            link = site / top
            if (root / top).exists() and not link.exists():
                link.symlink_to(root / top)
    print(
        f"{python}: {len(chosen)} distributions of present.txt, from {sysconfig.get_path('purelib')}"
        + "".join(f" + {o}" for o in overrides)
    )
    return python


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dest", type=Path)
    ap.add_argument("--override", type=Path, action="append", default=[], help="a pip --target folder")
    args = ap.parse_args()
    build(args.dest.resolve(), [o.resolve() for o in args.override])
