"""A page as a person sees it: headless Chromium (Debian's package) at 1280 px, the page's width
after layout and its visible text, for the report's and the documentation site's tests."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

WIDTH = 1280
CHROMIUM_FLAGS = [  # no sandbox as root; nothing reaches out to the network
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# measured after layout, then the visible text without the elements of `drop` (a CSS selector)
PROBE = """<script>
const w = document.documentElement.scrollWidth, vw = document.documentElement.clientWidth;
DROP
const pre = document.createElement('pre'); pre.id = 'probe';
pre.textContent = JSON.stringify({scrollWidth: w, clientWidth: vw}) + '\\n' + document.body.innerText;
document.body.appendChild(pre);
</script>"""


def chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip("chromium not installed (apt-get install chromium; .ci/run installs it)")
    return exe


def render(page: Path, drop: str | None = None) -> tuple[dict, str]:
    """`page` at 1280 px: its {scrollWidth, clientWidth} and its visible text (less `drop`)."""
    removal = f"document.querySelectorAll({json.dumps(drop)}).forEach(e => e.remove());" if drop else ""
    probe = page.with_name("probe-" + page.name)  # beside it, so its assets and links resolve
    probe.write_text(page.read_text().replace("</body>", PROBE.replace("DROP", removal) + "</body>"))
    try:
        with tempfile.TemporaryDirectory() as profile:
            r = subprocess.run(
                [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--window-size={WIDTH},900"]
                + ["--dump-dom", probe.as_uri()],
                capture_output=True,
                text=True,
                timeout=120,
            )
    finally:
        probe.unlink()
    m = re.search(r'<pre id="probe">(.*?)</pre>', r.stdout, re.S)
    assert m, f"chromium rendered nothing: {r.stderr[-2000:]}"
    first, _, visible = html.unescape(m.group(1)).partition("\n")
    return json.loads(first), visible
