"""Value measurement: items/s of `logprob` vs `generate` scoring on the same items and roles,
and the gain from running a role's shared prompt prefix once (KV-cache reuse)."""

from conftest import record, timed

from mechvalue.measure.scoring import Measurer, measure
from mechvalue.study import inventory as inv
from mechvalue.study.roles import generate_roles


def test_logprob_vs_generate(smollm2):
    model, info = smollm2
    items = inv.load_inventory().iloc[::2].reset_index(drop=True)  # 20 items, 10 values
    roles = [generate_roles(1, 0)[0]]
    fmt = info.prompt_format
    gen, t_gen = timed(
        lambda: measure(Measurer(model, fmt, "generate", max_new_tokens=100), items, roles, progress=False)
    )
    lp, t_lp = timed(lambda: measure(Measurer(model, fmt, "logprob"), items, roles, progress=False), 2)
    _, t_np = timed(
        lambda: measure(Measurer(model, fmt, "logprob", prefix_cache=False), items, roles, progress=False), 2
    )
    n = len(items) * len(roles)
    record("measure", {"items": n, "logprob_items_per_s": n / t_lp, "generate_items_per_s": n / t_gen,
                       "logprob_speedup": t_gen / t_lp, "prefix_cache_gain": t_np / t_lp,
                       "mean_generated_tokens": float(gen[0]["completion"].map(lambda s: len(model.tokenizer.encode(s))).mean())})  # fmt: skip
    assert t_gen / t_lp >= 20, "logprob scoring should be at least 20x faster than generating"
    assert t_np > t_lp
