"""Section: Table 1, are steering effects consistent across item splits?"""

from __future__ import annotations

import pandas as pd

from mechvalue.pipeline.report.blocks import note, table, warning
from mechvalue.pipeline.report.common import Page, Section, flat_warning, moves_warning, sae_warning

STAGE, ORDER = "tables", 50
TITLE = "Table 1: are steering effects consistent across item splits?"


def build(p: Page) -> Section:
    gr = p.gr
    t = p.ws.read_json("tables", "tables.json")
    t1 = t["table1"]
    stands = (
        f"Stands on: {t1.get('train_items', '?')} train and {t1.get('test_items', '?')} test items (seeded 0.7 "
        f"split; {len(t1.get('values', [])) or 'the'} values with items on both sides), {t.get('roles', '?')} "
        "roles per feature."
    )
    blocks = [note(stands)]
    if not gr.steering_moves:
        return {
            "title": TITLE,
            "blocks": [
                *blocks,
                warning(
                    moves_warning(gr)
                    + " Every role's change is then noise on both splits, so the similarity "
                    "of the up/down/same patterns is undefined; it is not shown."
                ),
            ],
        }
    blocks += sae_warning(gr, "The steered features are this SAE's.")
    blocks += flat_warning(
        gr, "Table 1 compares steering effects, which may still be real; read it with care."
    )
    sims = t1["mean_similarity"]
    if not sims:
        return {
            "title": TITLE,
            "blocks": [*blocks, warning("Not computed: no value has items on both sides of the split.")],
        }
    df = pd.DataFrame(
        {
            "feature": list(sims),
            "mean similarity (cosine of up/down/same shares, train vs test)": list(sims.values()),
        }
    )
    return {"title": TITLE, "blocks": [*blocks, table(df)]}
