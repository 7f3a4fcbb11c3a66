"""The `TransformerBridge` behind whatever a caller passes (a `LoadedModel` or a bare bridge)."""

from __future__ import annotations

import torch


def as_bridge(model):
    """The `TransformerBridge` of a `LoadedModel`, or the argument itself."""
    inner = getattr(model, "__dict__", {}).get("bridge")
    return inner if isinstance(inner, torch.nn.Module) else model


def model_device(model) -> torch.device:
    """Where the model's weights are (what input token tensors are moved to)."""
    return as_bridge(model).original_model.get_input_embeddings().weight.device
