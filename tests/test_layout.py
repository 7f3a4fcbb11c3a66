"""The package layout: no import cycles among mechvalue's modules, and packages import only
downward in the data flow (study -> lm -> interp -> measure -> analysis -> pipeline -> cli)."""

import ast
from pathlib import Path

import networkx as nx

ROOT = Path(__file__).resolve().parents[1]
# each package may import from those before it (causal sits beside measure: it reads value tables)
ORDER = [
    "errors",
    "io",
    "inputs",
    "kernels",
    "study",
    "lm",
    "interp",
    "measure",
    "causal",
    "analysis",
    "distributed",
    "pipeline",
    "cli",
]


def _modules() -> dict[str, Path]:
    mods = {}
    for p in (ROOT / "mechvalue").rglob("*.py"):
        parts = list(p.relative_to(ROOT).with_suffix("").parts)
        mods[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    for p in (ROOT / "kernels").rglob("*.py"):
        parts = ["mechvalue", *p.relative_to(ROOT).with_suffix("").parts]
        mods[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    return mods


def _imports(path: Path, module: str, known: set[str]) -> set[str]:
    """mechvalue modules imported anywhere in `path` (function-level imports included)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = module.split(".")[: len(module.split(".")) - node.level + (path.name == "__init__.py")]
                base = ".".join(pkg + ([base] if base else []))
            for a in node.names:
                full = f"{base}.{a.name}"
                out.add(full if full in known else base)
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
    return {m for m in out if m in known}


def _graph() -> nx.DiGraph:
    mods = _modules()
    g = nx.DiGraph()
    for m, p in mods.items():
        g.add_node(m)
        for dep in _imports(p, m, set(mods)):
            if dep != m and not m.startswith(dep + ".") and dep != "mechvalue":
                g.add_edge(m, dep)
    return g


def test_no_import_cycles():
    cycles = list(nx.simple_cycles(_graph()))
    assert not cycles, cycles[:5]


def _package(m: str) -> str:
    return m.split(".")[1] if m.count(".") else "mechvalue"


def test_packages_import_downward():
    bad = []
    for a, b in _graph().edges:
        pa, pb = _package(a), _package(b)
        if pa in ORDER and pb in ORDER and ORDER.index(pb) > ORDER.index(pa):
            bad.append(f"{a} -> {b}")
    assert not bad, bad


def test_no_function_takes_more_than_seven_parameters():
    """Parameters that travel together are a dataclass; the Triton kernel's pointers and sizes are
    its launch ABI and the one exception."""
    long = []
    for folder in ("mechvalue", "kernels", "benchmarks", "examples", "tests"):
        for p in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(p.read_text())):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    a = node.args
                    names = [
                        x.arg for x in a.posonlyargs + a.args + a.kwonlyargs if x.arg not in ("self", "cls")
                    ]
                    n = len(names) + (a.vararg is not None) + (a.kwarg is not None)
                    if n > 7:
                        long.append((p.relative_to(ROOT).as_posix(), node.name, n))
    assert long == [("kernels/sae_edit.py", "_sae_edit_kernel", 17)], long
