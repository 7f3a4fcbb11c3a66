"""Value measurement: items/s of `logprob` vs `generate` scoring on the same items and roles,
and the gain from running a role's shared prompt prefix once (KV-cache reuse); the three run
interleaved (medians of rotating rounds), so a busy machine slows all of them alike."""

from conftest import interleaved, record

from mechvalue.measurement.scoring import Measurer, measure
from mechvalue.study import inventory as inv
from mechvalue.study.roles import generate_roles


def test_logprob_vs_generate(smollm2):
    model, info = smollm2
    items = inv.load_inventory().iloc[::2].reset_index(drop=True)  # 20 items, 10 values
    roles = [generate_roles(1, 0)[0]]
    fmt = info.prompt_format
    run = lambda **kw: measure(Measurer(model, fmt, **kw), items, roles, progress=False)  # noqa: E731
    t, out = interleaved(
        {
            "generate": lambda: run(scoring="generate", max_new_tokens=100),
            "logprob": lambda: run(scoring="logprob"),
            "logprob_no_prefix": lambda: run(scoring="logprob", prefix_cache=False),
        },
        rounds=2,
    )
    t_gen, t_lp, t_np, gen = t["generate"], t["logprob"], t["logprob_no_prefix"], out["generate"]
    n = len(items) * len(roles)
    record(
        "measure",
        {
            "items": n,
            "logprob_items_per_s": n / t_lp,
            "generate_items_per_s": n / t_gen,
            "logprob_speedup": t_gen / t_lp,
            "prefix_cache_gain": t_np / t_lp,
            "mean_generated_tokens": float(
                gen[0]["completion"].map(lambda s: len(model.tokenizer.encode(s))).mean()
            ),
        },
    )
    assert t_gen / t_lp >= 20, "logprob scoring should be at least 20x faster than generating"
    assert t_np > t_lp
