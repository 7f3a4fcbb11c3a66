import pytest

from mechvalue.measurement.generate import parse_answer
from mechvalue.measurement.scoring import Measurer, measure, scorer_agreement
from mechvalue.study import inventory as inv
from mechvalue.study.roles import generate_roles


@pytest.mark.parametrize(
    "text,answer",
    [
        ("Being nice matters.\nAnswer: yes", "yes"),
        ("Sure, of course.", "yes"),
        ("It depends.\nAnswer: No, never", "no"),
        ("no way", "no"),
        ("It depends.\nAnswer: maybe", "unsure"),
        ("I think so.\nanswer: yes\nAnswer: no", "no"),  # the last answer counts
        ("", "unsure"),
    ],
)
def test_parse_rule(text, answer):
    assert parse_answer(text) == answer


@pytest.fixture(scope="module")
def items():
    return inv.load_inventory().iloc[::5].reset_index(drop=True)  # 8 items, 8 values


def test_batched_equals_one_at_a_time_and_prefix_cache(smollm2, items):
    model, info = smollm2
    roles = [None, *generate_roles(2, 0)]
    single, _ = measure(
        Measurer(model, info.prompt_format, batch_size=1, prefix_cache=False), items, roles, progress=False
    )
    batched, _ = measure(
        Measurer(model, info.prompt_format, batch_size=8, prefix_cache=False), items, roles, progress=False
    )
    cached, wide = measure(
        Measurer(model, info.prompt_format, batch_size=8, prefix_cache=True), items, roles, progress=False
    )
    for other in (batched, cached):
        assert (single["p_yes"] - other["p_yes"]).abs().max() < 1e-4
        assert (single["score"] - other["score"]).abs().max() < 1e-4
        assert (single["answer"] == other["answer"]).all()
    assert len(wide) == 3 and wide["player_name"].isna().iloc[0]
    assert wide.drop(columns=["steer_dim", "player_name"]).abs().le(1).all().all()


def test_generate_scorer_agrees_with_its_parse(smollm2, items):
    model, info = smollm2
    long, wide = measure(
        Measurer(model, info.prompt_format, scoring="generate", max_new_tokens=24),
        items.head(3),
        [None],
        progress=False,
    )
    assert long["completion"].str.len().gt(0).all()
    assert long["raw"].tolist() == [{"yes": 1.0, "no": -1.0, "unsure": 0.0}[a] for a in long["answer"]]
    lp, _ = measure(
        Measurer(model, info.prompt_format, scoring="logprob"), items.head(3), [None], progress=False
    )
    same = sum(a == b for a, b in zip(long["answer"], lp["answer"]))
    assert scorer_agreement(long, lp) == same / 3
    flipped = lp.assign(answer=lp["answer"].map({"yes": "no", "no": "yes", "unsure": "yes"}))
    assert (
        scorer_agreement(long, flipped) == sum(a == b for a, b in zip(long["answer"], flipped["answer"])) / 3
    )


def test_wide_table_schema(smollm2, items):
    model, info = smollm2
    long, wide = measure(Measurer(model, info.prompt_format), items.head(4), [None], progress=False)
    assert list(wide.columns[:2]) == ["steer_dim", "player_name"] and len(wide) == 1
    means = long.groupby("value")["score"].mean()
    assert sorted(wide.columns[2:]) == sorted(means.index)
    assert [wide[v].iloc[0] for v in means.index] == pytest.approx(list(means), abs=1e-12)
    assert list(long["score"]) == pytest.approx(
        list(long["agreement"] * (long["p_yes"] - long["p_no"])), abs=1e-6
    )


def test_span_steering_through_shared_prefix_equals_full_pass(smollm2, items):
    """Steering " your values" once in the shared prefix's KV cache == steering every full prompt."""
    import torch

    from mechvalue.interp.sae import SAE, SAEConfig
    from mechvalue.interp.steering import SAEEditHook, SteeringSpec
    from mechvalue.measurement.scoring import Condition

    model, info = smollm2
    torch.manual_seed(0)
    sae = SAE(SAEConfig(576, 64, "relu", hook_name="blocks.10.hook_resid_post"))
    hook = SAEEditHook(sae, SteeringSpec([3], "add", 60.0))
    cond = Condition("f3", [(sae.cfg.hook_name, hook)])
    role = generate_roles(1, 3)[0]
    fast = Measurer(model, info.prompt_format, batch_size=8).score_items(items, role, cond)
    slow = Measurer(model, info.prompt_format, batch_size=8, prefix_cache=False).score_items(
        items, role, cond
    )
    plain = Measurer(model, info.prompt_format, batch_size=8).score_items(items, role)
    assert (fast["p_yes"] - slow["p_yes"]).abs().max() < 1e-4
    assert (fast["p_yes"] - plain["p_yes"]).abs().max() > 1e-3  # the edit did something


def test_a_new_scorer_is_one_registry_entry(smollm2, items, monkeypatch):
    """A scorer the Measurer has never heard of: one object with `prompts` and `score`, one entry in
    SCORERS. This one scores p(yes) alone on the log-prob prompt; its rows equal log-prob's p_yes."""
    from mechvalue.measurement import scorers
    from mechvalue.measurement.logprob import LogProb, yes_no_probs

    class YesOnly:
        name = "yes-only"
        description = "agreement x p(yes) at the answer position"

        def prompts(self, m, items, role, cond):
            return LogProb().prompts(m, items, role, cond)

        def score(self, m, batch, cond):
            p_yes, _ = yes_no_probs(m.answer_logits(batch, cond), m.answer_ids)
            return [{"answer": "yes" if p > 0.5 else "no", "raw": float(p)} for p in p_yes]

    monkeypatch.setitem(scorers.SCORERS, "yes-only", YesOnly())
    model, info = smollm2
    new, _ = measure(Measurer(model, info.prompt_format, scoring="yes-only"), items, [None], progress=False)
    ref, _ = measure(Measurer(model, info.prompt_format, scoring="logprob"), items, [None], progress=False)
    assert (new["raw"] - ref["p_yes"]).abs().max() < 1e-6
    assert (new["score"] - ref["p_yes"] * ref["agreement"]).abs().max() < 1e-6
