"""Value measurement: items/s of `logprob` vs `generate` scoring on the same items and roles,
the gain from running a role's shared prompt prefix once (KV-cache reuse), and the generate
scorer's early stop (`Decided`) against the study's path (every row to a stop token or 100
tokens); the four run interleaved (medians of rotating rounds), so a busy machine slows all of
them alike."""

from conftest import interleaved, record

from mechvalue.measurement.generate import Generate
from mechvalue.measurement.scoring import Condition, Measurer, measure
from mechvalue.study import inventory as inv
from mechvalue.study.roles import generate_roles


def test_logprob_vs_generate(smollm2):
    model, info = smollm2
    items = inv.load_inventory().iloc[::2].reset_index(drop=True)  # 20 items, 10 values
    roles = [generate_roles(1, 0)[0]]
    fmt = info.prompt_format
    run = lambda **kw: measure(Measurer(model, fmt, **kw), items, roles, progress=False)  # noqa: E731
    gen = Measurer(model, fmt, scoring="generate", max_new_tokens=100)
    ask = lambda early: gen.ask(items, roles[0], Condition(), Generate(early_stop=early))  # noqa: E731
    t, out = interleaved(
        {
            "generate": lambda: ask(False),
            "generate_early": lambda: ask(True),
            "logprob": lambda: run(scoring="logprob"),
            "logprob_no_prefix": lambda: run(scoring="logprob", prefix_cache=False),
        },
        rounds=2,
    )
    t_gen, t_early, t_lp, t_np = t["generate"], t["generate_early"], t["logprob"], t["logprob_no_prefix"]
    full, early = out["generate"], out["generate_early"]
    n = len(items) * len(roles)
    tokens = lambda rows: sum(len(model.tokenizer.encode(r["completion"])) for r in rows)  # noqa: E731
    record(
        "measure",
        {
            "items": n,
            "logprob_items_per_s": n / t_lp,
            "generate_items_per_s": n / t_gen,
            "logprob_speedup": t_gen / t_lp,
            "prefix_cache_gain": t_np / t_lp,
            "mean_generated_tokens": tokens(full) / n,
            "early_stop_mean_tokens": tokens(early) / n,
            "early_stop_speedup": t_gen / t_early,
        },
    )
    assert [r["answer"] for r in early] == [r["answer"] for r in full]
    assert t_gen / t_lp >= 5, "logprob scoring should be several times faster than generating"
    assert t_np > t_lp
    assert t_gen / t_early >= 0.9, "the early stop's check must cost next to nothing"
