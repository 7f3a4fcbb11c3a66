"""Check, without downloading a wheel, that ./setup.sh can install the locks on a machine that is not
this one: for every pin that applies to Linux x86_64 on each supported Python, PyPI must publish a
file for that Python and platform (a compatible wheel, or the sdist) whose sha256 is among the pin's
hashes. pip's own `--dry-run` downloads every file to check its hash (2.5 GB for torch's CUDA
libraries), so this reads PyPI's simple index (JSON, PEP 691) instead.

Usage: python .ci/check_locks.py [LOCK ...]   (default: requirements.lock, requirements-torch-cuda.lock,
requirements-models.lock); exit 1 naming each pin that would fail, with the Python it fails on."""

from __future__ import annotations

import json
import re
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from packaging.markers import Marker
from packaging.tags import compatible_tags, cpython_tags
from packaging.utils import canonicalize_name, parse_sdist_filename, parse_wheel_filename

PYTHONS = ((3, 11), (3, 12), (3, 13))  # requires-python's range; pyproject.toml and setup.sh agree
PLATFORMS = [f"manylinux_2_{m}_x86_64" for m in range(35, 4, -1)]
PLATFORMS += ["manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64", "linux_x86_64"]
INDEX = "https://pypi.org/simple/{}/"
ROOT = Path(__file__).resolve().parents[1]


def pins(lock: Path) -> list[tuple[str, str, Marker | None, set[str]]]:
    """(name, version, marker, hashes) for each requirement of a hash-pinned file."""
    out = []
    for block in re.split(r"\n(?=[a-z0-9])", lock.read_text()):
        m = re.match(r"([A-Za-z0-9._-]+)==([^\s;\\]+)\s*(?:;([^\\\n]*))?", block)
        if m:
            marker = Marker(m.group(3).strip()) if m.group(3) else None
            out.append((m.group(1), m.group(2), marker, set(re.findall(r"sha256:([0-9a-f]{64})", block))))
    return out


def files(name: str, tries: int = 5) -> list[dict]:
    """The project's files on PyPI; a network error is retried (name lookups fail now and then)."""
    req = urllib.request.Request(INDEX.format(canonicalize_name(name)))
    req.add_header("Accept", "application/vnd.pypi.simple.v1+json")
    for attempt in range(tries):
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return json.load(r)["files"]
        except urllib.error.URLError:
            if attempt == tries - 1:
                raise
            time.sleep(2**attempt)
    raise AssertionError("unreachable")


def installable(entries: list[dict], version: str, hashes: set[str], py: tuple[int, int]) -> bool:
    tags = {*cpython_tags(py, platforms=PLATFORMS), *compatible_tags(py, platforms=PLATFORMS)}
    for f in entries:
        sha = f.get("hashes", {}).get("sha256")
        if sha not in hashes or f.get("yanked"):
            continue
        name = f["filename"]
        if name.endswith(".whl"):
            _, v, _, wheel_tags = parse_wheel_filename(name)
            if str(v) == version and wheel_tags & tags:
                return True
        elif name.endswith((".tar.gz", ".zip")):
            _, v = parse_sdist_filename(name)
            if str(v) == version:
                return True
    return False


def main(paths: list[str]) -> int:
    locks = [ROOT / p for p in paths or ["requirements.lock", "requirements-torch-cuda.lock", "requirements-models.lock"]]
    todo = [p for lock in locks for p in pins(lock)]
    names = sorted({p[0] for p in todo})
    with ThreadPoolExecutor(8) as ex:
        index = dict(zip(names, ex.map(files, names)))
    bad = []
    for name, version, marker, hashes in todo:
        for py in PYTHONS:
            env = {"python_version": f"{py[0]}.{py[1]}", "python_full_version": f"{py[0]}.{py[1]}.0",
                   "sys_platform": "linux", "platform_machine": "x86_64", "platform_system": "Linux",
                   "os_name": "posix", "implementation_name": "cpython",
                   "platform_python_implementation": "CPython", "extra": ""}
            if (marker is None or marker.evaluate(env)) and not installable(index[name], version, hashes, py):
                bad.append(f"{name}=={version} on Python {py[0]}.{py[1]}")
    print(f"{len(todo)} pins in {', '.join(p.name for p in locks)}, Python "
          + ", ".join(f"{a}.{b}" for a, b in PYTHONS) + ": " + ("all installable from PyPI" if not bad else "NOT installable: " + "; ".join(bad)))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
