"""A research script on SmolLM2 and its SAE, with mechvalue's public API and TransformerLens's own
calls only: read feature activations at a span, clamp a feature to zero there (`run_with_hooks`),
steer one feature while generating (`mechvalue.steer` on `model.hooks()`), and stack a reading hook
on top with `hooks()`.

    python examples/research_hooks.py     # on an empty cache, recipe_sae trains the SAE once (minutes)
"""

import torch

import mechvalue

LAYER = 15
model = mechvalue.load_model()  # a LoadedModel: TransformerBridge calls work on it directly
sae = mechvalue.recipe_sae(model, LAYER)  # loaded; trained once (minutes) on an empty cache
hook_name = sae.cfg.hook_name  # blocks.15.hook_resid_post

chat = [{"role": "user", "content": "Should I always tell my friends the truth, even when it hurts?"}]
text = model.tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
tokens = model.to_tokens(text, prepend_bos=False)
span_ids = model.tokenizer.encode(" the truth", add_special_tokens=False)
ids = tokens[0].tolist()
start = next(i for i in range(len(ids)) if ids[i : i + len(span_ids)] == span_ids)
span = (start, start + len(span_ids))

# 1. feature activations at the span, the SAELens way (the error term kept: the logits are unchanged)
with torch.no_grad():
    _, cache = model.run_with_cache_with_saes(
        tokens, saes=[sae], names_filter=f"{hook_name}.hook_sae_acts_post"
    )
    feats = cache[f"{hook_name}.hook_sae_acts_post"][0, span[0] : span[1]]
top = feats.mean(0).topk(3)
feature = int(top.indices[0])
print(
    f"top features on {model.tokenizer.decode(span_ids)!r}: {top.indices.tolist()} "
    f"(mean activations {[round(v, 2) for v in top.values.tolist()]})"
)

# 2. clamp that feature to zero at the span only: a plain hook with its positions fixed when made
clamp = mechvalue.sae_hook(sae, {feature: 0.0}, mode="clamp", where=span)
seen = {}


def read(resid, hook):
    seen["f"] = sae.encode(resid[0])[:, feature]


with torch.no_grad():
    base = model.run_with_hooks(tokens)
    clamped = model.run_with_hooks(tokens, fwd_hooks=[(hook_name, clamp), (hook_name, read)])
moved = (clamped[0] - base[0]).abs().amax(-1) > 1e-4
print(
    f"clamped feature {feature}: activation at the span now {seen['f'][span[0] : span[1]].tolist()}; "
    f"logits moved at positions {moved.nonzero().flatten().tolist()} (span {span}, none before it)"
)
assert not moved[: span[0]].any()

# 3. steer the feature up while generating, every position; then the same with a reading hook stacked
strength = 8.0 * float(feats[:, feature].max())


def new_text(out):  # generate returns tokens for token input: decode what follows the prompt
    return model.tokenizer.decode(out[0, tokens.shape[1] :], skip_special_tokens=True)


kw = dict(max_new_tokens=24, do_sample=False, verbose=False)
with torch.no_grad():
    plain = new_text(model.generate(tokens, **kw))
    with mechvalue.steer(model, sae, {feature: strength}, mode="add", where="all"):
        steered = new_text(model.generate(tokens, **kw))
        with model.hooks(fwd_hooks=[(hook_name, read)]):  # runs after the steering hook
            model.run_with_hooks(tokens)
print(f"unsteered: {plain!r}\nsteered (+{strength:.1f} on feature {feature}): {steered!r}")
print(f"feature {feature} under steering, max over the prompt: {float(seen['f'].max()):.1f}")
