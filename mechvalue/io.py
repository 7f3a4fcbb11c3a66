"""Atomic, durable writes: a reader never sees a half-written file, even after a crash.

Each file is written to a temp name beside its target, fsynced, renamed over the target, and
the folder is fsynced, so after a kill or power loss the target is either the old file or the
whole new one. A failed write (a full disk: OSError 28) removes the temp file and raises a
`MechValueError` naming the target."""

from __future__ import annotations

import errno
import glob
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from mechvalue.errors import MechValueError


def fsync_path(path: str | os.PathLike) -> None:
    """fsync a file or folder (a folder's fsync makes the renames inside it durable)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    for d, _, files in os.walk(root):
        for name in files:
            fsync_path(Path(d) / name)
        fsync_path(d)


def _write_error(path: Path, e: OSError) -> MechValueError:
    what = "disk full" if e.errno == errno.ENOSPC else (e.strerror or type(e).__name__)
    return MechValueError(f"{path}: cannot write ({what}); nothing was left half-written")


def _sweep(path: Path) -> None:
    """Remove temp files of `path` left by processes that died mid-write (their pid is in the name)."""
    for t in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        pid = t.name[len(path.name) + 2 :].split(".", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            t.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path beside `path`; fsync it and rename it over `path` only if the block succeeds."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise _write_error(path, e) from None
    os.close(fd)
    try:
        yield Path(tmp)
        fsync_path(tmp)
        os.replace(tmp, path)
        fsync_path(path.parent)
        _sweep(path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError) and not isinstance(e, FileNotFoundError):
            raise _write_error(path, e) from None
        raise


@contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a fresh folder beside `path`; swap it in for `path` only if the block succeeds.

    The new folder's files are fsynced before the swap; the old folder is renamed away first,
    so a crash mid-swap leaves `path` absent (recomputed) rather than half old, half new."""
    path = Path(path)
    tmp = path.with_name(path.name + ".partial")
    old = path.with_name(path.name + ".old")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir(parents=True)
    except OSError as e:
        raise _write_error(path, e) from None
    try:
        yield tmp
        _fsync_tree(tmp)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(e, OSError) and not isinstance(e, FileNotFoundError):
            raise _write_error(path, e) from None
        raise
    shutil.rmtree(old, ignore_errors=True)
    if path.exists():
        path.rename(old)
    tmp.rename(path)
    fsync_path(path.parent)
    shutil.rmtree(old, ignore_errors=True)


def save_torch(obj: Any, path: str | os.PathLike) -> None:
    """torch.save, atomically."""
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def write_csv(df: pd.DataFrame, path: str | os.PathLike, **kw: Any) -> None:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=kw.pop("index", False), **kw)


def write_text(text: str, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(obj: Any, path: str | os.PathLike) -> None:
    write_text(json.dumps(obj, indent=2, default=_jsonable), path)


def _jsonable(x: Any) -> Any:
    if hasattr(x, "item"):
        return x.item()
    if hasattr(x, "tolist"):
        return x.tolist()
    if isinstance(x, (set, frozenset)):
        return sorted(x)
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")
