"""Writing an activation cache: chosen hook points at chosen positions, streamed to HDF5, resumable.

Only the requested hooks are kept (`names_filter`), the forward pass stops after the deepest
one, and each batch is appended, fsynced, then committed by one record in the `commits` dataset
(rows end, prompts end, CRC-32 of the batch), fsynced again: a run killed at any moment resumes
after its last committed batch with no row lost or duplicated.
"""

from __future__ import annotations

import errno
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import h5py
import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from mechvalue import __version__
from mechvalue.errors import MechValueError
from mechvalue.interp.cache_file import (
    INDEX,
    STORAGE,
    committed,
    crc,
    fsync,
    last_commit,
    open_h5,
    settings_hash,
    truncate,
)
from mechvalue.io import atomic_path
from mechvalue.lm.batching import chunks, left_pad
from mechvalue.lm.bridge import as_bridge
from mechvalue.lm.hooks import check_hook_names, stop_layer
from mechvalue.lm.literals import DType
from mechvalue.lm.positions import CacheWhere, check_where

FirstPosition = Literal["keep", "drop"]


@dataclass
class CachePrompt:
    """One prompt to cache: its token ids, and where to read when `positions` asks for a span or a mask
    (e.g. `CachePrompt(p.tokens, p.span)` from a `RenderedPrompt`)."""

    tokens: list[int]
    """the token ids, start token included"""
    span: tuple[int, int] | None = None
    """token positions [start, end) to cache, for `positions="span"`"""
    mask: list[bool] | None = None
    """one flag per token, for `positions="mask"`"""


@dataclass
class CacheSettings:
    """How a cache is written (every field but `batch_size` and `compression` goes into the file's
    settings hash: a rerun with others is refused)."""

    positions: CacheWhere = "all"
    """which positions of each prompt are kept (`mechvalue.lm.positions`)"""
    batch_size: int = 16
    storage: DType = "float32"
    """how activations are stored in the HDF5 file"""
    compression: str | None = None
    """an h5py compression filter, e.g. gzip"""
    model_name: str = ""
    """recorded in the file (default: the name the model was loaded by)"""
    first_position: FirstPosition = "keep"
    """"drop" leaves position 0, the start token (an attention sink), out of every prompt"""


@dataclass
class BatchRows:
    """The rows one batch adds: for each kept activation its place in the batch's padded tensors
    (`batch`, `column`) and its index entries (prompt id, position in the prompt, token id)."""

    prompts_end: int
    batch: list[int] = field(default_factory=list)
    column: list[int] = field(default_factory=list)
    prompt_id: list[int] = field(default_factory=list)
    position: list[int] = field(default_factory=list)
    token_id: list[int] = field(default_factory=list)

    def add(self, b: int, p: CachePrompt, prompt_id: int, width: int, kept: list[int]) -> None:
        """Prompt `p`, row `b` of a batch left-padded to `width`: its positions `kept`."""
        shift = width - len(p.tokens)
        self.batch += [b] * len(kept)
        self.column += [shift + i for i in kept]
        self.prompt_id += [prompt_id] * len(kept)
        self.position += kept
        self.token_id += [p.tokens[i] for i in kept]


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


def cache_activations(
    model,
    prompts: list[CachePrompt],
    hooks: list[str],
    out: str | Path,
    positions: str = "all",
    progress: bool = True,
    **settings,
) -> Path:
    """Run `prompts` through `model` and append the selected activations to `out` (HDF5).

    `settings` are the other fields of `CacheSettings` (batch_size, storage, compression,
    model_name, first_position). The file's layout is in docs/guides/activation-cache.md."""
    s = CacheSettings(positions, **settings)
    check_hook_names(as_bridge(model), hooks)
    if s.storage not in STORAGE:
        raise MechValueError(f"storage dtype {s.storage!r}: use one of {sorted(STORAGE)}")
    check_where(s.first_position, FirstPosition, "first_position")
    out = Path(out)  # its folder is made with the file (`_open`)
    tok_hash = hashlib.sha256(json.dumps([p.tokens for p in prompts]).encode()).hexdigest()[:16]
    recorded = {
        "model": s.model_name or model_label(model),
        "hooks": hooks,
        "positions": s.positions,
        "storage": s.storage,
        "prompts": tok_hash,
        "n_prompts": len(prompts),
    }
    if s.first_position != "keep":  # only then: files written before the option keep their settings hash
        recorded["first_position"] = s.first_position
    try:
        f = _open(out, recorded, model, s)
        _write(f, model, prompts, hooks, s, progress)
    except OSError as e:  # a full disk, a vanished mount: the committed batches stay valid
        why = "disk full" if e.errno == errno.ENOSPC else (e.strerror or str(e).split("(")[0].strip())
        raise MechValueError(
            f"{out}: cannot write ({why}); the batches committed so far are kept, "
            "rerun the same command to resume"
        ) from None
    return out


def _write(f, model, prompts: list[CachePrompt], hooks: list[str], s: CacheSettings, progress: bool) -> None:
    """Every batch after the last committed one, then the complete flag; closes `f`."""
    stop = stop_layer(hooks, model.cfg.n_layers)
    pad = model.tokenizer.pad_token_id or 0
    bar = None
    try:
        done = committed(f)[1]
        bar = tqdm(total=len(prompts), initial=done, desc="cache", disable=not progress)
        for sl in chunks(len(prompts) - done, s.batch_size):
            batch = prompts[done + sl.start : done + sl.stop]
            tokens, attn = left_pad([p.tokens for p in batch], pad, model.cfg.device)
            acts: dict[str, Tensor] = {}

            def keeper(name: str):  # keyed by the name asked for (a bridge's hook.name may be an alias)
                def keep(t, hook):
                    acts[name] = t.detach()

                return keep

            with torch.no_grad():
                hook_fns = [(n, keeper(n)) for n in hooks]
                model.run_with_hooks(tokens, attention_mask=attn, stop_at_layer=stop, fwd_hooks=hook_fns)
            rows = BatchRows(done + sl.stop)
            for b, p in enumerate(batch):
                kept = select_positions(p, s.positions, s.first_position)
                rows.add(b, p, done + sl.start + b, tokens.shape[1], kept)
            append_batch(f, acts, rows, s.storage)
            bar.update(len(batch))
        f.attrs["complete"] = True
        fsync(f)
    finally:
        if bar is not None:
            bar.close()  # before any error message, which then starts its own line
        f.close()


