"""kill -9 (and torn HDF5 writes, and a full disk) at seeded random I/O events of `cache`,
`steer-grid` and `run`, each followed by a rerun: the outputs equal an uninterrupted run's, no row
is lost or duplicated, and no temp file is left behind. A few points run in CI, the full sweep
(24 points per command; MECHVALUE_FAULT_POINTS changes it) with -m slow."""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.faults.conftest import commands
from tests.faults.harness import count, digest_tree, leftovers, run_cli

SKIP = ("done.json", "report.html", "timings.json", ".lock")  # seconds taken, and the report showing them
CI_POINTS = {"cache": 3}  # steer-grid and run take minutes per point on this machine: -m slow
COMMANDS = ["cache", "steer-grid", "run"]
FULL_POINTS = int(os.environ.get("MECHVALUE_FAULT_POINTS", "24"))  # per command, under -m slow


@dataclass
class Reference:
    events: int
    digest: dict[str, str]
    out: Path


@pytest.fixture(scope="module")
def reference(zygote, inputs, tmp_path_factory):
    """The uninterrupted run of each command, made once per module on first use."""
    made: dict[str, Reference] = {}

    def get(name: str) -> Reference:
        if name not in made:
            out = tmp_path_factory.mktemp(f"ref-{name}")
            r = run_cli(commands(inputs, out)[name], logdir=out.parent)
            assert r.status == 0, r.stderr
            assert r.events > 5
            made[name] = Reference(r.events, digest_tree(out, SKIP), out)
        return made[name]

    return get


@dataclass(frozen=True)
class Crashes:
    """Where a command is crashed: `points` seeded random I/O events (`first`: its first events),
    each by one of `modes` ("kill", "torn", "enospc")."""

    points: int
    seed: int
    modes: tuple[str, ...]
    first: bool = False


def crash_and_resume(name: str, inputs, ref: Reference, tmp: Path, crashes: Crashes) -> int:
    """Crash `name` as `crashes` say, rerun, compare; returns the points survived."""
    points, seed, modes, first = crashes.points, crashes.seed, crashes.modes, crashes.first
    rng = random.Random(seed)
    n = min(points, ref.events)
    ks = list(range(1, n + 1)) if first else sorted(rng.sample(range(1, ref.events + 1), n))
    for k in ks:
        mode = rng.choice(modes)
        out = tmp / f"{name}-{mode}-{k}"
        cmd = commands(inputs, out)[name]
        r = run_cli(cmd, kill_at=k, mode=mode, logdir=tmp)
        where = f"{name}: {mode} at I/O event {k} of {ref.events} (seed {seed})"
        if mode == "enospc":
            lines = [x for x in r.stderr.splitlines() if "mechvalue: error:" in x]  # besides progress bars
            assert r.status == 2, f"{where}: exit {r.status}\n{r.stderr[-3000:]}"
            assert len(lines) == 1 and "disk full" in lines[0] and "Traceback" not in r.stderr, (
                where,
                r.stderr,
            )
            assert not leftovers(out), (where, leftovers(out))
        else:
            assert r.status == -9, (
                f"{where}: the command ended ({r.status}) before its kill point\n{r.stderr[-3000:]}"
            )
        again = run_cli(cmd, logdir=tmp)
        assert again.status == 0, f"{where}: the rerun failed\n{again.stderr[-3000:]}"
        assert digest_tree(out, SKIP) == ref.digest, f"{where}: outputs differ from an uninterrupted run"
        assert not leftovers(out), (where, leftovers(out))
        count("full-disk points" if mode == "enospc" else "kill points", name)
        if os.environ.get("MECHVALUE_FAULT_LOG"):  # progress of a long sweep, point by point
            with open(os.environ["MECHVALUE_FAULT_LOG"], "a") as log:
                log.write(f"survived {where}\n")
    return len(ks)


@pytest.mark.parametrize("name", list(CI_POINTS))
def test_kill_points_ci(name, reference, inputs, tmp_path):
    n = crash_and_resume(
        name, inputs, reference(name), tmp_path, Crashes(CI_POINTS[name], 17, ("kill", "torn"))
    )
    assert n == min(CI_POINTS[name], reference(name).events)


@pytest.mark.parametrize("name", ["cache"])
def test_full_disk_ci(name, reference, inputs, tmp_path):
    assert crash_and_resume(name, inputs, reference(name), tmp_path, Crashes(1, 5, ("enospc",))) == 1


def test_full_disk_while_the_cache_file_is_created_leaves_nothing(reference, inputs, tmp_path):
    """The disk fills at each of `cache`'s first writes (folder, temp file, its first HDF5 writes):
    `run` once left the new file's temp copy behind there."""
    ref = reference("cache")
    assert crash_and_resume("cache", inputs, ref, tmp_path, Crashes(8, 0, ("enospc",), first=True)) == 8


def test_grid_parts_of_other_settings_are_refused_not_mixed(zygote, inputs, tmp_path):
    """A folder whose parts another grid made (its settings hash differs) is refused before measuring."""
    out = tmp_path / "grid"
    (out / "parts").mkdir(parents=True)
    (out / "conditions.json").write_text('{"settings_hash": "0123456789abcdef"}')
    (out / "parts" / "0000.csv").write_text("steer_dim,player_name,item,score\n,,x,0.5\n")
    before = digest_tree(out, SKIP)
    r = run_cli(commands(inputs, out)["steer-grid"], logdir=tmp_path)
    lines = [x for x in r.stderr.splitlines() if "mechvalue: error:" in x]
    assert r.status == 2 and len(lines) == 1 and "other settings" in lines[0], r.stderr[-2000:]
    assert digest_tree(out, SKIP) == before  # nothing touched


@pytest.mark.slow
@pytest.mark.parametrize("name", COMMANDS)
def test_kill_points_full(name, reference, inputs, tmp_path):
    crashes = Crashes(FULL_POINTS, 2026, ("kill", "kill", "torn"))
    n = crash_and_resume(name, inputs, reference(name), tmp_path, crashes)
    assert n == min(FULL_POINTS, reference(name).events)


@pytest.mark.slow
@pytest.mark.parametrize("name", COMMANDS)
def test_full_disk_full(name, reference, inputs, tmp_path):
    assert crash_and_resume(name, inputs, reference(name), tmp_path, Crashes(8, 28, ("enospc",))) == 8
