"""The public API is `mechvalue`'s top level (`mechvalue.__all__`): the examples and every Python
block of the README use nothing else, every exported name resolves, and `mechvalue.measure` is
a plain function."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import pytest

import mechvalue

ROOT = Path(__file__).resolve().parents[1]
PUBLIC_MODULES = {"mechvalue"}  # the only mechvalue module a script may import from


def _sources() -> list[tuple[str, str]]:
    out = [(str(p.relative_to(ROOT)), p.read_text()) for p in sorted((ROOT / "examples").glob("*.py"))]
    readme = (ROOT / "README.md").read_text()
    for i, block in enumerate(re.findall(r"```python\n(.*?)```", readme, re.S)):
        out.append((f"README.md python block {i + 1}", block))
    return out


def private_uses(source: str) -> list[str]:
    """Imports of a mechvalue module other than the top level, attributes of `mechvalue` outside
    `__all__`, and imports of sibling helper modules (which could hide private imports)."""
    tree = ast.parse(source)
    bad, aliases = [], set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == "mechvalue" and a.name not in PUBLIC_MODULES:
                    bad.append(f"import {a.name}")
                elif a.name == "mechvalue":
                    aliases.add(a.asname or "mechvalue")
        elif isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level or mod.startswith("_"):
                bad.append(f"from {'.' * node.level}{mod} import ...")
            elif mod.split(".")[0] == "mechvalue" and mod not in PUBLIC_MODULES:
                bad.append(f"from {mod} import ...")
            elif mod == "mechvalue":
                bad += [
                    f"from mechvalue import {a.name}" for a in node.names if a.name not in mechvalue.__all__
                ]
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases:
            if node.attr not in mechvalue.__all__:
                bad.append(f"mechvalue.{node.attr}")
    return bad


def test_the_checker_catches_private_imports():
    src = (
        "import mechvalue\nimport mechvalue.lm.models\nfrom mechvalue.study.roles import Role\n"
        "from mechvalue import load_model, _EXPORTS\nfrom _common import x\nmechvalue.interp.cache\n"
        "mechvalue.load_model()\n"
    )
    assert private_uses(src) == [
        "import mechvalue.lm.models",
        "from mechvalue.study.roles import ...",
        "from mechvalue import _EXPORTS",
        "from _common import ...",
        "mechvalue.interp",
    ]


@pytest.mark.parametrize("name, source", _sources(), ids=lambda x: x if len(x) < 60 else "")
def test_examples_and_readme_import_nothing_private(name, source):
    assert "import mechvalue" in source or "from mechvalue" in source, f"{name} does not use mechvalue"
    assert private_uses(source) == [], name


def test_every_public_name_resolves_and_is_documented():
    for name in mechvalue.__all__:
        obj = getattr(mechvalue, name)
        if callable(obj) and not isinstance(obj, type(mechvalue)) and name != "__version__":
            assert (inspect.getdoc(obj) or "").strip(), f"mechvalue.{name} has no docstring"
    assert inspect.signature(mechvalue.measure).parameters["options"].default is None
    assert mechvalue.ScoringOptions().scoring == "logprob"
    import types

    assert isinstance(mechvalue.measure, types.FunctionType)  # a plain function, no package of its name
    assert mechvalue.measure.__module__ == "mechvalue.research"
