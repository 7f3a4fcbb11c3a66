"""The load-time probe: KV-cached paths must give what a full pass gives, or nothing runs.

A transformers or TransformerLens release that stops filling the KV cache makes every score and
generation silently wrong (transformers 5.24 with transformer-lens 3.9 did). `self_check` runs a
short prompt (12 tokens; five forward passes, 42 token positions) and compares next-token logits with plain full passes:
- a decode step after the prompt's KV cache (`greedy_generate`'s cache), with an identity hook at a
  middle layer that must see the cache empty in the prompt pass and holding the prompt in the
  step (`compat.past_length`, how positioned hooks tell decode steps apart);
- shared-prefix scoring (the prefix's cache broadcast over two suffixes, as the measurer does).
Any disagreement beyond the dtype's rounding raises one MechValueError naming the installed
versions, so a command exits 2 instead of printing wrong numbers.
"""

from __future__ import annotations

from pathlib import Path

import torch

from mechvalue.errors import MechValueError
from mechvalue.lm import compat
from mechvalue.lm.bridge import as_bridge, model_device
from mechvalue.lm.generation import decode_cache, logits_at, prefix_last_logits
from mechvalue.lm.weights_cache import cache_dir

PROBE = "Here is a short story about a fox who wanted to learn how to read"  # 12+ tokens for any tokenizer
# Largest |cached - full| allowed, relative to the spread (std) of the full pass's logits: float32
# agrees to ~1e-6 of it; a cache that is not filled is off by the order of the spread itself.
TOLERANCE = {torch.float32: 1e-3, torch.bfloat16: 0.1, torch.float16: 0.05}


def _full(bridge, ids: list[int]) -> torch.Tensor:
    t = torch.tensor([ids], device=model_device(bridge))
    return logits_at(bridge, t, torch.ones_like(t))[0].float()


def _errors(bridge, ids: list[int], hooks) -> dict[str, float]:
    """Each cached path's largest |cached - full| over the full pass's spread."""
    dev = model_device(bridge)
    with torch.no_grad():
        want = _full(bridge, ids)
        scale = float(want.std().clamp_min(1e-6))
        cache = decode_cache(bridge, 1)
        p = torch.tensor([ids[:-1]], device=dev)
        want_short = logits_at(bridge, p, torch.ones_like(p), cache, hooks)[0].float()  # a full pass too
        if cache.get_seq_length() != p.shape[1]:
            raise RuntimeError(
                f"cached decoding off: the KV cache holds {cache.get_seq_length()} of the prompt's "
                f"{p.shape[1]} positions after the prompt pass"
            )
        step = torch.tensor([ids[-1:]], device=dev)
        attn = torch.ones((1, len(ids)), dtype=torch.long, device=dev)
        got = logits_at(bridge, step, attn, cache, hooks)[0].float()
        err = {"cached decoding": float((got - want).abs().max()) / scale}
        k = len(ids) // 2
        shared = prefix_last_logits(bridge, ids[:k], [ids[k:], ids[k:-1]]).float()
        err["shared-prefix scoring"] = (
            max(float((shared[0] - want).abs().max()), float((shared[1] - want_short).abs().max())) / scale
        )
    return err


def self_check(model) -> dict[str, float]:
    """Compare the cached paths with full passes; return each path's relative error, or raise."""
    bridge = as_bridge(model)
    compat.install(bridge)
    ids = bridge.tokenizer(PROBE, add_special_tokens=False)["input_ids"][:12]
    dtype = bridge.original_model.get_input_embeddings().weight.dtype
    seen: list[int | None] = []

    def identity(act, hook):
        seen.append(compat.past_length())
        return act

    mid = f"blocks.{int(bridge.cfg.n_layers) // 2}.hook_resid_post"
    tol = TOLERANCE.get(dtype, 0.1)
    try:
        err = _errors(bridge, ids, [(mid, identity)])
        bad = [f"{n} off by {e:.3g} of the logits' spread" for n, e in err.items() if not e <= tol]
    except (RuntimeError, ValueError) as e:
        err, bad = {}, [str(e)]
    if seen != [0, len(ids) - 1]:
        bad.append(f"hooks saw cache lengths {seen}, expected [0, {len(ids) - 1}]")
    if bad:
        raise MechValueError(
            f"self-check failed: KV-cached logits disagree with a full pass ({'; '.join(bad)}) on "
            f"{compat.versions()}; install the locked versions (./setup.sh) or see the README's tested "
            "combinations"
        )
    return err


def record_path() -> Path:
    """Where each self-check's result is kept, for `mechvalue doctor`: one entry per model, dtype,
    device and library versions (`$MECHVALUE_CACHE/selfcheck.json`)."""
    return cache_dir() / "selfcheck.json"


def record_key(model: str, dtype: torch.dtype, device: str | torch.device) -> str:
    """The entry a self-check result is kept under: what it ran on and with which libraries."""
    kind = torch.device(device).type
    return f"{model} | {str(dtype).removeprefix('torch.')} | {kind} | {compat.versions()}"


def checked(bridge, name: str) -> dict[str, float]:
    """`self_check`, its result (passed, or the one-line failure) kept for `mechvalue doctor`."""
    import datetime
    import json

    from mechvalue.io import write_json

    dtype = bridge.original_model.get_input_embeddings().weight.dtype
    entry: dict = {"date": datetime.datetime.now().isoformat(timespec="seconds")}
    try:
        entry["errors"] = self_check(bridge)
        entry["passed"] = True
        return entry["errors"]
    except Exception as e:  # a failure of any kind is what doctor must show
        entry.update(
            passed=False, failure=str(e) if isinstance(e, MechValueError) else f"{type(e).__name__}: {e}"
        )
        raise
    finally:  # best effort: a read-only cache only loses the record
        path = record_path()
        try:
            old = json.loads(path.read_text()) if path.is_file() else {}
            old[record_key(name, dtype, model_device(bridge))] = entry
            write_json(old, path)
        except (OSError, ValueError):
            pass
