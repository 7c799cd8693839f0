"""patchify / unpatchify / patch_means against brute-force numpy oracles (property-based)."""

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from patchscaler_lite.errors import PatchScalerError
from patchscaler_lite.patches import blend_window, make_layout, patch_means, patchify, unpatchify


@st.composite
def image_and_grid(draw, overlap: bool):
    """(x (B, C, H, W), P, overlap): sizes from 1 px to a few patches, any overlap in [0, P)."""
    P = draw(st.integers(1, 12))
    ov = draw(st.integers(1, P - 1)) if overlap and P > 1 else 0
    B, C = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    H, W = draw(st.integers(1, 40)), draw(st.integers(1, 40))
    seed = draw(st.integers(0, 2**31 - 1))
    x = torch.rand((B, C, H, W), generator=torch.Generator().manual_seed(seed))
    return x, P, ov


def brute_patches(x: np.ndarray, P: int, s: int, nh: int, nw: int) -> np.ndarray:
    """Oracle: edge-pad (replicate) to the grid, then slice every patch, row-major per image."""
    B, C, H, W = x.shape
    Hp, Wp = P + s * (nh - 1), P + s * (nw - 1)
    xp = np.pad(x, ((0, 0), (0, 0), (0, Hp - H), (0, Wp - W)), mode="edge")
    return np.stack([xp[b, :, i * s : i * s + P, j * s : j * s + P]
                     for b in range(B) for i in range(nh) for j in range(nw)])


@given(image_and_grid(overlap=False))
def test_round_trip_without_overlap_is_exact(case):
    x, P, _ = case
    patches, layout = patchify(x, P)
    assert patches.shape == (x.shape[0] * layout.nh * layout.nw, x.shape[1], P, P)
    assert torch.equal(unpatchify(patches, layout), x)


@given(image_and_grid(overlap=True))
def test_round_trip_with_overlap_is_close(case):
    x, P, ov = case
    patches, layout = patchify(x, P, ov)
    y = unpatchify(patches, layout)
    assert y.shape == x.shape
    torch.testing.assert_close(y, x, rtol=0, atol=1e-5)


@given(image_and_grid(overlap=True))
def test_patches_match_bruteforce_slices_and_grid_is_minimal(case):
    x, P, ov = case
    patches, layout = patchify(x, P, ov)
    s = P - ov
    H, W = x.shape[-2:]
    Hp, Wp = layout.padded
    # The grid covers the image, and one row/column fewer would not.
    assert Hp >= H and Wp >= W
    assert layout.nh == 1 or Hp - s < H
    assert layout.nw == 1 or Wp - s < W
    ref = brute_patches(x.numpy(), P, s, layout.nh, layout.nw)
    np.testing.assert_array_equal(patches.numpy(), ref)


@given(image_and_grid(overlap=True))
def test_patch_means_equal_bruteforce_mean_over_valid_pixels(case):
    x, P, ov = case
    _, layout = patchify(x, P, ov)
    got = patch_means(x, layout)
    assert got.shape == (x.shape[0], layout.nh, layout.nw)
    s, (H, W) = P - ov, x.shape[-2:]
    xn = x.double().numpy()
    ref = np.array([[[xn[b, :, i * s : min(i * s + P, H), j * s : min(j * s + P, W)].mean()
                      for j in range(layout.nw)] for i in range(layout.nh)]
                    for b in range(x.shape[0])])
    np.testing.assert_allclose(got.double().numpy(), ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("H,W,P,ov", [(1, 1, 8, 0), (5, 3, 8, 0), (7, 2, 8, 3), (8, 8, 8, 0)])
def test_image_smaller_than_one_patch(H, W, P, ov):
    x = torch.rand((2, 3, H, W), generator=torch.Generator().manual_seed(H * W))
    patches, layout = patchify(x, P, ov)
    assert (layout.nh, layout.nw) == (1, 1)
    assert patches.shape == (2, 3, P, P)
    assert torch.equal(patches[..., :H, :W], x)                    # image in the top-left corner
    assert torch.equal(patches[..., H:, :W], x[..., -1:, :].expand(-1, -1, P - H, -1))  # replicate
    if ov == 0:
        assert torch.equal(unpatchify(patches, layout), x)
    else:  # (x * window) / window: exact up to float rounding
        torch.testing.assert_close(unpatchify(patches, layout), x, rtol=0, atol=1e-6)
    torch.testing.assert_close(patch_means(x, layout), x.mean((1, 2, 3))[:, None, None])


def test_constant_patches_unpatchify_to_constant():
    """The blend weights are normalised: any overlap turns constant patches into that constant."""
    layout = make_layout((1, 3, 37, 29), 16, 6)
    patches = torch.full((layout.nh * layout.nw, 3, 16, 16), 0.37)
    torch.testing.assert_close(unpatchify(patches, layout), torch.full((1, 3, 37, 29), 0.37))


def test_unpatchify_one_channel_map_on_rgb_layout():
    x = torch.rand(1, 3, 20, 20, generator=torch.Generator().manual_seed(0))
    _, layout = patchify(x, 8, 2)
    conf = torch.rand(1, 1, 20, 20, generator=torch.Generator().manual_seed(1))
    cp, _ = patchify(conf, 8, 2)
    torch.testing.assert_close(unpatchify(cp, layout), conf)


@pytest.mark.parametrize("P,ov", [(8, 0), (8, 3), (5, 4), (16, 8)])
def test_blend_window_positive_and_symmetric(P, ov):
    w = blend_window(P, ov)
    assert w.shape == (P, P)
    assert (w > 0).all() and (w <= 1).all()
    torch.testing.assert_close(w, w.flip(0))
    torch.testing.assert_close(w, w.T)
    if ov == 0:
        assert torch.equal(w, torch.ones(P, P))


@pytest.mark.parametrize("P,ov", [(0, 0), (4, 4), (4, -1), (4, 5)])
def test_invalid_patch_size_or_overlap_raises(P, ov):
    with pytest.raises(PatchScalerError, match="patch_size|overlap"):
        make_layout((1, 3, 16, 16), P, ov)


def test_unpatchify_rejects_patches_that_do_not_fit_layout():
    patches, layout = patchify(torch.rand(1, 3, 16, 16), 8)
    with pytest.raises(PatchScalerError, match="do not fit"):
        unpatchify(patches[:-1], layout)
    with pytest.raises(PatchScalerError, match="do not fit"):
        unpatchify(patches[..., :4, :4], layout)
