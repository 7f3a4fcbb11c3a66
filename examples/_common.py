"""Shared by the examples: SmolLM2, its layer-15 SAE (trained by the recipe once, then cached)
and the features' typical activations (the unit of steering strength)."""

from mechvalue.cache import ActivationStore
from mechvalue.features import typical_activation
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
    sae = load_sae(folder / "sae")
    store = ActivationStore(folder / "activations.h5")
    typical = typical_activation(sae, store.rows(sae.cfg.hook_name, 0, 20000))
    store.close()
    return model, info, sae, typical
