"""Option groups shared by the command modules (the model every model-loading command takes, the
items x personas design, the scorer) and comma lists."""

from __future__ import annotations

from dataclasses import dataclass, field

from mechvalue.lm.literals import DEFAULT_MODEL, DType, PromptFormat
from mechvalue.pipeline.config import protocol_names


def csv_list(s: str | None) -> list[str] | None:
    """'a, b,,c' -> ['a', 'b', 'c']; None or '' -> None."""
    return [x.strip() for x in s.split(",") if x.strip()] if s else None


def scorer_names() -> list[str]:
    """The scorer registry's names: the choices of every `--scoring`."""
    from mechvalue.measure.scorers import SCORERS

    return list(SCORERS)


def scorer_help() -> str:
    from mechvalue.measure.scorers import SCORERS

    return "; ".join(f"{n}: {s.description}" for n, s in SCORERS.items())


def scoring_field():
    """A `scoring` field: log-prob by default, its choices and help from the scorer registry."""
    return field(default="logprob", metadata={"choices": scorer_names, "help": scorer_help})


def protocol_help() -> str:
    from mechvalue.measure.protocols import PROTOCOLS

    how = "; ".join(f"{n}: {p.description}" for n, p in PROTOCOLS.items())
    return f"how items are asked and scored (overrides --scoring). {how}"


def protocol_field(default: str | None = None):
    """A `protocol` field, its choices and help from the protocol registry (None: `scoring` asked plainly)."""
    return field(default=default, metadata={"choices": protocol_names, "help": protocol_help})


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
