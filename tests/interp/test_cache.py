import os
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest
import torch

from mechvalue.errors import MechValueError
from mechvalue.interp.cache import ActivationStore, CachePrompt, cache_activations, committed, verify

HOOKS = ["blocks.1.hook_resid_post", "blocks.3.hook_mlp_out"]
SCRIPT = """
import sys
from mechvalue.lm.models import load_model
from mechvalue.interp.cache import CachePrompt, cache_activations
model, _ = load_model()
tok = model.tokenizer
texts = [f"Prompt number {i}: what do you value most in life, and why?" for i in range(400)]
ps = [CachePrompt(tok(t, add_special_tokens=False)["input_ids"]) for t in texts]
cache_activations(model, ps, ["blocks.1.hook_resid_post"], sys.argv[1], "all", batch_size=2, progress=False)
"""


def _prompts(tok, n):
    texts = [f"Prompt number {i}: what do you value most in life{'?' * (i % 3)}" for i in range(n)]
    out = []
    for t in texts:
        ids = tok(t, add_special_tokens=False)["input_ids"]
        out.append(CachePrompt(ids, span=(2, 4)))
    return out


def test_read_back_equals_run_with_cache(smollm2, tmp_path):
    model, _ = smollm2
    ps = _prompts(model.tokenizer, 7)
    path = cache_activations(model, ps, HOOKS, tmp_path / "a.h5", "span", batch_size=3, progress=False)
    store = ActivationStore(path)
    assert store.n == 7 * 2
    for i, p in enumerate(ps):
        _, ref = model.run_with_cache(torch.tensor([p.tokens]), names_filter=HOOKS)
        for h in HOOKS:
            got = store.for_prompt(i, h)
            # float32 storage of a batched, padded pass against one prompt alone: equal within
            # float32 rounding (the batch's matmuls may block differently)
            torch.testing.assert_close(got, ref[h][0, 2:4], rtol=1e-5, atol=1e-5)
    assert sum(x.shape[0] for x in store.minibatches(HOOKS[0], 4, seed=0)) == 14
    store.close()
    assert verify(path)["ok"]


def test_last_position_and_half_storage(smollm2, tmp_path):
    model, _ = smollm2
    ps = _prompts(model.tokenizer, 4)
    for storage in ("float16", "bfloat16"):
        path = cache_activations(
            model, ps, HOOKS[:1], tmp_path / f"{storage}.h5", "last", storage=storage, progress=False
        )
        store = ActivationStore(path)
        _, ref = model.run_with_cache(torch.tensor([ps[2].tokens]), names_filter=HOOKS[:1])
        got = store.for_prompt(2, HOOKS[0])
        assert got.shape == (1, 576)
        assert torch.allclose(got, ref[HOOKS[0]][0, -1:], rtol=1e-2, atol=1e-2)
        store.close()


def test_bad_inputs(smollm2, tmp_path):
    model, _ = smollm2
    ps = _prompts(model.tokenizer, 2)
    with pytest.raises(MechValueError, match="closest valid names"):
        cache_activations(model, ps, ["blocks.1.hook_resid_pst"], tmp_path / "x.h5", progress=False)
    assert not (tmp_path / "x.h5").exists()
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(MechValueError, match=r"x.h5: cannot write \(Not a directory\)"):
        cache_activations(model, ps, HOOKS, blocker / "sub" / "x.h5", progress=False)
    cache_activations(model, ps, HOOKS, tmp_path / "y.h5", "last", progress=False)
    with pytest.raises(MechValueError, match="other settings"):
        cache_activations(model, ps, HOOKS, tmp_path / "y.h5", "all", progress=False)


def test_full_disk_leaves_committed_rows(smollm2, tmp_path, monkeypatch):
    model, _ = smollm2
    ps = _prompts(model.tokenizer, 6)
    import mechvalue.interp.cache as c
    import mechvalue.interp.cache_write as w

    real, calls = w.append_batch, {"n": 0}

    def failing(*a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(28, "No space left on device")
        return real(*a, **k)

    monkeypatch.setattr(w, "append_batch", failing)
    with pytest.raises(
        MechValueError, match=r"z.h5: cannot write \(disk full\); the batches committed so far are kept"
    ):
        cache_activations(model, ps, HOOKS, tmp_path / "z.h5", "last", batch_size=2, progress=False)
    monkeypatch.setattr(w, "append_batch", real)
    with h5py.File(tmp_path / "z.h5") as f:
        assert c.committed(f) == (2, 2) and f["commits"].shape == (1, 3)
    cache_activations(model, ps, HOOKS, tmp_path / "z.h5", "last", batch_size=2, progress=False)
    s = ActivationStore(tmp_path / "z.h5")
    assert list(s.prompt_id) == list(range(6))
    s.close()


def test_resume_after_kill(smollm2, tmp_path):
    path = tmp_path / "k.h5"
    env = dict(os.environ, HDF5_USE_FILE_LOCKING="FALSE")
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(path)], env=env)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if path.exists():
            try:
                with h5py.File(path, "r", locking=False) as f:
                    if committed(f)[1] >= 40:
                        break
            except (OSError, KeyError):
                pass
        time.sleep(0.2)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with h5py.File(path, "r", locking=False) as f:
        assert 0 < committed(f)[1] < 400 and not f.attrs["complete"]
    subprocess.run([sys.executable, "-c", SCRIPT, str(path)], env=env, check=True)
    clean = tmp_path / "clean.h5"
    subprocess.run([sys.executable, "-c", SCRIPT, str(clean)], env=env, check=True)
    a, b = ActivationStore(path), ActivationStore(clean)
    assert a.n == b.n
    assert np.array_equal(a.prompt_id, b.prompt_id)
    assert torch.equal(a.rows("blocks.1.hook_resid_post"), b.rows("blocks.1.hook_resid_post"))
    a.close(), b.close()
