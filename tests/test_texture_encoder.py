"""Similarity-aware texture encoder: shapes, batch == singles, similarity gating, gradients."""

from __future__ import annotations

import pytest
import torch

from patchscaler_lite.config import TextureEncoderConfig
from patchscaler_lite.diffusion.prompt_encoder import (
    SimilarityAwareTextureEncoder,
    similarity_features,
)
from patchscaler_lite.errors import PatchScalerError

CFG = TextureEncoderConfig(patch_size=16, token_size=8, dim=16, max_k=4, sim_freqs=4)  # "tiny"


def _inputs(B=3, K=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    P = CFG.patch_size
    return torch.rand(B, K, 3, P, P, generator=g), torch.rand(B, K, generator=g) * 2 - 1


def _model():
    torch.manual_seed(0)
    return SimilarityAwareTextureEncoder(CFG).eval()


def test_shapes():
    values, sims = _inputs()
    out = _model()(values, sims)
    assert CFG.tokens_per_patch == 4
    assert out.shape == (3, 4 * CFG.tokens_per_patch, CFG.dim)
    assert similarity_features(sims, 4).shape == (3, 4, 8)


def test_batch_equals_singles():
    values, sims = _inputs()
    m = _model()
    full = m(values, sims)
    singles = torch.cat([m(values[i:i + 1], sims[i:i + 1]) for i in range(3)])
    torch.testing.assert_close(full, singles, rtol=1e-5, atol=1e-6)


def test_poor_matches_are_down_weighted():
    values, _ = _inputs(B=1, K=2)
    m = _model()
    L = CFG.tokens_per_patch
    out = m(values, torch.tensor([[0.95, -0.5]]))                        # good match, poor match
    good, poor = out[0, :L].norm(), out[0, L:].norm()
    assert poor < 1e-3 * good
    s = torch.linspace(-1, 1, 21)[None]
    assert (m.gate(s).diff() > 0).all()                                  # monotone in similarity
    # closed form of the initial gate
    torch.testing.assert_close(m.gate(torch.tensor([[0.5]])), torch.tensor([[0.5]]))


def test_gradients_reach_every_parameter():
    values, sims = _inputs()
    m = SimilarityAwareTextureEncoder(CFG)
    m(values, sims.clamp_min(0.4)).pow(2).sum().backward()
    for name, p in m.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_bad_inputs_and_config():
    m = _model()
    values, sims = _inputs()
    with pytest.raises(PatchScalerError, match="values must be"):
        m(values[:, :, :, :8], sims)
    with pytest.raises(PatchScalerError, match="similarities"):
        m(values, sims[:, :2])
    big_v, big_s = _inputs(K=5)
    with pytest.raises(PatchScalerError, match="max_k"):
        m(big_v, big_s)
    with pytest.raises(ValueError, match="multiple of token_size"):
        TextureEncoderConfig(patch_size=30, token_size=8)
