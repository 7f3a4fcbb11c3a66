"""The documentation site builds with `mkdocs build --strict` (no warning: every link, anchor,
included example and API object resolves), every page in its nav is built, the API reference
documents every name of `mechvalue.__all__`, and a few pages read right in headless Chromium at
1280 px: no sideways scrolling, the headings, commands and API names a reader looks for."""

from __future__ import annotations

import html
import importlib.util
import inspect
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import mechvalue
from tests.browser import WIDTH, render

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_MKDOCS_2_WARNING": "1"}
    r = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert "WARNING" not in r.stderr, r.stderr[-3000:]
    return out


def _nav_pages(nav) -> list[str]:
    pages = []
    for entry in nav:
        for v in entry.values() if isinstance(entry, dict) else [entry]:
            pages += _nav_pages(v) if isinstance(v, list) else [v]
    return pages


def test_every_docs_page_is_in_the_nav_and_built(site):
    nav = _nav_pages(yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"])
    on_disk = sorted(str(p.relative_to(ROOT / "docs")) for p in (ROOT / "docs").rglob("*.md"))
    assert sorted(nav) == on_disk
    for page in nav:
        built = site / page.replace(".md", ".html")
        assert built.exists(), page
        text = built.read_text()
        assert ":::" not in re.sub(r"<[^>]+>", "", text), f"{page}: an API directive was not rendered"
        assert "--8<--" not in text, f"{page}: an included file was not expanded"


def test_the_api_reference_documents_every_public_name(site):
    pages = "".join(p.read_text() for p in (site / "reference").glob("*.html"))
    headings = set(re.findall(r'class="doc doc-heading">\s*(mechvalue\.\w+)\s*<', pages))
    missing = [n for n in mechvalue.__all__ if n != "__version__" and f"mechvalue.{n}" not in headings]
    assert missing == [], missing
    measurement = (site / "reference" / "measurement.html").read_text()
    # mechvalue.measure is a function: a signature and its docstring, not a module's member list
    shown_as = re.search(r'class="doc doc-object doc-(\w+)">\s*<h3 [^>]*>\s*mechvalue\.measure\s*<', measurement)
    assert shown_as and shown_as.group(1) == "function", "mechvalue.measure is not shown as a function"
    first_words = " ".join(inspect.getdoc(mechvalue.measure).split()[:5])
    assert first_words in html.unescape(re.sub(r"<[^>]+>", "", measurement)), "measure's docstring not rendered"


def test_tutorial_pages_include_their_example_scripts_verbatim(site):
    for page, script in [
        ("tutorials/measure.html", "measure_personas.py"),
        ("tutorials/activation-cache.html", "activation_cache.py"),
        ("tutorials/research-api.html", "research_api.py"),
        ("tutorials/reproduce.html", "reproduce_paper.py"),
        ("tutorials/hooks.html", "research_hooks.py"),
    ]:
        text = html.unescape(re.sub(r"<[^>]+>", "", (site / page).read_text()))
        for line in (ROOT / "examples" / script).read_text().splitlines():
            if "--8<--" in line:  # the section markers the guides include from; the page drops them
                continue
            assert line.strip() in text, f"{page}: {line!r} missing"


PAGES = {
    "index.html": ["mechvalue", "Getting started", "./setup.sh && .venv/bin/mechvalue run --out runs/smollm2"],
    "getting-started.html": [".venv/bin/python -m pytest -q tests", ".venv/bin/mechvalue doctor", "Python"],
    "guides/gpu.html": ["MECHVALUE_TORCH=cuda ./setup.sh", "--prompt-format gemma", "bfloat16", "gemma-2-9b-it"],
    "guides/activation-cache.html": ["prompt_id", "position", "token_id", "commits", "first_position"],
    "reference/measurement.html": ["mechvalue.measure", "mechvalue.Measurement", "mechvalue.ScoringOptions"],
    "tutorials/measure.html": ["mechvalue.measure(model, items, [None, *personas], progress=False)"],
}


@pytest.mark.parametrize("page", list(PAGES))
def test_pages_read_at_1280_px(site, page):
    size, visible = render(site / page)
    assert size["scrollWidth"] <= size["clientWidth"] <= WIDTH, size
    for text in PAGES[page]:
        assert text in visible, f"{page}: {text!r} not shown"
    assert "Traceback" not in visible


def _shell_commands(text: str) -> list[str]:
    """The commands of a markdown text's bash blocks, continuation lines joined, `&&` chains split."""
    out = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            out += [c.strip() for c in line.split("&&") if c.strip()]
    return out


def _check_command(cmd: str) -> str | None:
    """Why `cmd`, run from the repository root after ./setup.sh, would not work as typed (None: it would)."""
    from mechvalue.cli.main import build_parser

    words = shlex.split(cmd, comments=True)
    while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):  # VAR=value prefixes
        words = words[1:]
    if not words:
        return None
    prog, args = words[0], words[1:]
    if prog == "bash":
        prog, args = args[0], args[1:]
    if prog in ("printf", "echo"):
        return None
    if prog.startswith(".venv/bin/"):
        tool = prog.removeprefix(".venv/bin/")
        if tool == "mechvalue":
            try:
                build_parser().parse_args(args)
            except SystemExit as e:
                return f"mechvalue rejects its arguments (exit {e.code})"
            return None
        if tool == "python":
            target = args[1] if args[:1] == ["-m"] else args[0]
            ok = importlib.util.find_spec(target) if args[:1] == ["-m"] else (ROOT / target).exists()
            return None if ok else f"{target} not found"
        if tool == "pip":
            extras = re.findall(r"\.\[(\w+)\]", " ".join(args))
            section = (ROOT / "pyproject.toml").read_text().split("[project.optional-dependencies]")[1]
            declared = re.findall(r"^(\w+) = \[", section.split("\n[")[0], re.M)
            missing = [x for x in extras if x not in declared]
            return f"no extra {missing}" if missing else None
        if tool in ("mkdocs", "ray"):
            return None if importlib.util.find_spec(tool) else f"{tool} is not installed"
        return f"unknown tool {tool}"
    if prog.startswith(("./", "benchmarks/", ".ci/")):
        return None if (ROOT / prog).exists() else f"{prog} not in the repository"
    return f"{prog}: not prefixed with .venv/bin/ (fails unless the venv is active)"


def test_readme_and_docs_commands_work_as_typed():
    """Every command in a bash block of the README and the docs names a file that exists or a tool in
    .venv/bin/, and every `mechvalue` command parses (subcommand, flags, choices)."""
    sources = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    bad = []
    for src in sources:
        for cmd in _shell_commands(src.read_text()):
            why = _check_command(cmd)
            if why:
                bad.append(f"{src.relative_to(ROOT)}: {cmd!r}: {why}")
    assert bad == [], "\n".join(bad)
    readme = (ROOT / "README.md").read_text()
    assert "./setup.sh && .venv/bin/mechvalue run --out runs/smollm2\n" in readme
    assert ".venv/bin/python -m pytest -q tests\n" in readme  # .ci/run runs it
    assert len(readme.splitlines()) <= 200
