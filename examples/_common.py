"""Shared by the examples: SmolLM2, its layer-15 SAE (trained by the recipe once, then cached)
and the features' typical activations (the unit of steering strength)."""

from mechvalue.interp.features import typical_from_store
from mechvalue.interp.sae_formats import load_sae
from mechvalue.interp.sae_recipe import recipe_folder, sae_recipe
from mechvalue.lm.models import load_model

LAYER = 15


def model_and_sae():
    model, info = load_model()
    folder = recipe_folder("smollm2-135m-instruct", LAYER)
    metrics = sae_recipe(model, info, folder, LAYER)  # returns at once when already trained
    print(
        f"SAE {folder / 'sae'}: L0 {metrics['l0']:.1f}, FVE {metrics['fve']:.3f}, delta loss {metrics['delta_loss']:.3f}"
    )
    sae = load_sae(folder / "sae")
    return model, info, sae, typical_from_store(sae, folder / "activations.h5")
