"""Each protocol's prompts and scoring pinned by hand computation on fixed logits (a measurer whose
answer logits come from a rule on the prompt text, every other token at -inf), the registry and
persona sets, and a tiny random-weight model in which a planted persona effect is recovered by the
protocol meant to see it."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pandas as pd
import pytest
import torch

from mechvalue.errors import MechValueError
from mechvalue.measurement.anchoring import anchor_of
from mechvalue.measurement.calibration import CONTENT_FREE, calibrate, content_free_prior
from mechvalue.measurement.likert import option_token_ids
from mechvalue.measurement.logprob import answer_token_ids
from mechvalue.measurement.protocols import PROTOCOLS, get_protocol
from mechvalue.measurement.scoring import Measurer, measure
from mechvalue.study.inventory import SCHWARTZ_VALUES
from mechvalue.study.personas import PERSONA_KINDS, persona_set
from mechvalue.study.prompts import render_text
from mechvalue.study.roles import Role
from tests.lm.tiny import smollm2_tokenizer

ROLE = Role("Ada Lovelace", "Gender: female; Job: Engineer, MBTI: INTJ")
ITEMS = pd.DataFrame(
    {
        "questionnaire": "T",
        "item": ["I-power.", "I-benev."],
        "value": ["Power", "Benevolence"],
        "agreement": [1, -1],
        "question": ["Q-power?", "Q-benev?"],
    }
)
DIGITS = [0.1, 0.2, 0.3, 0.2, 0.1, 0.1]  # p of answers "1".."6" as shown, whatever the numbering


@pytest.fixture(scope="module")
def tok():
    return smollm2_tokenizer()


def fixed(tok, rule, seen: list | None = None, **kw) -> Measurer:
    """A Measurer on the study's gemma template whose answer logits are `rule(text)` ({token: logit})."""

    class Fixed(Measurer):
        def answer_logits(self, batch, cond):
            out = torch.full((len(batch), len(tok)), -math.inf)
            for j, p in enumerate(batch):
                if seen is not None:
                    seen.append(p.text)
                for t, x in rule(p.text).items():
                    out[j, t] = x
            return out

    return Fixed(SimpleNamespace(tokenizer=tok), "gemma", **kw)


def yes_no(tok, p_yes: float) -> dict:
    ids = answer_token_ids(tok)
    return {ids["yes"][0]: math.log(p_yes), ids["no"][0]: math.log(1 - p_yes)}


def rule(tok):
    """Q-power: p(yes) .75 ('yes' named first) or .6 ('no' first); Q-benev: .2; content-free: .8;
    portraits: DIGITS over the six digits."""

    def r(text: str) -> dict:
        if text.endswith("Answer: "):
            return dict(zip(option_token_ids(tok), map(math.log, DIGITS)))
        if any(text.endswith(f"Question: {c}\nAnswer:") for c in CONTENT_FREE):
            return yes_no(tok, 0.8)
        if "Q-power?" in text:
            return yes_no(tok, 0.6 if "'no' or 'yes'" in text else 0.75)
        return yes_no(tok, 0.2)

    return r


def rows(tok, protocol: str, role=ROLE, seen=None) -> pd.DataFrame:
    return fixed(tok, rule(tok), seen, protocol=protocol).score_items(ITEMS, role)


def test_registry_entries_cite_their_source():
    assert set(PROTOCOLS) >= {"study", "anchoring", "portrait", "calibrated", "balanced"}
    for name, p in PROTOCOLS.items():
        assert p.name == name and p.description and p.source and p.scorer.name
    with pytest.raises(MechValueError, match="protocol='nope'"):
        get_protocol("nope")


def test_study_prompt_and_scores_by_hand(tok):
    seen = []
    got = rows(tok, "study", seen=seen)
    assert seen[0] == render_text("Q-power?", ROLE, "gemma", tok, answer_prefix="Answer:")
    assert seen[0].endswith(
        "(FYI, here is your trait. Gender: female; Job: Engineer, MBTI: INTJ)\n\n"
        "First write your Thought about the question, then Answer the question with 'yes' "
        "or 'no'.\n\n" + seen[0].split("or 'no'.\n\n", 1)[1]
    )
    assert got["p_yes"].tolist() == pytest.approx([0.75, 0.2])
    assert got["raw"].tolist() == pytest.approx([0.5, -0.6])
    assert got["score"].tolist() == pytest.approx([0.5, 0.6])  # agreement -1 turns the second
    plain = fixed(tok, rule(tok)).score_items(ITEMS, ROLE)  # scoring="logprob", no protocol
    assert plain.equals(got)


