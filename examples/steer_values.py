"""Steer SmolLM2 through one SAE feature: generated text and value scores, unsteered vs steered.

    python examples/steer_values.py [--feature F] [--strength S]

Without --feature, the feature most active on the " your values" span (the study's rule).
Strength is in units of the feature's typical activation.
"""

import argparse

import torch
from _common import model_and_sae

from mechvalue.interp.steering import SAEEditHook, SteeringSpec, generate_steered
from mechvalue.measure.scoring import Condition, Measurer, measure
from mechvalue.study import inventory as inv
from mechvalue.study.prompts import render


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--feature", type=int, default=None)
    ap.add_argument("--strength", type=float, default=6.0)
    a = ap.parse_args()
    model, info, sae, typical = model_and_sae()
    items = inv.load_inventory()
    p0 = render(items["question"][0], None, info.prompt_format, model.tokenizer)
    if a.feature is None:
        with torch.no_grad():
            _, cache = model.run_with_cache(torch.tensor([p0.tokens]), names_filter=sae.cfg.hook_name)
        a.feature = int(sae.encode(cache[sae.cfg.hook_name][0, p0.span[0] : p0.span[1]]).mean(0).argmax())
    print(f"feature {a.feature}, typical activation {typical[a.feature]:.2f}, strength {a.strength:g}")

    prompts = [render(q, None, info.prompt_format, model.tokenizer) for q in items["question"][::8]]
    for strength in (0.0, a.strength):
        hook = SAEEditHook(sae, SteeringSpec([a.feature], "add", strength, "all", "typical"), typical=typical)
        texts = generate_steered(model, prompts, sae.cfg.hook_name, hook, "all", 32)
        print(f"\n--- strength {strength:g} ---")
        for p, t in zip(prompts, texts):
            print(f"{p.text.splitlines()[-2][:60]!r} -> {t!r}")

    conds = [Condition()] + [
        Condition(f"{a.feature}@{s:g}", [(sae.cfg.hook_name, SAEEditHook(sae, SteeringSpec([a.feature], "add", s, "span", "typical"), typical=typical))])
        for s in (10.0, 30.0)
    ]  # fmt: skip
    _, wide = measure(Measurer(model, info.prompt_format), items, [None], conds)
    print("\nvalue scores (no role), unsteered and steered at ' your values':")
    print(wide.drop(columns="player_name").set_index("steer_dim").T.round(3).to_string())


if __name__ == "__main__":
    main()
