"""Damaged activation caches: truncated and bit-flipped HDF5 files. `cache --verify` names the file
and the problem in one line (exit 2), or the flip touched no byte that is read back; `cache --repair`
truncates to the last consistent batch, after which the same `cache` command completes the file to
what an uninterrupted run writes; a file HDF5 cannot open is named as such. Never a traceback."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest

from tests.faults.conftest import commands
from tests.faults.harness import count, h5_digest, run_cli

CI_FLIPS, FULL_FLIPS = 6, 60
CI_CUTS, FULL_CUTS = 3, 12


@pytest.fixture(scope="module")
def clean_cache(zygote, inputs, tmp_path_factory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("clean")
    r = run_cli(commands(inputs, out)["cache"], logdir=out.parent)
    assert r.status == 0, r.stderr
    return out / "acts.h5", h5_digest(out / "acts.h5")


def one_line_error(r, path: Path) -> str:
    lines = r.stderr.strip().splitlines()
    assert r.status == 2 and len(lines) == 1 and "Traceback" not in r.stderr, (r.status, r.stderr[-3000:])
    assert str(path) in lines[0], lines[0]
    return lines[0]


def check_damaged(path: Path, ref: str, inputs, tmp: Path) -> str:
    """verify, repair, resume; returns what happened: 'unchanged', 'repaired' or 'unreadable'."""
    v = run_cli(["cache", "--verify", str(path)], logdir=tmp)
    if v.status == 0:  # the damage missed every byte that is read back
        assert h5_digest(path) == ref
        return "unchanged"
    msg = one_line_error(v, path)
    rep = run_cli(["cache", "--repair", str(path)], logdir=tmp)
    if rep.status != 0:
        one_line_error(rep, path)
        assert "cannot be repaired" in rep.stderr or "not a readable HDF5" in rep.stderr, rep.stderr
        return "unreadable"
    again = run_cli(commands(inputs, path.parent)["cache"], logdir=tmp)
    assert again.status == 0, (msg, again.stderr[-3000:])
    assert h5_digest(path) == ref, msg
    return "repaired"


def flips(clean_cache, inputs, tmp: Path, n: int, seed: int) -> dict[str, int]:
    src, ref = clean_cache
    size = src.stat().st_size
    rng = random.Random(seed)
    seen: dict[str, int] = {}
    for i in range(n):
        off, bit = rng.randrange(size), rng.randrange(8)
        d = tmp / f"flip{i}"
        d.mkdir()
        path = d / "acts.h5"
        shutil.copy(src, path)
        with open(path, "r+b") as f:
            f.seek(off)
            b = f.read(1)[0]
            f.seek(off)
            f.write(bytes([b ^ (1 << bit)]))
        what = check_damaged(path, ref, inputs, tmp)
        seen[what] = seen.get(what, 0) + 1
        count("corrupt files", f"bit flip ({what})")
    return seen


def cuts(clean_cache, inputs, tmp: Path, n: int, seed: int) -> dict[str, int]:
    src, ref = clean_cache
    size = src.stat().st_size
    rng = random.Random(seed)
    seen: dict[str, int] = {}
    for i, at in enumerate([size - 1, size // 2, *(rng.randrange(1, size) for _ in range(n - 2))]):
        d = tmp / f"cut{i}"
        d.mkdir()
        path = d / "acts.h5"
        shutil.copy(src, path)
        with open(path, "r+b") as f:
            f.truncate(at)
        what = check_damaged(path, ref, inputs, tmp)
        assert what != "unchanged", at
        seen[what] = seen.get(what, 0) + 1
        count("corrupt files", f"truncated ({what})")
    return seen


def test_bit_flips_ci(clean_cache, inputs, tmp_path):
    seen = flips(clean_cache, inputs, tmp_path, CI_FLIPS, seed=1)
    assert sum(seen.values()) == CI_FLIPS


def test_truncated_ci(clean_cache, inputs, tmp_path):
    assert sum(cuts(clean_cache, inputs, tmp_path, CI_CUTS, seed=1).values()) == CI_CUTS


def test_flip_in_the_rows_is_caught_by_the_checksum(clean_cache, inputs, tmp_path):
    """A flipped bit inside an activation row: HDF5 reads it happily; the batch CRC does not."""
    import h5py

    src, ref = clean_cache
    path = tmp_path / "acts.h5"
    shutil.copy(src, path)
    with h5py.File(path, "r") as f:
        ds = f["blocks.1.hook_resid_post"]
        off = ds.id.get_offset() if ds.chunks is None else ds.id.get_chunk_info(0).byte_offset
    with open(path, "r+b") as f:
        f.seek(off + 4 * 576 * 3 + 2)
        b = f.read(1)[0]
        f.seek(off + 4 * 576 * 3 + 2)
        f.write(bytes([b ^ 0x10]))
    v = run_cli(["cache", "--verify", str(path)], logdir=tmp_path)
    assert "CRC-32" in one_line_error(v, path)
    assert check_damaged(path, ref, inputs, tmp_path) == "repaired"


@pytest.mark.slow
def test_bit_flips_full(clean_cache, inputs, tmp_path):
    assert sum(flips(clean_cache, inputs, tmp_path, FULL_FLIPS, seed=2026).values()) == FULL_FLIPS


@pytest.mark.slow
def test_truncated_full(clean_cache, inputs, tmp_path):
    assert sum(cuts(clean_cache, inputs, tmp_path, FULL_CUTS, seed=2026).values()) == FULL_CUTS
