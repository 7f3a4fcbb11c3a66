"""The CPU thread policy the command line sets before torch loads.

torch's OpenMP threads (libgomp in torch's Linux wheels) spin-wait for ~300,000 rounds at every
barrier by default: beside another busy process a spinning thread holds a core its partner is
waiting for, and a run slows several-fold. Sleeping at once (`OMP_WAIT_POLICY=PASSIVE`) avoids
that but pays a wake-up at every one of the many small parallel regions of scoring and decoding
(a quiet machine's log-prob scoring ran at 0.77 of the default's speed, its decoding at 0.67).
A short spin (`GOMP_SPINCOUNT=5000`) keeps most of the quiet speed (0.94 and 0.72) and avoids
the collapse (beside one busy process 4.5x the default's scoring speed; 0.81 and 0.90 of the
passive policy's): benchmarks/test_threads.py measures each setting at load 0, 1 and 3. OpenMP
reads its environment once, when torch loads, so the policy is environment variables set first
(`mechvalue.cli` applies it on import); a variable the user has set is never changed, and
importing `mechvalue` as a library sets nothing. No setting changes the thread count, so none
changes a number.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager

POLICY = {"GOMP_SPINCOUNT": "5000"}
"""The variables set where the user has not (benchmarks/test_threads.py has the figures)."""

_SET: dict[str, str] = {}  # what `apply_policy` set in this process


def apply_policy() -> dict[str, str]:
    """Set each `POLICY` variable the environment lacks, unless torch is loaded already (its
    OpenMP has read the environment); returns those set."""
    if "torch" not in sys.modules:
        _SET.update({k: v for k, v in POLICY.items() if k not in os.environ})
        os.environ.update(_SET)
    return dict(_SET)


def thread_settings() -> dict:
    """What this process's threads run under, for a run's records: torch's thread count and each
    OpenMP variable with who set it (mechvalue's policy or the user), None where unset."""
    import torch

    out: dict = {"torch_threads": torch.get_num_threads()}
    for k in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT"):
        v = os.environ.get(k)
        out[k] = None if v is None else f"{v} (set by {'mechvalue' if k in _SET else 'the user'})"
    return out


@contextmanager
def one_torch_thread():
    """This process's torch at one intra-op thread (as a worker process runs), then as it was."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
