"""Checking an activation cache against every invariant of its format (`verify`) and truncating a
damaged one to its last consistent batch (`repair`)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from mechvalue.errors import MechValueError
from mechvalue.interp.cache_file import INDEX, crc, fsync, open_h5, records, settings_hash, truncate
from mechvalue.interp.cache_store import ActivationStore


def _batch_problems(f, hooks: list[str], storage: str, n_prompts: int) -> tuple[list[str], int]:
    """Check each committed batch in order; returns (problems, index of the first bad batch)."""
    rec = records(f)
    if "commits" in f and len(rec) < f["commits"].shape[0]:
        return [f"commit record {len(rec)} is half written or out of order"], len(rec)
    start, p0 = 0, 0
    for k, (r, p, want) in enumerate(rec):
        for name in [*hooks, *INDEX]:
            if f[name].shape[0] < r:
                return [f"{name} has {f[name].shape[0]} rows < {r} committed by batch {k}"], k
        try:
            arrays = [f[name][start:r] for name in [*hooks, *INDEX]]
        except OSError as e:
            return [f"batch {k} (rows {start}-{r}) is unreadable ({str(e).split('(')[0].strip()})"], k
        if want >= 0 and crc(arrays) != want:
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
        raise MechValueError(
            f"{path}: damaged activation cache ({type(e).__name__}: {e}); "
            f"try `mechvalue cache --repair {path}`"
        ) from None
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
        problems.append(
            f"incomplete: {s.prompts_done} of {n_prompts} prompts committed "
            "(rerun the same command to resume)"
        )
    return s.summary() | {"prompts_done": s.prompts_done, "ok": not problems, "problems": problems}


def repair(path: str | Path) -> dict:
    """Truncate a damaged cache to its last consistent batch (the same command then resumes).

    A batch is consistent when its commit record is whole and in order, its rows are all there,
    its CRC-32 matches and its prompt ids are in order. A file HDF5 cannot open is beyond repair.
    """
    path = Path(path)
    f = open_h5(path, "r+")
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
        rec = records(f)[:k]
        rows, prompts = (int(rec[-1, 0]), int(rec[-1, 1])) if len(rec) else (0, 0)
        if "commits" not in f:
            f.create_dataset(
                "commits", data=rec.reshape(-1, 3), maxshape=(None, 3), chunks=(256, 3), fillvalue=-1
            )
        truncate(f, rows, len(rec))
        if prompts < n_prompts:
            f.attrs["complete"] = False
        fsync(f)
    finally:
        f.close()
    return {
        "path": str(path),
        "rows": rows,
        "prompts_done": prompts,
        "batches": len(rec),
        "dropped_rows": max(0, rows_before - rows),
        "problems": problems,
    }
