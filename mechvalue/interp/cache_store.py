"""Reading an activation cache: its committed rows by hook, by prompt, or as shuffled minibatches in
bounded memory, and its row index."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from mechvalue.errors import MechValueError
from mechvalue.interp.cache_file import INDEX, committed, open_h5


class ActivationStore:
    """Read an activation cache: by prompt, or as shuffled minibatches in bounded memory."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.f = open_h5(self.path, "r")
        try:
            self.hooks = json.loads(self.f.attrs["hooks"])
            self.storage = str(self.f.attrs["dtype"])
            self.n, self.prompts_done = committed(self.f)
            self.prompt_id = self.f["prompt_id"][: self.n]
        except (KeyError, OSError, ValueError) as e:
            self.f.close()
            raise MechValueError(
                f"{path}: damaged activation cache ({e}); see `mechvalue cache --verify`"
            ) from None

    def _decode(self, arr: np.ndarray, device="cpu") -> Float[Tensor, "rows d"]:
        t = torch.from_numpy(np.ascontiguousarray(arr))
        if self.storage == "bfloat16":
            t = t.view(torch.bfloat16)
        return t.float().to(device)

    def rows(
        self, hook: str, start: int = 0, stop: int | None = None, device="cpu"
    ) -> Float[Tensor, "rows d"]:
        return self._decode(self.f[hook][start : self.n if stop is None else stop], device)

    def index(self):
        """A DataFrame with one row per cached activation (the rows of every hook's dataset, in
        order): `prompt_id`, `position` (in that prompt's tokens) and `token_id`."""
        import pandas as pd

        return pd.DataFrame({name: self.f[name][: self.n] for name in INDEX})

    def for_prompt(self, prompt_id: int, hook: str, device="cpu") -> Float[Tensor, "rows d"]:
        idx = np.flatnonzero(self.prompt_id == prompt_id)
        if len(idx) == 0:
            return torch.empty((0, self.f[hook].shape[1]))
        return self.rows(hook, int(idx[0]), int(idx[-1]) + 1, device)

    def minibatches(
        self, hook: str, batch_size: int, seed: int = 0, buffer_rows: int = 65536, device="cpu"
    ) -> Iterator[Float[Tensor, "batch d"]]:
        """One epoch of shuffled minibatches: blocks in random order, shuffled within a buffer.

        Memory is bounded by `buffer_rows`, whatever the file size.
        """
        rng = np.random.default_rng(seed)
        block = max(batch_size, min(buffer_rows, self.n))
        starts = rng.permutation(np.arange(0, self.n, block))
        for s in starts:
            x = self.rows(hook, int(s), int(min(s + block, self.n)))
            x = x[torch.from_numpy(rng.permutation(len(x)))]
            for i in range(0, len(x), batch_size):
                yield x[i : i + batch_size].to(device)

    def close(self) -> None:
        self.f.close()

    def summary(self) -> dict:
        return {
            "path": str(self.path),
            "rows": self.n,
            "prompts": int(len(np.unique(self.prompt_id))),
            "hooks": {h: list(self.f[h].shape) for h in self.hooks},
            "dtype": self.storage,
            "complete": bool(self.f.attrs["complete"]),
            "model": str(self.f.attrs["model"]),
        }
