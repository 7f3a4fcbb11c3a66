"""The SAE module: its activations compute what they say, and its own format round-trips exactly
(other publishers' formats are in test_sae_formats.py)."""

import pytest
import torch

from mechvalue.errors import MechValueError
from mechvalue.interp.sae import SAE, SAEConfig
from mechvalue.interp.sae_formats import detect_format, load_sae


def test_own_format_round_trip(tmp_path):
    torch.manual_seed(0)
    sae = SAE(SAEConfig(16, 40, "jumprelu", input_scale=0.5, hook_name="blocks.3.hook_resid_post"))
    with torch.no_grad():
        sae.threshold.uniform_(0, 0.3)
        sae.b_enc.normal_()
    sae.save(tmp_path / "s")
    assert detect_format(tmp_path / "s").name == "mechvalue"
    back = load_sae(tmp_path / "s")
    x = torch.randn(5, 16)
    assert back.cfg == sae.cfg and torch.equal(back.encode(x), sae.encode(x))
    assert all(torch.equal(a, b) for a, b in zip(back.state_dict().values(), sae.state_dict().values()))


def test_activations():
    torch.manual_seed(0)
    x = torch.randn(6, 8)
    relu = SAE(SAEConfig(8, 20, "relu", apply_b_dec_to_input=False))
    pre = x @ relu.W_enc + relu.b_enc
    assert torch.equal(relu.encode(x), pre.relu())
    top = SAE(SAEConfig(8, 20, "topk", k=3))
    f = top.encode(x)
    assert ((f > 0).sum(-1) <= 3).all() and torch.equal(
        f.max(-1).values, top.pre_acts(x).max(-1).values.clamp(min=0)
    )
    jump = SAE(SAEConfig(8, 20, "jumprelu"))
    with torch.no_grad():
        jump.threshold.fill_(-1.0)  # a negative threshold still keeps only positive activations
    assert torch.equal(jump.encode(x), jump.pre_acts(x).relu())
    with torch.no_grad():
        jump.threshold.fill_(0.5)
    p = jump.pre_acts(x)
    assert torch.equal(jump.encode(x), torch.where(p > 0.5, p, 0.0))
    with pytest.raises(MechValueError, match="unknown SAE activation 'gelu'"):
        SAE(SAEConfig(8, 20, "gelu"))  # type: ignore[arg-type]