def test_balanced_averages_both_option_orders(tok):
    seen = []
    got = rows(tok, "balanced", seen=seen)
    assert sum("'yes' or 'no'" in t for t in seen) == 2 and sum("'no' or 'yes'" in t for t in seen) == 2
    assert got["raw@study"].tolist() == pytest.approx([0.5, -0.6])
    assert got["raw@swapped"].tolist() == pytest.approx([0.2, -0.6])
    assert got["raw"].tolist() == pytest.approx([0.35, -0.6])
    assert got["answer"].tolist() == ["yes", "no"]


def test_calibrated_divides_out_the_roles_content_free_answer(tok):
    seen = []
    got = rows(tok, "calibrated", seen=seen)
    assert [t.rsplit("Question: ", 1)[1] for t in seen[:3]] == [f"{c}\nAnswer:" for c in CONTENT_FREE]
    assert all("here is your trait. Gender: female" in t for t in seen[:3])  # the role's own prompt
    # prior (.8, .2); Q-power (.75, .25) -> q_yes = (.75/.8) / (.75/.8 + .25/.2) = 3/7
    assert got["cf_yes"].tolist() == pytest.approx([0.8, 0.8])
    assert got["q_yes"].tolist() == pytest.approx([3 / 7, (0.2 / 0.8) / (0.2 / 0.8 + 0.8 / 0.2)])
    assert got["raw"].iloc[0] == pytest.approx(-1 / 7)
    assert got["answer"].tolist() == ["no", "no"]
    assert content_free_prior([0.4, 0.1], [0.1, 0.1]) == pytest.approx((0.65, 0.35))
    assert calibrate(0.5, 0.5, 0.5, 0.5) == pytest.approx((0.5, 0.5))


def test_portrait_expectation_and_its_balanced_numbering(tok):
    seen = []
    got = rows(tok, "portrait", seen=seen)
    assert 'Person: "I-power."\nHow much like you is this person?' in seen[0].replace("\nQuestion: ", "\n")
    assert "1 = Very much like me, 2 = Like me, 3 = Somewhat like me" in seen[0]
    # importance 6..1 for answers 1..6: .1*6 + .2*5 + .3*4 + .2*3 + .1*2 + .1*1 = 3.7
    assert got["importance"].tolist() == pytest.approx([3.7, 3.7])
    assert got["raw"].tolist() == pytest.approx([(3.7 - 3.5) / 2.5] * 2, abs=1e-6)  # float32 scores
    both = rows(tok, "portrait-balanced")
    # numbered the other way (1 = not like me at all) the same digit preference gives 3.3: it cancels
    assert both["importance@swapped"].tolist() == pytest.approx([3.3, 3.3])
    assert both["raw"].tolist() == pytest.approx([0.0, 0.0], abs=1e-6)  # float32 softmax


def test_anchoring_adds_the_roles_anchor_and_scores_as_portrait(tok):
    assert anchor_of(ROLE) == "Power"  # sha256 of the name, pinned
    assert {anchor_of(r) for r in persona_set("one-line", 40)} <= set(SCHWARTZ_VALUES)
    seen = []
    got = rows(tok, "anchoring", seen=seen)
    assert "MBTI: INTJ. Answer as a person for whom Power (social status" in seen[0]
    assert "is the most important value)" in seen[0]
    none = []
    rows(tok, "anchoring", role=None, seen=none)
    assert "Answer as a person" not in none[0]
    assert got["raw"].tolist() == pytest.approx(rows(tok, "portrait")["raw"].tolist())


