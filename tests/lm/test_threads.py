"""The command line's CPU thread policy (`mechvalue.threads`): set before torch loads, never over
a variable the user set, and not by importing the library."""

import json
import os
import subprocess
import sys

from mechvalue.threads import POLICY

SHOW = "import json, os, sys; {imp}; print(json.dumps({{k: os.environ.get(k) for k in {keys!r}}}))"


def _env_after(imp: str, **env) -> dict:
    base = {k: v for k, v in os.environ.items() if k not in POLICY}
    code = SHOW.format(imp=imp, keys=list(POLICY))
    r = subprocess.run([sys.executable, "-c", code], env=base | env, capture_output=True, text=True, check=True)
    return json.loads(r.stdout)


def test_the_cli_sets_the_policy_and_keeps_the_users_settings():
    assert _env_after("import mechvalue.cli") == POLICY
    user = dict.fromkeys(POLICY, "7")
    assert _env_after("import mechvalue.cli", **user) == user
    assert _env_after("import mechvalue; import mechvalue.measurement.generate") == dict.fromkeys(POLICY)


def test_too_late_once_torch_is_loaded():
    assert _env_after("import torch; import mechvalue.cli") == dict.fromkeys(POLICY)


def test_the_run_records_the_threads():
    code = (
        "import json, mechvalue.cli; from mechvalue.distributed.timings import TimeLog;"
        "print(json.dumps(TimeLog({}).data['threads']))"
    )
    env = {k: v for k, v in os.environ.items() if k not in POLICY} | {"OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    got = json.loads(r.stdout)
    assert got["torch_threads"] == 1 and got["OMP_NUM_THREADS"] == "1 (set by the user)"
    for k, v in POLICY.items():
        assert got[k] == f"{v} (set by mechvalue)"
