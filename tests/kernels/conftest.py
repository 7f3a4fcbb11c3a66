"""Kernel tests run the compiled kernels on CUDA tensors where CUDA exists, the Triton
interpreter on CPU tensors otherwise (tests/conftest.py sets TRITON_INTERPRET=1 there).

`MECHVALUE_REQUIRE_COMPILED=1` (set by benchmarks/gpu/run.sh on a GPU) refuses to run them
interpreted: an inherited TRITON_INTERPRET=1 would otherwise pass the GPU run on the interpreter.
"""

import os

import pytest
import torch


def kernel_device() -> str:
    """Where kernel inputs live: the interpreter reads host memory, compiled kernels device memory."""
    if os.environ.get("TRITON_INTERPRET") == "1" or not torch.cuda.is_available():
        return "cpu"
    return "cuda"


if os.environ.get("MECHVALUE_REQUIRE_COMPILED") == "1" and kernel_device() != "cuda":
    raise pytest.UsageError(
        "MECHVALUE_REQUIRE_COMPILED=1 but the kernel tests would run under Triton's interpreter "
        f"(TRITON_INTERPRET={os.environ.get('TRITON_INTERPRET')!r}, CUDA available: {torch.cuda.is_available()})"
    )


@pytest.fixture(scope="session")
def device() -> str:
    return kernel_device()
