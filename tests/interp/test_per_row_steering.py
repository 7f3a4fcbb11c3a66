"""Per-request steering: one edit per batch row (SAE features with their strengths, a vector, or
none) gives each row what that row's edit alone gives: edits on activations, `steer` on the real
SmolLM2 (logits within 1e-5) and greedy decoding (identical tokens)."""

import pytest
import torch

from mechvalue.errors import MechValueError
from mechvalue.interp.sae import SAE, SAEConfig
from mechvalue.interp.steering import SAEEditHook, SteeringSpec, generate_steered, sae_hook, steer
from mechvalue.interp.vectors import VectorAddHook
from mechvalue.lm.batching import left_pad
from mechvalue.lm.generation import logits_at
from mechvalue.lm.hooks import installed
from mechvalue.study.prompts import render

HOOK = "blocks.15.hook_resid_post"
# one row each: unsteered, add, clamp, scale (a mix of modes: the delta path's union of features)
ROWS = [None, SteeringSpec([5, 9], "add", 40.0), SteeringSpec([9, 70], "clamp", 6.0), SteeringSpec([5], "scale", 3.0)]


def _sae(activation="relu", seed=0):
    torch.manual_seed(seed)
    sae = SAE(SAEConfig(576, 256, activation, k=16, hook_name=HOOK))
    with torch.no_grad():
        sae.b_enc.fill_(-0.05)
        sae.threshold.uniform_(0.0, 0.1)
    return sae


@pytest.mark.parametrize(
    "activation,path", [("relu", "delta"), ("relu", "full"), ("jumprelu", "delta"), ("topk", "topk"), ("topk", "full")]
)
def test_per_row_hook_is_each_rows_own_edit(activation, path):
    sae = _sae(activation)
    x = torch.randn(len(ROWS), 7, 576) * 4
    got = SAEEditHook(sae, ROWS, path=path)(x, None)
    for i, spec in enumerate(ROWS):
        want = x[i] if spec is None else SAEEditHook(sae, spec, path=path).edit(x[i])
        assert (got[i] - want).abs().max() <= 1e-5 * want.abs().max()
    if (activation, path) != ("topk", "full"):  # that path decodes f' and f: (x + a) - a
        assert torch.equal(got[0], x[0])  # the unsteered row is left bit for bit


def test_per_row_add_path_and_vectors_are_bitwise_each_rows_own():
    """Add-only rows: each row adds its own vector, computed as its edit alone computes it."""
    sae, x = _sae(), torch.randn(3, 5, 576)
    specs = [SteeringSpec([5, 9], "add", 40.0), None, SteeringSpec([70], "add", -3.0)]
    got = SAEEditHook(sae, specs)(x, None)
    assert torch.equal(got[1], x[1])
    for i in (0, 2):
        assert torch.equal(got[i], SAEEditHook(sae, specs[i]).edit(x[i]))
    vecs = torch.randn(3, 576)
    vecs[1] = 0
    got = VectorAddHook(vecs, (1, 4))(x, None)
    for i in range(3):
        assert torch.equal(got[i], VectorAddHook(vecs[i], (1, 4))(x[i : i + 1], None)[0])


def test_per_row_hooks_refuse_other_batch_sizes_and_empty_edits():
    sae = _sae()
    hook = SAEEditHook(sae, ROWS)
    with pytest.raises(MechValueError, match="batch of 4"):
        hook(torch.randn(2, 3, 576), None)
    with pytest.raises(MechValueError, match="no row edits a feature"):
        SAEEditHook(sae, [None, SteeringSpec([5], "add", 0.0)])
    with pytest.raises(MechValueError, match="expected \\[d_model\\] or \\[rows, d_model\\]"):
        VectorAddHook(torch.zeros(0, 576))


def _batch(model, info):
    qs = ("Should I help others?", "Should I be rich and famous?")
    return [render(q, None, info.prompt_format, model.tokenizer) for q in qs]


@pytest.mark.parametrize("where", ["all", "span"])
def test_steer_per_row_equals_one_condition_at_a_time(smollm2, where):
    """`steer` with one {feature: strength} per row over prompts x conditions: each row's logits
    are that condition's own run's (every prompt under it) within 1e-5."""
    model, info = smollm2
    ps, sae = _batch(model, info), _sae()
    conds = [{}, {5: 40.0, 9: 40.0}, {9: 6.0, 70: 2.0}]
    rows = [c for c in conds for _ in ps]  # condition-major: rows of condition k are k*2, k*2+1
    seqs = [p.tokens for p in ps]
    toks, attn = left_pad(seqs * len(conds), model.tokenizer.pad_token_id or 0)
    pad = toks.shape[1] - torch.tensor([len(s) for s in seqs * len(conds)])
    at = "all" if where == "all" else torch.zeros_like(toks, dtype=torch.bool)
    if where == "span":
        for i, p in enumerate(ps * len(conds)):
            at[i, pad[i] + p.span[0] : pad[i] + p.span[1]] = True
    with torch.no_grad(), steer(model, sae, rows, mode="clamp", where=at):
        got = logits_at(model, toks, attn)
    for k, c in enumerate(conds):
        sl = slice(k * len(ps), (k + 1) * len(ps))
        one = [] if not c else [(HOOK, sae_hook(sae, c, "clamp", at if where == "all" else at[sl]))]
        with torch.no_grad(), installed(model, one):
            want = logits_at(model, toks[sl], attn[sl])
        assert (got[sl] - want).abs().max() < 1e-5
    assert (got[2:4] - got[:2]).abs().max() > 1e-2  # the conditions do steer


def test_greedy_generation_per_row_equals_one_condition_at_a_time(smollm2):
    model, info = smollm2
    ps, sae = _batch(model, info), _sae()
    specs = [None, SteeringSpec([5, 9], "add", 40.0), SteeringSpec([9], "clamp", 30.0)]
    rows = [s for s in specs for _ in ps]
    batched = generate_steered(model, ps * len(specs), HOOK, SAEEditHook(sae, rows), "all", 12)
    one = [generate_steered(model, ps, HOOK, s and SAEEditHook(sae, s), "all", 12) for s in specs]
    assert batched == [t for texts in one for t in texts]
    assert one[1] != one[0]
