"""Command lines generated from option dataclasses: types, `Literal` and registry choices, help from
the docstring under a field, positional and list fields, renamed flags; the commands built this way
parse back into the same dataclasses."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Literal

import pytest

from mechvalue.cli.main import build_parser
from mechvalue.cli.options import add_dataclass_args, given, parsed
from mechvalue.distributed.executor import ExecutorConfig
from mechvalue.measurement.options import ScoringOptions


@dataclass(kw_only=True)
class Toy:
    """A toy command."""

    runs: list[str] = field(metadata={"positional": True})
    """folders to read"""
    mode: Literal["a", "b"] = "a"
    """how to read them"""
    limit: int | None = field(default=None, metadata={"flag": "--toy-limit"})
    quiet: bool = False
    out: str


def _toy(argv: list[str]) -> Toy:
    p = argparse.ArgumentParser(exit_on_error=False)
    add_dataclass_args(p, Toy)
    return parsed(Toy, p.parse_args(argv))


def test_a_dataclass_becomes_its_command_line_and_parses_back():
    got = _toy(["x", "y", "--mode", "b", "--toy-limit", "3", "--quiet", "--out", "o"])
    assert got == Toy(runs=["x", "y"], mode="b", limit=3, quiet=True, out="o")
    assert _toy(["x", "--out", "o"]) == Toy(runs=["x"], out="o")
    p = argparse.ArgumentParser()
    add_dataclass_args(p, Toy)
    help_text = p.format_help()
    assert "how to read them" in help_text and "folders to read" in help_text and "--toy-limit" in help_text


@pytest.mark.parametrize(
    "argv",
    [["--out", "o"], ["x", "--mode", "c", "--out", "o"], ["x", "--toy-limit", "many", "--out", "o"], ["x"]],
)
def test_missing_or_bad_values_are_refused(argv):
    with pytest.raises((SystemExit, argparse.ArgumentError)):
        _toy(argv)


def test_the_commands_flags_come_from_their_options():
    parser = build_parser()
    a = parser.parse_args(["graph-compare", "g.json", "h.json", "--out", "c"])
    assert (a.a, a.b, a.null) == ("g.json", "h.json", 1000)
    a = parser.parse_args(["compare-runs", "r1", "r2", "r3", "--out", "c"])
    assert a.runs == ["r1", "r2", "r3"]
    a = parser.parse_args(["graph", "--table", "t.csv", "--method", "fci", "--out", "g"])
    assert (a.method, a.test, a.alpha) == ("fci", "fisherz", 0.05)
    with pytest.raises(SystemExit):
        parser.parse_args(["graph", "--table", "t.csv", "--method", "lingam", "--out", "g"])
    a = parser.parse_args(["measure", "--protocol", "calibrated", "--batch-size", "8", "--out", "m"])
    assert parsed(ScoringOptions, a) == ScoringOptions(protocol="calibrated", batch_size=8)
    a = parser.parse_args(
        ["measure", "--executor", "ray", "--workers", "2", "--ray-max-restarts", "5", "--out", "m"]
    )
    assert parsed(ExecutorConfig, a) == ExecutorConfig("ray", workers=2, max_restarts=5)
    assert given(ExecutorConfig, parser.parse_args(["measure", "--out", "m"])) == {
        "kind": "auto",
        "address": None,
        "workers": None,
        "cpus_per_worker": 1,
        "max_restarts": 3,
        "max_task_retries": 1,
    }
