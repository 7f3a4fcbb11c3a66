"""No top-level folder of the checkout hides an installed package from code run at the checkout's
root (where `python -m pytest`, `python -` and a notebook put the root first on sys.path).

transformers imports Hugging Face's `kernels`; the project's Triton kernels live in a top-level
`kernels/` folder, installed as `mechvalue.kernels`. That folder has no `__init__.py`, so from the
root it is at most a namespace portion, which a regular installed package always wins against."""

from __future__ import annotations

import importlib.metadata as md
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def top_level_names() -> list[str]:
    """What `import NAME` could find at the root: folders and .py files with identifier names."""
    return sorted(
        p.stem if p.suffix == ".py" else p.name
        for p in ROOT.iterdir()
        if (p.is_dir() and p.name.isidentifier()) or (p.suffix == ".py" and p.stem.isidentifier())
    )


def resolved_at_root(names: list[str]) -> dict[str, list[str]]:
    """Where each name's import lands, asked of a fresh interpreter started at the root."""
    code = (
        "import importlib.util, json, sys\n"
        "out = {}\n"
        "for n in sys.argv[1:]:\n"
        "    s = importlib.util.find_spec(n)\n"
        "    out[n] = [] if s is None else ([s.origin] if s.origin else list(s.submodule_search_locations))\n"
        "print(json.dumps(out))\n"
    )
    r = subprocess.run([sys.executable, "-c", code, *names], cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(r.stdout)


def test_no_root_folder_hides_an_installed_package():
    provided = md.packages_distributions()
    clashes = [n for n in top_level_names() if n in provided and n != "mechvalue"]
    where = resolved_at_root(clashes) if clashes else {}
    for name in clashes:
        dist = md.distribution(provided[name][0])
        site = str(dist.locate_file(""))
        assert where[name] and all(w.startswith(site) for w in where[name]), (
            f"from the checkout's root, 'import {name}' finds {where[name]}, not {dist.name}'s files in {site}"
        )


def test_hf_kernels_is_imported_from_site_packages_and_the_model_loads_from_the_root():
    """transformers >= 5.25 depends on HF's `kernels`, so it is installed here (requirements.lock),
    and a model load from the root imports it."""
    try:
        dist = md.distribution("kernels")
    except md.PackageNotFoundError:
        pytest.fail("HF's kernels is not installed: requirements.lock's transformers needs it")
    where = resolved_at_root(["kernels"])["kernels"]
    assert where and where[0].startswith(str(dist.locate_file(""))), where
    assert (ROOT / "kernels").is_dir() and not (ROOT / "kernels" / "__init__.py").exists()


@pytest.mark.model
def test_the_embedded_model_loads_from_the_root(smollm2):
    code = (
        "import kernels, transformers.integrations.hub_kernels as h\n"
        "from mechvalue.lm.models import load_model\n"
        "m = load_model()\n"
        "print(kernels.__file__)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert str(ROOT / "kernels") not in r.stdout
