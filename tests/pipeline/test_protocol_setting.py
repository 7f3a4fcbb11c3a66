"""`run`'s protocol setting: recorded in config.json, refused when it changes on a folder, and a
folder made before the setting existed resumes as the study's protocol."""

from __future__ import annotations

import json
from dataclasses import asdict

import pytest

from mechvalue.errors import MechValueError
from mechvalue.pipeline.config import RunConfig
from mechvalue.pipeline.workspace import Workspace


def test_protocol_setting_on_a_run_folder(tmp_path):
    old = asdict(RunConfig())
    old.pop("protocol")
    (tmp_path / "config.json").write_text(json.dumps({"settings": old}))
    Workspace(tmp_path, RunConfig())  # an older run: the study's protocol
    with pytest.raises(MechValueError, match=r"other settings \(protocol\)"):
        Workspace(tmp_path, RunConfig(protocol="calibrated"))
    new = tmp_path / "new"
    Workspace(new, RunConfig(protocol="balanced"))
    assert json.loads((new / "config.json").read_text())["settings"]["protocol"] == "balanced"


def test_run_cli_takes_a_protocol():
    from mechvalue.cli.main import build_parser

    a = build_parser().parse_args(["run", "--protocol", "calibrated", "--out", "x"])
    assert a.protocol == "calibrated"
    from mechvalue.cli.options import given

    plain = given(RunConfig, build_parser().parse_args(["run", "--out", "x"]))
    assert "protocol" not in plain and RunConfig(**plain).protocol == "study"  # RunConfig's default
