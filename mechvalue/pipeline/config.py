"""The settings of one `mechvalue run` (recorded in config.json) and the library versions."""

from __future__ import annotations

import platform
from dataclasses import dataclass, field
from importlib import metadata


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
    dtype: str = "float32"  # the model's weights and activations: float32, bfloat16 or float16
    prompt_format: str | None = None  # None: by model (mechvalue.lm.models.default_prompt_format)
    protocol: str = "study"  # how items are asked and scored (mechvalue.measure.protocols.PROTOCOLS)
    quick: bool = False
    sae_train: dict = field(default_factory=dict)

    @classmethod
    def quick_preset(cls, **kw) -> RunConfig:
        """A few-minute run (every stage, the report; numbers that mean little): 2 items per value,
        14 roles, 2 grid roles, 2 features, 20 bootstraps; the recipe SAE if trained, else a small
        one of its own. The stages do less under `quick` too (see stages.py and
        resources.py: batches of 32, no hard prompts in the grid, activations and attribution on
        one no-role prompt per value, a 3-role steering comparison)."""
        base = {"roles": 14, "grid_roles": 2, "features": 2, "bootstrap": 20, "null": 100, "quick": True,
                "sae_train": {"roles": 1, "gen_prompts": 8, "gen_tokens": 16, "d_sae": 512, "epochs": 1}}  # fmt: skip
        return cls(**(base | {k: v for k, v in kw.items() if v is not None}))


def versions() -> dict:
    """Python and the libraries whose versions can change a run's numbers."""
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
