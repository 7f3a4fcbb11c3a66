"""SAE formats: our own, SAELens folders (written by sae_lens itself), and a clear error for
a folder that is neither."""

import pytest
import torch

from mechvalue.errors import MechValueError
from mechvalue.interp.sae import SAE, SAEConfig, load_sae


def test_own_format_round_trip(tmp_path):
    torch.manual_seed(0)
    sae = SAE(SAEConfig(16, 40, "jumprelu", input_scale=0.5))
    with torch.no_grad():
        sae.threshold.uniform_(0, 0.3)
    sae.save(tmp_path / "s")
    back = load_sae(tmp_path / "s")
    x = torch.randn(5, 16)
    assert back.cfg == sae.cfg and torch.equal(back.encode(x), sae.encode(x))


def test_saelens_folder_matches_saelens(tmp_path):
    from sae_lens import StandardSAE, StandardSAEConfig

    torch.manual_seed(1)
    lens = StandardSAE(StandardSAEConfig(d_in=16, d_sae=48))
    with torch.no_grad():
        for p in lens.parameters():
            p.normal_()
    lens.save_model(str(tmp_path / "lens"))
    ours = load_sae(tmp_path / "lens")
    x = torch.randn(7, 16)
    with torch.no_grad():
        assert torch.allclose(ours(x), lens(x), atol=1e-5)


def test_unknown_path_or_release_is_a_clear_error(tmp_path):
    with pytest.raises(MechValueError, match="no mechvalue_sae.json"):
        load_sae(tmp_path)
