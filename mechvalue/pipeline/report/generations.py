"""Section: the model's own text, unsteered and steered by each chosen SAE feature."""

from __future__ import annotations

from mechvalue.pipeline.report.blocks import fmt, generations, note, warning
from mechvalue.pipeline.report.common import Page, Section, flat_warning, sae_warning

STAGE, ORDER = "generations", 40


def build(p: Page) -> Section:
    gens = p.ws.read_json("generations", "generations.json")
    ex = gens["examples"]
    blocks = [
        note(
            f"Greedy decoding, every position steered, add {fmt(gens['strength'])} x the feature's typical "
            "activation; the cells are the model's own text."
        )
    ]
    blocks += sae_warning(p.gr, "What a steered feature does to the text says little about a value.")
    blocks += flat_warning(p.gr, "The steered features were chosen from these scores.")
    if ex and all(e["steered"] == e["unsteered"] for e in ex):
        blocks.append(warning("No steered generation differs from the unsteered one."))
    blocks.append(generations(ex))
    return {"title": "Steered generations", "blocks": blocks}
