"""Which distributions a GPU run must carry as wheels: everything mechvalue, its tests and its
benchmarks import (modules found by reading every import statement, function-level ones too, then
imported here so their own import chains load) that the GPU machine does not already hold
(`present.txt`). Pinned to the versions of this environment, where the suite passes.

    .venv/bin/python benchmarks/gpu/missing.py            # print the list
    .venv/bin/python benchmarks/gpu/missing.py --write    # rewrite requirements.txt
    python benchmarks/gpu/missing.py --check              # import them all (run.sh, on the GPU)

Only the import chain is carried, not every declared dependency (sae-lens declares plotting and
NLP packages it does not import): `run.sh` installs the wheels with --no-deps, and its import
check fails early, naming the module, if something is still missing.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import re
import sys
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SOURCES = ("mechvalue", "kernels", "tests", "benchmarks")
# optional or dev-only: the Ray executor (an extra), eai-sparsify (writes test fixtures) and nnsight
# (a peer the edits are checked against)
OPTIONAL = {"ray", "sparsify", "nnsight"}
# imported by a library on mechvalue's behalf, never by name: transformers reads GGUF files with gguf
INDIRECT = ["gguf"]


def norm(name: str) -> str:
    """A distribution name as PEP 503 compares them."""
    return re.sub(r"[-_.]+", "-", name).lower()


def present() -> set[str]:
    """The distributions the GPU machine holds (present.txt, one a line, # comments)."""
    lines = (ln.split("#")[0].strip() for ln in (HERE / "present.txt").read_text().splitlines())
    return {norm(ln) for ln in lines if ln}


def imported_modules() -> set[str]:
    """Every absolute module path imported anywhere in the project's Python files."""
    mods: set[str] = set()
    for src in SOURCES:
        for f in (ROOT / src).rglob("*.py"):
            for node in ast.walk(ast.parse(f.read_text(), str(f))):
                if isinstance(node, ast.Import):
                    mods.update(a.name for a in node.names)
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    mods.add(node.module)
    return mods


def third_party(mods: set[str]) -> list[str]:
    """Modules of installed distributions, without the project's own and the optional ones."""
    owners = metadata.packages_distributions()
    keep = []
    for m in sorted(mods):
        top = m.split(".")[0]
        if top in OPTIONAL or top in sys.stdlib_module_names or top not in owners:
            continue
        if any(norm(d) == "mechvalue" for d in owners[top]):
            continue
        keep.append(m)
    return keep


def loaded_distributions(mods: list[str]) -> set[str]:
    """Import `mods` and every mechvalue module; the distributions of everything then loaded."""
    import pkgutil

    import mechvalue

    todo = (
        list(mods)
        + INDIRECT
        + [
            m.name
            for m in pkgutil.walk_packages(mechvalue.__path__, "mechvalue.")
            if not m.name.endswith("__main__")
        ]
    )
    for m in todo:
        try:
            importlib.import_module(m)
        except Exception as e:  # noqa: BLE001 - a module that needs a GPU or an optional extra
            print(f"# could not import {m}: {type(e).__name__}: {e}", file=sys.stderr)
    owners = metadata.packages_distributions()
    return {d for name in list(sys.modules) for d in owners.get(name.split(".")[0], [])}


def local_names() -> set[str]:
    """Top-level names that are the project's own (its packages, test and benchmark modules)."""
    names = set(SOURCES) | {"gpu"}
    for src in SOURCES:
        names |= {p.stem for p in (ROOT / src).rglob("*.py")}
    return names


def check() -> int:
    """Import every third-party module the project imports (plus INDIRECT); print each failure
    and the versions that matter; 0 when all import."""
    local = local_names()
    mods = sorted(
        m
        for m in imported_modules() | set(INDIRECT)
        if (top := m.split(".")[0]) not in local
        and top not in OPTIONAL
        and top not in sys.stdlib_module_names
    )
    bad = []
    for m in mods:
        try:
            importlib.import_module(m)
        except Exception as e:  # noqa: BLE001 - report every failure, not the first
            bad.append(m)
            print(f"cannot import {m}: {type(e).__name__}: {e}")
    versions = []
    for d in ("torch", "triton", "numpy", "transformers", "transformer-lens", "sae-lens", "huggingface-hub"):
        try:
            versions.append(f"{d} {metadata.version(d)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{d} missing")
    print(f"{len(mods) - len(bad)} of {len(mods)} modules import; " + ", ".join(versions))
    return 1 if bad else 0


def missing() -> list[str]:
    """`name==version` for every loaded distribution the GPU machine lacks, sorted."""
    have = present() | {"mechvalue"}
    dists = loaded_distributions(third_party(imported_modules()))
    pins = {norm(d): f"{metadata.metadata(d)['Name']}=={metadata.version(d)}" for d in dists}
    return [pins[k] for k in sorted(pins) if k not in have]


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true", help="rewrite benchmarks/gpu/requirements.txt")
    ap.add_argument(
        "--check", action="store_true", help="import every third-party module; exit 1 if one fails"
    )
    args = ap.parse_args()
    if args.check:
        sys.exit(check())
    pins = missing()
    text = "\n".join(pins) + "\n"
    if args.write:
        head = "# Wheels a GPU run carries (generated by benchmarks/gpu/missing.py; see wheels.sh)\n"
        (HERE / "requirements.txt").write_text(head + text)
    print(text, end="")
