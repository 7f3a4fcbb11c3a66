"""What the command modules share: the option groups of `mechvalue.pipeline.config` (the model,
the items x personas design), comma lists, and where tasks run (`--executor`, `--workers`, `--ray-*`)."""

from __future__ import annotations

import argparse

from mechvalue.cli.options import add_dataclass_args, parsed
from mechvalue.distributed.executor import Executor, ExecutorConfig, make_executor
from mechvalue.pipeline.config import DesignOptions, ModelOptions, csv_list  # noqa: F401 - shared by the commands


def add_executor_args(p: argparse.ArgumentParser) -> None:
    """--executor, --workers and the --ray-* options, from `ExecutorConfig`."""
    add_dataclass_args(p, ExecutorConfig)


def executor_from_args(a: argparse.Namespace, progress: bool = True) -> Executor:
    return make_executor(parsed(ExecutorConfig, a), progress, getattr(a, "device", None) or "cpu")
