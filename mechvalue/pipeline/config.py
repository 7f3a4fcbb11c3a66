"""The settings of one `mechvalue run` (recorded in config.json), the option groups it shares with
the other commands (the model, the items x personas design), and the library versions."""

from __future__ import annotations

import platform
from dataclasses import dataclass, field
from importlib import metadata

from mechvalue.analysis.steering.design import SteerDesign
from mechvalue.lm.literals import DEFAULT_MODEL, DType, PromptFormat
from mechvalue.measurement.options import protocol_names


def csv_list(s: str | None) -> list[str] | None:
    """'a, b,,c' -> ['a', 'b', 'c']; None or '' -> None."""
    return [x.strip() for x in s.split(",") if x.strip()] if s else None


@dataclass(kw_only=True)
class ModelOptions:
    """The options of every command that loads a model."""

    model: str = DEFAULT_MODEL
    """mechvalue name or local HF model folder"""
    device: str = "cpu"
    dtype: DType = "float32"
    """the model's weights and activations (SAE edits follow it)"""
    prompt_format: PromptFormat | None = None
    """the study's gemma/llama template or the tokenizer's chat template (default: by model)"""


@dataclass(kw_only=True)
class DesignOptions:
    """The items x personas design."""

    inventory: str | None = None
    """ValueBench-format CSV (default: shipped)"""
    questionnaire: str | None = None
    """comma-separated questionnaire names (default: every one in the inventory; the shipped one has
    MVI10 only, ValueBench's value_orientation.csv PVQ40 and others)"""
    roles: int = 10
    seed: int = 0


@dataclass(kw_only=True)
class RunConfig(DesignOptions, ModelOptions):
    """The options of `mechvalue run` (its command line is generated from these fields)."""

    sae: str = "train"
    """'train': the model's recipe SAE (trained once and cached; run trains it itself for the default
    SmolLM2 only, other models need `mechvalue sae-train` first), or an SAE folder (mechvalue, SAELens,
    sparsify, Gemma Scope) or a SAELens release:sae_id"""
    layer: int | None = None
    """SAE layer (blocks.N.hook_resid_post); default: the model's middle layer, the recipe's"""
    roles: int = 40
    grid_roles: int = 10
    features: int = 6
    strength: float = 30.0
    """steering strength of the grid (added at " your values"), typical-activation units"""
    gen_strength: float = 6.0
    """steering strength of the example generations (added at every position), same units"""
    bootstrap: int = 100
    null: int = 500
    human: str | None = None
    """PVQ-40 answers CSV (default: ../shared/data/human/PVQ40.csv if present; else Schwartz's circle
    is the reference)"""
    steer_design: SteerDesign = "powered"
    """the steering comparison's design: 'powered' (one strength per method and value, the largest
    within the fluency bound on neutral text; target values and test roles as many as its CIs need,
    mechvalue.analysis.steering.design) or 'exhaustive' (every strength, value and test role)"""
    protocol: str = field(default="study", metadata={"choices": protocol_names})
    """how items are asked and scored (mechvalue.measurement.protocols; `mechvalue protocols` compares them)"""
    quick: bool = False
    """a few-minute run (CI)"""
    sae_train: dict = field(default_factory=dict)
    """settings of the recipe SAE's training (`sae_recipe` keywords)"""

    @classmethod
    def quick_preset(cls, **kw) -> RunConfig:
        """A few-minute run (every stage, the report; numbers that mean little): 2 items per value,
        14 roles, 2 grid roles, 2 features, 20 bootstraps; the recipe SAE if trained, else a small
        one of its own. The stages do less under `quick` too (see stages.py and
        resources.py: batches of 32, no hard prompts in the grid, activations and attribution on
        one no-role prompt per value, a 3-role steering comparison)."""
        train = {"roles": 1, "gen_prompts": 8, "gen_tokens": 16, "d_sae": 512, "epochs": 1}
        base = {"roles": 14, "grid_roles": 2, "features": 2, "bootstrap": 20, "null": 100, "quick": True}
        base["sae_train"] = train
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
