"""Ahead-of-time compile check, no GPU needed: every Triton kernel here, every autotune config,
every activation/weight dtype pair and SAE activation, compiled for an NVIDIA arch with
Triton's bundled LLVM, then `ptxas -v` on the PTX for registers, spills and stack.

    from mechvalue.kernels.compile import compile_all
    for row in compile_all(90): print(row)

or `python -m mechvalue.kernels.compile 90 [--subset]` for a markdown table. Compiles run in
worker processes, one per core; where this process runs the Triton interpreter
(TRITON_INTERPRET=1, whose kernels cannot be compiled), in a fresh process without it.

Shared memory is Triton's dynamic allocation (the pipelining buffers), from the compile metadata.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path

import triton
from triton import knobs
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from triton.runtime.jit import JITFunction

from .sae_edit import JUMPRELU, KERNELS, RELU, configs

DTYPES = {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16"}
ACTS = {"relu": RELU.value, "jumprelu": JUMPRELU.value}
# (activation dtype, SAE weight dtype): float32 weights, or weights in the model's dtype
DTYPE_PAIRS = [
    ("float32", "float32"),
    ("float16", "float32"),
    ("float16", "float16"),
    ("bfloat16", "float32"),
    ("bfloat16", "bfloat16"),
]


@dataclass
class CompileRow:
    kernel: str
    arch: str
    x_dtype: str
    w_dtype: str
    act: str
    BLOCK_M: int
    BLOCK_S: int
    BLOCK_K: int
    num_warps: int
    num_stages: int
    registers: int
    spill_stores: int
    spill_loads: int
    stack_bytes: int
    shared_bytes: int


def _signature(x: str, w: str) -> dict[str, str]:
    p = lambda t: "*" + DTYPES[t]  # noqa: E731
    return {
        "x_ptr": p(x),
        "acc_ptr": "*fp32",
        "w_enc_ptr": p(w),
        "b_enc_ptr": "*fp32",
        "w_dec_ptr": p(w),
        "b_dec_ptr": "*fp32",
        "thr_ptr": "*fp32",
        "mul_ptr": "*fp32",
        "add_ptr": "*fp32",
        "rid_ptr": "*i32",
        "M": "i32",
        "D": "i32",
        "S": "i32",
        "ACT": "constexpr",
        "BLOCK_M": "constexpr",
        "BLOCK_S": "constexpr",
        "BLOCK_K": "constexpr",
    }


def _ptxas(ptx: str, arch: int) -> dict[str, int]:
    """Run the bundled ptxas -v (the one Triton itself uses for this arch) and parse its report."""
    from triton.backends.nvidia.compiler import get_ptxas, sm_arch_from_capability

    with tempfile.TemporaryDirectory() as d:
        src = Path(d) / "k.ptx"
        src.write_text(ptx)
        cmd = [
            get_ptxas(arch).path,
            "-v",
            f"--gpu-name={sm_arch_from_capability(arch)}",
            str(src),
            "-o",
            str(Path(d) / "k.o"),
        ]
        log = subprocess.run(cmd, capture_output=True, text=True, check=True).stderr
    num = lambda pat: int(re.search(pat, log).group(1))  # noqa: E731
    return {
        "registers": num(r"Used (\d+) registers"),
        "spill_stores": num(r"(\d+) bytes spill stores"),
        "spill_loads": num(r"(\d+) bytes spill loads"),
        "stack_bytes": num(r"(\d+) bytes stack frame"),
    }


def matrix(subset: bool = False) -> list[tuple[str, str, str, int]]:
    """(dtype pair, activation, config index) combinations; `subset` keeps every config, every
    dtype pair and every activation at least once (10 instead of 50 per kernel and arch)."""
    n = len(configs())  # the same number of configs for every dtype
    full = [(x, w, a, c) for x, w in DTYPE_PAIRS for a in ACTS for c in range(n)]
    if not subset:
        return full
    return [(x, w, a, (2 * i + j) % n) for i, (x, w) in enumerate(DTYPE_PAIRS) for j, a in enumerate(ACTS)]


def compile_one(name: str, arch: int, x: str, w: str, act: str, cfg: triton.Config) -> CompileRow:
    """Compile one kernel variant for `arch` (80, 90, ...) and read ptxas's resource report."""
    fn = KERNELS[name]
    fn = fn if isinstance(fn, JITFunction) else JITFunction(fn.fn)  # TRITON_INTERPRET wraps kernels
    sig = _signature(x, w)
    # what the launcher specialises on for contiguous CUDA tensors and d_in, d_sae multiples of 16
    attrs = {
        (i,): [["tt.divisibility", 16]]
        for i, k in enumerate(sig)
        if sig[k].startswith("*") or k in ("D", "S")
    }
    src = ASTSource(fn=fn, signature=sig, constexprs={"ACT": ACTS[act], **cfg.kwargs}, attrs=attrs)
    with knobs.runtime.scope():  # compile for the GPU even where tests run the interpreter
        knobs.runtime.interpret = False
        k = triton.compile(
            src,
            target=GPUTarget("cuda", arch, 32),
            options={"num_warps": cfg.num_warps, "num_stages": cfg.num_stages},
        )
    return CompileRow(
        name,
        f"sm_{arch}",
        x,
        w,
        act,
        cfg.kwargs["BLOCK_M"],
        cfg.kwargs["BLOCK_S"],
        cfg.kwargs["BLOCK_K"],
        cfg.num_warps,
        cfg.num_stages,
        **_ptxas(k.asm["ptx"], arch),
        shared_bytes=int(k.metadata.shared),
    )


def _job(job: tuple) -> CompileRow:
    name, arch, x, w, a, c = job
    return compile_one(name, arch, x, w, a, configs(x)[c])


def compile_all(arch: int, subset: bool = False, jobs: int | None = None) -> list[CompileRow]:
    """Compile every kernel x config x dtype pair x activation for `arch`; one row each."""
    if knobs.runtime.interpret:
        env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
        cmd = [sys.executable, "-m", "mechvalue.kernels.compile", str(arch), "--json"] + ["--subset"] * subset
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
        return [CompileRow(**r) for r in json.loads(out)]
    todo = [(name, arch, *m) for name in KERNELS for m in matrix(subset)]
    with ProcessPoolExecutor(jobs or os.cpu_count(), mp_context=get_context("spawn")) as pool:
        return list(pool.map(_job, todo))


def table(rows: list[CompileRow]) -> str:
    """Markdown table of the rows (as printed by the compile test and put in docs/guides/benchmarks.md)."""
    cols = list(asdict(rows[0])) if rows else []
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(v) for v in asdict(r).values()) + " |" for r in rows]
    return "\n".join(lines)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description="Compile every Triton kernel ahead of time; ptxas -v report.")
    ap.add_argument("arch", type=int, help="compute capability, e.g. 80 or 90")
    ap.add_argument("--subset", action="store_true", help="every config, dtype pair and activation once")
    ap.add_argument("--json", action="store_true", help="rows as JSON instead of a markdown table")
    args = ap.parse_args()
    rows = compile_all(args.arch, args.subset)
    print(json.dumps([asdict(r) for r in rows]) if args.json else table(rows))
