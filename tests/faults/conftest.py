"""Fault-suite fixtures: the loaded model handed to forked commands, tiny workloads (a 4-item
inventory, a 64-feature SAE, ten prompts), and a terminal summary of what the suite survived."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from tests.faults.harness import COUNTS, PRELOADED

HOOKS = "blocks.1.hook_resid_post,blocks.3.hook_mlp_out"


@pytest.fixture(scope="module")
def zygote(smollm2):
    """Commands forked from this process (harness.run_cli) get the already loaded model instead of
    loading it; one intra-op thread while this module's children fork (OpenMP is not fork-safe)."""
    threads = torch.get_num_threads()
    PRELOADED["model"] = smollm2
    torch.set_num_threads(1)
    yield smollm2
    PRELOADED.clear()
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def inputs(tmp_path_factory) -> dict[str, Path]:
    from mechvalue.interp.sae import SAE, SAEConfig
    from mechvalue.study.inventory import load_inventory

    d = tmp_path_factory.mktemp("inputs")
    inv = load_inventory()
    inv = inv[inv["value"].isin(["Self-Direction", "Power", "Benevolence", "Security"])]
    inv = inv.groupby("value", sort=False).head(1)
    inv.to_csv(d / "inventory.csv", index=False)
    inv.head(2).to_csv(d / "inventory2.csv", index=False)
    torch.manual_seed(0)
    sae = SAE(SAEConfig(576, 64, "relu", hook_name="blocks.3.hook_resid_post"))
    sae.save(d / "sae")
    (d / "prompts.txt").write_text(
        "\n".join(f"Prompt {i}: what matters to you{'?' * (i % 3)}" for i in range(10))
    )
    return {
        "inventory": d / "inventory.csv",
        "inventory2": d / "inventory2.csv",
        "sae": d / "sae",
        "prompts": d / "prompts.txt",
    }


def commands(inputs: dict[str, Path], out: Path) -> dict[str, list[str]]:
    """The short workload of each command under test, writing under `out`."""
    i = {k: str(v) for k, v in inputs.items()}
    return {
        "cache": [
            "cache",
            "--prompts",
            i["prompts"],
            "--template",
            "raw",
            "--hooks",
            HOOKS,
            "--batch-size",
            "2",
            "--out",
            str(out / "acts.h5"),
        ],
        "steer-grid": [
            "steer-grid",
            "--sae",
            i["sae"],
            "--features",
            "1,2",
            "--strengths",
            "30",
            "--no-hard",
            "--inventory",
            i["inventory2"],
            "--roles",
            "1",
            "--out",
            str(out),
        ],
        "run": [
            "run",
            "--quick",
            "--sae",
            i["sae"],
            "--inventory",
            i["inventory"],
            "--roles",
            "8",
            "--grid-roles",
            "1",
            "--features",
            "2",
            "--bootstrap",
            "4",
            "--out",
            str(out),
        ],
    }


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if any(COUNTS.values()):
        terminalreporter.write_sep("-", "fault suite")
        for kind, per in COUNTS.items():
            if per:
                terminalreporter.write_line(f"{kind}: {sum(per.values())} ({json.dumps(per)})")
        path = os.environ.get("MECHVALUE_FAULT_COUNTS")
        if path:
            Path(path).write_text(json.dumps(COUNTS, indent=1))