def test_persona_sets():
    one, bio = persona_set("one-line", 3, seed=1), persona_set("biography", 3, seed=1)
    assert [r.name for r in one] == [r.name for r in bio]
    for a, b in zip(one, bio):
        assert b.trait.startswith(a.trait + ". " + a.name + " is ")
        assert not any(v.lower() in b.trait.lower() for v in SCHWARTZ_VALUES)
    assert bio == persona_set("biography", 3, seed=1)
    assert len(persona_set("known-groups", 40)) == 12 and PERSONA_KINDS[0] == "one-line"
    with pytest.raises(MechValueError, match="persona='x'"):
        persona_set("x", 3)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from mechvalue.lm.models import load_model
    from tests.lm.tiny import write_tiny

    return load_model(str(write_tiny("llama3", tmp_path_factory.mktemp("tiny"))))


def planted(model, yes_shift: float, power_shift: float, **kw) -> Measurer:
    """`model`'s answer logits, plus a planted effect for the persona whose job is "Planted": every yes
    token + `yes_shift` (acquiescence), and + `power_shift` more on Power items."""
    ids = answer_token_ids(model.tokenizer)["yes"]

    class Planted(Measurer):
        def answer_logits(self, batch, cond):
            out = super().answer_logits(batch, cond).clone()
            for j, p in enumerate(batch):
                if "Job: Planted" in p.text:
                    out[j, ids] += yes_shift + (power_shift if "Power-item" in p.text else 0.0)
            return out

    return Planted(model, model.prompt_format, **kw)


def test_calibration_recovers_a_planted_value_effect_under_acquiescence(tiny):
    """A persona planted with a role-wide yes bias and a Power preference: the study's scores move on
    every value; calibrated scores move on Power alone, the other items exactly as unplanted."""
    items = pd.DataFrame(
        {
            "questionnaire": "T",
            "item": ["a", "b", "c"],
            "value": ["Power", "Tradition", "Hedonism"],
            "agreement": [1, 1, 1],
            "question": ["Is the Power-item mine?", "Do I keep customs?", "Do I seek fun?"],
        }
    )
    role = Role("Pat Doe", "Gender: female; Job: Planted clerk, MBTI: ISTJ")
    base = {
        p: Measurer(tiny, tiny.prompt_format, protocol=p).score_items(items, role)
        for p in ("study", "calibrated")
    }
    got = {p: planted(tiny, 10.0, 3.0, protocol=p).score_items(items, role) for p in ("study", "calibrated")}
    study = got["study"]["score"] - base["study"]["score"]
    cal = got["calibrated"]["score"] - base["calibrated"]["score"]
    assert (study.iloc[1:] > 0.01).all()  # acquiescence shows on every value
    assert cal.iloc[1:].abs().max() < 1e-6  # and is divided out
    assert cal.iloc[0] > 0.05  # the Power preference stays


def test_study_protocol_is_the_default_scoring_row_for_row(tiny):
    items = pd.DataFrame(
        {
            "questionnaire": "T",
            "item": ["a", "b"],
            "value": ["Power", "Security"],
            "agreement": [1, -1],
            "question": ["Should I be rich?", "Should I be safe?"],
        }
    )
    roles = [None, Role("A B", "Gender: male; Job: Baker, MBTI: ENFP")]
    old, _ = measure(Measurer(tiny, tiny.prompt_format), items, roles, progress=False)
    new, _ = measure(Measurer(tiny, tiny.prompt_format, protocol="study"), items, roles, progress=False)
    pd.testing.assert_frame_equal(old, new, check_exact=True)


def test_api_takes_a_protocol_and_refuses_two(tiny):
    import mechvalue

    items = ITEMS.head(1)
    m = mechvalue.measure(
        tiny, items, options=mechvalue.ScoringOptions(protocol="calibrated"), progress=False
    )
    assert m.settings["protocol"] == "calibrated" and "q_yes" in m.items.columns
    with pytest.raises(MechValueError, match="give one of them"):
        mechvalue.measure(
            tiny, items, options=mechvalue.ScoringOptions(scoring="likert", protocol="study"), progress=False
        )


def test_a_protocol_overrides_scoring_until_dropped(tok):
    from dataclasses import replace

    m = fixed(tok, rule(tok), protocol="portrait")
    assert m.scoring == "likert" and m.recipe.name == "portrait"
    assert replace(m, scoring="logprob").recipe.name == "portrait"  # the protocol decides
    plain = replace(m, scoring="logprob", protocol=None)
    assert plain.scorer.name == "logprob" and plain.recipe.name == "logprob"