def model_label(model) -> str:
    """The name a model was loaded by (`LoadedModel.name`), else the bridge's model name or its
    tokenizer's folder: what a cache file records as `model`."""
    for name in (
        getattr(model, "name", None),
        getattr(getattr(model, "cfg", None), "model_name", None),
        getattr(getattr(model, "tokenizer", None), "name_or_path", None),
    ):
        if isinstance(name, str) and name:
            return name
    raise MechValueError("cannot tell the model's name for the cache file: pass model_name=")


def _open(out: Path, recorded: dict, model, s: CacheSettings):
    """The cache file to append to: an existing one written with the same settings (a half-written
    batch dropped), else a new one with empty datasets."""
    h = settings_hash(recorded)
    if out.exists():
        f = open_h5(out, "r+")
        if f.attrs.get("settings_hash") != h:
            f.close()
            raise MechValueError(f"{out}: was written with other settings; refusing to mix (use a new --out)")
        try:
            rows, _, n_records = last_commit(f)
            truncate(f, rows, n_records)  # drop a batch half-written when the run was killed
        except (KeyError, OSError, ValueError) as e:
            f.close()
            raise MechValueError(
                f"{out}: damaged activation cache ({e}); try `mechvalue cache --repair {out}`"
            ) from None
        return f
    hooks = recorded["hooks"]
    with atomic_path(out) as tmp, h5py.File(tmp, "w") as f:  # a failed start leaves no temp file
        for name in hooks:
            width = hook_width(model, name)
            chunk = (max(1, min(1024, 2**20 // (4 * width))), width)
            f.create_dataset(
                name,
                (0, width),
                maxshape=(None, width),
                dtype=STORAGE[s.storage],
                chunks=chunk,
                compression=s.compression,
            )
        for name in INDEX:
            f.create_dataset(name, (0,), maxshape=(None,), dtype=np.int64, chunks=(4096,))
        f.create_dataset("commits", (0, 3), maxshape=(None, 3), dtype=np.int64, chunks=(256, 3), fillvalue=-1)
        f.attrs.update(
            {
                "model": recorded["model"],
                "hooks": json.dumps(hooks),
                "dtype": s.storage,
                "tokenizer": getattr(model.tokenizer, "name_or_path", ""),
                "mechvalue_version": __version__,
                "settings": json.dumps(recorded),
                "settings_hash": h,
                "complete": False,
            }
        )
    return h5py.File(out, "r+")


def check_sae_fits(model, sae, where: str) -> None:
    """An SAE read from `where` must hook a point the model has, with the width it has there."""
    try:
        check_hook_names(as_bridge(model), [sae.cfg.hook_name])
    except MechValueError as e:
        raise MechValueError(f"{where}: the SAE's {e}") from None
    width = hook_width(model, sae.cfg.hook_name)
    if sae.cfg.d_in != width:
        raise MechValueError(
            f"{where}: the SAE reads {sae.cfg.d_in} values at {sae.cfg.hook_name}, "
            f"where this model has {width}: an SAE for another model or layer"
        )


def hook_width(model, name: str) -> int:
    """How many values one position has at hook `name` (one forward of one token)."""
    with torch.no_grad():
        store = {}
        model.run_with_hooks(
            torch.tensor([[0]], device=model.cfg.device),
            fwd_hooks=[(name, lambda t, hook: store.setdefault("t", t))],
            stop_at_layer=stop_layer([name], model.cfg.n_layers),
        )
    t = store["t"]
    return int(np.prod(t.shape[2:]))


def append_batch(f, acts: dict[str, Tensor], rows: BatchRows, storage: str) -> None:
    """Append one batch's rows of every hook in `acts`, fsync, then commit them with one record
    (fsynced): a kill at any point leaves either the whole batch committed or none of it."""
    hooks = json.loads(f.attrs["hooks"])
    n0, _ = committed(f)
    n1 = n0 + len(rows.prompt_id)
    arrays = []
    b, p = torch.tensor(rows.batch, dtype=torch.long), torch.tensor(rows.column, dtype=torch.long)
    for name in hooks:
        a = acts[name]
        x = a[b.to(a.device), p.to(a.device)].reshape(len(rows.prompt_id), -1)
        if storage == "bfloat16":
            arr = x.to(torch.bfloat16).view(torch.uint16).cpu().numpy()
        else:
            arr = x.float().cpu().numpy().astype(STORAGE[storage])
        arrays.append(arr)
    arrays += [np.asarray(v, dtype=np.int64) for v in (rows.prompt_id, rows.position, rows.token_id)]
    for name, arr in zip([*hooks, *INDEX], arrays):
        f[name].resize(n1, axis=0)
        f[name][n0:n1] = arr
    fsync(f)  # the rows are on disk before the record that points at them
    c = f["commits"]
    k = c.shape[0]
    c.resize(k + 1, axis=0)
    c[k] = (n1, rows.prompts_end, crc(arrays))
    fsync(f)
