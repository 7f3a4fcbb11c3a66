#!/usr/bin/env bash
# The prepared GPU run: offline, from a wheel folder, in under 8 minutes.
#
#   benchmarks/gpu/run.sh WHEELS [OUTDIR]        # OUTDIR default: $OUT, else benchmarks/gpu/out
#
# WHEELS is the folder benchmarks/gpu/wheels.sh builds (what mechvalue imports that the machine
# lacks). Steps, each under its own time limit, all within $BUDGET_S (default 470 s):
#   install   the wheels into a scratch --target folder (PYTHONPATH), and the source staged in its
#             installed layout (kernels/ as mechvalue/kernels), so nothing is built
#   imports   every module mechvalue, its tests and benchmarks import (benchmarks/gpu/missing.py)
#   kernels   tests/kernels: compiled on the GPU (TRITON_INTERPRET unset; the run fails if the
#             kernel tests would run interpreted there); interpreted where there is no GPU
#   edit      benchmarks/test_cuda_edit.py -s: fused full/delta vs copy bandwidth and SAELens
#   decoding  benchmarks/test_cuda_decoding.py -s: steered vs unsteered decoding, real shapes
#   smoke     (SMOKE=1, no GPU only) the CUDA benchmarks at tiny shapes on CPU: their code runs
# Writes OUTDIR/run.log (everything printed), results.json (benchmarks/results.json plus this
# device's rows and environment), steps.json (status and seconds per step), junit-*.xml. Exits 0
# when every step passed. PYTHON (default python3) picks the interpreter; WORK the scratch folder.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
wheels=$(cd "${1:?usage: benchmarks/gpu/run.sh WHEELS [OUTDIR]}" && pwd) || exit 2
out=${2:-${OUT:-$here/out}}
py=${PYTHON:-python3}
# the Pythons mechvalue supports (pyproject.toml's requires-python), before anything is installed
"$py" -c 'import sys; v = sys.version_info[:2]; ok = (3, 11) <= v <= (3, 13)
print(f"python {v[0]}.{v[1]}: " + ("supported" if ok else "not supported (mechvalue runs on 3.11 to 3.13)"))
sys.exit(0 if ok else 2)' || exit 2
budget=${BUDGET_S:-470}
work=${WORK:-$(mktemp -d /tmp/mechvalue-gpu.XXXXXX)}
site=$work/site
stage=$work/stage
run_in=$root # where step runs its command: the checkout, then the staged copy
start=$(date +%s)
mkdir -p "$out"
out=$(cd "$out" && pwd)
: >"$out/run.log"
exec > >(tee -a "$out/run.log") 2>&1
tee_pid=$!
steps=()
failed=0

export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 \
  HF_DATASETS_OFFLINE=1 WANDB_MODE=disabled TOKENIZERS_PARALLELISM=false MPLBACKEND=Agg \
  MECHVALUE_BENCH_RESULTS="$out/results.json"
unset TRITON_INTERPRET

# step NAME LIMIT_S CMD...: runs CMD in $run_in under the smaller of LIMIT_S and what is
# left of the budget; benchmarks get a deadline 20 s before that, so they skip rather than die.
step() {
  local name=$1 limit=$2 t0 rc status
  shift 2
  local left=$((budget - ($(date +%s) - start)))
  ((limit > left)) && limit=$left
  if ((limit < 15)); then
    echo "=== $name: not run, the ${budget}s budget is spent"
    steps+=("{\"step\": \"$name\", \"status\": \"not run (budget spent)\", \"seconds\": 0}")
    failed=1
    return
  fi
  echo "=== $name (limit ${limit}s, $(($(date +%s) - start))s into the run)"
  t0=$(date +%s)
  if declare -F "$1" >/dev/null; then # a function of this script (install): bounded by itself
    (cd "$run_in" && "$@")
  else
    (cd "$run_in" && MECHVALUE_BENCH_DEADLINE=$(($(date +%s) + limit - 20)) timeout -k 10 "$limit" "$@")
  fi
  rc=$?
  case $rc in
    0) status=passed ;;
    124 | 137) status="timed out" ;;
    *) status="failed (exit $rc)" ;;
  esac
  [ $rc -eq 0 ] || failed=1
  echo "=== $name: $status in $(($(date +%s) - t0))s"
  steps+=("{\"step\": \"$name\", \"status\": \"$status\", \"seconds\": $(($(date +%s) - t0))}")
}

install() {
  rm -rf "$site" "$stage" && mkdir -p "$site" "$stage" || return 1
  "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$site" "$wheels"/*.whl || return 1
  cp -r "$root/mechvalue" "$root/tests" "$root/benchmarks" "$root/pyproject.toml" "$stage/" || return 1
  cp -r "$root/kernels" "$stage/mechvalue/kernels" || return 1
  rm -rf "$stage/benchmarks/gpu/out"
  find "$stage" -name __pycache__ -prune -exec rm -rf {} +
  if [ -f "$root/benchmarks/results.json" ] && [ ! -f "$out/results.json" ]; then
    cp "$root/benchmarks/results.json" "$out/results.json"
  fi
  echo "$(ls "$wheels"/*.whl | wc -l) wheels into $site; source staged in $stage"
}

echo "mechvalue GPU run: $(date -u +%FT%TZ), python $("$py" -c 'import sys; print(sys.version.split()[0])'), out $out"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
export PYTHONPATH=$site${PYTHONPATH:+:$PYTHONPATH}
step install 120 install
run_in=$stage
cuda=$("$py" -c 'import torch; print(int(torch.cuda.is_available()))' 2>/dev/null || echo 0)
if [ "$cuda" = 1 ]; then
  echo "CUDA: $("$py" -c 'import torch, triton; print(torch.cuda.get_device_name(), "torch", torch.__version__, "triton", triton.__version__)')"
else
  echo "no CUDA device: kernel tests run under Triton's interpreter; every CUDA benchmark skips, saying why"
fi
pytest_args=(-q -rs -p no:cacheprovider)
step imports 60 "$py" benchmarks/gpu/missing.py --check
step kernels 150 env MECHVALUE_REQUIRE_COMPILED="$cuda" "$py" -m pytest "${pytest_args[@]}" tests/kernels \
  --junitxml="$out/junit-kernels.xml"
step edit 140 "$py" -m pytest "${pytest_args[@]}" -s benchmarks/test_cuda_edit.py --junitxml="$out/junit-edit.xml"
step decoding 220 "$py" -m pytest "${pytest_args[@]}" -s benchmarks/test_cuda_decoding.py \
  --junitxml="$out/junit-decoding.xml"
if [ "$cuda" != 1 ] && [ "${SMOKE:-0}" = 1 ]; then
  step smoke 900 env MECHVALUE_BENCH_SMOKE=1 "$py" -m pytest "${pytest_args[@]}" -s -x \
    benchmarks/test_cuda_edit.py benchmarks/test_cuda_decoding.py
fi

total=$(($(date +%s) - start))
{
  printf '{"total_seconds": %s, "cuda": %s, "steps": [' "$total" "$cuda"
  (IFS=,; printf '%s' "${steps[*]}")
  printf ']}\n'
} >"$out/steps.json"
echo "=== summary (${total}s of ${budget}s)"
for s in "${steps[@]}"; do echo "  $s"; done
echo "results: $out/results.json; log: $out/run.log"
exec >&- 2>&- # let tee write the log's last lines before this script (and its machine) ends
wait "$tee_pid" 2>/dev/null
exit $failed
