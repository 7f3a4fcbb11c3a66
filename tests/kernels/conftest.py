"""Kernel tests run the compiled kernels on CUDA tensors where CUDA exists, the Triton
interpreter on CPU tensors otherwise (tests/conftest.py sets TRITON_INTERPRET=1 there)."""

import os

import pytest
import torch


def kernel_device() -> str:
    """Where kernel inputs live: the interpreter reads host memory, compiled kernels device memory."""
    if os.environ.get("TRITON_INTERPRET") == "1" or not torch.cuda.is_available():
        return "cpu"
    return "cuda"


@pytest.fixture(scope="session")
def device() -> str:
    return kernel_device()
