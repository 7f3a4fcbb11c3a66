"""Measure value orientations across personas on the embedded SmolLM2, with mechvalue's public API
only: select items, generate personas, score every item for every persona (log-prob, then the PVQ's
six-point Likert scale), and read the value table, the item table and how the scores were made.

    python examples/measure_personas.py [--personas N] [--values V1,V2,...]
"""

import argparse

import mechvalue


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--personas", type=int, default=3)
    ap.add_argument("--values", default="Power,Benevolence")
    a = ap.parse_args()

    # --8<-- [start:measure]
    # 1. A model, items, personas
    model = mechvalue.load_model()  # SmolLM2-135M-Instruct, float32, CPU; or a local HF folder
    inventory = mechvalue.load_inventory()  # the shipped MVI10 (4 items per value); or a ValueBench CSV
    items = mechvalue.select_items(inventory, values=a.values.split(","))
    personas = mechvalue.generate_personas(a.personas, seed=0)
    for p in personas:
        print(f"persona {p.name}: {p.trait}")

    # 2. One prompt as the model sees it: the study's wording in the model's prompt format
    prompt = mechvalue.render_prompt(model, items["question"].iloc[0], personas[0])
    span = model.tokenizer.decode(prompt.tokens[slice(*prompt.span)])
    print(f"prompt: {len(prompt.tokens)} tokens, span {prompt.span} = {span!r}, ends {prompt.text[-20:]!r}")

    # 3. Log-prob scores (the default): agreement x (p(yes) - p(no)) at the answer position
    m = mechvalue.measure(model, items, [None, *personas], progress=False)  # None: no persona
    print(m.values.round(3).to_string(index=False))
    print(m.settings["scoring"], m.settings["prompt_format"], "|", m.settings["score"])
    cols = ["player_name", "value", "p_yes", "p_no", "score"]
    print(m.items[cols].head(4).round(3).to_string(index=False))

    # 4. The same items on the PVQ's six-point scale ("how much like you is this person?")
    likert = mechvalue.measure(
        model, items, personas, options=mechvalue.ScoringOptions(scoring="likert"), progress=False
    )
    print(likert.settings["scoring"], "|", likert.settings["score"])
    print(likert.values.round(3).to_string(index=False))
    # --8<-- [end:measure]


if __name__ == "__main__":
    main()
