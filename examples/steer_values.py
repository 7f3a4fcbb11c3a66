"""Steer SmolLM2 through one SAE feature: generated text and value scores, unsteered vs steered,
with mechvalue's public API only.

    python examples/steer_values.py [--feature F] [--strength S]

Without --feature, the feature most active on the " your values" span (the study's rule).
Strength is in units of the feature's typical activation.
"""

import argparse

import torch

import mechvalue


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--feature", type=int, default=None)
    ap.add_argument("--strength", type=float, default=6.0)
    a = ap.parse_args()
    model = mechvalue.load_model()
    sae = mechvalue.recipe_sae(model, 15)  # loaded; trained once (minutes) on an empty cache
    hook = sae.cfg.hook_name
    items = mechvalue.load_inventory()
    asked = items.iloc[::8]  # one item in eight, no persona
    prompts = mechvalue.render_prompts(model, asked, answer_prefix="Thought:")
    typical = mechvalue.typical_activations(sae, prompts, model=model)
    if a.feature is None:
        p0 = prompts[0]
        with torch.no_grad():
            _, cache = model.run_with_cache_with_saes(torch.tensor([p0.tokens]), saes=[sae])
        a.feature = int(cache[f"{hook}.hook_sae_acts_post"][0, p0.span[0] : p0.span[1]].mean(0).argmax())
    print(f"feature {a.feature}, typical activation {typical[a.feature]:.2f}, strength {a.strength:g}")

    for strength in (0.0, a.strength):
        print(f"\n--- strength {strength:g} ---")
        for question, p in zip(asked["question"], prompts):
            tokens = torch.tensor([p.tokens])
            with torch.no_grad():
                if strength:
                    with mechvalue.steer(model, sae, {a.feature: strength}, units="typical", typical=typical):
                        out = model.generate(tokens, max_new_tokens=32, do_sample=False, verbose=False)
                else:
                    out = model.generate(tokens, max_new_tokens=32, do_sample=False, verbose=False)
            text = model.tokenizer.decode(out[0, tokens.shape[1] :], skip_special_tokens=True)
            print(f"{question[:60]!r} -> {text!r}")

    steering = {
        f"{a.feature}@{s:g}": [
            (hook, mechvalue.sae_hook(sae, {a.feature: s}, units="typical", typical=typical))
        ]
        for s in (10.0, 30.0)
    }
    m = mechvalue.measure(model, items, steering=steering, where="span")
    print("\nvalue scores (no persona), unsteered and steered at ' your values':")
    table = m.values.fillna({"steer_dim": "unsteered"}).drop(columns="player_name")
    print(table.set_index("steer_dim").T.round(3).to_string())


if __name__ == "__main__":
    main()
