"""DiffMean and CAA vectors equal a direct computation from the HDF5 activation cache (SmolLM2);
the vector hook adds exactly its vector, and nothing at strength 0."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from mechvalue.errors import MechValueError
from mechvalue.interp import vectors as vec
from mechvalue.interp.cache import ActivationStore, CachePrompt, cache_activations

HOOK = "blocks.15.hook_resid_post"
TRAIN = pd.DataFrame(
    {
        "questionnaire": "t",
        "item": [1, 2, 3],
        "value": ["Power", "Power", "Security"],
        "agreement": [1, -1, 1],
        "question": ["Should I be rich?", "Should I avoid status?", "Should I lock my door?"],
    }
)


def _cached_mean(model, seqs, masks, path) -> torch.Tensor:
    cache_activations(
        model,
        [CachePrompt(s, mask=m) for s, m in zip(seqs, masks)],
        [HOOK],
        path,
        "mask",
        batch_size=1,
        progress=False,
    )
    store = ActivationStore(path)
    try:
        return store.rows(HOOK).mean(0)
    finally:
        store.close()


def test_diffmean_and_caa_equal_cached_activations(smollm2, tmp_path):
    model, info = smollm2
    got = vec.diffmean_vector(model, TRAIN, "Power", HOOK, [None], "all", info.prompt_format)
    means = []
    for d in (1, -1):
        ps = vec.hard_prompted(TRAIN, "Power", d, [None], info.prompt_format, model.tokenizer)
        assert len(ps) == 2  # Power's train items only
        means.append(
            _cached_mean(
                model, [p.tokens for p in ps], [[True] * len(p.tokens) for p in ps], tmp_path / f"dm{d}.h5"
            )
        )
    want = means[0] - means[1]
    assert torch.allclose(got, want, atol=2e-3 * float(want.norm()), rtol=0)
    assert float(torch.cosine_similarity(got, want, 0)) > 0.9999

    got = vec.caa_vector(model, TRAIN, "Power", HOOK, [None], info.prompt_format)
    agree, disagree = vec.caa_prompts(TRAIN, "Power", [None], info.prompt_format, model.tokenizer)
    yes, no = vec.answer_tokens(model.tokenizer)[1], vec.answer_tokens(model.tokenizer)[-1]
    assert [s[-1] for s in agree] == [yes, no] and [s[-1] for s in disagree] == [no, yes]  # agreement +1, -1
    last = lambda seqs: [[False] * (len(s) - 1) + [True] for s in seqs]  # noqa: E731
    want = _cached_mean(model, agree, last(agree), tmp_path / "a.h5") - _cached_mean(
        model, disagree, last(disagree), tmp_path / "d.h5"
    )
    assert torch.allclose(got, want, atol=2e-3 * float(want.norm()), rtol=0)


def test_diffmean_at_the_span_is_zero_and_refused(smollm2):
    model, info = smollm2
    with pytest.raises(MechValueError, match="zero"):
        vec.diffmean_vector(model, TRAIN, "Security", HOOK, [None], "span", info.prompt_format)
    with pytest.raises(MechValueError, match="no train items"):
        vec.diffmean_vector(model, TRAIN, "Hedonism", HOOK, [None], "all", info.prompt_format)


def test_vector_hook_adds_exactly_and_zero_is_identity():
    x = torch.randn(2, 5, 8)
    d = torch.randn(8)
    h = vec.vector_hook(d, 0.5, 10.0, positions=(1, 3))
    y = h(x, None)
    assert torch.allclose((y - x)[:, 1:3].norm(dim=-1), torch.full((2, 2), 5.0), atol=1e-5)  # 0.5 x unit 10
    assert torch.equal(y[:, 0], x[:, 0]) and torch.equal(y[:, 3:], x[:, 3:])
    assert torch.equal(vec.vector_hook(d, 0.0, 10.0)(x, None), x)
    with pytest.raises(MechValueError):
        vec.steering_vector(torch.zeros(8), 1.0, 1.0)


def test_span_activation_and_typical_from_prompts_equal_one_prompt_at_a_time(smollm2):
    """The batched, left-padded rows behind the span rule and the typical activations equal each
    prompt run alone through the model's own hooks (no padding)."""
    from mechvalue.interp.features import span_activation, typical_activation, typical_from_prompts
    from mechvalue.interp.sae import SAE, SAEConfig
    from mechvalue.study.prompts import render

    model, info = smollm2
    torch.manual_seed(0)
    sae = SAE(SAEConfig(d_in=576, d_sae=64, hook_name=HOOK))
    with torch.no_grad():
        sae.W_enc.normal_(0, 0.05)
    prompts = [render(q, None, info.prompt_format, model.tokenizer) for q in TRAIN["question"]]
    spans, rest = [], []
    for p in prompts:
        _, cache = model.run_with_cache(torch.tensor([p.tokens]), names_filter=HOOK)
        x = cache[HOOK][0].float()
        spans.append(x[p.span[0] : p.span[1]])
        rest.append(x[1:])
    want_span = sae.encode(torch.cat(spans)).mean(0)
    assert want_span.abs().sum() > 0
    assert torch.allclose(span_activation(model, sae, prompts), want_span, rtol=1e-4, atol=1e-5)
    got = typical_from_prompts(model, sae, prompts)
    assert torch.allclose(got, typical_activation(sae, torch.cat(rest)), rtol=1e-4, atol=1e-5)
