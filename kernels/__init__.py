"""Triton kernels (installed as `mechvalue.kernels`): each with its torch reference and test."""

from .sae_edit import sae_edit_reference, sae_edit_triton

__all__ = ["sae_edit_reference", "sae_edit_triton"]
