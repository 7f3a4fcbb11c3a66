"""Command-line options generated from config dataclasses, so each option is declared once: a field's
type gives the argument's type (a `Literal` its choices), its default the default, the string literal
right below it (the field's docstring) the help; `field(metadata={"choices": fn, "help": fn})` reads
choices and help from a registry when the parser is built, "metavar" and "type" pass through.
`metadata={"positional": True}` makes a field a positional argument (a `list[...]` field takes one or
more), `metadata={"flag": "--name"}` gives a field a flag of another name (e.g. a prefix)."""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import textwrap
import types
import typing
from functools import cache
from typing import Any, Literal, get_args, get_origin


@cache
def field_docs(cls: type) -> dict[str, str]:
    """The docstrings below the fields of dataclass `cls` and of its dataclass bases, by field name."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        body = ast.parse(textwrap.dedent(inspect.getsource(klass))).body[0].body
        for field, doc in zip(body, body[1:]):
            if (
                isinstance(field, ast.AnnAssign)
                and isinstance(field.target, ast.Name)
                and isinstance(doc, ast.Expr)
                and isinstance(doc.value, ast.Constant)
                and isinstance(doc.value.value, str)
            ):
                docs[field.target.id] = " ".join(doc.value.value.split())
    return docs


def _plain(tp: Any) -> Any:
    """`X | None` -> X."""
    if get_origin(tp) in (typing.Union, types.UnionType):
        rest = [a for a in get_args(tp) if a is not type(None)]
        return rest[0] if len(rest) == 1 else str
    return tp


def flag(f: dataclasses.Field) -> str:
    """The option string of field `f`: `--field-name` unless its metadata names another."""
    return f.metadata.get("flag", "--" + f.name.replace("_", "-"))


def dest(f: dataclasses.Field) -> str:
    """Where the parsed value of field `f` lands in the namespace."""
    return f.name if f.metadata.get("positional") else flag(f)[2:].replace("-", "_")


def _argument(f: dataclasses.Field, tp: Any, doc: str) -> dict:
    tp = _plain(tp)
    kw: dict[str, Any] = {"help": doc or None}
    if get_origin(tp) is list and "type" not in f.metadata:  # a "type" parses the whole list itself
        kw["nargs"] = "+"
        tp = get_args(tp)[0]
    if f.default is not dataclasses.MISSING:
        kw["default"] = f.default
    elif f.default_factory is not dataclasses.MISSING:
        kw["default"] = f.default_factory()
    elif not f.metadata.get("positional"):
        kw["required"] = True
    if tp is bool:
        return kw | {"action": "store_true"}
    if get_origin(tp) is Literal:
        kw["choices"] = list(get_args(tp))
        tp = type(kw["choices"][0])
    if "choices" in f.metadata:
        kw["choices"] = list(f.metadata["choices"]())
    if "help" in f.metadata:
        kw["help"] = f.metadata["help"]()
    return kw | {"type": tp} | {k: v for k, v in f.metadata.items() if k in ("metavar", "type")}


def add_dataclass_args(
    parser: argparse.ArgumentParser, cls: type, skip: tuple[str, ...] = (), unset: bool = False
) -> None:
    """An argument for every init field of dataclass `cls` but `skip`; `unset`: a flag not given
    is left out of the namespace (the dataclass's own default then applies, as help says)."""
    hints, docs = typing.get_type_hints(cls), field_docs(cls)
    for f in dataclasses.fields(cls):
        if f.init and f.name not in skip:
            kw = _argument(f, hints[f.name], docs.get(f.name, ""))
            if unset and "default" in kw:
                shown = kw["default"]
                kw["default"] = argparse.SUPPRESS
                if shown is not None and shown is not False:
                    kw["help"] = f"{kw['help'] or ''} (default: {shown})".lstrip()
            if f.metadata.get("positional"):
                parser.add_argument(f.name, **kw)
            else:
                parser.add_argument(flag(f), dest=dest(f), **kw)


def given(cls: type, args: argparse.Namespace) -> dict:
    """The fields of `cls` that `args` holds, by name."""
    fields = dataclasses.fields(cls)
    return {f.name: getattr(args, dest(f)) for f in fields if f.init and hasattr(args, dest(f))}


def parsed(cls: type, args: argparse.Namespace):
    """`cls` built from the fields `args` holds (the others keep their defaults)."""
    return cls(**given(cls, args))
