"""mechvalue: measure, graph and steer the values an LLM expresses.

The research API (imported lazily, so `import mechvalue` stays light):
    model = mechvalue.load_model(folder, dtype="bfloat16")      # a LoadedModel (TransformerBridge inside)
    sae = mechvalue.load_sae(folder)
    with mechvalue.steer(model, sae, {feature: strength}, mode="add", where="all"):
        model.generate(...)
    hook = mechvalue.sae_hook(sae, {feature: 0.0}, mode="clamp", where=(3, 7))
    model.run_with_hooks(tokens, fwd_hooks=[(sae.cfg.hook_name, hook)])
"""

__version__ = "0.1.0"

_EXPORTS = {
    "load_model": "mechvalue.lm.models",
    "LoadedModel": "mechvalue.lm.models",
    "DEFAULT_MODEL": "mechvalue.lm.models",
    "PositionedHook": "mechvalue.lm.hooks",
    "greedy_generate": "mechvalue.lm.generation",
    "steer": "mechvalue.interp.steering",
    "sae_hook": "mechvalue.interp.steering",
    "SAEEditHook": "mechvalue.interp.steering",
    "SteeringSpec": "mechvalue.interp.steering",
    "SAE": "mechvalue.interp.sae",
    "load_sae": "mechvalue.interp.sae_formats",
    "recipe_folder": "mechvalue.interp.sae_recipe",
    "sae_recipe": "mechvalue.interp.sae_recipe",
    "diffmean_vector": "mechvalue.interp.vectors",
    "caa_vector": "mechvalue.interp.vectors",
    "vector_hook": "mechvalue.interp.vectors",
    "VectorAddHook": "mechvalue.interp.vectors",
    "residual_norm": "mechvalue.interp.vectors",
    "MechValueError": "mechvalue.errors",
}
__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'mechvalue' has no attribute {name!r}")


def __dir__():
    return __all__
