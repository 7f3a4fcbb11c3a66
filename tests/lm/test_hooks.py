"""mechvalue hooks on a bridge: plain (activation, hook) functions with positions fixed when made,
through TransformerLens's own run_with_hooks / hooks(), steer() nesting, bfloat16, gradients."""

from __future__ import annotations

import pytest
import torch

import mechvalue
from mechvalue.errors import MechValueError
from mechvalue.interp.sae import SAE, SAEConfig
from mechvalue.lm.models import load_model
from tests.lm.tiny import D_MODEL, N_LAYERS, write_tiny

LAST = f"blocks.{N_LAYERS - 1}.hook_resid_post"
FIRST = "blocks.0.hook_resid_post"


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_tiny("llama3", tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def model(folder):
    return load_model(str(folder))


def _sae(hook=FIRST, activation="relu"):
    torch.manual_seed(1)
    sae = SAE(SAEConfig(D_MODEL, 128, activation, hook_name=hook, k=8))
    with torch.no_grad():
        sae.b_enc.fill_(0.1)
    return sae


def _toks(model):
    return torch.tensor([model.tokenizer.encode("one two three four five six seven eight nine ten")])


def _changed(a, b):
    return (a - b).abs().amax(-1)[0] > 1e-4  # per position


def test_run_with_hooks_edits_only_the_given_positions(model):
    toks = _toks(model)
    with torch.no_grad():
        base = model.run_with_hooks(toks)
        for name, want_after in ((LAST, False), (FIRST, True)):
            hook = mechvalue.sae_hook(_sae(name), {3: 5.0, 7: -2.0}, mode="add", where=(4, 6))
            out = model.run_with_hooks(toks, fwd_hooks=[(name, hook)])
            ch = _changed(out, base)
            assert not ch[:4].any() and ch[4:6].all()  # never before the edit
            assert bool(ch[6:].all()) == want_after  # later positions only through later layers
        # a boolean mask and "all"
        mask = torch.zeros(toks.shape, dtype=torch.bool)
        mask[0, [2, 8]] = True
        out = model.run_with_hooks(
            toks, fwd_hooks=[(LAST, mechvalue.sae_hook(_sae(LAST), {3: 5.0}, where=mask))]
        )
        assert _changed(out, base).tolist() == mask[0].tolist()
        out = model.run_with_hooks(toks, fwd_hooks=[(LAST, mechvalue.sae_hook(_sae(LAST), {3: 5.0}))])
        assert _changed(out, base).all()
        assert torch.equal(model.run_with_hooks(toks), base)  # nothing left installed


def test_clamp_to_zero_turns_a_feature_off(model):
    sae, toks, seen = _sae(LAST), _toks(model), {}
    with torch.no_grad():
        _, cache = model.run_with_cache(toks, names_filter=LAST)
        f = sae.encode(cache[LAST])[0]
        feat = int(f.amax(0).argmax())
        assert f[:, feat].max() > 0

        def read(x, hook):
            seen["f"] = sae.encode(x)[0]

        with mechvalue.steer(model, sae, {feat: 0.0}, mode="clamp"):
            model.run_with_hooks(toks, fwd_hooks=[(LAST, read)])  # runs after the steering hook
    assert seen["f"][:, feat].abs().max() < 1e-4


def test_steer_nests_and_two_models_steer_at_once(model, folder):
    toks, sae = _toks(model), _sae(FIRST)
    other = load_model(str(folder))
    with torch.no_grad():
        base = model.bridge(toks)
        with mechvalue.steer(model, sae, {1: 4.0, 2: 3.0}):
            both = model.bridge(toks)
        with mechvalue.steer(model, sae, {1: 4.0}):
            with mechvalue.steer(model, sae, {2: 3.0}):
                nested = model.bridge(toks)
                other_out = other.bridge(toks)
            inner_gone = model.bridge(toks)
        with mechvalue.steer(model, sae, {1: 4.0}):
            one = model.bridge(toks)
        after = model.bridge(toks)
    assert (nested - both).abs().max() < 1e-4 and (both - base).abs().max() > 1e-2
    assert torch.equal(inner_gone, one) and torch.equal(after, base)
    assert torch.equal(other_out, base)  # the other model is not steered


def test_generate_is_steered_and_where_generated_leaves_the_prompt_alone(model):
    sae, toks = _sae(FIRST), _toks(model)
    kw = dict(max_new_tokens=6, do_sample=False, use_past_kv_cache=True, return_type="tokens", verbose=False)
    with torch.no_grad():
        plain = model.generate(toks, **kw)
        with mechvalue.steer(model, sae, {1: 40.0, 5: 40.0}, where="all"):
            steered = model.generate(toks, **kw)
        logits = []
        grab = lambda x, hook: logits.append(x.shape[1])  # noqa: E731
        with mechvalue.steer(model, sae, {1: 40.0}, where="generated"), model.hooks([(FIRST, grab)]):
            model.generate(toks, **kw)
    assert not torch.equal(plain, steered)
    assert logits[0] == toks.shape[1] and set(logits[1:]) == {1}  # a prompt pass, then decode steps


def test_hooks_that_would_do_nothing_raise(model):
    sae = _sae()
    with pytest.raises(MechValueError, match="would do nothing"):
        mechvalue.sae_hook(sae, {3: 0.0}, mode="add")
    with pytest.raises(MechValueError, match="would do nothing"):
        mechvalue.sae_hook(sae, {3: 1.0}, mode="scale")
    with pytest.raises(MechValueError, match="at least one feature"):
        mechvalue.sae_hook(sae, {})
    with pytest.raises(MechValueError, match="positions"):
        mechvalue.sae_hook(sae, {3: 1.0}, where="span")
    with pytest.raises(MechValueError, match="mode"):
        mechvalue.sae_hook(sae, {3: 1.0}, mode="double")
    with pytest.raises(MechValueError, match="unknown hook"):
        with mechvalue.steer(model, _sae("blocks.9.hook_resid_post"), {3: 1.0}):
            pass
    hook = mechvalue.sae_hook(sae, {3: 1.0}, where=torch.ones(1, 3, dtype=torch.bool))
    with pytest.raises(MechValueError, match="fixed for"):
        model.run_with_hooks(_toks(model), fwd_hooks=[(FIRST, hook)])


def test_bfloat16_model_with_a_float32_sae(folder):
    m = load_model(str(folder), dtype="bfloat16")
    sae, toks = _sae(FIRST), _toks(m)
    seen = []
    with torch.no_grad():
        base = m.bridge(toks)
        with (
            mechvalue.steer(m, sae, {1: 8.0}, mode="clamp"),
            m.hooks([(FIRST, lambda x, hook: seen.append(x.dtype))]),
        ):
            out = m.bridge(toks)
    assert out.dtype == torch.bfloat16 and seen == [torch.bfloat16]
    assert (out.float() - base.float()).abs().max() > 1e-2


@pytest.mark.parametrize("activation", ["relu", "topk"])
def test_gradients_flow_through_a_steered_forward(model, activation):
    """Attribution through a steering edit: d(logit)/d(embedding) exists and differs from the
    unsteered one; the fused kernel, which has no backward, refuses instead of dropping it."""
    sae, toks = _sae(FIRST, activation), _toks(model)
    emb = model.bridge.original_model.get_input_embeddings().weight

    def grad(ctx):
        emb.grad = None
        with ctx:
            model.bridge(toks)[0, -1, 5].backward()
        return emb.grad[toks[0]].clone()

    import contextlib

    plain = grad(contextlib.nullcontext())
    features = {int(sae.encode(torch.randn(D_MODEL)).argmax()): 0.0, 9: 3.0}
    hook = mechvalue.sae_hook(sae, features, mode="clamp", backend="torch")
    steered = grad(model.hooks([(sae.cfg.hook_name, hook)]))
    assert torch.isfinite(steered).all() and (steered - plain).abs().max() > 1e-6
    if activation == "relu":
        with pytest.raises(MechValueError, match="no backward"):
            hook = mechvalue.sae_hook(sae, {9: 3.0}, mode="clamp", backend="triton")
            grad(model.hooks([(sae.cfg.hook_name, hook)]))
    emb.grad = None


def test_prompt_or_decode_step_is_read_from_the_cache_not_the_call_width(model):
    """A one-token prompt pass is a prompt pass ("prompt" edits it); a (0, 1) span edits the
    prompt's first position and no decode step (both were once decided by the call's width)."""
    sae = _sae(FIRST)
    one = torch.tensor([[model.tokenizer.encode("one")[0]]])
    with torch.no_grad():
        plain = model(one)
        with mechvalue.steer(model, sae, {1: 40.0}, where="prompt"):
            assert _changed(model(one), plain).all()
        toks = _toks(model)
        kw = dict(
            max_new_tokens=6, do_sample=False, use_past_kv_cache=True, return_type="tokens", verbose=False
        )
        seen = []

        def record(x, hook):
            seen.append(x.clone())

        with mechvalue.steer(model, sae, {1: 40.0}, where=(0, 1)), model.hooks([(FIRST, record)]):
            cached = model.generate(toks, **kw)
        kw["use_past_kv_cache"] = False  # every step recomputes the sequence: the span is position 0 only
        with mechvalue.steer(model, sae, {1: 40.0}, where=(0, 1)):
            full = model.generate(toks, **kw)
    assert torch.equal(cached, full)
    assert len(seen) == 6 and all(s.shape[1] == 1 for s in seen[1:])


def test_prompt_or_generated_outside_a_recorded_forward_raise():
    from mechvalue.lm.hooks import PositionedHook

    class Nop(PositionedHook):
        def edit(self, rows):
            return rows

    with pytest.raises(MechValueError, match="prompt pass or a decode step"):
        Nop("prompt")(torch.zeros(1, 3, 4), None)

    class Double(Nop):
        def edit(self, rows):
            return rows * 2

    x = torch.ones(1, 3, 4)
    assert torch.equal(Double("all")(x, None), 2 * x)
    assert Double((1, 2))(x, None)[0, :, 0].tolist() == [1, 2, 1]  # on a bare tensor a span indexes it
