"""Argument helpers shared by the command modules: comma lists and the options every
model-loading command takes."""

from __future__ import annotations

import argparse

DEFAULT_MODEL = "smollm2-135m-instruct"  # mechvalue.lm.models.DEFAULT_MODEL, without importing torch
DTYPES = ("float32", "bfloat16", "float16")  # mechvalue.lm.models.DTYPES
PROMPT_FORMATS = ("chat", "gemma", "llama")  # mechvalue.lm.models.PROMPT_FORMATS


def csv_list(s: str | None) -> list[str] | None:
    """'a, b,,c' -> ['a', 'b', 'c']; None or '' -> None."""
    return [x.strip() for x in s.split(",") if x.strip()] if s else None


def add_model_args(
    p: argparse.ArgumentParser, model: str | None = DEFAULT_MODEL, device: str | None = "cpu"
) -> None:
    """--model, --device, --dtype and --prompt-format, as every command that loads a model takes them."""
    p.add_argument("--model", default=model, help="mechvalue name or local HF model folder")
    p.add_argument("--device", default=device)
    p.add_argument("--dtype", choices=DTYPES, default=None if model is None else "float32",
                   help="the model's weights and activations (SAE edits follow it)")  # fmt: skip
    p.add_argument("--prompt-format", choices=PROMPT_FORMATS, default=None,
                   help="the study's gemma/llama template or the tokenizer's chat template (default: by model)")  # fmt: skip


def add_design_args(p: argparse.ArgumentParser, roles: int | None = 10, seed: int | None = 0) -> None:
    """--inventory, --questionnaire, --roles and --seed: the items x personas design."""
    p.add_argument("--inventory", default=None, help="ValueBench-format CSV (default: shipped)")
    p.add_argument("--questionnaire", default=None, help="comma-separated questionnaire names")
    p.add_argument("--roles", type=int, default=roles)
    p.add_argument("--seed", type=int, default=seed)


def add_scoring_arg(p: argparse.ArgumentParser) -> None:
    """--scoring, its choices the scorer registry's names."""
    from mechvalue.measure.scorers import SCORERS

    how = "; ".join(f"{n}: {s.description}" for n, s in SCORERS.items())
    p.add_argument("--scoring", choices=list(SCORERS), default="logprob", help=how)


def add_protocol_arg(p: argparse.ArgumentParser, default: str | None = None) -> None:
    """--protocol, its choices the protocol registry's names (None: --scoring asked plainly)."""
    from mechvalue.measure.protocols import PROTOCOLS

    how = "; ".join(f"{n}: {s.description}" for n, s in PROTOCOLS.items())
    p.add_argument("--protocol", choices=list(PROTOCOLS), default=default,
                   help=f"how items are asked and scored (overrides --scoring). {how}")  # fmt: skip


def add_persona_arg(p: argparse.ArgumentParser) -> None:
    """--persona, the persona strength (mechvalue.study.personas.PERSONA_KINDS)."""
    from mechvalue.study.personas import PERSONA_KINDS

    p.add_argument("--persona", choices=PERSONA_KINDS, default="one-line",
                   help="who answers: the study's one-line persona, the same with a value-neutral "
                   "biography, or the known-group personas (12 at most)")  # fmt: skip
