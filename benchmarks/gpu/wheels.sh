#!/usr/bin/env bash
# Build the wheel folder a GPU run installs from (benchmarks/gpu/run.sh): the distributions of
# benchmarks/gpu/requirements.txt (what mechvalue imports that the GPU machine lacks; regenerate
# with `.venv/bin/python benchmarks/gpu/missing.py --write`), binary wheels only, no dependencies
# (torch, triton, numpy, transformers and the rest are on that machine already).
#
#   benchmarks/gpu/wheels.sh [DEST] [PYTHON_VERSION]     # default .gpu-wheels (git-ignored), 3.12
#
# Needs PyPI. Fails if the folder passes 60 MiB (a GPU call carries at most 64 MiB with the tree).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
dest=${1:-$root/.gpu-wheels}
pyver=${2:-3.12}
pip=${PIP:-$root/.venv/bin/pip}
limit_mib=60

mkdir -p "$dest"
rm -f "$dest"/*.whl
plats=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
  plats+=(--platform "$p")
done
"$pip" download -q --no-deps --only-binary=:all: --python-version "$pyver" --implementation cp \
  "${plats[@]}" -d "$dest" -r "$here/requirements.txt"

n=$(ls "$dest"/*.whl | wc -l)
want=$(grep -cv '^\s*#' "$here/requirements.txt")
bytes=$(du -cb "$dest"/*.whl | tail -1 | cut -f1)
mib=$(( (bytes + 1048575) / 1048576 ))
echo "$dest: $n wheels for python $pyver manylinux x86_64, $bytes bytes (${mib} MiB)"
[ "$n" -eq "$want" ] || { echo "expected $want wheels (one per line of requirements.txt), got $n" >&2; exit 1; }
[ "$mib" -le "$limit_mib" ] || { echo "over ${limit_mib} MiB: too large to carry to the GPU machine" >&2; exit 1; }
