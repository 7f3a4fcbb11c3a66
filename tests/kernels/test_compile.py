"""Ahead-of-time compile check (no GPU needed): `compile_all` for sm_80 and sm_90, no register
spills, shared memory within the arch's per-block limit; the table is printed (`-s`).

The default run compiles a subset that still covers every autotune config, dtype pair and
activation once per arch (~10 s per arch); the full matrix (50 per arch) is marked slow."""

import pytest

from mechvalue.kernels.compile import DTYPE_PAIRS, compile_all, matrix, table

SHARED_LIMIT = {80: 163 * 1024, 90: 227 * 1024}  # max dynamic shared memory per block


def _check(arch: int, subset: bool) -> None:
    rows = compile_all(arch, subset=subset)
    print(f"\nsm_{arch}\n" + table(rows))
    assert len(rows) == len(matrix(subset))
    for r in rows:
        assert r.spill_stores == 0 and r.spill_loads == 0, r
        assert 0 < r.registers <= 255 and r.shared_bytes <= SHARED_LIMIT[arch], r


def test_subset_covers_every_config_dtype_pair_and_activation():
    sub = matrix(subset=True)
    assert {c for *_, c in sub} == {c for *_, c in matrix()}
    assert {(x, w) for x, w, _, _ in sub} == set(DTYPE_PAIRS)
    assert {(x, w, a) for x, w, a, _ in sub} == {(x, w, a) for x, w, a, _ in matrix()}


@pytest.mark.parametrize("arch", [80, 90])
def test_compiles_without_spills(arch):
    _check(arch, subset=True)


@pytest.mark.slow
@pytest.mark.parametrize("arch", [80, 90])
def test_full_matrix_compiles_without_spills(arch):
    _check(arch, subset=False)
