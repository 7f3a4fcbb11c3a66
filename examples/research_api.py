"""The research API end to end on SmolLM2, with mechvalue's public API only: measure values across
personas on held-out items, read the recipe SAE's features the SAELens way, typical activations and
attribution patching, steer with the SAE feature, CAA and DiffMean built on train items, and write
an activation cache file and read it back.

    python examples/research_api.py     # on an empty cache, recipe_sae trains the SAE once (minutes)
"""

import h5py
import torch

import mechvalue

# 1. A model, items, personas
model = mechvalue.load_model()  # SmolLM2-135M-Instruct; or a local HF folder, any dtype and device
inventory = mechvalue.load_inventory()  # the shipped MVI10; or a ValueBench CSV path
values = ["Power", "Benevolence", "Tradition"]
items = mechvalue.select_items(inventory, questionnaires="MVI10", values=values)
train, test = mechvalue.split_items(items, seed=0)  # per value, seeded: 70% train, 30% test
personas = mechvalue.generate_personas(6, seed=0)  # or mechvalue.load_players("players25.json")

# 2. Value scores across personas: the value table, the item table, how they were scored
m = mechvalue.measure(model, test, [None, *personas], progress=False)  # None: no persona
print(m.values.round(3).to_string(index=False))
print(m.settings["scoring"], m.settings["prompt_format"], "|", m.settings["score"])
print(m.items[["player_name", "value", "question", "p_yes", "p_no", "score"]].head(3).to_string(index=False))

# 3. The recipe SAE (trained once on an empty cache: minutes) and its features, the SAELens way
sae = mechvalue.recipe_sae(model, 15)
hook = sae.cfg.hook_name  # "blocks.15.hook_resid_post"
prompt = mechvalue.render_prompt(model, test["question"][0], personas[0])  # .text, .tokens, .span
tokens = torch.tensor([prompt.tokens])
with torch.no_grad():
    logits, cache = model.run_with_cache_with_saes(tokens, saes=[sae])  # error term kept
    assert torch.equal(logits, model(tokens))  # the SAE attached changes nothing downstream
acts = cache[f"{hook}.hook_sae_acts_post"][0]  # [position, feature]
feature = int(acts[prompt.span[0] : prompt.span[1]].mean(0).argmax())  # most active on " your values"
print(f"feature {feature} on {model.tokenizer.decode(prompt.tokens[slice(*prompt.span)])!r}")

# 4. Typical activations (the unit of SAE strengths) and attribution for one value across personas
prompts = mechvalue.render_prompts(model, train, personas)  # every train item x persona
typical = mechvalue.typical_activations(sae, prompts, model=model)  # position 0, the attention sink, left out
grad = mechvalue.feature_attribution(model, sae, train, personas[:3])  # d score / d strength, raw units
per_typical = grad["Power"] * typical.numpy()
print("features that raise Power most per typical unit:", per_typical.nlargest(3).round(4).to_dict())

# --8<-- [start:steering]
# 5. Steering on held-out items: the SAE feature, CAA and DiffMean built from train items
caa = mechvalue.caa_vector(model, train, "Power", hook, personas)
diffmean = mechvalue.diffmean_vector(model, train, "Power", hook, personas)
unit = mechvalue.residual_norm(model, hook, prompts)  # mean residual norm, position 0 left out
best = int(per_typical.idxmax())
steering = {
    "sae": [(hook, mechvalue.sae_hook(sae, {best: 4.0}, units="typical", typical=typical))],
    "caa": [(hook, mechvalue.vector_hook(caa, 0.25, unit))],
    "diffmean": [(hook, mechvalue.vector_hook(diffmean, 0.25, unit))],
}
steered = mechvalue.measure(model, test, [None, *personas], steering=steering, where="all", progress=False)
table = steered.values.fillna({"steer_dim": "unsteered"})
print(table.groupby("steer_dim")[values].mean().round(3))  # mean over personas, per method
with torch.no_grad(), mechvalue.steer(model, sae, {feature: 4.0}, units="typical", typical=typical):
    out = model.generate(tokens, max_new_tokens=20, do_sample=False, verbose=False)
print("steered:", repr(model.tokenizer.decode(out[0, tokens.shape[1] :], skip_special_tokens=True)))
# --8<-- [end:steering]

# 6. An activation cache file (position 0 left out), read back with h5py and with the API
cache_prompts = [mechvalue.CachePrompt(p.tokens) for p in prompts]
path = mechvalue.cache_activations(
    model, cache_prompts, [hook], "runs/research_api_acts.h5", first_position="drop", progress=False
)
with h5py.File(path, "r") as f:
    x, pid, pos = f[hook][:], f["prompt_id"][:], f["position"][:]
    rms = float((x**2).sum(1).mean() ** 0.5)
    print(f.attrs["model"], x.shape, "positions from", pos.min(), "| root-mean-square norm", rms)
store = mechvalue.ActivationStore(path)
print(store.index().head(3).to_string(index=False), store.for_prompt(0, hook).shape)
store.close()
