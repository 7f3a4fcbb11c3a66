"""Converted-weight caches keyed by their source and libraries, and loaded strictly."""

from __future__ import annotations

import os

import pytest
import torch
from safetensors.torch import save_file

from mechvalue.errors import MechValueError
from mechvalue.lm import weights_cache as w


@pytest.fixture
def built(tmp_path):
    src = tmp_path / "model.gguf"
    src.write_bytes(b"GGUF" + bytes(100))
    out = tmp_path / "hf"
    out.mkdir()
    save_file({"a.weight": torch.ones(4, 3), "b.bias": torch.zeros(3)}, out / "model.safetensors")
    key = w.source_key([src], ("transformers", "gguf"), dtype="float32")
    w.seal(out, key)
    return src, out, key


def test_same_source_and_libraries_reuse_the_folder(built):
    src, out, key = built
    assert w.reusable(out, w.source_key([src], ("transformers", "gguf"), dtype="float32"))
    assert key["versions"]["transformers"] and str(src.resolve()) in key["sources"]


def test_a_changed_source_a_library_upgrade_or_another_dtype_rebuilds(built):
    src, out, key = built
    assert not w.reusable(out, w.source_key([src], ("transformers", "gguf"), dtype="bfloat16"))
    upgraded = key | {"versions": key["versions"] | {"transformers": "99.0"}}
    assert not w.reusable(out, upgraded)
    st = src.stat()
    os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert not w.reusable(out, w.source_key([src], ("transformers", "gguf"), dtype="float32"))
    src.write_bytes(b"GGUF" + bytes(101))
    assert not w.reusable(out, w.source_key([src], ("transformers", "gguf"), dtype="float32"))


def test_tensors_that_no_longer_match_the_manifest_are_refused(built):
    src, out, key = built
    save_file({"a.weight": torch.ones(4, 3)}, out / "model.safetensors")  # b.bias lost
    with pytest.raises(MechValueError, match=r"hf: cached weights no longer match their manifest"):
        w.reusable(out, key)
    data = (out / "model.safetensors").read_bytes()
    (out / "model.safetensors").write_bytes(data[:-5])  # cut short
    with pytest.raises(MechValueError, match=r"model.safetensors: not a readable safetensors file"):
        w.reusable(out, key)


def test_a_model_folder_needs_weights(tmp_path):
    with pytest.raises(MechValueError, match="no weights"):
        w.require_weights(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}")
    with pytest.raises(MechValueError, match="not a readable safetensors"):
        w.require_weights(tmp_path)
