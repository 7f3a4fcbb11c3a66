"""Activation cache: chosen hook points, chosen positions, streamed to HDF5, resumable.

Only the requested hooks are kept (`names_filter`), the forward pass stops after the deepest
one, and each batch is appended then committed (`rows_committed` / `prompts_done` attributes),
so a run killed at any moment resumes after its last complete batch without duplicate rows.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor
from tqdm.auto import tqdm

from mechvalue import __version__
from mechvalue.errors import MechValueError
from mechvalue.lm.batching import chunks, left_pad

STORAGE = {"float32": np.float32, "float16": np.float16, "bfloat16": np.uint16}


@dataclass
class CachePrompt:
    tokens: list[int]
    span: tuple[int, int] | None = None  # for positions="span"
    mask: list[bool] | None = None  # for positions="mask"


def check_hooks(model, hooks: list[str]) -> None:
    valid = list(model.hook_dict)
    for h in hooks:
        if h not in model.hook_dict:
            near = difflib.get_close_matches(h, valid, n=3, cutoff=0.5)
            raise MechValueError(f"unknown hook {h!r}; closest valid names: {near or valid[:3]}")


def _stop_layer(hooks: list[str], n_layers: int) -> int | None:
    layers = [re.match(r"blocks\.(\d+)\.", h) for h in hooks]
    if not all(layers) or any(h.endswith(("ln_final.hook_normalized", "hook_scale")) for h in hooks):
        return None
    deepest = max(int(m.group(1)) for m in layers)
    return deepest + 1 if deepest + 1 < n_layers else None


def select_positions(p: CachePrompt, positions: str) -> list[int]:
    n = len(p.tokens)
    if positions == "all":
        return list(range(n))
    if positions == "last":
        return [n - 1]
    if positions == "span":
        if p.span is None:
            raise MechValueError("positions=span needs a span for every prompt")
        return list(range(*p.span))
    if positions == "mask":
        return [i for i, m in enumerate(p.mask or []) if m]
    raise MechValueError(f"unknown positions {positions!r}: all, last, span:TEXT or mask")


def settings_hash(settings: dict) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def cache_activations(
    model,
    prompts: list[CachePrompt],
    hooks: list[str],
    out: str | Path,
    positions: str = "all",
    batch_size: int = 16,
    storage: str = "float32",
    compression: str | None = None,
    model_name: str = "",
    progress: bool = True,
) -> Path:
    """Run `prompts` through `model` and append the selected activations to `out` (HDF5)."""
    check_hooks(model, hooks)
    if storage not in STORAGE:
        raise MechValueError(f"storage dtype {storage!r}: use one of {sorted(STORAGE)}")
    out = Path(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise MechValueError(f"{out}: cannot create folder ({e})") from None
    tok_hash = hashlib.sha256(json.dumps([p.tokens for p in prompts]).encode()).hexdigest()[:16]
    settings = {"model": model_name, "hooks": hooks, "positions": positions, "storage": storage,
                "prompts": tok_hash, "n_prompts": len(prompts)}  # fmt: skip
    h = settings_hash(settings)
    f = _open(out, h, settings, hooks, model, storage, compression)
    stop = _stop_layer(hooks, model.cfg.n_layers)
    pad = model.tokenizer.pad_token_id or 0
    try:
        done = int(f.attrs["prompts_done"])
        bar = tqdm(total=len(prompts), initial=done, desc="cache", disable=not progress)
        for sl in chunks(len(prompts) - done, batch_size):
            batch = prompts[done + sl.start : done + sl.stop]
            tokens, attn = left_pad([p.tokens for p in batch], pad, model.cfg.device)
            acts: dict[str, Tensor] = {}

            def keep(t, hook):
                acts[hook.name] = t.detach()

            with torch.no_grad():
                model.run_with_hooks(tokens, attention_mask=attn, stop_at_layer=stop,
                                     fwd_hooks=[(n, keep) for n in hooks])  # fmt: skip
            rows_b, rows_p, pid, pos, tid = [], [], [], [], []
            width = tokens.shape[1]
            for b, p in enumerate(batch):
                sel = select_positions(p, positions)
                shift = width - len(p.tokens)
                rows_b += [b] * len(sel)
                rows_p += [shift + i for i in sel]
                pid += [done + sl.start + b] * len(sel)
                pos += sel
                tid += [p.tokens[i] for i in sel]
            append_batch(f, hooks, acts, rows_b, rows_p, pid, pos, tid, storage)
            f.attrs["prompts_done"] = done + sl.stop
            f.flush()
            bar.update(len(batch))
        bar.close()
        f.attrs["complete"] = True
    finally:
        f.close()
    return out


def _open(out: Path, h: str, settings: dict, hooks: list[str], model, storage: str, compression):
    if out.exists():
        try:
            f = h5py.File(out, "r+")
        except OSError as e:
            raise MechValueError(f"{out}: exists but is not a readable HDF5 file ({e})") from None
        if f.attrs.get("settings_hash") != h:
            f.close()
            raise MechValueError(f"{out}: was written with other settings; refusing to mix (use a new --out)")
        n = int(f.attrs["rows_committed"])
        for name in [*hooks, "prompt_id", "position", "token_id"]:
            f[name].resize(n, axis=0)  # drop a batch half-written when the run was killed
        return f
    tmp = out.with_name(out.name + ".init")
    with h5py.File(tmp, "w") as f:
        for name in hooks:
            width = _hook_width(model, name)
            f.create_dataset(name, (0, width), maxshape=(None, width), dtype=STORAGE[storage],
                             chunks=(max(1, min(1024, 2**20 // (4 * width))), width), compression=compression)  # fmt: skip
        for name in ("prompt_id", "position", "token_id"):
            f.create_dataset(name, (0,), maxshape=(None,), dtype=np.int64, chunks=(4096,))
        f.attrs.update({"model": settings["model"], "hooks": json.dumps(hooks), "dtype": storage,
                        "tokenizer": getattr(model.tokenizer, "name_or_path", ""),
                        "mechvalue_version": __version__, "settings": json.dumps(settings),
                        "settings_hash": h, "rows_committed": 0, "prompts_done": 0,
                        "complete": False})  # fmt: skip
    tmp.rename(out)
    return h5py.File(out, "r+")


def _hook_width(model, name: str) -> int:
    with torch.no_grad():
        store = {}
        model.run_with_hooks(torch.tensor([[0]], device=model.cfg.device),
                             fwd_hooks=[(name, lambda t, hook: store.setdefault("t", t))],
                             stop_at_layer=_stop_layer([name], model.cfg.n_layers))  # fmt: skip
    t = store["t"]
    return int(np.prod(t.shape[2:]))


def append_batch(f, hooks, acts, rows_b, rows_p, pid, pos, tid, storage) -> None:
    n0 = int(f.attrs["rows_committed"])
    n1 = n0 + len(pid)
    b, p = torch.tensor(rows_b, dtype=torch.long), torch.tensor(rows_p, dtype=torch.long)
    for name in hooks:
        a = acts[name]
        x = a[b.to(a.device), p.to(a.device)].reshape(len(pid), -1)
        if storage == "bfloat16":
            arr = x.to(torch.bfloat16).view(torch.uint16).cpu().numpy()
        else:
            arr = x.float().cpu().numpy().astype(STORAGE[storage])
        f[name].resize(n1, axis=0)
        f[name][n0:n1] = arr
    for name, vals in (("prompt_id", pid), ("position", pos), ("token_id", tid)):
        f[name].resize(n1, axis=0)
        f[name][n0:n1] = np.asarray(vals, dtype=np.int64)
    f.attrs["rows_committed"] = n1


class ActivationStore:
    """Read an activation cache: by prompt, or as shuffled minibatches in bounded memory."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            self.f = h5py.File(self.path, "r")
        except OSError as e:
            raise MechValueError(f"{path}: not a readable activation cache ({e})") from None
        self.hooks = json.loads(self.f.attrs["hooks"])
        self.storage = str(self.f.attrs["dtype"])
        self.n = int(self.f.attrs["rows_committed"])
        self.prompt_id = self.f["prompt_id"][: self.n]

    def _decode(self, arr: np.ndarray, device="cpu") -> Float[Tensor, "rows d"]:
        t = torch.from_numpy(np.ascontiguousarray(arr))
        if self.storage == "bfloat16":
            t = t.view(torch.bfloat16)
        return t.float().to(device)

    def rows(
        self, hook: str, start: int = 0, stop: int | None = None, device="cpu"
    ) -> Float[Tensor, "rows d"]:
        return self._decode(self.f[hook][start : self.n if stop is None else stop], device)

    def for_prompt(self, prompt_id: int, hook: str, device="cpu") -> Float[Tensor, "rows d"]:
        idx = np.flatnonzero(self.prompt_id == prompt_id)
        if len(idx) == 0:
            return torch.empty((0, self.f[hook].shape[1]))
        return self.rows(hook, int(idx[0]), int(idx[-1]) + 1, device)

    def minibatches(
        self, hook: str, batch_size: int, seed: int = 0, buffer_rows: int = 65536, device="cpu"
    ) -> Iterator[Float[Tensor, "batch d"]]:
        """One epoch of shuffled minibatches: blocks in random order, shuffled within a buffer.

        Memory is bounded by `buffer_rows`, whatever the file size.
        """
        rng = np.random.default_rng(seed)
        block = max(batch_size, min(buffer_rows, self.n))
        starts = rng.permutation(np.arange(0, self.n, block))
        for s in starts:
            x = self.rows(hook, int(s), int(min(s + block, self.n)))
            x = x[torch.from_numpy(rng.permutation(len(x)))]
            for i in range(0, len(x), batch_size):
                yield x[i : i + batch_size].to(device)

    def close(self) -> None:
        self.f.close()

    def summary(self) -> dict:
        return {"path": str(self.path), "rows": self.n, "prompts": int(len(np.unique(self.prompt_id))),
                "hooks": {h: list(self.f[h].shape) for h in self.hooks}, "dtype": self.storage,
                "complete": bool(self.f.attrs["complete"]), "model": str(self.f.attrs["model"])}  # fmt: skip


def verify(path: str | Path) -> dict:
    """Integrity check: equal row counts, monotone prompt ids, finite values; returns a summary."""
    s = ActivationStore(path)
    try:
        problems = []
        for name in [*s.hooks, "position", "token_id"]:
            if s.f[name].shape[0] < s.n:
                problems.append(f"{name} has {s.f[name].shape[0]} rows < {s.n} committed")
        if np.any(np.diff(s.prompt_id) < 0):
            problems.append("prompt ids are not in order")
        for h in s.hooks:
            for i in range(0, s.n, 65536):
                if not torch.isfinite(s.rows(h, i, min(i + 65536, s.n))).all():
                    problems.append(f"{h} has non-finite values")
                    break
        out = s.summary() | {"ok": not problems, "problems": problems}
    finally:
        s.close()
    return out
