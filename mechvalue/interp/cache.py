"""Activation cache: chosen hook points, chosen positions, streamed to HDF5, resumable.

Only the requested hooks are kept (`names_filter`), the forward pass stops after the deepest
one, and each batch is appended, fsynced, then committed by one record in the `commits` dataset
(rows end, prompts end, CRC-32 of the batch), fsynced again: a run killed at any moment resumes
after its last committed batch with no row lost or duplicated. `verify` checks every invariant
(flag, lengths, order, finiteness, checksums, settings hash); `repair` truncates a damaged file
to its last consistent batch.
"""

from __future__ import annotations

import difflib
import errno
import hashlib
import json
import os
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

import h5py
import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor
from tqdm.auto import tqdm

from mechvalue import __version__
from mechvalue.errors import MechValueError
from mechvalue.io import atomic_path
from mechvalue.lm.batching import chunks, left_pad

STORAGE = {"float32": np.float32, "float16": np.float16, "bfloat16": np.uint16}
INDEX = ("prompt_id", "position", "token_id")  # per-row bookkeeping datasets beside the hooks
FirstPosition = Literal["keep", "drop"]
FIRST_POSITIONS: tuple[str, ...] = get_args(FirstPosition)


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


def select_positions(p: CachePrompt, positions: str, first_position: FirstPosition = "keep") -> list[int]:
    """The positions of `p` to cache; `first_position="drop"` leaves out position 0 (the start token,
    an attention sink: ~150x the usual residual norm in SmolLM2, it dominates any plain mean)."""
    sel = _select(p, positions)
    return [i for i in sel if i > 0] if first_position == "drop" else sel


def _select(p: CachePrompt, positions: str) -> list[int]:
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
    first_position: FirstPosition = "keep",
) -> Path:
    """Run `prompts` through `model` and append the selected activations to `out` (HDF5).

    The file's layout is in the README ("The activation cache file"); `model_name` (default: the
    name the model was loaded by) is recorded in its attributes, `first_position="drop"` leaves
    position 0, the attention sink, out of every prompt."""
    check_hooks(model, hooks)
    if storage not in STORAGE:
        raise MechValueError(f"storage dtype {storage!r}: use one of {sorted(STORAGE)}")
    if first_position not in FIRST_POSITIONS:
        raise MechValueError(
            f"first_position={first_position!r}: expected one of {', '.join(FIRST_POSITIONS)}"
        )
    out = Path(out)  # its folder is made with the file (`_open`)
    tok_hash = hashlib.sha256(json.dumps([p.tokens for p in prompts]).encode()).hexdigest()[:16]
    settings = {"model": model_name or model_label(model), "hooks": hooks, "positions": positions,
                "storage": storage, "prompts": tok_hash, "n_prompts": len(prompts)}  # fmt: skip
    if first_position != "keep":  # only then: files written before the option keep their settings hash
        settings["first_position"] = first_position
    h = settings_hash(settings)
    try:
        return _cache(
            model, prompts, hooks, out, positions, batch_size, storage, compression, settings, h, progress
        )
    except OSError as e:  # a full disk, a vanished mount: the committed batches stay valid
        why = "disk full" if e.errno == errno.ENOSPC else (e.strerror or str(e).split("(")[0].strip())
        raise MechValueError(f"{out}: cannot write ({why}); the batches committed so far are kept, "
                             "rerun the same command to resume") from None  # fmt: skip


def _cache(model, prompts, hooks, out, positions, batch_size, storage, compression, settings, h, progress):
    f = _open(out, h, settings, hooks, model, storage, compression)
    stop = _stop_layer(hooks, model.cfg.n_layers)
    pad = model.tokenizer.pad_token_id or 0
    bar = None
    try:
        done = committed(f)[1]
        bar = tqdm(total=len(prompts), initial=done, desc="cache", disable=not progress)
        for sl in chunks(len(prompts) - done, batch_size):
            batch = prompts[done + sl.start : done + sl.stop]
            tokens, attn = left_pad([p.tokens for p in batch], pad, model.cfg.device)
            acts: dict[str, Tensor] = {}

            def keeper(name: str):  # keyed by the name asked for (a bridge's hook.name may be an alias)
                def keep(t, hook):
                    acts[name] = t.detach()

                return keep

            with torch.no_grad():
                model.run_with_hooks(tokens, attention_mask=attn, stop_at_layer=stop,
                                     fwd_hooks=[(n, keeper(n)) for n in hooks])  # fmt: skip
            rows_b, rows_p, pid, pos, tid = [], [], [], [], []
            width = tokens.shape[1]
            for b, p in enumerate(batch):
                sel = select_positions(p, positions, settings.get("first_position", "keep"))
                shift = width - len(p.tokens)
                rows_b += [b] * len(sel)
                rows_p += [shift + i for i in sel]
                pid += [done + sl.start + b] * len(sel)
                pos += sel
                tid += [p.tokens[i] for i in sel]
            append_batch(f, hooks, acts, rows_b, rows_p, pid, pos, tid, storage, done + sl.stop)
            bar.update(len(batch))
        f.attrs["complete"] = True
        _fsync(f)
    finally:
        if bar is not None:
            bar.close()  # before any error message, which then starts its own line
        f.close()
    return out


