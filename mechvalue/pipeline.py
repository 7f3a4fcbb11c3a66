"""`mechvalue run`: the whole study on one model, as resumable stages.

measure -> sae -> activations -> features -> grid -> generations -> graph -> tables -> report.
Every stage writes its files into `OUT/<stage>/` and then `OUT/<stage>/done.json` (with its
time); a rerun skips finished stages, so an interrupted run resumes (the steering grid also
resumes inside its stage). `OUT/config.json` records every setting and library version, and
a rerun with different settings on the same folder is refused.
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path

import pandas as pd
import torch

from . import inventory as inv
from .errors import MechValueError
from .io import write_json

STAGES = ("measure", "sae", "activations", "features", "grid", "generations", "graph", "tables", "report")


@dataclass
class RunConfig:
    model: str = "smollm2-135m-instruct"
    sae: str = "train"  # "train" (the SmolLM2 recipe, cached) or a folder (ours or SAELens)
    layer: int = 15
    inventory: str | None = None
    questionnaire: str | None = None
    roles: int = 40
    grid_roles: int = 10
    features: int = 6
    strength: float = 30.0  # grid: add at " your values", in units of each feature's typical activation
    gen_strength: float = 6.0  # example generations: add at every position, same units
    bootstrap: int = 100
    null: int = 500
    human: str | None = None  # PVQ-40 answers CSV; None: Schwartz's circle as the reference
    seed: int = 0
    device: str = "cpu"
    quick: bool = False
    sae_train: dict = field(default_factory=dict)

    @classmethod
    def quick_preset(cls, **kw) -> RunConfig:
        """A few-minute run: 2 items per value, 14 roles, a small SAE, 2 features."""
        base = {"roles": 14, "grid_roles": 2, "features": 2, "bootstrap": 20, "null": 100, "quick": True,
                "sae_train": {"roles": 1, "gen_prompts": 8, "gen_tokens": 16, "d_sae": 512, "epochs": 1}}  # fmt: skip
        return cls(**(base | {k: v for k, v in kw.items() if v is not None}))


def versions() -> dict:
    out = {"python": platform.python_version()}
    for pkg in (
        "mechvalue",
        "torch",
        "transformer-lens",
        "transformers",
        "sae-lens",
        "causal-learn",
        "triton",
    ):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out


class Run:
    """Stage bookkeeping for one output folder."""

    def __init__(self, out: str | Path, cfg: RunConfig):
        self.out, self.cfg = Path(out), cfg
        self.out.mkdir(parents=True, exist_ok=True)
        conf = self.out / "config.json"
        settings = asdict(cfg)
        if conf.exists():
            old = json.loads(conf.read_text())["settings"]
            diff = sorted(k for k in set(old) | set(settings) if old.get(k) != settings.get(k))
            if diff:
                raise MechValueError(
                    f"{self.out} holds a run with other settings ({', '.join(diff)}); use a new --out"
                )
        else:
            write_json({"settings": settings, "versions": versions()}, conf)
        self._model = None

    def dir(self, stage: str) -> Path:
        d = self.out / stage
        d.mkdir(exist_ok=True)
        return d

    def done(self, stage: str) -> bool:
        return (self.out / stage / "done.json").exists()

    def finish(self, stage: str, t0: float, **info) -> None:
        write_json({"seconds": round(time.perf_counter() - t0, 2), **info}, self.out / stage / "done.json")

    def timings(self) -> dict:
        return {
            s: json.loads((self.out / s / "done.json").read_text())["seconds"] for s in STAGES if self.done(s)
        }

    @property
    def model(self):
        if self._model is None:
            from .models import load_model

            self._model = load_model(self.cfg.model, self.cfg.device)
        return self._model

    # -- shared inputs -------------------------------------------------------------------
    def items(self) -> pd.DataFrame:
        q = [self.cfg.questionnaire] if self.cfg.questionnaire else None
        items = inv.select(inv.load_inventory(self.cfg.inventory), q)
        if self.cfg.quick:
            items = items.groupby("value", sort=False).head(2).reset_index(drop=True)
        return items

    def roles(self) -> list:
        from .roles import generate_roles

        return [None, *generate_roles(self.cfg.roles, self.cfg.seed)]

    def measurer(self):
        from .measure import Measurer

        model, info = self.model
        return Measurer(model, info.prompt_format, "logprob")

    def sae(self):
        from .sae import load_sae

        ref = json.loads((self.out / "sae" / "sae.json").read_text())
        return load_sae(ref["path"], self.cfg.device), ref


def run(out: str | Path, cfg: RunConfig, progress: bool = True) -> Path:
    """Run (or resume) every stage; returns the report's path."""
    from . import pipeline_stages as st

    torch.manual_seed(cfg.seed)
    r = Run(out, cfg)
    for name in STAGES:
        if r.done(name):
            continue
        t0 = time.perf_counter()
        if progress:
            print(f"[mechvalue run] {name} ...", flush=True)
        info = getattr(st, name)(r) or {}
        r.finish(name, t0, **info)
    return r.out / "report" / "report.html"
