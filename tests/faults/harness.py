"""Crash and full-disk injection for the fault suite: run a CLI command in a forked child of the
test process (which holds the loaded model, so a kill point costs no model load), count its I/O
events (mkdir, temp file, fsync, rename, HDF5 writes, resizes, attribute writes, flushes), and at the N-th one
SIGKILL the child (optionally after writing half of an HDF5 slice: a torn write) or raise
OSError(ENOSPC). A storage engine's crash test, on mechvalue's own commands."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import signal
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

# What the session survived, for the terminal summary (conftest) and the README figures.
COUNTS: dict[str, dict[str, int]] = {
    "kill points": {},
    "full-disk points": {},
    "corrupt files": {},
    "bad inputs": {},
}


# The model forked children get from `load_model` (set by the `zygote` fixture); the test process
# itself never has `load_model` replaced, so later tests load what they ask for.
PRELOADED: dict[str, object] = {}


def count(kind: str, what: str, n: int = 1) -> None:
    COUNTS[kind][what] = COUNTS[kind].get(what, 0) + n


@dataclass
class Result:
    status: int  # exit code, or -signal
    events: int
    stdout: str
    stderr: str


class _Fault(BaseException):
    pass


def _install(kill_at: int | None, mode: str, counter: list[int]) -> None:
    """Wrap the I/O operations that change what is on disk; act at event number `kill_at`."""

    def event(torn=None, writes=True):
        counter[0] += 1
        if mode == "enospc":  # the disk stays full from event `kill_at` on, for every write
            if kill_at is not None and counter[0] >= kill_at and writes:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return
        if counter[0] != kill_at:
            return
        if torn is not None:
            torn()
        sys.stdout.flush(), sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGKILL)

    def wrap(owner, name, torn_writer=None):
        real = getattr(owner, name)

        def f(*a, **k):
            # mkdir of an existing folder writes nothing
            writes = not (name == "mkdir" and os.path.isdir(a[0]))
            event((lambda: torn_writer(real, *a, **k)) if torn_writer and mode == "torn" else None, writes)
            return real(*a, **k)

        setattr(owner, name, f)

    def half_slice(real, ds, key, value):
        if isinstance(key, slice) and key.stop is not None and key.start is not None:
            n = (key.stop - key.start) // 2
            if n:
                real(ds, slice(key.start, key.start + n), np.asarray(value)[:n])
                ds.file.flush()

    import tempfile

    for name in ("fsync", "replace", "rename", "mkdir"):
        wrap(os, name)
    wrap(tempfile, "mkstemp")
    wrap(h5py.Dataset, "__setitem__", half_slice)
    wrap(h5py.Dataset, "resize")
    wrap(h5py.File, "flush")
    wrap(h5py.AttributeManager, "__setitem__")


def run_cli(
    argv: list[str], kill_at: int | None = None, mode: str = "kill", logdir: Path | None = None
) -> Result:
    """Run `mechvalue argv` in a forked child; `mode` kill | torn | enospc at event `kill_at`."""
    import tempfile

    logdir = Path(logdir or tempfile.mkdtemp(prefix="mv-fault-"))
    out, err, cnt = (logdir / f"child.{x}" for x in ("out", "err", "events"))
    for p in (out, err, cnt):
        p.unlink(missing_ok=True)
    sys.stdout.flush(), sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        code = 98
        try:
            o = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            e = os.open(err, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            os.dup2(o, 1), os.dup2(e, 2)
            sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
            sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
            counter = [0]
            _install(kill_at, mode, counter)
            if "model" in PRELOADED:
                import mechvalue.lm.models as models

                models.load_model = lambda *a, **k: PRELOADED["model"]
            from mechvalue.cli.main import main

            code = main(argv)
            cnt.write_text(str(counter[0]))
        except BaseException:
            traceback.print_exc()
            code = 99
        finally:
            sys.stdout.flush(), sys.stderr.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    events = int(cnt.read_text()) if cnt.exists() else -1
    return Result(code, events, out.read_text(), err.read_text())


def digest_tree(root: Path, skip: tuple[str, ...] = ()) -> dict[str, str]:
    """File -> content digest for every file under `root` (HDF5 caches by their rows, torch files by
    their tensors), leaving out names in `skip`."""
    out = {}
    for p in sorted(root.rglob("*")):
        if not p.is_file() or p.name in skip:
            continue
        rel = str(p.relative_to(root))
        if p.suffix == ".h5":
            out[rel] = h5_digest(p)
        elif p.suffix == ".pt":
            import torch

            out[rel] = hashlib.sha256(torch.load(p).numpy().tobytes()).hexdigest()
        else:
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def h5_digest(path: Path) -> str:
    """Digest of an activation cache's committed rows and index (not of HDF5's file layout)."""
    from mechvalue.interp.cache import ActivationStore, verify

    v = verify(path)
    assert v["ok"], (path, v["problems"])
    s = ActivationStore(path)
    try:
        h = hashlib.sha256(json.dumps([s.n, s.hooks]).encode())
        for name in [*s.hooks, "prompt_id", "position", "token_id"]:
            h.update(s.f[name][: s.n].tobytes())
    finally:
        s.close()
    return h.hexdigest()


def leftovers(root: Path) -> list[str]:
    """Temp files and half-swapped folders a crash left behind (a later success must clean them)."""
    bad = []
    for p in root.rglob("*"):
        n = p.name
        if n.endswith((".tmp", ".partial", ".old")):
            bad.append(str(p.relative_to(root)))
    return bad
