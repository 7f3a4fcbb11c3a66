"""Triton kernels (installed as `mechvalue.kernels`): each with its torch reference and test,
and `compile_all(arch)`, the ahead-of-time compile check that needs no GPU."""

from .compile import compile_all
from .sae_edit import Operands, gate, launch_grid, sae_edit_reference, sae_edit_triton

__all__ = ["Operands", "compile_all", "gate", "launch_grid", "sae_edit_reference", "sae_edit_triton"]
