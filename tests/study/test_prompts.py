from mechvalue.study.prompts import EXAMPLES, HardPrompt, render_text, tokenize
from mechvalue.study.roles import Role, generate_roles, load_players
from tests.conftest import need_shared

ROLE = Role("Mary Holt", "Gender: female; Job: Teacher, MBTI: INFJ")


def test_gemma_template_is_the_studys():
    text = render_text("Should I help?", ROLE, "gemma")
    assert text == (
        "Instruction:\nAnswer the Question according to your values.\n\n(FYI, here is your trait. "
        "Gender: female; Job: Teacher, MBTI: INFJ)\n\nFirst write your Thought about the question, "
        "then Answer the question with 'yes' or 'no'.\n\n" + EXAMPLES + "Question: Should I help?\nThought:"
    )


def test_llama_template_and_hard_prompt():
    hard = HardPrompt("Social", "caring for others", -1)
    text = render_text("Q?", None, "llama", hard=hard, answer_prefix="Answer:")
    assert text.startswith("<|start_header_id|>system<|end_header_id|>\nAnswer the Question")
    assert '(You are disinclined to the the value of Social, which means "caring for others")' in text
    assert text.endswith("<|start_header_id|>assistant<|end_header_id|>\nAnswer:")


def test_span_of_your_values(smollm2):
    model, _ = smollm2
    p = tokenize(render_text("Q?", ROLE, "chat", model.tokenizer), model.tokenizer, prepend_bos=False)
    assert model.tokenizer.decode(p.tokens[p.span[0] : p.span[1]]) == " your values"
    g = tokenize(render_text("Q?", ROLE, "gemma"), model.tokenizer, prepend_bos=True)
    assert g.tokens[0] == model.tokenizer.bos_token_id
    assert model.tokenizer.decode(g.tokens[g.span[0] : g.span[1]]) == " your values"


def test_roles_seeded_and_study_format():
    a, b = generate_roles(5, seed=1), generate_roles(5, seed=1)
    assert a == b and len({r.name for r in a}) == 5
    assert all(r.trait.startswith("Gender: ") and "; Job: " in r.trait and ", MBTI: " in r.trait for r in a)
    players = load_players(need_shared("paper_release", "players100.json"))
    assert len(players) == 100
    assert players[0].trait == "Gender: male; Job: Engineer, maintenance (IT), MBTI: ENFJ"
