"""The activation cache's file format, shared by its writer, its reader and its checks: the stored
dtypes, the per-row index datasets, opening a file with a one-line error, fsync, the commit records
(rows end, prompts end, CRC-32 of the batch) and truncating to one of them."""

from __future__ import annotations

import hashlib
import json
import os
import zlib

import h5py
import numpy as np

from mechvalue.errors import MechValueError

STORAGE = {"float32": np.float32, "float16": np.float16, "bfloat16": np.uint16}
INDEX = ("prompt_id", "position", "token_id")  # per-row bookkeeping datasets beside the hooks


def settings_hash(settings: dict) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def open_h5(path, mode: str = "r"):
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


def fsync(f) -> None:
    """Flush h5py's buffers to the OS, then the OS's to the disk."""
    f.flush()
    os.fsync(f.id.get_vfd_handle())


def records(f) -> np.ndarray:
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


def last_commit(f) -> tuple[int, int, int]:
    """(rows, prompts, number of records) of the last valid commit record."""
    rec = records(f)
    return (int(rec[-1, 0]), int(rec[-1, 1]), len(rec)) if len(rec) else (0, 0, 0)


def committed(f) -> tuple[int, int]:
    """(rows, prompts) committed in an open cache file."""
    rows, prompts, _ = last_commit(f)
    return rows, prompts


def truncate(f, rows: int, n_records: int) -> None:
    """Cut every dataset to `rows` rows and the commit records to `n_records`, then fsync."""
    for name in [*json.loads(f.attrs["hooks"]), *INDEX]:
        if f[name].shape[0] != rows:
            f[name].resize(rows, axis=0)
    if "commits" in f and f["commits"].shape[0] != n_records:
        f["commits"].resize(n_records, axis=0)
    fsync(f)


def crc(arrays: list[np.ndarray]) -> int:
    c = 0
    for a in arrays:
        c = zlib.crc32(np.ascontiguousarray(a).view(np.uint8), c)
    return c
