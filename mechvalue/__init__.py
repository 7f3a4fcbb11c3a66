"""mechvalue: measure, graph and steer the values an LLM expresses.

The public API is every name in `mechvalue.__all__`, imported lazily (`import mechvalue` stays
light); the docs' API reference documents each name, and examples/research_api.py is one complete
script with them. Everything else (`mechvalue.lm`, `mechvalue.interp`, ...) is internal and may change.

    model = mechvalue.load_model()                  # a LoadedModel: TransformerBridge calls work on it
    items = mechvalue.select_items(mechvalue.load_inventory(), values=["Power"])
    m = mechvalue.measure(model, items, [None, *mechvalue.generate_personas(5)])  # .values .items .settings
    sae = mechvalue.recipe_sae(model, 15)           # the recipe SAE: loaded, or trained once
    _, cache = model.run_with_cache_with_saes(tokens, saes=[sae])   # ...hook_resid_post.hook_sae_acts_post
    with mechvalue.steer(model, sae, {feature: strength}, mode="add", where="all"):
        model.generate(...)
"""

__version__ = "0.1.0"

# public name -> "module" (the same name there) or "module:name"
_EXPORTS = {
    # models and hooks
    "load_model": "mechvalue.lm.models",
    "LoadedModel": "mechvalue.lm.models",
    "DEFAULT_MODEL": "mechvalue.lm.models",
    "PositionedHook": "mechvalue.lm.hooks",
    "greedy_generate": "mechvalue.lm.generation",
    "Edits": "mechvalue.lm.generation",
    # inventories, personas, prompts, measurement, attribution (the facade, mechvalue.research)
    "load_inventory": "mechvalue.research",
    "select_items": "mechvalue.research",
    "split_items": "mechvalue.research",
    "SCHWARTZ_VALUES": "mechvalue.research",
    "Persona": "mechvalue.research",
    "generate_personas": "mechvalue.research",
    "load_players": "mechvalue.research",
    "RenderedPrompt": "mechvalue.research",
    "render_prompt": "mechvalue.research",
    "render_prompts": "mechvalue.research",
    "Measurement": "mechvalue.research",
    "measure": "mechvalue.research",
    "ScoringOptions": "mechvalue.measurement.options",
    "typical_activations": "mechvalue.research",
    "feature_attribution": "mechvalue.research",
    # SAEs
    "SAE": "mechvalue.interp.sae",
    "load_sae": "mechvalue.research",
    "recipe_sae": "mechvalue.interp.sae_recipe",
    "recipe_folder": "mechvalue.interp.sae_recipe",
    "sae_recipe": "mechvalue.interp.sae_recipe",
    "to_sae_lens": "mechvalue.interp.sae_convert",
    "from_sae_lens": "mechvalue.interp.sae_convert",
    # steering
    "steer": "mechvalue.interp.steering",
    "sae_hook": "mechvalue.interp.steering",
    "SAEEditHook": "mechvalue.interp.steering",
    "SteeringSpec": "mechvalue.interp.steering",
    "diffmean_vector": "mechvalue.research",
    "caa_vector": "mechvalue.research",
    "residual_norm": "mechvalue.research",
    "vector_hook": "mechvalue.interp.vectors",
    "VectorAddHook": "mechvalue.interp.vectors",
    # the activation cache (layout: docs/guides/activation-cache.md)
    "cache_activations": "mechvalue.interp.cache",
    "CachePrompt": "mechvalue.interp.cache",
    "ActivationStore": "mechvalue.interp.cache",
    "verify_cache": "mechvalue.interp.cache:verify",
    # the study's tables and graphs (examples/reproduce_paper.py)
    "paper_settings": "mechvalue.research",
    "load_value_table": "mechvalue.study.schema:load_table",
    "study_graph": "mechvalue.causal.study",
    "load_graph": "mechvalue.causal.graph",
    "compare_graphs": "mechvalue.causal.compare:compare",
    "table1": "mechvalue.analysis.tables",
    "table2": "mechvalue.analysis.tables",
    "table2_improved": "mechvalue.analysis.tables",
    "direction_pies": "mechvalue.analysis.tables:pies",
    "MechValueError": "mechvalue.errors",
}
__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        module, _, attr = _EXPORTS[name].partition(":")
        return getattr(importlib.import_module(module), attr or name)
    raise AttributeError(f"module 'mechvalue' has no attribute {name!r}")


def __dir__():
    return __all__