def model_label(model) -> str:
    """The name a model was loaded by (`LoadedModel.name`), else the bridge's model name or its
    tokenizer's folder: what a cache file records as `model`."""
    for name in (getattr(model, "name", None), getattr(getattr(model, "cfg", None), "model_name", None),
                 getattr(getattr(model, "tokenizer", None), "name_or_path", None)):  # fmt: skip
        if isinstance(name, str) and name:
            return name
    raise MechValueError("cannot tell the model's name for the cache file: pass model_name=")


def _open(out: Path, h: str, settings: dict, hooks: list[str], model, storage: str, compression):
    if out.exists():
        f = _open_h5(out, "r+")
        if f.attrs.get("settings_hash") != h:
            f.close()
            raise MechValueError(f"{out}: was written with other settings; refusing to mix (use a new --out)")
        try:
            _truncate(f, *_last_commit(f))  # drop a batch half-written when the run was killed
        except (KeyError, OSError, ValueError) as e:
            f.close()
            raise MechValueError(
                f"{out}: damaged activation cache ({e}); try `mechvalue cache --repair {out}`"
            ) from None
        return f
    with atomic_path(out) as tmp, h5py.File(tmp, "w") as f:  # a failed start leaves no temp file
        for name in hooks:
            width = _hook_width(model, name)
            f.create_dataset(name, (0, width), maxshape=(None, width), dtype=STORAGE[storage],
                             chunks=(max(1, min(1024, 2**20 // (4 * width))), width), compression=compression)  # fmt: skip
        for name in INDEX:
            f.create_dataset(name, (0,), maxshape=(None,), dtype=np.int64, chunks=(4096,))
        f.create_dataset("commits", (0, 3), maxshape=(None, 3), dtype=np.int64, chunks=(256, 3), fillvalue=-1)
        f.attrs.update({"model": settings["model"], "hooks": json.dumps(hooks), "dtype": storage,
                        "tokenizer": getattr(model.tokenizer, "name_or_path", ""),
                        "mechvalue_version": __version__, "settings": json.dumps(settings),
                        "settings_hash": h, "complete": False})  # fmt: skip
    return h5py.File(out, "r+")


def _open_h5(path: Path, mode: str = "r"):
    """Open an HDF5 file, or say in one line which file is not one (truncated, corrupt, locked)."""
    try:
        return h5py.File(path, mode)
    except FileNotFoundError:
        raise MechValueError(f"{path}: no such activation cache") from None
    except OSError as e:
        why = str(e).split("(")[0].strip() or type(e).__name__
        if "lock" in str(e).lower():
            why = "in use by another process (HDF5 file lock)"
        raise MechValueError(f"{path}: not a readable HDF5 activation cache ({why})") from None


def _fsync(f) -> None:
    """Flush h5py's buffers to the OS, then the OS's to the disk."""
    f.flush()
    os.fsync(f.id.get_vfd_handle())


def _records(f) -> np.ndarray:
    """The valid commit records (rows_end, prompts_end, crc32), in order: a record left half
    written by a kill (fill value -1, or not after its predecessor) ends the list."""
    if "commits" not in f:  # written before commit records: one record for what the attributes say
        return np.array([[int(f.attrs["rows_committed"]), int(f.attrs["prompts_done"]), -1]], np.int64)
    rec = f["commits"][:]
    ok, prev = 0, (0, 0)
    for r, p, _crc32 in rec:
        if r < prev[0] or p <= prev[1]:  # the fill value -1 fails this too
            break
        ok, prev = ok + 1, (r, p)
    return rec[:ok]


def _last_commit(f) -> tuple[int, int, int]:
    """(rows, prompts, number of records) of the last valid commit record."""
    rec = _records(f)
    return (int(rec[-1, 0]), int(rec[-1, 1]), len(rec)) if len(rec) else (0, 0, 0)


def committed(f) -> tuple[int, int]:
    """(rows, prompts) committed in an open cache file."""
    rows, prompts, _ = _last_commit(f)
    return rows, prompts


def _truncate(f, rows: int, prompts: int, n_records: int) -> None:
    for name in [*json.loads(f.attrs["hooks"]), *INDEX]:
        if f[name].shape[0] != rows:
            f[name].resize(rows, axis=0)
    if "commits" in f and f["commits"].shape[0] != n_records:
        f["commits"].resize(n_records, axis=0)
    _fsync(f)


def _crc(arrays: list[np.ndarray]) -> int:
    c = 0
    for a in arrays:
        c = zlib.crc32(np.ascontiguousarray(a).view(np.uint8), c)
    return c


def check_sae_fits(model, sae, where: str) -> None:
    """An SAE read from `where` must hook a point the model has, with the width it has there."""
    try:
        check_hooks(model, [sae.cfg.hook_name])
    except MechValueError as e:
        raise MechValueError(f"{where}: the SAE's {e}") from None
    width = _hook_width(model, sae.cfg.hook_name)
    if sae.cfg.d_in != width:
        raise MechValueError(f"{where}: the SAE reads {sae.cfg.d_in} values at {sae.cfg.hook_name}, "
                             f"where this model has {width}: an SAE for another model or layer")  # fmt: skip


def _hook_width(model, name: str) -> int:
    with torch.no_grad():
        store = {}
        model.run_with_hooks(torch.tensor([[0]], device=model.cfg.device),
                             fwd_hooks=[(name, lambda t, hook: store.setdefault("t", t))],
                             stop_at_layer=_stop_layer([name], model.cfg.n_layers))  # fmt: skip
    t = store["t"]
    return int(np.prod(t.shape[2:]))


def append_batch(f, hooks, acts, rows_b, rows_p, pid, pos, tid, storage, prompts_end: int) -> None:
    """Append one batch's rows, fsync, then commit them with one record (fsynced): a kill at
    any point leaves either the whole batch committed or none of it."""
    n0, _ = committed(f)
    n1 = n0 + len(pid)
    arrays = []
    b, p = torch.tensor(rows_b, dtype=torch.long), torch.tensor(rows_p, dtype=torch.long)
    for name in hooks:
        a = acts[name]
        x = a[b.to(a.device), p.to(a.device)].reshape(len(pid), -1)
        if storage == "bfloat16":
            arr = x.to(torch.bfloat16).view(torch.uint16).cpu().numpy()
        else:
            arr = x.float().cpu().numpy().astype(STORAGE[storage])
        arrays.append(arr)
    arrays += [np.asarray(v, dtype=np.int64) for v in (pid, pos, tid)]
    for name, arr in zip([*hooks, *INDEX], arrays):
        f[name].resize(n1, axis=0)
        f[name][n0:n1] = arr
    _fsync(f)  # the rows are on disk before the record that points at them
    c = f["commits"]
    k = c.shape[0]
    c.resize(k + 1, axis=0)
    c[k] = (n1, prompts_end, _crc(arrays))
    _fsync(f)


class ActivationStore:
    """Read an activation cache: by prompt, or as shuffled minibatches in bounded memory."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.f = _open_h5(self.path, "r")
        try:
            self.hooks = json.loads(self.f.attrs["hooks"])
            self.storage = str(self.f.attrs["dtype"])
            self.n, self.prompts_done = committed(self.f)
            self.prompt_id = self.f["prompt_id"][: self.n]
        except (KeyError, OSError, ValueError) as e:
            self.f.close()
            raise MechValueError(
                f"{path}: damaged activation cache ({e}); see `mechvalue cache --verify`"
            ) from None

    def _decode(self, arr: np.ndarray, device="cpu") -> Float[Tensor, "rows d"]:
        t = torch.from_numpy(np.ascontiguousarray(arr))
        if self.storage == "bfloat16":
            t = t.view(torch.bfloat16)
        return t.float().to(device)

    def rows(
        self, hook: str, start: int = 0, stop: int | None = None, device="cpu"
    ) -> Float[Tensor, "rows d"]:
        return self._decode(self.f[hook][start : self.n if stop is None else stop], device)

    def index(self):
        """A DataFrame with one row per cached activation (the rows of every hook's dataset, in
        order): `prompt_id`, `position` (in that prompt's tokens) and `token_id`."""
        import pandas as pd

        return pd.DataFrame({name: self.f[name][: self.n] for name in INDEX})

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


def _batch_problems(f, hooks: list[str], storage: str, n_prompts: int) -> tuple[list[str], int]:
    """Check each committed batch in order; returns (problems, index of the first bad batch)."""
    rec = _records(f)
    if "commits" in f and len(rec) < f["commits"].shape[0]:
        return [f"commit record {len(rec)} is half written or out of order"], len(rec)
    start, p0 = 0, 0
    for k, (r, p, crc) in enumerate(rec):
        for name in [*hooks, *INDEX]:
            if f[name].shape[0] < r:
                return [f"{name} has {f[name].shape[0]} rows < {r} committed by batch {k}"], k
        try:
            arrays = [f[name][start:r] for name in [*hooks, *INDEX]]
        except OSError as e:
            return [f"batch {k} (rows {start}-{r}) is unreadable ({str(e).split('(')[0].strip()})"], k
        if crc >= 0 and _crc(arrays) != crc:
            return [f"batch {k} (rows {start}-{r}) fails its CRC-32 check (corrupted on disk)"], k
        pid = arrays[len(hooks)]
        if len(pid) and (np.any(np.diff(pid) < 0) or pid[0] < p0 or pid[-1] >= p):
            return [f"batch {k}: prompt ids are not in order within prompts {p0}-{p}"], k
        if p > n_prompts:
            return [f"batch {k} commits {p} prompts > {n_prompts} in the settings"], k
        for h, a in zip(hooks, arrays):
            x = torch.from_numpy(a).view(torch.bfloat16) if storage == "bfloat16" else torch.from_numpy(a)
            if not torch.isfinite(x).all():
                return [f"{h} has non-finite values in batch {k} (rows {start}-{r})"], k
        start, p0 = r, p
    return [], len(rec)


def verify(path: str | Path) -> dict:
    """Integrity check of every invariant: settings hash, commit records in order, every dataset
    as long as the committed rows, prompt ids in order and within the prompts committed, CRC-32
    and finite values per batch, the complete flag. Returns a summary with `ok` and `problems`."""
    s = ActivationStore(path)
    try:
        return _verify(s)
    except (KeyError, OSError, ValueError, RuntimeError, TypeError) as e:  # unreadable metadata
        raise MechValueError(f"{path}: damaged activation cache ({type(e).__name__}: {e}); "
                             f"try `mechvalue cache --repair {path}`") from None  # fmt: skip
    finally:
        s.close()


def _verify(s: ActivationStore) -> dict:
    """The checks of `verify` on an open store."""
    f, problems = s.f, []
    settings = json.loads(f.attrs.get("settings", "{}"))
    if settings_hash(settings) != f.attrs.get("settings_hash"):
        problems.append("settings do not match their hash")
    n_prompts = int(settings.get("n_prompts", 2**62))
    for name in [*s.hooks, *INDEX]:
        if name not in f:
            problems.append(f"dataset {name} is missing")
        elif f[name].shape[0] != s.n:
            problems.append(f"{name} has {f[name].shape[0]} rows, {s.n} committed")
    if not problems:
        problems += _batch_problems(f, s.hooks, s.storage, n_prompts)[0]
    complete = bool(f.attrs.get("complete", False))
    if complete and s.prompts_done != n_prompts:
        problems.append(f"marked complete with {s.prompts_done} of {n_prompts} prompts committed")
    elif not complete:
        problems.append(f"incomplete: {s.prompts_done} of {n_prompts} prompts committed "
                        "(rerun the same command to resume)")  # fmt: skip
    return s.summary() | {"prompts_done": s.prompts_done, "ok": not problems, "problems": problems}


def repair(path: str | Path) -> dict:
    """Truncate a damaged cache to its last consistent batch (the same command then resumes).

    A batch is consistent when its commit record is whole and in order, its rows are all there,
    its CRC-32 matches and its prompt ids are in order. A file HDF5 cannot open is beyond repair.
    """
    path = Path(path)
    f = _open_h5(path, "r+")
    try:
        try:
            hooks, storage = json.loads(f.attrs["hooks"]), str(f.attrs["dtype"])
            n_prompts = int(json.loads(f.attrs["settings"])["n_prompts"])
            rows_before = min(f[n].shape[0] for n in [*hooks, *INDEX])
        except (KeyError, OSError, ValueError) as e:
            raise MechValueError(
                f"{path}: cannot be repaired, its header is damaged ({e}); delete it"
            ) from None
        problems, k = _batch_problems(f, hooks, storage, n_prompts)
        problems = [p for p in problems if "non-finite" not in p]  # values as computed: kept
        rec = _records(f)[:k]
        rows, prompts = (int(rec[-1, 0]), int(rec[-1, 1])) if len(rec) else (0, 0)
        if "commits" not in f:
            f.create_dataset(
                "commits", data=rec.reshape(-1, 3), maxshape=(None, 3), chunks=(256, 3), fillvalue=-1
            )
        _truncate(f, rows, prompts, len(rec))
        if prompts < n_prompts:
            f.attrs["complete"] = False
        _fsync(f)
    finally:
        f.close()
    return {"path": str(path), "rows": rows, "prompts_done": prompts, "batches": len(rec),
            "dropped_rows": max(0, rows_before - rows), "problems": problems}  # fmt: skip
