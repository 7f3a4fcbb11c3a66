"""Shared by the examples: SmolLM2 and its layer-15 SAE (trained by the recipe once, then cached)."""

from mechvalue.models import cache_dir, load_model
from mechvalue.sae import load_sae
from mechvalue.sae_recipe import sae_recipe

LAYER = 15


def model_and_sae():
    model, info = load_model()
    folder = cache_dir() / "saes" / f"smollm2-135m-instruct-L{LAYER}"
    metrics = sae_recipe(model, info, folder, LAYER)  # returns at once when already trained
    print(
        f"SAE {folder / 'sae'}: L0 {metrics['l0']:.1f}, FVE {metrics['fve']:.3f}, delta loss {metrics['delta_loss']:.3f}"
    )
    return model, info, load_sae(folder / "sae"), folder
