"""The documentation site builds with `mkdocs build --strict` (no warning: every link, anchor,
included example and API object resolves), every page in its nav is built, the API reference
documents every name of `mechvalue.__all__`, and a few pages read right in headless Chromium at
1280 px: no sideways scrolling, the headings, commands and API names a reader looks for."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

import mechvalue

ROOT = Path(__file__).resolve().parents[1]
WIDTH = 1280
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
# measured after layout: the page's width and its visible text
PROBE = """<script>
const w = document.documentElement.scrollWidth, vw = document.documentElement.clientWidth;
const pre = document.createElement('pre'); pre.id = 'probe';
pre.textContent = JSON.stringify({scrollWidth: w, clientWidth: vw}) + '\\n' + document.body.innerText;
document.body.appendChild(pre);
</script>"""


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
    headings = set(re.findall(r'class="doc doc-heading"[^>]*>.*?<span class="doc[^"]*">(mechvalue\.\w+)', pages, re.S))
    headings |= set(re.findall(r">(mechvalue\.\w+)</span>", pages))
    missing = [n for n in mechvalue.__all__ if n != "__version__" and f"mechvalue.{n}" not in headings]
    assert missing == [], missing
    measurement = (site / "reference" / "measurement.html").read_text()
    # mechvalue.measure is a function: a signature and its docstring, not a module's member list
    assert re.search(r'doc-function.*?mechvalue\.measure<', measurement, re.S), "measure not shown as a function"
    assert "Ask every item to every persona" in measurement


def test_tutorial_pages_include_their_example_scripts_verbatim(site):
    for page, script in [
        ("tutorials/measure.html", "measure_personas.py"),
        ("tutorials/activation-cache.html", "activation_cache.py"),
        ("tutorials/research-api.html", "research_api.py"),
    ]:
        text = html.unescape(re.sub(r"<[^>]+>", "", (site / page).read_text()))
        for line in (ROOT / "examples" / script).read_text().splitlines():
            assert line.strip() in text, f"{page}: {line!r} missing"


def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip("chromium not installed (apt-get install chromium; .ci/run installs it)")
    return exe


def render(page: Path) -> tuple[dict, str]:
    """The page at 1280 px in headless Chromium: its width and its visible text."""
    probe = page.with_name("probe-" + page.name)  # beside it, so its assets and links resolve
    probe.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
    with tempfile.TemporaryDirectory() as profile:
        r = subprocess.run(
            [_chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--window-size={WIDTH},900"]
            + ["--dump-dom", probe.as_uri()],
            capture_output=True,
            text=True,
            timeout=120,
        )
    probe.unlink()
    m = re.search(r'<pre id="probe">(.*?)</pre>', r.stdout, re.S)
    assert m, f"chromium rendered nothing: {r.stderr[-2000:]}"
    first, _, visible = html.unescape(m.group(1)).partition("\n")
    return json.loads(first), visible


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
