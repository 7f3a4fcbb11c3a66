"""Cache SmolLM2's residual stream for a few study prompts to one HDF5 file, then read it back
with h5py and with `mechvalue.ActivationStore`, and check the file, with mechvalue's public API
only. The file's layout is in the docs (guides/activation-cache.md).

    python examples/activation_cache.py [--out runs/tutorial_acts.h5] [--personas N]
"""

import argparse

import h5py

import mechvalue


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="runs/tutorial_acts.h5")
    ap.add_argument("--personas", type=int, default=2)
    a = ap.parse_args()

    # --8<-- [start:cache]
    model = mechvalue.load_model()
    hook = "blocks.15.hook_resid_post"  # TransformerLens hook names
    items = mechvalue.select_items(mechvalue.load_inventory(), values=["Power", "Tradition"])
    prompts = mechvalue.render_prompts(model, items, [None, *mechvalue.generate_personas(a.personas)])

    # every position but the first (an attention sink whose norm dwarfs the others), stored float16
    path = mechvalue.cache_activations(
        model,
        [mechvalue.CachePrompt(p.tokens) for p in prompts],
        [hook],
        a.out,
        first_position="drop",
        storage="float16",
        progress=False,
    )

    # 1. Plain h5py: one dataset per hook, rows aligned with prompt_id / position / token_id
    with h5py.File(path, "r") as f:
        x, pid, pos = f[hook][:], f["prompt_id"][:], f["position"][:]
        rows, width = x.shape
        print(f"{f.attrs['model']}: {rows} rows x {width}, {f.attrs['dtype']}, complete {f.attrs['complete']}")
        print(f"{pid.max() + 1} prompts, positions from {pos.min()}")
        norms = (x.astype("float32") ** 2).sum(1) ** 0.5
        print(f"residual norm: mean {norms.mean():.1f}, max {norms.max():.1f}")

    # 2. The reader: the index as a DataFrame, one prompt's rows, a slice of rows
    store = mechvalue.ActivationStore(path)
    print(store.index().head(3).to_string(index=False))
    first = store.for_prompt(0, hook)
    print(f"prompt 0: {tuple(first.shape)}; rows 0-99: {tuple(store.rows(hook, 0, 100).shape)}")
    store.close()

    # 3. Every invariant checked (commit records, CRC-32 per batch, lengths, the complete flag)
    report = mechvalue.verify_cache(path)
    print("verify:", "ok" if report["ok"] else report["problems"])
    # --8<-- [end:cache]


if __name__ == "__main__":
    main()
