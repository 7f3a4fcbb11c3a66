"""Which SAE features drive which values? Two estimates on SmolLM2's layer-15 recipe SAE, with
mechvalue's public API only: attribution patching (one backward pass per batch) and measured
interventions for the top features, and how well the first predicts the second.

    python examples/feature_attribution.py [--personas N] [--top K] [--strength S]
"""

import argparse

import numpy as np
import pandas as pd

import mechvalue


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--personas", type=int, default=3)
    ap.add_argument("--top", type=int, default=3)
    ap.add_argument(
        "--strength", type=float, default=10.0, help="in units of each feature's typical activation"
    )
    a = ap.parse_args()
    model = mechvalue.load_model()
    sae = mechvalue.recipe_sae(model, 15)  # loaded; trained once (minutes) on an empty cache
    items = mechvalue.load_inventory()
    personas = mechvalue.generate_personas(a.personas, seed=0)
    prompts = mechvalue.render_prompts(model, items, [None, *personas])
    typical = mechvalue.typical_activations(sae, prompts, model=model)

    grad = mechvalue.feature_attribution(model, sae, items, [None, *personas]).mul(typical.numpy(), axis=0)
    print("top features per value by attribution patching (effect per typical unit):")
    for v in grad.columns:
        top = grad[v].abs().nlargest(3).index
        print(f"  {v:15s}", ", ".join(f"{f} ({grad.loc[f, v]:+.4f})" for f in top))

    feats = [int(f) for f in grad.abs().max(axis=1).nlargest(a.top).index]
    hook = sae.cfg.hook_name
    steering = {
        str(f): [(hook, mechvalue.sae_hook(sae, {f: a.strength}, units="typical", typical=typical))]
        for f in feats
    }
    m = mechvalue.measure(model, items, [None, *personas], steering=steering, where="span")
    values = list(grad.columns)
    table = m.values.fillna({"steer_dim": "", "player_name": ""}).astype({"steer_dim": str})
    by_persona = lambda label: table[table["steer_dim"] == label].set_index("player_name")[values]  # noqa: E731
    effect = pd.DataFrame({f: (by_persona(str(f)) - by_persona("")).mean() / a.strength for f in feats}).T
    print(
        f"\nmeasured effect per typical unit (strength {a.strength:g} at ' your values', mean over personas):"
    )
    print(effect.round(4).to_string())
    x, y = grad.loc[feats, values].to_numpy().ravel(), effect.to_numpy().ravel()
    print(
        f"\nattribution patching vs intervention: r = {np.corrcoef(x, y)[0, 1]:.3f} over {x.size} feature-value cells"
    )


if __name__ == "__main__":
    main()
