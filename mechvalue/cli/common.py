"""Option groups shared by the command modules (the model every model-loading command takes, the
items x personas design, where tasks run) and comma lists."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from mechvalue.cli.options import add_dataclass_args, parsed
from mechvalue.distributed.executor import Executor, ExecutorConfig, make_executor
from mechvalue.lm.literals import DEFAULT_MODEL, DType, PromptFormat


def csv_list(s: str | None) -> list[str] | None:
    """'a, b,,c' -> ['a', 'b', 'c']; None or '' -> None."""
    return [x.strip() for x in s.split(",") if x.strip()] if s else None


@dataclass
class ModelOptions:
    """The options of every command that loads a model."""

    model: str = DEFAULT_MODEL
    """mechvalue name or local HF model folder"""
    device: str = "cpu"
    dtype: DType = "float32"
    """the model's weights and activations (SAE edits follow it)"""
    prompt_format: PromptFormat | None = None
    """the study's gemma/llama template or the tokenizer's chat template (default: by model)"""


@dataclass
class DesignOptions:
    """The items x personas design."""

    inventory: str | None = None
    """ValueBench-format CSV (default: shipped)"""
    questionnaire: str | None = None
    """comma-separated questionnaire names"""
    roles: int = 10
    seed: int = 0


def add_executor_args(p: argparse.ArgumentParser) -> None:
    """--executor and the --ray-* options, from `ExecutorConfig`."""
    add_dataclass_args(p, ExecutorConfig)


def executor_from_args(a: argparse.Namespace, progress: bool = True) -> Executor:
    return make_executor(parsed(ExecutorConfig, a), progress)
