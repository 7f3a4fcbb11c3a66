"""How items are asked and scored, declared once: `ScoringOptions` is what `mechvalue.measure`, the
`Measurer` and `mechvalue measure` take. Its scorer and protocol fields read their choices and help
from the registries when a parser asks (`mechvalue.cli.options`), so a new scorer or protocol is an
entry in its registry and nothing here."""

from __future__ import annotations

from dataclasses import dataclass, field

from mechvalue.study.prompts import Form


def scorer_names() -> list[str]:
    """The scorer registry's names: the choices of every `--scoring`."""
    from mechvalue.measurement.scorers import SCORERS

    return list(SCORERS)


def protocol_names() -> list[str]:
    """The protocol registry's names: the choices of every `--protocol`."""
    from mechvalue.measurement.protocols import PROTOCOLS

    return list(PROTOCOLS)


def _scorer_help() -> str:
    from mechvalue.measurement.scorers import SCORERS

    return "; ".join(f"{n}: {s.description}" for n, s in SCORERS.items())


def _protocol_help() -> str:
    from mechvalue.measurement.protocols import PROTOCOLS

    how = "; ".join(f"{n}: {p.description}" for n, p in PROTOCOLS.items())
    return f"how items are asked and scored (overrides --scoring). {how}"


def scoring_field():
    """A `scoring` field: log-prob by default, its choices and help from the scorer registry."""
    return field(default="logprob", metadata={"choices": scorer_names, "help": _scorer_help})


@dataclass(kw_only=True)
class ScoringOptions:
    """How each item is asked and its answer scored."""

    scoring: str = scoring_field()
    """a key of `mechvalue.measurement.scorers.SCORERS`"""
    protocol: str | None = field(default=None, metadata={"choices": protocol_names, "help": _protocol_help})
    """a key of `mechvalue.measurement.protocols.PROTOCOLS`, replacing `scoring` by a whole protocol
    ("study" is `scoring="logprob"`, row for row); None: `scoring` asked plainly"""
    form: Form = "study"
    """the instrument's wording (robustness checks)"""
    batch_size: int = 16
    """prompts per forward pass"""
    decode_batch_size: int = 64
    """prompts decoded together by a scorer that generates (`generate`); its finished rows leave
    the batch, so a larger batch mainly saves the fixed cost of each decode step"""
    max_new_tokens: int = 100
    """tokens decoded per answer (the generate scorer)"""
