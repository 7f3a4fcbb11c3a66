"""A run folder's bookkeeping: its recorded settings, one sub-folder per stage, done markers
(written last, with the stage's time), and readers for what earlier stages wrote."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

import pandas as pd

from mechvalue.errors import MechValueError
from mechvalue.io import write_json
from mechvalue.pipeline.config import RunConfig, versions


@contextmanager
def run_lock(out: str | Path) -> Iterator[None]:
    """Hold OUT/.lock (an flock, with the holder's pid written in it) for the length of a run.

    A second run on the same folder fails at once naming the holding pid; the kernel drops the
    flock of a process that dies, even by kill -9, so a stale lock is simply taken over."""
    from filelock import FileLock, Timeout

    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise MechValueError(f"{out}: cannot create the run folder ({e.strerror})") from None
    path = out / ".lock"

    def record(fd: int) -> None:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)

    lock = FileLock(path, timeout=0, on_acquired=record)
    try:
        lock.acquire()
    except Timeout:
        try:
            holder = path.read_text().strip() or "unknown"
        except OSError:
            holder = "unknown"
        raise MechValueError(
            f"{out}: in use by another mechvalue run (pid {holder}); wait for it to end or use another --out"
        ) from None
    try:
        yield
    finally:
        lock.release()


def same_settings(out: str | Path, cfg: RunConfig) -> bool:
    """Whether OUT/config.json records a run of exactly `cfg` (False: no config.json yet). Other
    settings are one error naming each that differs with both values, read before anything is
    written (`preflight.check_run` calls it first, `Workspace` again under the run's lock)."""
    conf = Path(out) / "config.json"
    if not conf.exists():
        return False
    from mechvalue.inputs import read_json

    recorded = read_json(conf, "run config")
    if not isinstance(recorded, dict) or not isinstance(recorded.get("settings"), dict):
        raise MechValueError(f"{conf}: not a mechvalue run config (no 'settings' object); use a new --out")
    # older runs: the study's protocol, the exhaustive steering comparison
    old = {"protocol": "study", "steer_design": "exhaustive"} | recorded["settings"]
    settings = asdict(cfg)
    diff = sorted(k for k in set(old) | set(settings) if old.get(k) != settings.get(k))
    if diff:
        said = "; ".join(f"{k}: {_short(old.get(k))} there, {_short(settings.get(k))} now" for k in diff)
        raise MechValueError(
            f"{out} holds a run with other settings ({', '.join(diff)}); {said}; "
            "use a new --out or the folder's settings"
        )
    return True


def _short(v) -> str:
    s = json.dumps(v)
    return s if len(s) <= 60 else s[:57] + "..."


class Workspace:
    """OUT/config.json (settings + versions; other settings on the same folder are refused) and
    OUT/<stage>/ with its done.json."""

    def __init__(self, out: str | Path, cfg: RunConfig):
        self.out, self.cfg = Path(out), cfg
        self.out.mkdir(parents=True, exist_ok=True)
        conf = self.out / "config.json"
        if not same_settings(self.out, cfg):
            write_json({"settings": asdict(cfg), "versions": versions()}, conf)

    def dir(self, stage: str) -> Path:
        d = self.out / stage
        d.mkdir(exist_ok=True)
        return d

    def done(self, stage: str) -> bool:
        return (self.out / stage / "done.json").exists()

    def finish(self, stage: str, t0: float, **info) -> None:
        write_json({"seconds": round(time.perf_counter() - t0, 2), **info}, self.out / stage / "done.json")

    def timings(self, stages: list[str]) -> dict[str, float]:
        """Seconds per finished stage, in run order."""
        return {s: self.read_json(s, "done.json")["seconds"] for s in stages if self.done(s)}

    def read_csv(self, stage: str, name: str) -> pd.DataFrame:
        return pd.read_csv(self.out / stage / name)

    def read_json(self, stage: str, name: str):
        return json.loads((self.out / stage / name).read_text())
