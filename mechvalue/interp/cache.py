"""Activation cache: chosen hook points, chosen positions, streamed to HDF5, resumable.

Its parts: the file format (`cache_file`: stored dtypes, index datasets, commit records), the
writer (`cache_write`: `cache_activations`, one fsynced commit record per batch, so a killed run
resumes after its last committed batch), the reader (`cache_store.ActivationStore`) and the checks
(`cache_verify`: `verify` checks every invariant, `repair` truncates a damaged file to its last
consistent batch). This module gathers their public names.
"""

from mechvalue.interp.cache_file import INDEX, STORAGE, committed, settings_hash
from mechvalue.interp.cache_store import ActivationStore
from mechvalue.interp.cache_verify import repair, verify
from mechvalue.interp.cache_write import (
    BatchRows,
    CachePrompt,
    CacheSettings,
    FirstPosition,
    append_batch,
    cache_activations,
    check_sae_fits,
    hook_width,
    model_label,
    select_positions,
)

__all__ = [
    "INDEX",
    "STORAGE",
    "ActivationStore",
    "BatchRows",
    "CachePrompt",
    "CacheSettings",
    "FirstPosition",
    "append_batch",
    "cache_activations",
    "check_sae_fits",
    "committed",
    "hook_width",
    "model_label",
    "repair",
    "select_positions",
    "settings_hash",
    "verify",
]
